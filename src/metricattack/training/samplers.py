"""The P x K identity sampler used with batch-hard triplet loss, and train label mapping."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from metricattack.errors import InputError


def relabel(pids: Sequence[int]) -> tuple[list[int], dict[int, int]]:
    """Map person ids to 0..C-1 in sorted order: (labels, mapping pid -> label)."""
    mapping = {pid: label for label, pid in enumerate(sorted(set(pids)))}
    return [mapping[pid] for pid in pids], mapping


class RandomIdentitySampler(torch.utils.data.Sampler[int]):
    """Indices in batches of P identities x K images (P = batch_size / K, K = ``num_instances``).

    torchreid's RandomIdentitySampler: each epoch, every identity's images are shuffled and cut into
    groups of K (an identity with fewer than K images gets one group drawn with replacement, leftover
    images are dropped); then P identities that still have groups are drawn at a time, each giving its
    next group, until fewer than P remain. Unlike torchreid, identities left over that have not yet
    appeared are put in one last batch, topped up with fresh groups of other identities, so every
    identity appears in every epoch. The order depends only on ``seed`` and the epoch set with
    ``set_epoch``; ``len`` is exact. Use with ``DataLoader(..., batch_size=batch_size, sampler=...)``
    or take the batches directly from ``batches()``.
    """

    def __init__(self, pids: Sequence[int], batch_size: int, num_instances: int, seed: int = 0) -> None:
        if num_instances < 1:
            raise InputError(f"--num-instances must be at least 1, got {num_instances}")
        if batch_size < num_instances or batch_size % num_instances:
            raise InputError(f"--batch-size {batch_size} must be a multiple of --num-instances {num_instances}")
        self.indices_by_pid: dict[int, list[int]] = {}
        for index, pid in enumerate(pids):
            self.indices_by_pid.setdefault(pid, []).append(index)
        self.indices_by_pid = dict(sorted(self.indices_by_pid.items()))
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.identities_per_batch = batch_size // num_instances
        if len(self.indices_by_pid) < self.identities_per_batch:
            raise InputError(
                f"--batch-size {batch_size} needs {self.identities_per_batch} identities per batch, "
                f"but the training split has only {len(self.indices_by_pid)}"
            )
        self.seed = seed
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Choose the shuffle of this epoch."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """This epoch's batches of batch_size indices (computed once per epoch)."""
        if self._cache is None or self._cache[0] != self.epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._cache = (self.epoch, self._batches(generator))
        return self._cache[1]

    def _group(self, pid: int, generator: torch.Generator) -> list[int]:
        """K random images of one identity (with replacement if it has fewer than K)."""
        indices = self.indices_by_pid[pid]
        if len(indices) < self.num_instances:
            picks = torch.randint(len(indices), (self.num_instances,), generator=generator)
        else:
            picks = torch.randperm(len(indices), generator=generator)[: self.num_instances]
        return [indices[i] for i in picks.tolist()]

    def _batches(self, generator: torch.Generator) -> list[list[int]]:
        k, p = self.num_instances, self.identities_per_batch
        groups: dict[int, list[list[int]]] = {}
        for pid, indices in self.indices_by_pid.items():
            if len(indices) < k:
                groups[pid] = [self._group(pid, generator)]
            else:
                shuffled = [indices[i] for i in torch.randperm(len(indices), generator=generator).tolist()]
                groups[pid] = [shuffled[start : start + k] for start in range(0, len(shuffled) // k * k, k)]
        unseen = set(groups)
        available = list(groups)  # identities with groups left
        batches = []
        while len(available) >= p:
            picked = sorted(torch.randperm(len(available), generator=generator)[:p].tolist(), reverse=True)
            batch = []
            for position in picked:
                pid = available[position]
                batch += groups[pid].pop()
                unseen.discard(pid)
                if not groups[pid]:
                    del available[position]  # positions are visited in decreasing order
            batches.append(batch)
        if unseen:
            last = sorted(unseen)
            others = [pid for pid in groups if pid not in unseen]
            fillers = torch.randperm(len(others), generator=generator)[: p - len(last)].tolist()
            batch = [i for pid in last for i in groups[pid].pop()]
            batch += [i for position in fillers for i in self._group(others[position], generator)]
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch

    def __len__(self) -> int:
        return len(self.batches()) * self.batch_size
