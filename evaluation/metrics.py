"""Accuracy metrics of top-K recommendation lists, and of scores (AUC) and predictions (RMSE, MAE).

A recommendation list is a row of `top`: int64 `[num_users, K]` corpus indices, best first,
padded with -1 when fewer than K items were recommended (as `trainer.retrieval_metrics.
top_k_excluding` returns). Items within a row must be distinct. `relevant[u]` is the set of
corpus indices relevant to user u (their held-out items). A *hit* is a recommended item that is
relevant; `rel_i` is 1 when the item at rank i is a hit, and `hits@k = sum_{i<=k} rel_i`.

Per user u, with R = |relevant[u]|:
  recall@k    = hits@k / R
  precision@k = hits@k / k  (k, not the list length: a short or padded list is not rewarded)
  f1@k        = 2 P R' / (P + R') of that user's precision P and recall R' (0 when both are 0),
                averaged over users (not the harmonic mean of the averages)
  ndcg@k      = sum_{i<=k} rel_i / log2(i + 1), divided by the ideal sum_{i<=min(R, k)} of 1 /
                log2(i + 1)
  map@k       = AP@k = sum_{i<=k} precision@i * rel_i / min(R, k)
  hit_rate@k  = 1 if hits@k > 0 else 0
  mrr         = 1 / rank of the first hit in the whole list (0 when there is none)
Each metric is the mean over users with R > 0; users with no relevant item are skipped (nothing
can be recalled for them) and counted in `users_skipped`. When every user is skipped the
metrics are 0.0, as in `trainer.evaluation`. Cut-offs larger than the list width K treat the
missing ranks as padding.

The per-user work is vectorised over chunks of users (see `row_chunks`), so 1M users x K=100
takes seconds and bounded memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np

#: Elements of a `[users, K]` block processed at once; bounds memory to ~100 MB per array.
_CHUNK_ELEMENTS = 1 << 22


def row_chunks(num_rows: int, width: int) -> Iterator[slice]:
    """Slices of consecutive rows covering `range(num_rows)`, each of at most ~4M elements of a
    `[num_rows, width]` array."""
    step = max(1, _CHUNK_ELEMENTS // max(width, 1))
    for start in range(0, num_rows, step):
        yield slice(start, min(start + step, num_rows))


def check_ks(ks: Sequence[int]) -> list[int]:
    """Validates cut-offs (a non-empty sequence of positive ints) and returns them as a list."""
    ks = list(ks)
    if not ks or any(not isinstance(k, int | np.integer) or k < 1 for k in ks):
        raise ValueError(f"ks={ks} must be a non-empty sequence of positive integers")
    return [int(k) for k in ks]


def check_top(top: np.ndarray, width: int | None = None) -> np.ndarray:
    """Validates recommendation lists and returns them as int64, padded with -1 to `width`.

    Args:
      top: `[num_users, K]` integer corpus indices, -1 for padding.
      width: Minimum number of columns of the result (e.g. the largest cut-off).

    Raises:
      ValueError: `top` is not a 2-D integer array, holds values below -1, or repeats an item
        within a row.
    """
    top = np.asarray(top)
    if top.ndim != 2 or not (np.issubdtype(top.dtype, np.integer) or top.size == 0):
        raise ValueError(f"top must be a [num_users, K] integer array, got {top.dtype} {top.shape}")
    top = top.astype(np.int64, copy=False)
    if top.size and top.min() < -1:
        raise ValueError(f"top holds {top.min()}; corpus indices are >= 0 and -1 is padding")
    for rows in row_chunks(len(top), top.shape[1]):
        ordered = np.sort(top[rows], axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
        if repeated.any():
            row = rows.start + int(np.flatnonzero(repeated.any(axis=1))[0])
            raise ValueError(f"top row {row} repeats an item: {top[row].tolist()}")
    if width is not None and top.shape[1] < width:
        top = np.pad(top, ((0, 0), (0, width - top.shape[1])), constant_values=-1)
    return top


def relevant_pairs(relevant: Sequence[set[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Flattens per-user relevant sets into `(rows [P], items [P])` int64 pairs, row-major."""
    sizes = np.fromiter(map(len, relevant), dtype=np.int64, count=len(relevant))
    items = np.fromiter(
        itertools.chain.from_iterable(relevant), dtype=np.int64, count=int(sizes.sum())
    )
    if items.size and items.min() < 0:
        raise ValueError(f"relevant holds the corpus index {items.min()}; indices are >= 0")
    return np.repeat(np.arange(len(relevant), dtype=np.int64), sizes), items


