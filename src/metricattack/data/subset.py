"""A seeded subset of a data set's query identities, for quick looks at long evaluations."""

from __future__ import annotations

import re
from dataclasses import replace

import torch

from metricattack.data.base import ReIDData
from metricattack.errors import InputError

SUBSET_SUFFIX = re.compile(r" \(subset: (?P<count>\d+) query identities, seed -?\d+\)$")  # what subset_name appends


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
    return replace(data, name=subset_name(data.name, count, seed), query=query)


def subset_name(name: str, count: int, seed: int) -> str:
    """The name of a data set cut to ``count`` query identities drawn with ``seed``."""
    return f"{name} (subset: {count} query identities, seed {seed})"


def split_subset_name(name: str) -> tuple[str, int | None]:
    """(the whole data set's name, the number of query identities kept) of a name ``subset_name`` made; (name, None) else."""
    found = SUBSET_SUFFIX.search(name)
    return (name[: found.start()], int(found["count"])) if found else (name, None)
