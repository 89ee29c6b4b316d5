"""The valid rank of every true match of every query, found without sorting gallery rows.

A true match's rank among a query's valid gallery items (not junk, not same identity in the same
camera) is 1 + the number of valid items before it, where item k comes before item j when
d_k < d_j, or d_k == d_j and k < j (ties keep gallery order). A query has few true matches but a
whole row of items, so instead of sorting the row:

1. each item's distance goes to one of ``num_buckets`` buckets by ``trunc((d - row min) * scale)``.
   Every step is one correctly rounded operation, so the bucket is a non-decreasing function of
   the distance alone (equal distances share a bucket): an item in a lower bucket than a match
   comes before it, one in a higher bucket after it;
2. a histogram of the valid non-matching items' buckets, summed up to each match's bucket, counts
   the items before it in lower buckets;
3. the few items that share a bucket with a match are compared with it exactly (distance, then
   gallery index).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metricattack.errors import InputError

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
    starts = torch.cumsum(counts, 0) - counts
    return owner, first[owner] + torch.arange(len(owner), device=counts.device) - starts[owner]


def sort_within_rows(rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The order by (row, value), ties keeping their current order (stable sorts, last key first)."""
    order = torch.sort(values, stable=True).indices
    return order[torch.sort(rows[order], stable=True).indices]


def positions_in_rows(rows: torch.Tensor, num_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(counts (num_rows,), 0-based position of each entry in its row) for entries sorted by row."""
    counts = torch.bincount(rows, minlength=num_rows)
    return counts, torch.arange(len(rows), device=rows.device) - (torch.cumsum(counts, 0) - counts)[rows]


def match_ranks(distances: torch.Tensor, pairs: IdentityPairs, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, ranks): every true match of queries ``start..`` (the rows of ``distances`` (q,G)), by row then rank.

    ``ranks`` are the 1-based valid ranks (int64); ``rows`` index the rows of ``distances``.
    """
    num_rows, num_gallery = distances.shape
    device = distances.device
    if distances.dtype.itemsize < 4:
        distances = distances.float()  # exact, and room for the bucket numbers
    if torch.isnan(distances.amin(dim=1)).any():
        raise InputError("distances contain NaN: a ranking needs comparable distances")
    rows, columns, is_match = pairs.between(start, start + num_rows)
    match_rows, match_columns = rows[is_match], columns[is_match]  # by row, then gallery index
    order = sort_within_rows(match_rows, distances[match_rows, match_columns])
    match_rows, match_columns = match_rows[order], match_columns[order]
    match_distances = distances[match_rows, match_columns]
    _, position = positions_in_rows(match_rows, num_rows)

    # Row r's buckets are r*num_buckets + 0..num_buckets-1, so one bincount makes every row's histogram.
    # Bucket numbers must stay exact in the distances' dtype (float32: below 2**24), with room to spare.
    exact = min(int(0.5 / torch.finfo(distances.dtype).eps), 2**30)
    num_buckets = max(4, min(num_gallery // _ITEMS_PER_BUCKET, exact // num_rows))
    origin, scale = _bucket_map(match_rows, match_distances, num_rows, num_buckets, distances.dtype)
    low = torch.arange(num_rows, device=device, dtype=distances.dtype)[:, None] * num_buckets
    buckets = torch.sub(distances, origin[:, None]).mul_(scale[:, None]).clamp_(low, low + (num_buckets - 1))
    flat_buckets = buckets.to(torch.int32)  # trunc == floor, as the values are >= 0
    del buckets
    removed = num_rows * num_buckets  # one extra bin for junk, same-identity items and the matches themselves
    match_buckets = flat_buckets[match_rows, match_columns].long()
    flat_buckets.index_fill_(1, pairs.junk, removed)
    flat_buckets[rows, columns] = removed
    flat_buckets = flat_buckets.view(-1)
    histogram = torch.bincount(flat_buckets, minlength=removed + 1)[:removed].view(num_rows, num_buckets)
    before = (histogram.cumsum(1) - histogram).view(-1)[match_buckets]  # valid items in lower buckets

    # Items sharing a bucket with a match: compare (distance, gallery index) exactly with its matches.
    shares = torch.zeros(removed + 1, dtype=torch.bool, device=device)
    shares[match_buckets] = True
    candidates = shares.index_select(0, flat_buckets).nonzero().flatten()
    if len(candidates):
        candidate_buckets = flat_buckets[candidates].long()
        candidate_rows, candidate_columns = candidates // num_gallery, candidates % num_gallery
        by_bucket = torch.sort(match_buckets, stable=True)
        lo = torch.searchsorted(by_bucket.values, candidate_buckets, side="left")
        hi = torch.searchsorted(by_bucket.values, candidate_buckets, side="right")
        owner, slot = expand_ranges(lo, hi - lo)
        target = by_bucket.indices[slot]
        candidate_distances = distances[candidate_rows[owner], candidate_columns[owner]]
        earlier = (candidate_distances < match_distances[target]) | (
            (candidate_distances == match_distances[target]) & (candidate_columns[owner] < match_columns[target])
        )
        before.index_add_(0, target[earlier], torch.ones_like(target[earlier]))
    return match_rows, before + position + 1


def _bucket_map(match_rows, match_distances, num_rows, num_buckets, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(origin, scale), both (q,): item d of row r goes to bucket trunc((d - origin[r]) * scale[r]), clamped to the row's.

    Buckets of width w = (farthest - nearest finite match) / (num_buckets - 3) put the nearest match in
    the row's bucket 1 and the farthest in bucket num_buckets - 2; nearer items go to bucket 0 and
    farther ones to the last bucket. ``origin`` = nearest - w - r * num_buckets * w folds the row's
    bucket offset in. Rows whose finite matches are all equal get a narrow width around them.
    """
    finite = torch.isfinite(match_distances)
    rows, values = match_rows[finite], match_distances[finite].double()
    nearest = torch.zeros(num_rows, dtype=torch.float64, device=rows.device).scatter_reduce(0, rows, values, "amin", include_self=False)
    farthest = torch.zeros_like(nearest).scatter_reduce(0, rows, values, "amax", include_self=False)
    narrow = nearest.abs() * 2.0**-16 + torch.finfo(dtype).tiny
    width = torch.maximum((farthest - nearest) / (num_buckets - 3), narrow)
    scale = (1 / width).clamp(max=torch.finfo(dtype).max)
    origin = nearest - width - torch.arange(num_rows, device=rows.device) * num_buckets * width
    return origin.to(dtype), scale.to(dtype)
