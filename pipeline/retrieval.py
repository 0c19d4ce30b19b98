"""Nearest corpus rows by cosine: what `knn` averages and what a retrieval-augmented DiT reads.

Features in the store are L2-normalised (in diffusion space all scaled by one sqrt(D)), so a
dot product ranks keys as cosine does. Queries go in chunks: a chunk's similarity matrix, not
the whole query set's, is held at once.
"""

from __future__ import annotations

import torch


def nearest_rows(
    queries: torch.Tensor, keys: torch.Tensor, k: int, leave_out_self: bool = False, chunk: int = 4096
) -> torch.Tensor:
    """(N, k) indices of the k keys nearest each query, nearest first.

    `leave_out_self`: the queries are the keys themselves (row i is key i) and a row may not
    retrieve itself, as when the DiT trains on the corpus it retrieves from.
    """
    k = min(k, keys.shape[0] - int(leave_out_self))
    out = []
    for start in range(0, queries.shape[0], chunk):
        similarity = queries[start : start + chunk] @ keys.T
        if leave_out_self:
            rows = torch.arange(similarity.shape[0])
            similarity[rows, rows + start] = -torch.inf
        out.append(similarity.topk(k, dim=1).indices)
    return torch.cat(out) if out else torch.zeros((0, k), dtype=torch.long)


def retrieved_partners(partners: torch.Tensor, nearest: torch.Tensor) -> torch.Tensor:
    """The partner features of each row's retrieved rows, one after the other: (N, k D)."""
    return partners[nearest].flatten(1)


def with_retrieved(cond: torch.Tensor, partners: torch.Tensor, nearest: torch.Tensor) -> torch.Tensor:
    """A retrieval-augmented DiT's condition: each row's own feature followed by the partner
    features of its retrieved rows: (N, (1 + k) D)."""
    return torch.cat([cond, retrieved_partners(partners, nearest)], dim=1)
