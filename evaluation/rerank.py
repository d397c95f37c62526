"""Re-ranking controls applied offline to candidate pools, with the same MMR code as serving.

A pool holds, per user, candidate corpus indices `pool` int `[U, P]` (-1 pads or masks a slot)
and their scores `relevance` float `[U, P]` (higher is better). Each control returns either a
new score matrix (same positions) or the chosen lists `top` int64 `[U, k]` of corpus indices,
-1 where a pool ran out of valid candidates.

- `apply_filters`: business rules; excluded candidates become -1, the order is kept.
- `novelty_boost`: adds beta times the min-max scaled self-information -log2 p_i of each item.
- `mmr_rerank`: maximal marginal relevance through `trainer.mmr.mmr_select`, the function the
  served `recommender` signature runs with its per-request `mmr_lambda`.
- `rerank`: filters -> novelty -> calibration (if its lambda > 0) or MMR, from a `RerankConfig`
  and the corpus's `ItemSideData`.

Calibration (`calibrated_rerank`) lives in `evaluation.calibration`; the lambda sweep
(`lambda_sweep`, `choose_lambda`) in `evaluation.lambda_sweep`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from evaluation.calibration import _batches, _check_pool, _scaled, calibrated_rerank
from trainer.mmr import mmr_select

_MMR_SELECT = tf.function(
    mmr_select,
    input_signature=[
        tf.TensorSpec([None, None], tf.float32),
        tf.TensorSpec([None, None, None], tf.float32),
        tf.TensorSpec([None, None], tf.bool),
        tf.TensorSpec([], tf.int32),
        tf.TensorSpec([None], tf.float32),
    ],
)


@dataclasses.dataclass(frozen=True, eq=False)
class ItemSideData:
    """Per-item data of the corpus, indexed by corpus index.

    Attributes:
      item_ids: `[N]` item id strings (what `exclude_items` names).
      embeddings: float `[N, d]`; MMR similarity is their cosine.
      categories: `[N]` sequences of category names (genres); may be empty.
      popularity: `[N]` non-negative interaction counts.
    """

    item_ids: Sequence[str]
    embeddings: np.ndarray
    categories: Sequence[Sequence[str]]
    popularity: np.ndarray

    def __post_init__(self) -> None:
        sizes = {f.name: len(getattr(self, f.name)) for f in dataclasses.fields(self)}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"ItemSideData fields must all have one row per item; got {sizes}")


@dataclasses.dataclass(frozen=True)
class RerankConfig:
    """Re-ranking controls; the defaults leave the ranking order unchanged.

    Attributes:
      mmr_lambda: MMR diversity weight in [0, 1], as in the served signature.
      calibration_lambda: Steck calibration weight in [0, 1]; > 0 replaces MMR.
      novelty_beta: >= 0, weight of the novelty bonus.
      exclude_categories: candidates with any of these categories are dropped.
      exclude_items: candidates with these item ids are dropped.
    """

    mmr_lambda: float = 0.0
    calibration_lambda: float = 0.0
    novelty_beta: float = 0.0
    exclude_categories: tuple[str, ...] = ()
    exclude_items: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("mmr_lambda", "calibration_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1]")
        if self.novelty_beta < 0:
            raise ValueError(f"novelty_beta={self.novelty_beta} must be >= 0")
        if self.mmr_lambda > 0 and self.calibration_lambda > 0:
            raise ValueError(
                f"mmr_lambda={self.mmr_lambda} and calibration_lambda={self.calibration_lambda}"
                " are both set; the final stage is either MMR or calibration, set one to 0"
            )


def apply_filters(
    pool: np.ndarray,
    relevance: np.ndarray,
    item_ids: Sequence[str],
    item_categories: Sequence[Sequence[str]],
    exclude_categories: Sequence[str] = (),
    exclude_items: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Drops candidates in an excluded category or with an excluded item id.

    Returns:
      `(pool, relevance)`, both `[U, P]` with the same positions: dropped slots get -1 in
      `pool` and -inf in `relevance` (so any consumer sorting by score puts them last).
    """
    pool, relevance = np.asarray(pool, np.int64), np.asarray(relevance, np.float32)
    _check_pool(pool, relevance, len(item_ids))
    if len(item_categories) != len(item_ids):
        raise ValueError(f"{len(item_categories)} item_categories for {len(item_ids)} item_ids")
    categories, items = set(exclude_categories), set(exclude_items)
    banned = [
        i in items or not categories.isdisjoint(c)
        for i, c in zip(item_ids, item_categories, strict=True)
    ]
    drop = np.array(banned + [False])[pool]  # -1 reads the trailing False
    return np.where(drop, -1, pool), np.where(drop, -np.inf, relevance).astype(np.float32)


