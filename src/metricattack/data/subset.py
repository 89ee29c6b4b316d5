"""A seeded subset of a data set's query identities, for quick looks at long evaluations."""

from __future__ import annotations

from dataclasses import replace

import torch

from metricattack.data.base import ReIDData
from metricattack.errors import InputError


def subset_query_identities(data: ReIDData, count: int, seed: int) -> ReIDData:
    """``data`` with only the queries of ``count`` query identities drawn with ``seed`` (the gallery stays whole).

    The same (data, count, seed) always gives the same identities, so clean and attacked metrics
    (and a resumed run) see the same queries. The name records the subset.
    """
    identities = sorted({s.pid for s in data.query if s.pid > 0})
    if not 1 <= count <= len(identities):
        raise InputError(f"--subset must be between 1 and the {len(identities)} query identities, got {count}")
    order = torch.randperm(len(identities), generator=torch.Generator().manual_seed(seed))
    chosen = {identities[i] for i in order[:count].tolist()}
    query = [s for s in data.query if s.pid in chosen]
    return replace(data, name=f"{data.name} (subset: {count} query identities, seed {seed})", query=query)
