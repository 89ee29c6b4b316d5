"""Attacked images of one setting, kept chunk by chunk: in memory, or in a folder so that a setting resumes
from its last finished chunk.

A chunk is a run of consecutive attacked images of one side (``chunk_size`` of them). Each is stored whole
or not at all (an atomic write), as 8-bit images when the campaign rounds them (else float32), with the
attack's pass counts and seconds for that chunk in its metadata. Inside a chunk, the finished batches are saved
now and then with the state of the chunk's random generator, so a stopped run resumes from its last saved batch
and makes the images it would have made without the stop.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from metricattack.data.images import as_fraction
from metricattack.system.atomic import atomic_write

COUNTERS = ("gradient_passes", "forward_passes", "seconds")
PARTIAL = ".partial"  # a chunk's finished batches, kept when a run stops inside the chunk
STAGE_PREFIX = "stage/"  # counters of an ensemble's stages: stage/NAME/COUNTER


class MemoryChunks:
    """Chunks held in memory (a campaign used as a library, without an output folder)."""

    def __init__(self) -> None:
        self._chunks: dict[str, tuple[torch.Tensor, dict]] = {}

    def load(self, name: str) -> tuple[torch.Tensor, dict] | None:
        """(images, counters) of a stored chunk, or None."""
        return self._chunks.get(name)

    def save(self, name: str, images: torch.Tensor, counters: dict) -> None:
        """Store a finished chunk."""
        self._chunks[name] = (images, counters)

    def load_counters(self, name: str) -> dict | None:
        """The counters of a stored chunk, or None."""
        stored = self._chunks.get(name)
        return None if stored is None else stored[1]

    def save_partial(self, name: str, images: torch.Tensor, counters: dict, generator_state: torch.Tensor, batch_size: int,
                     device_type: str) -> None:  # fmt: skip
        """Nothing: a run in memory does not resume."""

    def load_partial(self, name: str, batch_size: int, device_type: str, like: torch.Tensor) -> None:
        """None: a run in memory does not resume."""

    def discard_partial(self, name: str) -> None:
        """Nothing to discard."""

    def discard(self) -> None:
        """Forget every chunk."""
        self._chunks.clear()


class FolderChunks:
    """Chunks as ``NAME.safetensors`` files in a folder, written atomically; a damaged file counts as missing."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.safetensors"

    def load(self, name: str) -> tuple[torch.Tensor, dict] | None:
        """(images, counters) of a stored chunk, or None when it is missing or unreadable (it is redone)."""
        counters = self.load_counters(name)
        if counters is None:
            return None
        try:
            return load_file(str(self._path(name)))["images"], counters
        except (SafetensorError, OSError, KeyError):
            return None

    def load_counters(self, name: str) -> dict | None:
        """The counters of a stored chunk (its header only), or None when it is missing or unreadable."""
        path = self._path(name)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as opened:
                return json.loads((opened.metadata() or {})["counters"])
        except (SafetensorError, OSError, KeyError, ValueError):
            return None

    def save(self, name: str, images: torch.Tensor, counters: dict) -> None:
        """Write a finished chunk whole or not at all."""
        metadata = {"counters": json.dumps(counters)}
        atomic_write(self._path(name), lambda tmp: save_file({"images": images.contiguous()}, str(tmp), metadata=metadata))

    def discard(self) -> None:
        """Delete the folder (the setting's results are written)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def save_partial(self, name: str, images: torch.Tensor, counters: dict, generator_state: torch.Tensor, batch_size: int,
                     device_type: str) -> None:  # fmt: skip
        """Store the first finished batches of chunk ``name`` with the state of its random generator (on a device of
        ``device_type``) after them."""
        metadata = {"counters": json.dumps(counters), "batch_size": str(batch_size), "device": device_type}
        tensors = {"images": images.contiguous(), "generator": generator_state.cpu().contiguous()}
        atomic_write(self._path(name + PARTIAL), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))

    def load_partial(
        self, name: str, batch_size: int, device_type: str, like: torch.Tensor
    ) -> tuple[torch.Tensor, dict, torch.Tensor] | None:
        """(images, counters, generator state) of chunk ``name``'s finished batches; None when there are none, the file
        is unreadable, its batches had another size, its generator another kind of device, or its images are not the
        first rows of the chunk's images ``like`` (dtype, shape): then the chunk is redone from its start."""
        path = self._path(name + PARTIAL)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as opened:
                metadata = opened.metadata() or {}
                if metadata.get("batch_size") != str(batch_size) or metadata.get("device") != device_type:
                    return None
                images = opened.get_tensor("images")
                if images.dtype != like.dtype or images.shape[1:] != like.shape[1:] or len(images) >= len(like):
                    return None
                return images, json.loads(metadata["counters"]), opened.get_tensor("generator")
        except (SafetensorError, OSError, KeyError, ValueError):
            return None

    def discard_partial(self, name: str) -> None:
        """Delete chunk ``name``'s finished batches (the chunk is stored whole)."""
        self._path(name + PARTIAL).unlink(missing_ok=True)