def novelty_boost(
    relevance: np.ndarray, pool: np.ndarray, popularity: np.ndarray, beta: float
) -> np.ndarray:
    """Adds a novelty bonus: `scaled_relevance(relevance) + beta * novelty(pool)`.

    Self-information with add-one smoothing, `I_i = -log2((pop_i + 1) / (sum_j pop_j + N))`,
    is min-max scaled over the whole catalog to `novelty_i` in [0, 1] (the least popular item
    gets 1); relevance is min-max scaled per list as in `trainer.mmr.scaled_relevance`. Both
    terms are then on [0, 1], so beta = 1 weighs novelty like the whole relevance range.

    Args:
      relevance: float `[U, P]`; pool: int `[U, P]`; popularity: `[N]` counts; beta: >= 0.

    Returns:
      float32 `[U, P]`; -inf where `pool` is -1.
    """
    pool, relevance = np.asarray(pool, np.int64), np.asarray(relevance, np.float32)
    popularity = np.asarray(popularity, np.float64)
    _check_pool(pool, relevance, len(popularity))
    if beta < 0 or np.any(popularity < 0):
        raise ValueError(f"beta={beta} and popularity counts must be >= 0")
    info = -np.log2((popularity + 1.0) / (popularity.sum() + len(popularity)))
    span = info.max() - info.min()
    novelty = (info - info.min()) / span if span > 0 else np.zeros_like(info)
    valid = pool >= 0
    boosted = _scaled(relevance, valid) + beta * novelty[np.maximum(pool, 0)]
    return np.where(valid, boosted, -np.inf).astype(np.float32)


def mmr_rerank(
    pool: np.ndarray,
    relevance: np.ndarray,
    item_embeddings: np.ndarray,
    k: int,
    mmr_lambda: float | np.ndarray,
    batch_size: int = 256,
) -> np.ndarray:
    """Picks `k` items per pool by MMR with `trainer.mmr.mmr_select` (see its formula).

    Args:
      pool: int `[U, P]`; relevance: float `[U, P]`; item_embeddings: float `[N, d]`.
      k: list length. mmr_lambda: scalar or `[U]` in [0, 1] (0 keeps the relevance order).
      batch_size: users per graph call; memory grows as batch_size * P * P.

    Returns:
      int64 `top` `[U, k]` of corpus indices in selection order, -1 past a pool's valid items.
    """
    pool, relevance = np.asarray(pool, np.int64), np.asarray(relevance, np.float32)
    embeddings = np.asarray(item_embeddings, np.float32)
    _check_pool(pool, relevance, len(embeddings), k)
    lambdas = np.broadcast_to(np.asarray(mmr_lambda, np.float32), (pool.shape[0],))
    if np.any((lambdas < 0) | (lambdas > 1)):
        raise ValueError(f"mmr_lambda={mmr_lambda} must be in [0, 1]")
    top = np.full((pool.shape[0], k), -1, np.int64)
    for rows in _batches(pool.shape[0], batch_size):
        valid = pool[rows] >= 0
        positions, selected = _MMR_SELECT(
            tf.constant(np.where(valid, relevance[rows], 0.0).astype(np.float32)),
            tf.constant(embeddings[np.maximum(pool[rows], 0)]),
            tf.constant(valid),
            tf.constant(k, tf.int32),
            tf.constant(lambdas[rows]),
        )
        chosen = np.take_along_axis(pool[rows], positions.numpy(), axis=1)
        top[rows] = np.where(selected.numpy(), chosen, -1)
    return top


def rerank(
    pool: np.ndarray,
    relevance: np.ndarray,
    side_data: ItemSideData,
    config: RerankConfig,
    k: int,
    user_category_dist: np.ndarray | None = None,
) -> np.ndarray:
    """Applies `config`: filters, then novelty boost, then calibration or MMR.

    Filters come first so excluded items neither take a slot nor move the per-list scaling;
    the novelty bonus changes the scores the final greedy stage reads; that stage (calibration
    when `calibration_lambda > 0`, else MMR with `mmr_lambda`, which at 0 is the relevance
    order) picks the `k` items. `user_category_dist` `[U, G]` is required for calibration.

    Returns:
      int64 `top` `[U, k]`.
    """
    pool, relevance = apply_filters(
        pool,
        relevance,
        side_data.item_ids,
        side_data.categories,
        config.exclude_categories,
        config.exclude_items,
    )
    if config.novelty_beta > 0:
        relevance = novelty_boost(relevance, pool, side_data.popularity, config.novelty_beta)
    if config.calibration_lambda > 0:
        if user_category_dist is None:
            raise ValueError(
                "calibration_lambda > 0 needs user_category_dist; build it with "
                "user_category_distributions(history_items, categories)"
            )
        return calibrated_rerank(
            pool, relevance, side_data.categories, user_category_dist, k, config.calibration_lambda
        )
    return mmr_rerank(pool, relevance, side_data.embeddings, k, config.mmr_lambda)
