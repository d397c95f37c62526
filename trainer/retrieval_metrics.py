"""Full-corpus top-k ranking with exclusions, and recall@K (pure NumPy)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def top_k_excluding(scores: np.ndarray, exclude: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Indices of the `k` best-scored items per row, never returning excluded items.

    Ties are broken by the lower item index, so results are deterministic.

    Args:
      scores: `[num_queries, num_items]` float scores.
      exclude: Per query, an int array of item indices to leave out (e.g. training items).
      k: Items to return per query; must not exceed `num_items`.

    Returns:
      `[num_queries, k]` int64 item indices, best first. When fewer than `k` items remain after
      exclusion, the row is padded with -1.

    Raises:
      ValueError: `k` is out of range or `exclude` does not have one entry per query.
    """
    num_queries, num_items = scores.shape
    if not 1 <= k <= num_items:
        raise ValueError(f"k={k} must be between 1 and the {num_items} items in the corpus")
    if len(exclude) != num_queries:
        raise ValueError(f"exclude has {len(exclude)} rows for {num_queries} queries")
    masked = scores.astype(np.float64, copy=True)
    for row, items in enumerate(exclude):
        masked[row, np.asarray(items, dtype=np.int64)] = -np.inf
    # Sort by (-score, index): lexsort's last key is the primary one.
    order = np.lexsort((np.broadcast_to(np.arange(num_items), masked.shape), -masked), axis=1)
    top = order[:, :k].astype(np.int64)
    top[np.take_along_axis(masked, top, axis=1) == -np.inf] = -1
    return top


def _check_cutoffs(top_k: np.ndarray, ks: Sequence[int]) -> None:
    if top_k.shape[1] < max(ks):
        raise ValueError(f"top_k has {top_k.shape[1]} columns; ks={list(ks)} needs {max(ks)}")


def _mean_over_queries(
    top_k: np.ndarray,
    relevant: Sequence[set[int]],
    score: Callable[[np.ndarray, set[int]], list[float]],
    width: int,
) -> np.ndarray:
    """`[width]` mean of `score(ranked row, relevant set)` over the queries that have relevant
    items (the others are skipped); zeros when no query has one."""
    values = [score(row, items) for row, items in zip(top_k, relevant, strict=True) if items]
    return np.mean(values, axis=0) if values else np.zeros(width)


def recall_at_k(
    top_k: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int]
) -> dict[int, float]:
    """Mean over queries of |top-k ∩ relevant| / |relevant|.

    Args:
      top_k: `[num_queries, K]` ranked item indices (-1 = padding), K >= max(ks).
      relevant: Per query, the set of relevant item indices; queries with an empty set are
        skipped (they cannot be recalled).
      ks: Cut-offs.

    Returns:
      `{k: mean recall}`; 0.0 for every k when no query has a relevant item.
    """
    _check_cutoffs(top_k, ks)
    means = _mean_over_queries(
        top_k,
        relevant,
        lambda row, items: [len(items.intersection(row[:k].tolist())) / len(items) for k in ks],
        len(ks),
    )
    return dict(zip(ks, means.tolist(), strict=True))


def ndcg_at_k(
    top_k: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int]
) -> dict[int, float]:
    """Mean over queries of DCG@k / ideal DCG@k, with binary relevance.

    DCG@k = sum over ranks r = 1..k of [item at r is relevant] / log2(r + 1); the ideal DCG
    puts min(|relevant|, k) relevant items first. Queries with no relevant item are skipped.

    Args/Returns: as `recall_at_k`.
    """
    _check_cutoffs(top_k, ks)
    discounts = 1.0 / np.log2(np.arange(2, top_k.shape[1] + 2))

    def ndcg(row: np.ndarray, items: set[int]) -> list[float]:
        gains = np.fromiter((item in items for item in row.tolist()), dtype=np.float64)
        return [
            float(gains[:k] @ discounts[:k] / discounts[: min(len(items), k)].sum()) for k in ks
        ]

    means = _mean_over_queries(top_k, relevant, ndcg, len(ks))
    return dict(zip(ks, means.tolist(), strict=True))


def mean_reciprocal_rank(top_k: np.ndarray, relevant: Sequence[set[int]]) -> float:
    """Mean over queries of 1 / rank of the first relevant item within `top_k` (0 when none is
    there), i.e. MRR@K for K = `top_k.shape[1]`. Queries with no relevant item are skipped."""

    def reciprocal_rank(row: np.ndarray, items: set[int]) -> list[float]:
        ranks = [rank for rank, item in enumerate(row.tolist(), start=1) if item in items]
        return [1.0 / ranks[0] if ranks else 0.0]

    return float(_mean_over_queries(top_k, relevant, reciprocal_rank, 1)[0])
