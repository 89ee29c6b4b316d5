"""k-reciprocal re-ranking (Zhong, Zheng, Cao and Li, CVPR 2017), chunked so that no (N,N) matrix is held.

Over all N = Q + G images (queries and gallery together), with d the model's distance and
d~(i,j) = d(i,j)^2 / max_k d(i,k)^2 (each row scaled by its largest value, as in the authors' code):

- N(i,k): the k+1 nearest images of i (itself included); R(i,k) = {j in N(i,k) : i in N(j,k)};
- R*(i) = R(i,k1) united with every R(j, round(k1/2)), j in R(i,k1), that shares more than 2/3 of
  its members with R(i,k1);
- V[i,j] = exp(-d~(i,j)) / sum_{j' in R*(i)} exp(-d~(i,j')) for j in R*(i), else 0; then V[i] is
  replaced by the mean of V[j] over i's k2 nearest j (local query expansion, skipped when k2 = 1);
- Jaccard distance J(i,j) = 1 - s / (2 - s), s = sum_k min(V[i,k], V[j,k]) (rows of V sum to 1);
- final(q,g) = (1 - lambda) J(q,g) + lambda d~(q,g).

Memory: the N x max(k1+1, k2) neighbour table, V as a sparse matrix (a few dozen entries per row),
and the (Q,G) result; distance rows are computed a chunk at a time. Not differentiable: it is
applied to (attacked) features at evaluation time only.
"""

from __future__ import annotations

import torch

from metricattack.errors import InputError
from metricattack.evaluation.distance import pairwise_distance

K1, K2, LAMBDA = 20, 6, 0.3  # the paper's settings
_CHUNK_BYTES = 256 * 2**20
_SCALE_FLOOR = 1e-12  # a row whose images all coincide would otherwise divide by 0


