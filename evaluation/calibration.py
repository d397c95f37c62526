"""Steck (2018) calibrated re-ranking, and the pool checks shared by the re-ranking controls.

A pool holds, per user, candidate corpus indices `pool` int `[U, P]` (-1 pads or masks a slot)
and their scores `relevance` float `[U, P]` (higher is better).

- `category_vocabulary`: the sorted category columns of every distribution here.
- `user_category_distributions`: p(g|u) from each user's history, float `[U, G]`.
- `calibrated_rerank`: greedy lists `top` int64 `[U, k]` whose category distribution tracks
  p(g|u), traded off against relevance by `calibration_lambda`.

`_check_pool`, `_scaled` and `_batches` live here, not in `evaluation.rerank`, because that
module imports `calibrated_rerank` from this one; keeping them here avoids an import cycle.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from trainer.mmr import scaled_relevance

CALIBRATION_ALPHA = 0.01


def _check_pool(pool: np.ndarray, relevance: np.ndarray, num_items: int, k: int = 1) -> None:
    if pool.ndim != 2 or pool.shape != relevance.shape or pool.shape[1] == 0:
        raise ValueError(
            f"pool {pool.shape} and relevance {relevance.shape} must both be "
            "[users, pool_size >= 1]"
        )
    if pool.size and (pool.max() >= num_items or pool.min() < -1):
        raise ValueError(
            f"pool indices span [{pool.min()}, {pool.max()}] but the corpus has {num_items} "
            "items; use corpus indices in [0, N) and -1 for padding"
        )
    if not np.all(np.isfinite(relevance[pool >= 0])):
        raise ValueError("relevance must be finite wherever pool >= 0; mask bad slots with -1")
    if k < 1:
        raise ValueError(f"k={k} must be >= 1")


def _scaled(relevance: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """`trainer.mmr.scaled_relevance` on numpy: per-row min-max over valid slots, 0 elsewhere."""
    rel = tf.constant(np.where(valid, relevance, 0.0), tf.float32)
    return scaled_relevance(rel, tf.constant(valid)).numpy()


def _batches(num_users: int, batch_size: int) -> list[slice]:
    return [slice(s, s + batch_size) for s in range(0, num_users, batch_size)]


def category_vocabulary(item_categories: Sequence[Sequence[str]]) -> list[str]:
    """Sorted distinct categories: the column order of every category distribution here."""
    for i, categories in enumerate(item_categories):
        if isinstance(categories, str):
            raise ValueError(
                f"item_categories[{i}]={categories!r} is a string; pass a sequence of category "
                "names per item, e.g. 'Action|Drama'.split('|')"
            )
    return sorted({c for categories in item_categories for c in categories})


def _item_category_matrix(item_categories: Sequence[Sequence[str]]) -> np.ndarray:
    """float64 `[N, G]`: p(g|i) = 1/|categories(i)| for each of i's categories, else 0."""
    column = {c: j for j, c in enumerate(category_vocabulary(item_categories))}
    matrix = np.zeros((len(item_categories), len(column)))
    for i, categories in enumerate(item_categories):
        for c in set(categories):
            matrix[i, column[c]] = 1.0 / len(set(categories))
    return matrix


def user_category_distributions(
    history_items: Sequence[Sequence[int]], item_categories: Sequence[Sequence[str]]
) -> np.ndarray:
    """p(g|u) = sum_{i in H_u} p(g|i), renormalised to sum to 1 (Steck 2018, uniform weights).

    Args:
      history_items: per user, corpus indices of the items in their history (-1 ignored).
      item_categories: `[N]` category names per item.

    Returns:
      float64 `[U, G]` over `category_vocabulary(item_categories)`; all zeros for a user with
      no categorised history (calibration then leaves their list to relevance).
    """
    matrix = _item_category_matrix(item_categories)
    dist = np.zeros((len(history_items), matrix.shape[1]))
    for u, items in enumerate(history_items):
        items = np.asarray(items, np.int64)
        dist[u] = matrix[items[items >= 0]].sum(axis=0)
    mass = dist.sum(axis=1, keepdims=True)
    return np.divide(dist, mass, out=np.zeros_like(dist), where=mass > 0)


