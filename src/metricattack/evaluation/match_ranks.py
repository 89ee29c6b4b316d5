"""The valid rank of every true match of every query, found without sorting gallery rows.

A true match's rank among a query's valid gallery items (not junk, not same identity in the same
camera) is 1 + the number of valid items before it, where item k comes before item j when
d_k < d_j, or d_k == d_j and k < j (ties keep gallery order). A query has few true matches but a
whole row of items, so instead of sorting the row:

1. each item's distance goes to one of ``num_buckets`` buckets of the row, by
   ``trunc(clamp((d - origin) * scale))`` with per-row constants spreading the row's matches over
   them. Every step is one correctly rounded operation, so the bucket is a non-decreasing function
   of the distance alone (equal distances share a bucket): an item in a lower bucket than a match
   comes before it, one in a higher bucket after it, whatever rounding did to the bucket edges;
2. a histogram of the valid non-matching items' buckets, summed up to each match's bucket, counts
   the items before it in lower buckets;
3. the few items that share a bucket with a match are compared with it exactly (distance, then
   gallery index).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_ITEMS_PER_BUCKET = 4  # gallery items per bucket on average: fewer means fewer exact comparisons, a longer histogram


@dataclass
class IdentityPairs:
    """Every (query, gallery item) pair with the same identity, sorted by query then gallery index."""

    query: torch.Tensor  # (P,) query index
    gallery: torch.Tensor  # (P,) gallery index
    match: torch.Tensor  # (P,) bool: a true match (other camera); False: same camera, removed
    starts: torch.Tensor  # (Q+1,) query i's pairs are [starts[i], starts[i+1])
    junk: torch.Tensor  # (J,) gallery indices with pid -1

    def between(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(query index - start, gallery index, match) of the pairs of queries start..stop-1."""
        first, last = int(self.starts[start]), int(self.starts[stop])
        return self.query[first:last] - start, self.gallery[first:last], self.match[first:last]


def identity_pairs(query_pids, gallery_pids, query_camids, gallery_camids) -> IdentityPairs:
    """The same-identity pairs of the Market-1501 protocol, found through the gallery sorted by pid."""
    by_pid = torch.sort(gallery_pids, stable=True)
    left = torch.searchsorted(by_pid.values, query_pids, side="left")
    right = torch.searchsorted(by_pid.values, query_pids, side="right")
    right = torch.where(query_pids == -1, left, right)  # a junk query pid matches only junk, which is removed
    query, slot = expand_ranges(left, right - left)
    starts = torch.zeros(len(query_pids) + 1, dtype=torch.long, device=query_pids.device)
    torch.cumsum(right - left, 0, out=starts[1:])
    gallery = by_pid.indices[slot]
    match = query_camids[query] != gallery_camids[gallery]
    junk = (gallery_pids == -1).nonzero().flatten()
    return IdentityPairs(query, gallery, match, starts, junk)