def pair_index(top: np.ndarray, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Where each recommendation occurs among `(row, item)` pairs.

    Args:
      top: `[U, K]` int64 corpus indices, -1 for padding.
      rows, items: `[P]` int64 pairs; row r refers to `top[r]`; no pair may repeat.

    Returns:
      `[U, K]` int64: for each `top[u, j]`, the index p with `(rows[p], items[p]) == (u,
      top[u, j])`, or -1 when there is none (padding never matches).
    """
    if not items.size:
        return np.full(top.shape, -1, dtype=np.int64)
    base = int(max(top.max(initial=0), items.max())) + 1
    keys = rows * base + items
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    query = np.arange(len(top), dtype=np.int64)[:, None] * base + top
    found = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    matched = (keys[found] == query) & (top >= 0)
    return np.where(matched, order[found], -1)


def hit_matrix(top: np.ndarray, relevant: Sequence[set[int]]) -> np.ndarray:
    """`[U, K]` bool: whether `top[u, j]` is in `relevant[u]` (padding is never a hit)."""
    if len(relevant) != len(top):
        raise ValueError(f"relevant has {len(relevant)} users but top has {len(top)} rows")
    return pair_index(top, *relevant_pairs(relevant)) >= 0


def metric_names(ks: Sequence[int]) -> list[str]:
    """Names `accuracy_metrics` returns for cut-offs `ks`, in report order."""
    families = ("recall", "precision", "f1", "ndcg", "map", "hit_rate")
    return [f"{name}@{k}" for name in families for k in ks] + ["mrr"]


def _user_sums(hits: np.ndarray, sizes: np.ndarray, ks: list[int]) -> dict[str, float]:
    """Sums over users (all with `sizes` > 0) of each metric, from their `[b, K]` hits."""
    width = hits.shape[1]
    ranks = np.arange(1, width + 1)
    discounts = 1.0 / np.log2(ranks + 1)
    cumulative = np.cumsum(hits, axis=1, dtype=np.int32)
    dcg = np.cumsum(hits * discounts, axis=1)
    ideal = np.cumsum(discounts)
    average_precision = np.cumsum(hits * (cumulative / ranks), axis=1)
    sums: dict[str, float] = {}
    for k in ks:
        found = cumulative[:, k - 1]
        recall, precision = found / sizes, found / k
        denominator = np.where(found > 0, recall + precision, 1.0)
        capped = np.minimum(sizes, k)
        sums[f"recall@{k}"] = recall.sum()
        sums[f"precision@{k}"] = precision.sum()
        sums[f"f1@{k}"] = (2 * recall * precision / denominator).sum()
        sums[f"ndcg@{k}"] = (dcg[:, k - 1] / ideal[capped - 1]).sum()
        sums[f"map@{k}"] = (average_precision[:, k - 1] / capped).sum()
        sums[f"hit_rate@{k}"] = float((found > 0).sum())
    first = np.argmax(hits, axis=1)
    sums["mrr"] = np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0).sum()
    return sums


def accuracy_metrics(
    top: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int]
) -> dict[str, float]:
    """Mean accuracy metrics of recommendation lists (see the module docstring for formulas).

    Args:
      top: `[num_users, K]` int corpus indices, best first, -1 padding; K may be below max(ks).
      relevant: Per user, the set of relevant corpus indices.
      ks: Cut-offs.

    Returns:
      `{name: value}` for `metric_names(ks)` (MRR within the whole list of width
      max(K, max(ks))), plus "users_evaluated" and "users_skipped" (users with no relevant item).

    Raises:
      ValueError: bad `ks` or `top`, or `relevant` does not have one set per row of `top`.
    """
    ks = check_ks(ks)
    top = check_top(top, max(ks))
    if len(relevant) != len(top):
        raise ValueError(f"relevant has {len(relevant)} users but top has {len(top)} rows")
    sizes = np.fromiter(map(len, relevant), dtype=np.int64, count=len(relevant))
    totals = dict.fromkeys(metric_names(ks), 0.0)
    for rows in row_chunks(len(top), top.shape[1]):
        keep = np.flatnonzero(sizes[rows] > 0) + rows.start
        hits = hit_matrix(top[keep], [relevant[u] for u in keep])
        for name, value in _user_sums(hits, sizes[keep], ks).items():
            totals[name] += float(value)
    evaluated = int((sizes > 0).sum())
    means = {name: value / evaluated if evaluated else 0.0 for name, value in totals.items()}
    return {
        **means,
        "users_evaluated": float(evaluated),
        "users_skipped": float(len(top) - evaluated),
    }


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values` ascending, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, len(values)])
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(starts + (counts + 1) / 2.0, counts)
    return ranks


def auc(
    scores: np.ndarray,
    relevant: Sequence[set[int]],
    exclude: Sequence[np.ndarray] | None = None,
) -> float:
    """Mean per-user ROC AUC: the chance that a relevant item outscores a non-relevant one.

    Per user, over the items not in `exclude[u]` (relevant items that are excluded are dropped
    too), with midranks r_i of the scores (ties share their mean rank):
    AUC = (sum_{i relevant} r_i - P (P + 1) / 2) / (P * Q) for P relevant and Q non-relevant
    items, so a tie between a relevant and a non-relevant item counts 1/2. O(N log N) per user.

    Args:
      scores: `[num_users, N]` float scores over the corpus.
      relevant: Per user, the set of relevant corpus indices.
      exclude: Per user, int indices left out of the ranking (e.g. training items); none if None.

    Returns:
      The mean over users with P > 0 and Q > 0; NaN when there is no such user (0.0 would read
      as a perfectly inverted ranking).

    Raises:
      ValueError: shapes disagree, or scores hold NaN.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or len(relevant) != len(scores):
        raise ValueError(f"scores {scores.shape} must be [num_users, N] for {len(relevant)} users")
    if exclude is not None and len(exclude) != len(scores):
        raise ValueError(f"exclude has {len(exclude)} rows for {len(scores)} users")
    if np.isnan(scores).any():
        raise ValueError("scores hold NaN; AUC needs comparable scores for every item")
    values = []
    for user, row in enumerate(scores):
        keep = np.ones(len(row), dtype=bool)
        if exclude is not None:
            keep[np.asarray(exclude[user], dtype=np.int64)] = False
        positive = np.zeros(len(row), dtype=bool)
        positive[np.fromiter(relevant[user], dtype=np.int64, count=len(relevant[user]))] = True
        positive = positive[keep]
        num_positive = int(positive.sum())
        num_negative = len(positive) - num_positive
        if num_positive and num_negative:
            rank_sum = _midranks(row[keep])[positive].sum()
            u_stat = rank_sum - num_positive * (num_positive + 1) / 2.0
            values.append(u_stat / (num_positive * num_negative))
    return float(np.mean(values)) if values else float("nan")


def _check_pair(prediction: np.ndarray, label: np.ndarray) -> np.ndarray:
    prediction = np.asarray(prediction, dtype=np.float64)
    label = np.asarray(label, dtype=np.float64)
    if prediction.shape != label.shape or not prediction.size:
        raise ValueError(
            f"prediction {prediction.shape} and label {label.shape} must be equal, non-empty shapes"
        )
    return prediction - label


def rmse(prediction: np.ndarray, label: np.ndarray) -> float:
    """Root mean squared error sqrt(mean((prediction - label)^2)) over same-shaped arrays."""
    return float(np.sqrt(np.mean(np.square(_check_pair(prediction, label)))))


def mae(prediction: np.ndarray, label: np.ndarray) -> float:
    """Mean absolute error mean(|prediction - label|) over same-shaped arrays."""
    return float(np.mean(np.abs(_check_pair(prediction, label))))