def calibrated_rerank(
    pool: np.ndarray,
    relevance: np.ndarray,
    item_categories: Sequence[Sequence[str]],
    user_category_dist: np.ndarray,
    k: int,
    calibration_lambda: float,
    batch_size: int = 1024,
) -> np.ndarray:
    """Greedy calibrated re-ranking (Steck, "Calibrated Recommendations", RecSys 2018).

    Each step adds to the list I the candidate i maximising

        (1 - lambda) * sum_{j in I + i} s(j) - lambda * KL(p || q~(I + i)),
        KL(p || q~) = sum_g p(g|u) * log(p(g|u) / q~(g)),
        q~ = (1 - alpha) * q + alpha * p,   q(g) = sum_{j in I+i} p(g|j) / |I + i|,

    with alpha = `CALIBRATION_ALPHA` (0.01, keeps KL finite), s the relevance min-max scaled
    per list (as MMR scales it, so lambda weighs terms on comparable scales) and p(g|j) as in
    `user_category_distributions`. An uncategorised item adds no category mass, so it dilutes
    q. lambda = 0 keeps the relevance order.

    Args:
      pool, relevance: `[U, P]`. item_categories: `[N]` category names per item.
      user_category_dist: float `[U, G]` from `user_category_distributions`. k: list length.
      calibration_lambda: in [0, 1].

    Returns:
      int64 `top` `[U, k]`, -1 past a pool's valid items.
    """
    pool, relevance = np.asarray(pool, np.int64), np.asarray(relevance, np.float32)
    _check_pool(pool, relevance, len(item_categories), k)
    matrix = _item_category_matrix(item_categories)
    target = np.asarray(user_category_dist, np.float64)
    if target.shape != (pool.shape[0], matrix.shape[1]):
        raise ValueError(
            f"user_category_dist {target.shape} must be [{pool.shape[0]} users, "
            f"{matrix.shape[1]} categories]; build it with user_category_distributions"
        )
    if not 0.0 <= calibration_lambda <= 1.0:
        raise ValueError(f"calibration_lambda={calibration_lambda} must be in [0, 1]")
    top = np.full((pool.shape[0], k), -1, np.int64)
    for rows in _batches(pool.shape[0], batch_size):
        top[rows] = _calibrate(
            pool[rows], relevance[rows], matrix, target[rows], k, calibration_lambda
        )
    return top


def _calibrate(
    pool: np.ndarray,
    relevance: np.ndarray,
    matrix: np.ndarray,
    target: np.ndarray,
    k: int,
    lam: float,
) -> np.ndarray:
    """`calibrated_rerank` on one batch of users, all of them at once."""
    available = pool >= 0
    scores = _scaled(relevance, available)
    item_dist = matrix[np.maximum(pool, 0)]  # [B, P, G]
    p = target[:, None, :]
    log_p = np.log(np.where(p > 0, p, 1.0))
    chosen_mass = np.zeros_like(target)
    top = np.full((pool.shape[0], k), -1, np.int64)
    rows = np.arange(pool.shape[0])
    for step in range(min(k, pool.shape[1])):
        q = (chosen_mass[:, None, :] + item_dist) / (step + 1)
        smoothed = (1 - CALIBRATION_ALPHA) * q + CALIBRATION_ALPHA * p
        kl = np.sum(np.where(p > 0, p * (log_p - np.log(np.where(p > 0, smoothed, 1.0))), 0.0), -1)
        # The relevance of the items already chosen is the same for every candidate.
        gain = np.where(available, (1 - lam) * scores - lam * kl, -np.inf)
        pick = np.argmax(gain, axis=1)
        ok = available[rows, pick]
        top[:, step] = np.where(ok, pool[rows, pick], -1)
        chosen_mass += np.where(ok[:, None], item_dist[rows, pick], 0.0)
        available[rows, pick] = False
    return top
