"""Inverse-propensity-scored (IPS) recall and NDCG, to correct offline metrics for exposure bias.

Held-out interactions are mostly with items users were shown, i.e. popular ones, so plain
recall rewards recommending the head. IPS weights each relevant item by the inverse of its
chance of being observed. That chance is modelled from training popularity (Yang et al.,
"Unbiased Offline Recommender Evaluation for Missing-Not-At-Random Implicit Feedback", 2018):

  p_i = (popularity_i / max_j popularity_j) ** power      in [0, 1], the most popular item 1
  w_i = 1 / max(p_i, min_propensity)                      in [1, 1 / min_propensity]

`power` (default 0.5) sets how strongly exposure grows with popularity (0 disables the
correction: every weight is 1). Items never seen in training have p_i = 0 and, like every item
below the floor, get the clipped weight 1 / min_propensity, so one rare item cannot dominate.

Per user u with relevant set R, hits H@k (relevant items among the first k recommended):
  ips_recall@k = sum_{i in H@k} w_i / sum_{i in R} w_i
  ips_ndcg@k   = sum_{ranks r<=k, hit} w_{item at r} / log2(r + 1), divided by the ideal: the
                 min(|R|, k) largest weights of R at ranks 1, 2, ...
Means over users with R non-empty, as in `evaluation.metrics`; report them beside the plain
metrics (with uniform weights they equal recall@k and ndcg@k).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from evaluation.metrics import check_ks, check_top, pair_index, relevant_pairs, row_chunks


@dataclasses.dataclass(frozen=True)
class IPSConfig:
    """How propensities and weights are derived from popularity.

    Attributes:
      power: Exponent of the normalised popularity; >= 0.
      min_propensity: Floor of the propensity, in (0, 1]; caps weights at 1 / min_propensity.
    """

    power: float = 0.5
    min_propensity: float = 0.01

    def __post_init__(self) -> None:
        if self.power < 0:
            raise ValueError(f"power={self.power} must be >= 0")
        if not 0 < self.min_propensity <= 1:
            raise ValueError(
                f"min_propensity={self.min_propensity} must be in (0, 1]; it caps weights at "
                "1 / min_propensity"
            )


def propensities(popularity: np.ndarray, power: float = 0.5) -> np.ndarray:
    """`[N]` propensities (popularity / max popularity) ** power; all 0 when nothing was seen
    (and power > 0)."""
    counts = np.asarray(popularity, dtype=np.float64)
    if counts.ndim != 1 or (counts.size and counts.min() < 0):
        raise ValueError(f"popularity must be a 1-D array of non-negative counts, got {counts!r}")
    peak = counts.max(initial=0.0)
    return np.power(counts / peak if peak > 0 else counts, power)


def ips_weights(popularity: np.ndarray, config: IPSConfig = IPSConfig()) -> np.ndarray:
    """`[N]` weights 1 / max(p_i, config.min_propensity) of `propensities`."""
    return 1.0 / np.maximum(propensities(popularity, config.power), config.min_propensity)


def metric_names(ks: Sequence[int]) -> list[str]:
    """Names `ips_metrics` returns for cut-offs `ks`, in report order."""
    return [*(f"ips_recall@{k}" for k in ks), *(f"ips_ndcg@{k}" for k in ks)]


def _chunk_sums(
    top: np.ndarray, relevant: Sequence[set[int]], weights: np.ndarray, ks: list[int]
) -> dict[str, float]:
    """Sums over the users of one chunk (all with relevant items) of the per-user metrics."""
    users, items = relevant_pairs(relevant)
    item_weights = weights[items]
    width = top.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, width + 2))
    found = pair_index(top, users, items)
    gains = np.where(found >= 0, item_weights[found], 0.0)  # [b, K] weight of each hit
    # Ideal gains: each user's relevant weights, largest first, in the first columns.
    order = np.lexsort((-item_weights, users))
    starts = np.searchsorted(users, np.arange(len(top)))
    positions = np.arange(len(users)) - starts[users[order]]
    ideal = np.zeros(top.shape)
    kept = positions < width
    ideal[users[order][kept], positions[kept]] = item_weights[order][kept]
    total_weight = np.bincount(users, weights=item_weights, minlength=len(top))
    recall = np.cumsum(gains, axis=1) / total_weight[:, None]
    ndcg = np.cumsum(gains * discounts, axis=1) / np.cumsum(ideal * discounts, axis=1)
    sums = {f"ips_recall@{k}": recall[:, k - 1].sum() for k in ks}
    return sums | {f"ips_ndcg@{k}": ndcg[:, k - 1].sum() for k in ks}


def ips_metrics(
    top: np.ndarray,
    relevant: Sequence[set[int]],
    weights: np.ndarray,
    ks: Sequence[int],
) -> dict[str, float]:
    """IPS-weighted recall@k and NDCG@k (definitions in the module docstring).

    Args:
      top: `[U, K]` int corpus indices, best first, -1 padding; K may be below max(ks).
      relevant: Per user, the set of relevant corpus indices; users with none are skipped.
      weights: `[N]` positive per-item weights, e.g. `ips_weights(popularity, config)`.
      ks: Cut-offs.

    Returns:
      `{name: value}` for `metric_names(ks)`; 0.0 each when no user has a relevant item.

    Raises:
      ValueError: bad `ks`/`top`, a non-positive weight, or an item without a weight.
    """
    ks = check_ks(ks)
    top = check_top(top, max(ks))[:, : max(ks)]
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or not (weights > 0).all():
        raise ValueError(f"weights must be a 1-D array of positive numbers, got {weights!r}")
    if len(relevant) != len(top):
        raise ValueError(f"relevant has {len(relevant)} users but top has {len(top)} rows")
    _, items = relevant_pairs(relevant)
    largest = max(int(items.max(initial=-1)), int(top.max(initial=-1)))
    if largest >= len(weights):
        raise ValueError(f"item {largest} has no weight; weights cover {len(weights)} items")
    sizes = np.fromiter(map(len, relevant), dtype=np.int64, count=len(relevant))
    totals = dict.fromkeys(metric_names(ks), 0.0)
    for rows in row_chunks(len(top), top.shape[1]):
        keep = np.flatnonzero(sizes[rows] > 0) + rows.start
        chunk = _chunk_sums(top[keep], [relevant[u] for u in keep], weights, ks)
        for name, value in chunk.items():
            totals[name] += float(value)
    evaluated = int((sizes > 0).sum())
    return {name: value / evaluated if evaluated else 0.0 for name, value in totals.items()}
