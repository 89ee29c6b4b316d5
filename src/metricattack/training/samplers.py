"""The P x K identity sampler used with batch-hard triplet loss."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import torch

from metricattack.errors import InputError


def relabel(pids: Sequence[int]) -> tuple[list[int], dict[int, int]]:
    """Map person ids to 0..C-1 in sorted order: (labels, mapping)."""
    mapping = {pid: label for label, pid in enumerate(sorted(set(pids)))}
    return [mapping[pid] for pid in pids], mapping


class RandomIdentitySampler(torch.utils.data.Sampler[int]):
    """Batches of P identities x K images each (K = ``num_instances``), as in torchreid.

    Each epoch every identity contributes floor(max(n, K) / K) groups of K images (drawn with
    replacement when it has fewer than K); groups are shuffled and packed P at a time, no identity
    twice in a batch. The order depends only on ``seed`` and the epoch set with ``set_epoch``.
    """

    def __init__(self, pids: Sequence[int], batch_size: int, num_instances: int, seed: int = 0) -> None:
        if num_instances < 1 or batch_size % num_instances:
            raise InputError(f"--batch-size {batch_size} must be a multiple of --num-instances {num_instances}")
        self.by_identity: dict[int, list[int]] = defaultdict(list)
        for index, pid in enumerate(pids):
            self.by_identity[pid].append(index)
        self.num_instances = num_instances
        self.identities_per_batch = batch_size // num_instances
        if len(self.by_identity) < self.identities_per_batch:
            raise InputError(
                f"--batch-size {batch_size} needs {self.identities_per_batch} identities per batch, "
                f"but the training split has only {len(self.by_identity)}"
            )
        self.seed = seed
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Choose the shuffle of this epoch."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """This epoch's batches of indices (computed once per epoch)."""
        if self._cache is None or self._cache[0] != self.epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._cache = (self.epoch, self._batches(generator))
        return self._cache[1]

    def _batches(self, generator: torch.Generator) -> list[list[int]]:
        groups: dict[int, list[list[int]]] = {}
        for pid in sorted(self.by_identity):
            indices = torch.tensor(self.by_identity[pid])
            k = self.num_instances
            if len(indices) < k:
                chosen = indices[torch.randint(len(indices), (k,), generator=generator)]
            else:
                chosen = indices[torch.randperm(len(indices), generator=generator)]
            usable = len(chosen) // k * k
            groups[pid] = [chosen[i : i + k].tolist() for i in range(0, usable, k)]
        batches = []
        while len(groups) >= self.identities_per_batch:
            pids = list(groups)
            picked = torch.randperm(len(pids), generator=generator)[: self.identities_per_batch].tolist()
            batch = []
            for i in picked:
                pid = pids[i]
                batch += groups[pid].pop(0)
                if not groups[pid]:
                    del groups[pid]
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch

    def __len__(self) -> int:
        return sum(len(batch) for batch in self.batches())
