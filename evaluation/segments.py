"""User and item segments, and metrics broken down by them.

User segments, by the number c of training events of an evaluated user (`light_max` = L):
  "new"   c = 0 (cold start: nothing to personalise from)
  "light" 1 <= c <= L
  "heavy" c > L
L defaults to 10, a few sessions' worth of history on most catalogs.

Item segments, by cumulative share of training interactions (the popularity-bias convention of
Abdollahpouri et al., "Managing Popularity Bias in Recommender Systems with Personalized
Re-ranking", 2019). Sort items by popularity, most popular first, and let S_i be the share of
all interactions held by items strictly more popular than item i (items with equal counts share
S_i, so ties never straddle a boundary):
  "head"  S_i < head_share        (the few items that make up the first head_share of events)
  "tail"  S_i >= 1 - tail_share   (the many items that make up the last tail_share, and every
                                   item with no interaction)
  "torso" otherwise
Defaults 0.2 / 0.2. The most popular item is always head (when head_share > 0); with no
interaction at all every item is tail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from evaluation.metrics import check_ks, check_top, hit_matrix, relevant_pairs, row_chunks

#: User segment labels, in report order.
USER_SEGMENTS = ("new", "light", "heavy")
#: Item segment labels, in report order.
ITEM_SEGMENTS = ("head", "torso", "tail")


def _check_counts(counts: np.ndarray, name: str) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.ndim != 1 or (counts.size and counts.min() < 0):
        raise ValueError(f"{name} must be a 1-D array of non-negative counts, got {counts!r}")
    return counts


def user_segments(train_counts: np.ndarray, light_max: int = 10) -> np.ndarray:
    """Labels users "new" (0 training events), "light" (1..light_max) or "heavy" (more).

    Args:
      train_counts: `[U]` training events per evaluated user.
      light_max: Most events a light user has; must be >= 1.

    Returns:
      `[U]` str array of labels from `USER_SEGMENTS`.
    """
    counts = _check_counts(train_counts, "train_counts")
    if light_max < 1:
        raise ValueError(f"light_max={light_max} must be >= 1 (light users have 1..light_max)")
    return np.where(counts == 0, "new", np.where(counts <= light_max, "light", "heavy"))


def item_segments(
    popularity: np.ndarray, head_share: float = 0.2, tail_share: float = 0.2
) -> np.ndarray:
    """Labels catalog items "head", "torso" or "tail" by cumulative interaction share.

    Args:
      popularity: `[N]` training interactions per item.
      head_share: Share of interactions the head makes up, in [0, 1].
      tail_share: Share of interactions the tail makes up, in [0, 1 - head_share].

    Returns:
      `[N]` str array of labels from `ITEM_SEGMENTS`.
    """
    counts = _check_counts(popularity, "popularity").astype(np.float64)
    if not (0 <= head_share and 0 <= tail_share and head_share + tail_share <= 1):
        raise ValueError(
            f"head_share={head_share} and tail_share={tail_share} must be >= 0 and sum to <= 1"
        )
    total = counts.sum()
    if total == 0:
        return np.full(len(counts), "tail")
    ordered = np.sort(counts)
    # Interactions of items strictly more popular: total minus those with count <= c_i.
    at_most = np.r_[0.0, np.cumsum(ordered)][np.searchsorted(ordered, counts, side="right")]
    before = (total - at_most) / total
    return np.where(
        before < head_share, "head", np.where(before >= 1 - tail_share, "tail", "torso")
    )


def _ordered_labels(labels: np.ndarray, known: Sequence[str]) -> list[str]:
    present = set(np.unique(labels).tolist())
    return [label for label in known if label in present] + sorted(present - set(known))


def breakdown(
    metric_fn: Callable[[np.ndarray, Sequence[set[int]]], dict[str, float]],
    top: np.ndarray,
    relevant: Sequence[set[int]],
    segments_of_users: np.ndarray,
) -> dict[str, dict[str, float]]:
    """Metrics of each user segment.

    Args:
      metric_fn: `(top [u, K], relevant) -> {name: value}` over a subset of users, e.g.
        `lambda t, r: accuracy_metrics(t, r, ks)`.
      top: `[U, K]` corpus indices, -1 padding.
      relevant: Per user, the set of relevant corpus indices.
      segments_of_users: `[U]` label per user (e.g. from `user_segments`).

    Returns:
      `{segment: metric_fn(its rows of top, its relevant sets)}`, standard labels first.
    """
    labels = np.asarray(segments_of_users)
    if labels.shape != (len(top),) or len(relevant) != len(top):
        raise ValueError(
            f"top has {len(top)} rows; relevant ({len(relevant)}) and segments_of_users "
            f"{labels.shape} need one entry per user"
        )
    result = {}
    for label in _ordered_labels(labels, USER_SEGMENTS):
        rows = np.flatnonzero(labels == label)
        result[label] = metric_fn(top[rows], [relevant[u] for u in rows])
    return result


def item_segment_breakdown(
    top: np.ndarray,
    relevant: Sequence[set[int]],
    segments_of_items: np.ndarray,
    ks: Sequence[int],
) -> dict[str, dict[str, float]]:
    """Recall and exposure share of each item segment.

    Per segment s and cut-off k:
      recall@k = mean over users with a relevant item in s of |hits@k in s| / |relevant in s|
      share@k  = recommended items (top[:, :k], padding excluded) in s / all recommended items
    plus "users" (how many users have a relevant item in s).

    Args:
      top: `[U, K]` corpus indices, -1 padding; K may be below max(ks).
      relevant: Per user, the set of relevant corpus indices.
      segments_of_items: `[N]` label per catalog item (e.g. from `item_segments`).
      ks: Cut-offs.

    Returns:
      `{segment: {"recall@k": ..., "share@k": ..., "users": ...}}`, standard labels first;
      recall is 0.0 for a segment no user has a relevant item in, share 0.0 with no item.
    """
    ks = check_ks(ks)
    top = check_top(top, max(ks))[:, : max(ks)]
    labels = np.asarray(segments_of_items)
    if top.size and top.max() >= len(labels):
        raise ValueError(f"top holds item {top.max()} but segments cover {len(labels)} items")
    if len(relevant) != len(top):
        raise ValueError(f"relevant has {len(relevant)} users but top has {len(top)} rows")
    names = _ordered_labels(labels, ITEM_SEGMENTS)
    distinct, inverse = np.unique(labels, return_inverse=True)
    code_of = np.array([names.index(name) for name in distinct.tolist()], dtype=np.int64)[inverse]
    users, items = relevant_pairs(relevant)
    if items.size and items.max() >= len(labels):
        raise ValueError(f"relevant holds item {items.max()} but segments cover {len(labels)}")
    # [U, segments] relevant items per user in each segment.
    per_segment = np.zeros((len(top), len(names)), dtype=np.int64)
    np.add.at(per_segment, (users, code_of[items]), 1)
    recall_sums = np.zeros((len(names), len(ks)))
    share_counts = np.zeros((len(names), len(ks)))
    for rows in row_chunks(len(top), top.shape[1]):
        chunk = top[rows]
        codes = np.where(chunk >= 0, code_of[np.maximum(chunk, 0)], -1)
        hits = hit_matrix(chunk, relevant[rows])
        for s in range(len(names)):
            cumulative = np.cumsum(hits & (codes == s), axis=1)
            in_segment = np.cumsum(codes == s, axis=1)
            sizes = per_segment[rows, s]
            for j, k in enumerate(ks):
                recall_sums[s, j] += (cumulative[sizes > 0, k - 1] / sizes[sizes > 0]).sum()
                share_counts[s, j] += in_segment[:, k - 1].sum()
    users_with = (per_segment > 0).sum(axis=0)
    recommended = share_counts.sum(axis=0)
    result = {}
    for s, name in enumerate(names):
        values = {}
        for j, k in enumerate(ks):
            values[f"recall@{k}"] = recall_sums[s, j] / users_with[s] if users_with[s] else 0.0
            values[f"share@{k}"] = share_counts[s, j] / recommended[j] if recommended[j] else 0.0
        result[name] = {**{n: float(v) for n, v in values.items()}, "users": float(users_with[s])}
    return result