def expand_ranges(first: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(owner, index): for every i, counts[i] entries (i, first[i] + 0..counts[i]-1), in order."""
    owner = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    starts = torch.cumsum(counts, 0) - counts - first
    return owner, torch.arange(len(owner), device=counts.device) - starts.index_select(0, owner)


def sort_within_rows(rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The order by (row, value), ties keeping their current order (stable sorts, last key first)."""
    order = torch.sort(values, stable=True).indices
    return order[torch.sort(rows[order], stable=True).indices]


def positions_in_rows(rows: torch.Tensor, num_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(counts (num_rows,), 0-based position of each entry in its row) for entries sorted by row."""
    counts = torch.bincount(rows, minlength=num_rows)
    return counts, torch.arange(len(rows), device=rows.device) - (torch.cumsum(counts, 0) - counts)[rows]


class MatchRanker:
    """The valid ranks of the true matches of chunks of queries; keeps its (q,G) work buffers between chunks."""

    def __init__(self, pairs: IdentityPairs) -> None:
        self.pairs = pairs
        self._buffers: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def _work(self, distances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(float, int32, bool) buffers of distances' size: reused, as fresh pages cost more than the arithmetic."""
        size = distances.numel()
        if self._buffers is None or self._buffers[0].numel() < size or self._buffers[0].dtype != distances.dtype:
            self._buffers = (
                distances.new_empty(size),
                torch.empty(size, dtype=torch.int32, device=distances.device),
                torch.empty(size, dtype=torch.bool, device=distances.device),
            )
        return tuple(buffer[:size] for buffer in self._buffers)

    def __call__(self, distances: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, ranks): every true match of queries ``start..`` (the rows of ``distances`` (q,G), no NaN).

        Sorted by row then rank; ``ranks`` are 1-based valid ranks (int64), ``rows`` index ``distances``.
        """
        if distances.dtype.itemsize < 4:
            distances = distances.float()  # exact, and room for the bucket numbers
        num_rows, num_gallery = distances.shape
        device = distances.device
        rows, columns, is_match = self.pairs.between(start, start + num_rows)
        match_rows, match_columns = rows[is_match], columns[is_match]  # by row, then gallery index
        order = sort_within_rows(match_rows, distances[match_rows, match_columns])
        match_rows, match_columns = match_rows[order], match_columns[order]
        match_distances = distances[match_rows, match_columns]
        _, position = positions_in_rows(match_rows, num_rows)

        # Row r's buckets are r*num_buckets + 0..num_buckets-1, so one histogram holds every row's.
        num_buckets = max(4, min(num_gallery // _ITEMS_PER_BUCKET, 2**30 // num_rows))  # int32 bucket numbers
        origin, scale = _bucket_map(match_rows, match_distances, num_rows, num_buckets, distances.dtype)
        values, buckets, in_shared = self._work(distances)
        torch.sub(distances, origin[:, None], out=values.view(num_rows, num_gallery))
        values.view(num_rows, num_gallery).mul_(scale[:, None]).clamp_(0, num_buckets - 1)
        buckets = buckets.copy_(values).view(num_rows, num_gallery)  # trunc == floor, as the values are >= 0
        buckets += (torch.arange(num_rows, device=device, dtype=torch.int32) * num_buckets)[:, None]
        removed = num_rows * num_buckets  # one extra bin for junk, same-identity items and the matches themselves
        match_buckets = buckets[match_rows, match_columns].long()
        buckets.index_fill_(1, self.pairs.junk, removed)
        buckets[rows, columns] = removed
        buckets = buckets.view(-1)
        histogram = torch.zeros(removed + 1, dtype=torch.int32, device=device)
        histogram.index_add_(0, buckets, torch.ones(1, dtype=torch.int32, device=device).expand(len(buckets)))
        histogram = histogram[:removed].view(num_rows, num_buckets)
        below = (histogram.cumsum(1, dtype=torch.int32) - histogram).view(-1)  # valid items in the row's lower buckets
        before = below.index_select(0, match_buckets).long()

        # Items sharing a bucket with a match: compare (distance, gallery index) exactly with its matches.
        per_bucket = torch.bincount(match_buckets, minlength=removed + 1)  # matches per bucket
        first_match = torch.cumsum(per_bucket, 0) - per_bucket  # index of a bucket's first match
        torch.index_select(per_bucket > 0, 0, buckets, out=in_shared)
        candidates = in_shared.nonzero().flatten()
        if len(candidates):
            candidate_buckets = buckets.index_select(0, candidates).long()
            # Buckets grow with the distance in a row and with the row, so the matches are sorted by bucket.
            owner, target = expand_ranges(
                first_match.index_select(0, candidate_buckets), per_bucket.index_select(0, candidate_buckets)
            )
            item = candidates.index_select(0, owner)
            item_distances, item_columns = distances.view(-1).index_select(0, item), item % num_gallery
            target_distances = match_distances.index_select(0, target)
            earlier = (item_distances < target_distances) | (
                (item_distances == target_distances) & (item_columns < match_columns.index_select(0, target))
            )
            before.index_add_(0, target, earlier.long())
        return match_rows, before + position + 1


def _bucket_map(match_rows, match_distances, num_rows, num_buckets, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(origin, scale), both (q,): item d of row r goes to bucket trunc((d - origin[r]) * scale[r]), clamped.

    Buckets of width w = (farthest - nearest finite match) / (num_buckets - 3) from origin = nearest - w
    put the nearest match in bucket 1 and the farthest in bucket num_buckets - 2; nearer items go to
    bucket 0, farther ones to the last. Rows whose finite matches are all equal get a narrow width.
    """
    finite = torch.isfinite(match_distances)
    rows, values = match_rows[finite], match_distances[finite].double()
    nearest = torch.zeros(num_rows, dtype=torch.float64, device=rows.device)
    nearest = nearest.scatter_reduce(0, rows, values, "amin", include_self=False)
    farthest = torch.zeros_like(nearest).scatter_reduce(0, rows, values, "amax", include_self=False)
    narrow = nearest.abs() * 2.0**-16 + torch.finfo(dtype).tiny
    width = torch.maximum((farthest - nearest) / (num_buckets - 3), narrow)
    scale = (1 / width).clamp(max=torch.finfo(dtype).max)
    return (nearest - width).to(dtype), scale.to(dtype)
