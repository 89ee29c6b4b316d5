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
    counts = right - left
    starts = torch.zeros(len(query_pids) + 1, dtype=torch.long, device=query_pids.device)
    torch.cumsum(counts, 0, out=starts[1:])
    query = torch.repeat_interleave(torch.arange(len(query_pids), device=query_pids.device), counts)
    gallery = by_pid.indices[left[query] + torch.arange(len(query), device=query.device) - starts[query]]
    match = query_camids[query] != gallery_camids[gallery]
    junk = (gallery_pids == -1).nonzero().flatten()
    return IdentityPairs(query, gallery, match, starts, junk)


def match_ranks(distances: torch.Tensor, pairs: IdentityPairs, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, ranks): every true match of queries ``start..`` (the rows of ``distances`` (q,G)), by row then rank.

    ``ranks`` are the 1-based valid ranks (int64); ``rows`` index the rows of ``distances``.
    """
    num_rows, num_gallery = distances.shape
    device = distances.device
    rows, columns, is_match = pairs.between(start, start + num_rows)
    lowest = distances.amin(dim=1)  # (q,)
    if torch.isnan(lowest).any():
        raise InputError("distances contain NaN: a ranking needs comparable distances")
    match_rows, match_columns = rows[is_match], columns[is_match]
    match_distances = distances[match_rows, match_columns]
    # Matches by (row, distance, gallery index): stable sorts from the last key to the first.
    order = torch.sort(match_distances, stable=True).indices
    order = order[torch.sort(match_rows[order], stable=True).indices]
    match_rows, match_columns, match_distances = match_rows[order], match_columns[order], match_distances[order]
    num_matches = torch.bincount(match_rows, minlength=num_rows)  # (q,)
    first = torch.cumsum(num_matches, 0) - num_matches
    position = torch.arange(len(match_rows), device=device) - first[match_rows]  # 0-based among the row's matches

    num_buckets = max(3, num_gallery // _ITEMS_PER_BUCKET)
    scale = _bucket_scale(distances, lowest, match_rows, match_distances, num_matches, num_buckets)
    lowest = lowest.clamp(min=-torch.finfo(distances.dtype).max)  # a row with -inf: slower, still exact
    buckets = torch.sub(distances, lowest[:, None]).mul_(scale[:, None]).clamp_(0, num_buckets - 1)
    flat_buckets = buckets.to(torch.int32)  # trunc == floor, as the values are >= 0
    del buckets
    flat_buckets += (torch.arange(num_rows, device=device, dtype=torch.int32) * num_buckets)[:, None]
    removed = num_rows * num_buckets  # one extra bin for junk, same-identity items and the matches themselves
    match_buckets = flat_buckets[match_rows, match_columns].long()
    flat_buckets.index_fill_(1, pairs.junk, removed)
    flat_buckets[rows, columns] = removed
    flat_buckets = flat_buckets.view(-1)
    histogram = torch.bincount(flat_buckets, minlength=removed + 1)[:removed].view(num_rows, num_buckets)
    before = (histogram.cumsum(1) - histogram).view(-1)[match_buckets]  # valid items in lower buckets

    # Items sharing a bucket with a match: compare (distance, gallery index) exactly.
    shares = torch.zeros(removed + 1, dtype=torch.bool, device=device)
    shares[match_buckets] = True
    candidates = shares.index_select(0, flat_buckets).nonzero().flatten()
    if len(candidates):
        candidate_rows, candidate_columns = candidates // num_gallery, candidates % num_gallery
        candidate_buckets = flat_buckets[candidates].long()
        candidate_distances = distances[candidate_rows, candidate_columns]
        # Each candidate against the matches of its row in its bucket, through the bucket's sorted matches.
        bucket_order = torch.sort(match_buckets, stable=True)  # matches are sorted within a bucket already
        lo = torch.searchsorted(bucket_order.values, candidate_buckets, side="left")
        hi = torch.searchsorted(bucket_order.values, candidate_buckets, side="right")
        span_counts = hi - lo
        owner = torch.repeat_interleave(torch.arange(len(candidates), device=device), span_counts)
        offsets = torch.cumsum(span_counts, 0) - span_counts
        target = bucket_order.indices[lo[owner] + torch.arange(len(owner), device=device) - offsets[owner]]
        target_distances = match_distances[target]
        earlier = (candidate_distances[owner] < target_distances) | (
            (candidate_distances[owner] == target_distances) & (candidate_columns[owner] < match_columns[target])
        )
        before.index_add_(0, target[earlier], torch.ones_like(target[earlier]))
    return match_rows, before + position + 1


def _bucket_scale(distances, lowest, match_rows, match_distances, num_matches, num_buckets) -> torch.Tensor:
    """(q,) scale putting a row's lowest distance in bucket 0 and its farthest finite match in bucket num_buckets-2.

    Items beyond go to the last bucket, which holds no match unless one is at +inf. A row whose
    matches all sit at its lowest distance is spread up to its largest finite distance instead.
    """
    finite = torch.isfinite(match_distances)
    highest = torch.full_like(lowest, -torch.inf).scatter_reduce(0, match_rows[finite], match_distances[finite], "amax")
    span = highest.double() - lowest.double()
    flat = ~(span > 0) & (num_matches > 0)  # also catches NaN and -inf spans
    if flat.any():
        rows = distances[flat]
        largest = torch.where(torch.isfinite(rows), rows, lowest[flat, None]).amax(dim=1)
        span[flat] = largest.double() - lowest[flat].double()
    span = torch.where(torch.isfinite(span) & (span > 0), span, 0.0)
    scale = torch.where(span > 0, (num_buckets - 2) / span, 1.0)
    return scale.clamp(max=torch.finfo(distances.dtype).max).to(distances.dtype)