def _reciprocal(nearest: torch.Tensor, k: int, rows_per_chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """N(i,k) as (N,k+1) indices and, per entry j, whether i is among j's k+1 nearest (j in R(i,k))."""
    forward = nearest[:, : k + 1]
    reciprocal = torch.empty(forward.shape, dtype=torch.bool, device=nearest.device)
    for start in range(0, len(nearest), rows_per_chunk):
        stop = min(start + rows_per_chunk, len(nearest))
        rows = torch.arange(start, stop, device=nearest.device)
        backward = nearest[forward[start:stop], : k + 1]  # (c,k+1,k+1)
        reciprocal[start:stop] = (backward == rows[:, None, None]).any(dim=2)
    return forward, reciprocal


def _pair_distances(features: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor, metric: str, normalize: bool):
    """d(rows[p], columns[p]) for every pair p, with the same formula as ``pairwise_distance``."""
    one = torch.vmap(lambda a, b: pairwise_distance(a[None], b[None], metric, normalize)[0, 0])
    return one(features[rows], features[columns])


def _expansion_weights(features, nearest, row_scale, k1, metric, normalize, rows_per_chunk):
    """The sparse (N,N) matrix V before local query expansion, as coalesced COO."""
    num_all, device = len(features), features.device
    forward, is_reciprocal = _reciprocal(nearest, k1, rows_per_chunk)  # (N,K)
    half_forward, half_reciprocal = _reciprocal(nearest, round(k1 / 2), rows_per_chunk)  # (N,H); round() as np.around
    width, half_width = forward.shape[1], half_forward.shape[1]
    # Each candidate set costs K*H*K booleans and K*(H+1) pairs of D-dim features per row.
    per_row = width * half_width * width + width * (half_width + 1) * features.shape[1] * features.element_size() * 2
    chunk = max(1, min(rows_per_chunk, _CHUNK_BYTES // per_row))
    entry_rows, entry_columns, entry_values = [], [], []
    for start in range(0, num_all, chunk):
        stop = min(start + chunk, num_all)
        candidates, candidate_ok = forward[start:stop], is_reciprocal[start:stop]  # (c,K)
        members, member_ok = half_forward[candidates], half_reciprocal[candidates]  # (c,K,H): R(j, k1/2) per candidate j
        in_own = ((members[..., None] == candidates[:, None, None, :]) & candidate_ok[:, None, None, :]).any(dim=3)
        shared = (in_own & member_ok).sum(dim=2).double()  # (c,K) |R(j,k1/2) & R(i,k1)|
        accepted = candidate_ok & (shared > 2.0 / 3 * member_ok.sum(dim=2).double())
        indices = torch.cat(
            [candidates.masked_fill(~candidate_ok, num_all),
             members.masked_fill(~(member_ok & accepted[..., None]), num_all).flatten(1)], dim=1,
        ).sort(dim=1).values  # fmt: skip
        keep = indices < num_all  # drop the padding, then repeats of a member (sorted, so they are adjacent)
        keep[:, 1:] &= indices[:, 1:] != indices[:, :-1]
        rows = torch.arange(start, stop, device=device)[:, None].expand_as(indices)[keep]
        columns = indices[keep]
        scaled = _pair_distances(features, rows, columns, metric, normalize).square() / row_scale[rows]
        weights = torch.exp(-scaled)
        totals = torch.zeros(stop - start, dtype=weights.dtype, device=device).index_add_(0, rows - start, weights)
        entry_rows.append(rows)
        entry_columns.append(columns)
        entry_values.append(weights / totals[rows - start])
    indices = torch.stack([torch.cat(entry_rows), torch.cat(entry_columns)])
    return torch.sparse_coo_tensor(indices, torch.cat(entry_values), (num_all, num_all), check_invariants=False).coalesce()


def _segments(starts: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For segments [starts[e], starts[e] + counts[e]) of a flat array: (which segment, position) of every element."""
    owner = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    offsets = torch.arange(len(owner), device=counts.device) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    return owner, starts[owner] + offsets


def _row_segments(indices: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, count) of each of ``size`` groups in sorted group ``indices``."""
    counts = torch.bincount(indices, minlength=size)
    return torch.cumsum(counts, 0) - counts, counts


def _local_query_expansion(weights: torch.Tensor, nearest: torch.Tensor, k2: int) -> torch.Tensor:
    """V[i] <- mean of V[j] over the k2 nearest j of i (i itself first)."""
    (rows, columns), values = weights.indices(), weights.values()  # coalesced: sorted by row
    neighbours = nearest[:, :k2].flatten()  # (N*k2',) with k2' = min(k2, N)
    per_row = nearest[:, :k2].shape[1]
    starts, counts = _row_segments(rows, weights.shape[0])
    owner, positions = _segments(starts[neighbours], counts[neighbours])
    indices = torch.stack([owner // per_row, columns[positions]])
    return torch.sparse_coo_tensor(indices, values[positions] / per_row, weights.shape, check_invariants=False).coalesce()


def _shared_mass(weights: torch.Tensor, num_query: int, rows_per_chunk: int):
    """Yield (start, stop, s) with s (c,G) = sum_k min(V[q,k], V[g,k]) for queries start..stop and every gallery g.

    Only pairs sharing a non-zero column are visited: each query entry (q,k) meets the gallery entries
    of column k (an inverted index, as in the authors' code), so the cost follows V's sparsity.
    """
    (entry_rows, entry_columns), values = weights.indices(), weights.values()  # sorted by row, then column
    num_all, device = weights.shape[0], weights.device
    in_gallery = entry_rows >= num_query
    by_column = torch.argsort(entry_columns[in_gallery], stable=True)
    gallery_rows = entry_rows[in_gallery][by_column] - num_query
    gallery_values = values[in_gallery][by_column]
    column_starts, column_counts = _row_segments(entry_columns[in_gallery], num_all)
    for start in range(0, num_query, rows_per_chunk):
        stop = min(start + rows_per_chunk, num_query)
        first, last = torch.searchsorted(entry_rows, torch.tensor([start, stop], device=device)).tolist()
        query_rows, query_columns, query_values = entry_rows[first:last], entry_columns[first:last], values[first:last]
        entry, positions = _segments(column_starts[query_columns], column_counts[query_columns])
        shared = torch.zeros(stop - start, num_all - num_query, dtype=values.dtype, device=device)
        shared.index_put_(
            (query_rows[entry] - start, gallery_rows[positions]),
            torch.minimum(query_values[entry], gallery_values[positions]),
            accumulate=True,
        )
        yield start, stop, shared


def k_reciprocal_distances(
    query_features: torch.Tensor,
    gallery_features: torch.Tensor,
    metric: str = "euclidean",
    normalize: bool = False,
    k1: int = K1,
    k2: int = K2,
    lambda_value: float = LAMBDA,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Re-ranked distances (Q,G) of query (Q,D) and gallery (G,D) features; see the module docstring for the formulas.

    ``metric`` / ``normalize``: the model's own distance (``pairwise_distance``), squared as in the
    authors' code. ``chunk_size``: rows of distances computed at a time (None: about 256 MB).
    """
    if k1 < 1 or k2 < 1:
        raise InputError(f"re-ranking needs k1 >= 1 and k2 >= 1, got k1={k1}, k2={k2}")
    if not 0 <= lambda_value <= 1:
        raise InputError(f"re-ranking needs 0 <= lambda <= 1, got {lambda_value:g}")
    if query_features.dim() != 2 or gallery_features.dim() != 2 or query_features.shape[1] != gallery_features.shape[1]:
        raise InputError(
            f"features must be (Q,D) and (G,D) with the same D, got {tuple(query_features.shape)} "
            f"and {tuple(gallery_features.shape)}"
        )
    features = torch.cat([query_features, gallery_features]).detach()  # (N,D)
    num_query, num_all = len(query_features), len(features)
    rows_per_chunk = chunk_size or max(1, _CHUNK_BYTES // (num_all * 16))
    width = min(max(k1 + 1, k2), num_all)
    nearest = torch.empty(num_all, width, dtype=torch.long, device=features.device)
    row_scale = torch.empty(num_all, dtype=features.dtype, device=features.device)
    final = torch.empty(num_query, num_all - num_query, dtype=features.dtype, device=features.device)
    for start in range(0, num_all, rows_per_chunk):
        stop = min(start + rows_per_chunk, num_all)
        squared = pairwise_distance(features[start:stop], features, metric, normalize).square()  # (c,N)
        row_scale[start:stop] = squared.max(dim=1).values.clamp(min=_SCALE_FLOOR)
        nearest[start:stop] = squared.topk(width, dim=1, largest=False).indices
        if start < num_query:  # keep d~(q,g) for the final mix
            stop_query = min(stop, num_query)
            final[start:stop_query] = squared[: stop_query - start, num_query:] / row_scale[start:stop_query, None]
    weights = _expansion_weights(features, nearest, row_scale, k1, metric, normalize, rows_per_chunk)
    if k2 != 1:
        weights = _local_query_expansion(weights, nearest, k2)
    for start, stop, shared in _shared_mass(weights, num_query, rows_per_chunk):
        jaccard = 1 - shared / (2 - shared)
        final[start:stop] = (1 - lambda_value) * jaccard + lambda_value * final[start:stop]
    return final
