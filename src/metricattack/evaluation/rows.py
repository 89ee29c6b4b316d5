"""The (Q,G) distances of a retrieval as rows on demand: the matrix is never held unless re-ranking made it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from metricattack.evaluation.ranking import _auto_chunk_size


class DistanceRows:
    """``rows(start, stop)`` gives distance rows (stop-start, G); ``chunks()`` walks them about 128 MB at a time.

    A returned block may be a view that the next call overwrites: use it before asking for more.
    """

    def __init__(self, rows: Callable[[int, int], torch.Tensor], num_queries: int, num_gallery: int) -> None:
        self.rows, self.num_queries, self.num_gallery = rows, num_queries, num_gallery

    @classmethod
    def of_matrix(cls, matrix: torch.Tensor) -> DistanceRows:
        """Rows of a matrix that exists already."""
        return cls(lambda start, stop: matrix[start:stop], *matrix.shape)

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        return self.rows(start, stop)

    def ranges(self) -> list[tuple[int, int]]:
        """(start, stop) of query chunks whose rows take about 128 MB of working memory."""
        size = _auto_chunk_size(None, self.num_gallery)
        return [(start, min(start + size, self.num_queries)) for start in range(0, self.num_queries, size)]

    def chunks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """(start, stop, rows) over every query."""
        for start, stop in self.ranges():
            yield start, stop, self.rows(start, stop)

    def matrix(self) -> torch.Tensor:
        """The whole (Q,G) matrix, built now: for small problems and tests."""
        return torch.cat([rows.clone() for _, _, rows in self.chunks()])