def chunk_ranges(count: int, chunk_size: int) -> list[tuple[int, int]]:
    """(start, stop) positions of consecutive chunks covering ``count`` items."""
    return [(start, min(start + chunk_size, count)) for start in range(0, count, chunk_size)]


@dataclass
class AttackedSide:
    """The attacked images of one side: their indices into the side, target pids and stored chunks."""

    name: str  # "query" or "gallery": the prefix of its chunks' names
    indices: torch.Tensor  # (A,) long, ascending
    targets: torch.Tensor  # (A,) target pid per attacked image (-1: none)
    store: MemoryChunks | FolderChunks = field(default_factory=MemoryChunks)
    chunk_size: int = 1024
    counters: dict = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    _cached: tuple[int, torch.Tensor] | None = field(default=None, repr=False)

    @classmethod
    def from_images(cls, name: str, indices: torch.Tensor, images: torch.Tensor, targets: torch.Tensor | None = None) -> AttackedSide:
        """A side whose attacked images are all given at once (one chunk in memory)."""
        targets = torch.full_like(indices, -1) if targets is None else targets
        side = cls(name, indices, targets, MemoryChunks(), max(len(indices), 1))
        if len(indices):
            side.store.save(side.chunk_name(0), images, {})
        return side

    def __len__(self) -> int:
        return len(self.indices)

    def ranges(self) -> list[tuple[int, int]]:
        """(start, stop) positions in ``indices`` of each chunk."""
        return chunk_ranges(len(self.indices), self.chunk_size)

    def chunk_name(self, number: int) -> str:
        start, stop = self.ranges()[number]
        return f"{self.name}-{start:08d}-{stop:08d}"

    def chunk(self, number: int) -> torch.Tensor:
        """The images of chunk ``number`` as float in [0,1]."""
        if self._cached is None or self._cached[0] != number:
            stored = self.store.load(self.chunk_name(number))
            if stored is None:
                raise RuntimeError(f"chunk {self.chunk_name(number)} of the attacked images is missing")
            self._cached = (number, stored[0])
        return as_fraction(self._cached[1])

    def chunks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(indices, float images) of each chunk in order."""
        for number, (start, stop) in enumerate(self.ranges()):
            yield self.indices[start:stop], self.chunk(number)

    def images(self) -> torch.Tensor:
        """All attacked images (A,3,H,W) float in [0,1], gathered now: for small problems and tests."""
        parts = [images for _, images in self.chunks()]
        return torch.cat(parts) if parts else torch.zeros(0, 3, 1, 1)

    def image(self, index: int) -> torch.Tensor:
        """The attacked image (3,H,W) of side index ``index`` (which must be attacked)."""
        position = int(torch.searchsorted(self.indices, torch.tensor(index)))
        if position >= len(self.indices) or int(self.indices[position]) != index:
            raise KeyError(f"{self.name} image {index} was not attacked")
        return self.chunk(position // self.chunk_size)[position % self.chunk_size]
