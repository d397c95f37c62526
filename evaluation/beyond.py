"""Beyond-accuracy metrics of top-K recommendation lists: coverage, concentration, novelty,
diversity, serendipity and popularity.

Inputs, over a catalog of N items and U users (see `evaluation.metrics` for list conventions):
  top: int `[U, K]` corpus indices, best first, -1 padding; metrics "@k" use `top[:, :k]`.
  popularity: `[N]` training interactions per item.
  item_categories: per item, a sequence of category names (may be empty).
  item_embeddings: `[N, d]` float item vectors.
  baseline_top: the popularity baseline's lists, `[U, K']` or one shared `[K']` list.

Definitions, with exposure e_i = number of lists recommending item i (at cut-off k), E = sum e_i:
  coverage         = |{i: e_i > 0}| / N
  entropy          = -sum_i (e_i / E) log2(e_i / E) bits; entropy_normalized = entropy / log2 N
  gini             = sum_{j=1..N} (2j - N - 1) e_(j) / (N E), e_(j) ascending, zeros included:
                     0 when every item is equally exposed, (N - 1) / N when one item gets all
  novelty          = mean of -log2 p_i over a list, p_i = (popularity_i + 1) / (T + N) with T =
                     sum popularity (add-one smoothing, so unseen items are finite and rarest)
  ild_categories   = mean over a list's item pairs of the Jaccard distance 1 - |A∩B| / |A∪B| of
                     their category sets (two empty sets are at distance 0)
  ild_embedding    = mean over a list's item pairs of 1 - cos(v_a, v_b) (a zero vector has
                     cosine 0 with everything)
  serendipity      = |{i in list: i relevant and i not in the baseline's top-k}| / k
  mean_popularity  = mean training count of a list's items
  popularity_percentile = mean over a list's items of 100 * (#{j: pop_j < pop_i} + #{j: pop_j
                     = pop_i} / 2) / N, the item's midrank percentile in the catalog
List-level metrics are averaged over users whose list has an item (two for the ILDs);
serendipity over users with a relevant item, as accuracy metrics are. Exposure metrics of an
empty set of lists are 0.0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evaluation.metrics import check_ks, check_top, hit_matrix, pair_index, row_chunks


def exposure_counts(top: np.ndarray, num_items: int) -> np.ndarray:
    """`[num_items]` int64: in how many rows of `top` each item appears."""
    items = top[top >= 0]
    if items.size and items.max() >= num_items:
        raise ValueError(f"top holds item {items.max()} but the catalog has {num_items} items")
    return np.bincount(items, minlength=num_items)


def coverage(exposure: np.ndarray) -> float:
    """Share of the catalog recommended at least once."""
    return float(np.count_nonzero(exposure) / len(exposure))


def entropy(exposure: np.ndarray) -> tuple[float, float]:
    """Shannon entropy of the exposure distribution in bits, and divided by log2 N."""
    total = exposure.sum()
    if total == 0:
        return 0.0, 0.0
    shares = exposure[exposure > 0] / total
    bits = float(-(shares * np.log2(shares)).sum())
    return bits, bits / np.log2(len(exposure)) if len(exposure) > 1 else 0.0


def gini(exposure: np.ndarray) -> float:
    """Gini coefficient of the exposure counts (zeros included), in [0, (N - 1) / N]."""
    total = exposure.sum()
    if total == 0:
        return 0.0
    n = len(exposure)
    weights = 2 * np.arange(1, n + 1) - n - 1
    return float(weights @ np.sort(exposure) / (n * total))


def _mean_over_lists(values: np.ndarray, valid: np.ndarray) -> float:
    """Mean over rows with a valid entry of the row's mean of `values[valid]`."""
    counts = valid.sum(axis=1)
    sums = np.where(valid, values, 0.0).sum(axis=1)
    present = counts > 0
    return float((sums[present] / counts[present]).mean()) if present.any() else 0.0


def novelty(top: np.ndarray, popularity: np.ndarray) -> float:
    """Mean self-information (bits) of recommended items, averaged over lists."""
    probability = (popularity + 1.0) / (popularity.sum() + len(popularity))
    information = -np.log2(probability)
    return _mean_over_lists(information[np.maximum(top, 0)], top >= 0)


def popularity_of_lists(top: np.ndarray, popularity: np.ndarray) -> tuple[float, float]:
    """Mean training count of recommended items and their mean catalog percentile (0-100)."""
    ordered = np.sort(popularity)
    below = np.searchsorted(ordered, popularity, side="left")
    tied = np.searchsorted(ordered, popularity, side="right") - below
    percentile = 100.0 * (below + tied / 2.0) / len(popularity)
    items, valid = np.maximum(top, 0), top >= 0
    counts = popularity.astype(np.float64)[items]
    return _mean_over_lists(counts, valid), _mean_over_lists(percentile[items], valid)


def _multi_hot(item_categories: Sequence[Sequence[str]]) -> np.ndarray:
    for item, names in enumerate(item_categories):
        if isinstance(names, str | bytes):
            raise ValueError(
                f"item_categories[{item}] is the string {names!r}; give a list of category names "
                "(split '|'-joined strings first)"
            )
    vocabulary = {name: j for j, name in enumerate(sorted(set().union(*map(set, item_categories))))}
    matrix = np.zeros((len(item_categories), max(len(vocabulary), 1)), dtype=np.float32)
    for item, names in enumerate(item_categories):
        matrix[item, [vocabulary[name] for name in names]] = 1.0
    return matrix


def _mean_pairwise(distance_sums: np.ndarray, sizes: np.ndarray) -> tuple[float, int]:
    """Sum over lists with >= 2 items of their mean pairwise distance, and how many there are."""
    keep = sizes >= 2
    pairs = sizes[keep] * (sizes[keep] - 1) / 2.0
    return float((distance_sums[keep] / pairs).sum()), int(keep.sum())


def ild_categories(top: np.ndarray, item_categories: Sequence[Sequence[str]]) -> float:
    """Mean pairwise Jaccard distance of category sets within lists, averaged over lists with at
    least two items. Uses a dense `[N, C]` multi-hot matrix of the C distinct categories."""
    multi_hot = _multi_hot(item_categories)
    total, lists = 0.0, 0
    for rows in row_chunks(len(top), top.shape[1] * max(top.shape[1], multi_hot.shape[1])):
        chunk = top[rows]
        valid = chunk >= 0
        hot = multi_hot[np.maximum(chunk, 0)] * valid[..., None]  # [b, K, C]
        shared = hot @ hot.transpose(0, 2, 1)  # [b, K, K] |A∩B|
        sizes = hot.sum(axis=2)
        union = sizes[:, :, None] + sizes[:, None, :] - shared
        distance = np.where(union > 0, 1.0 - shared / np.maximum(union, 1.0), 0.0)
        pair_mask = np.triu(valid[:, :, None] & valid[:, None, :], k=1)
        chunk_total, chunk_lists = _mean_pairwise(
            np.where(pair_mask, distance, 0.0).sum(axis=(1, 2)), valid.sum(axis=1)
        )
        total, lists = total + chunk_total, lists + chunk_lists
    return total / lists if lists else 0.0


def ild_embedding(top: np.ndarray, item_embeddings: np.ndarray) -> float:
    """Mean pairwise cosine distance within lists, averaged over lists with at least two items.

    With unit vectors u_a, sum_{a<b} cos = (|sum_a u_a|^2 - sum_a |u_a|^2) / 2, so each list
    costs O(K d) rather than O(K^2 d).
    """
    norms = np.linalg.norm(item_embeddings, axis=1, keepdims=True)
    unit = np.divide(item_embeddings, norms, out=np.zeros_like(item_embeddings), where=norms > 0)
    total, lists = 0.0, 0
    for rows in row_chunks(len(top), top.shape[1] * unit.shape[1]):
        chunk = top[rows]
        valid = chunk >= 0
        vectors = unit[np.maximum(chunk, 0)] * valid[..., None]  # [b, K, d]
        summed = vectors.sum(axis=1)
        cosine_sums = ((summed * summed).sum(axis=1) - (vectors * vectors).sum(axis=(1, 2))) / 2
        sizes = valid.sum(axis=1)
        distance_sums = sizes * (sizes - 1) / 2.0 - cosine_sums
        chunk_total, chunk_lists = _mean_pairwise(distance_sums, sizes)
        total, lists = total + chunk_total, lists + chunk_lists
    return total / lists if lists else 0.0


#: Rank of an item missing from a baseline list: beyond every cut-off.
_ABSENT = np.iinfo(np.int64).max


def _baseline_ranks(top: np.ndarray, baseline_top: np.ndarray) -> np.ndarray:
    """`[U, K]` 0-based rank of each `top[u, j]` in the user's baseline list (`_ABSENT` when it
    is not there)."""
    baseline = np.asarray(baseline_top, dtype=np.int64)
    if baseline.ndim not in (1, 2):
        raise ValueError(f"baseline_top must be [U, K'] or [K'], got shape {baseline.shape}")
    width = _ABSENT
    if baseline.ndim == 1:
        rank = np.full(max(top.max(initial=0), baseline.max(initial=0)) + 1, width, np.int64)
        rank[baseline[baseline >= 0]] = np.flatnonzero(baseline >= 0)
        return np.where(top >= 0, rank[np.maximum(top, 0)], width)
    ranks = np.full(top.shape, width, dtype=np.int64)
    for rows in row_chunks(len(top), top.shape[1]):
        chunk = baseline[rows]
        users, positions = np.nonzero(chunk >= 0)
        if users.size:
            found = pair_index(top[rows], users, chunk[users, positions])
            ranks[rows] = np.where(found >= 0, positions[found], width)
    return ranks


def serendipity(
    top: np.ndarray, relevant: Sequence[set[int]], baseline_top: np.ndarray, k: int
) -> float:
    """Mean over users with a relevant item of |relevant hits not in the baseline's top-k| / k,
    over `top[:, :k]`."""
    top = check_top(top, k)[:, :k]
    baseline = np.asarray(baseline_top, dtype=np.int64)
    if len(relevant) != len(top) or (baseline.ndim == 2 and len(baseline) != len(top)):
        raise ValueError(
            f"top has {len(top)} rows; relevant ({len(relevant)}) and a 2-D baseline_top "
            f"{baseline.shape} need one per user"
        )
    keep = np.flatnonzero([bool(items) for items in relevant])
    if not keep.size:
        return 0.0
    top, baseline = top[keep], baseline if baseline.ndim == 1 else baseline[keep]
    hits = hit_matrix(top, [relevant[u] for u in keep])
    unexpected = hits & (_baseline_ranks(top, baseline) >= k)
    return float(unexpected.sum(axis=1).mean() / k)


def beyond_accuracy_metrics(
    top: np.ndarray,
    popularity: np.ndarray,
    ks: Sequence[int],
    *,
    relevant: Sequence[set[int]] | None = None,
    item_categories: Sequence[Sequence[str]] | None = None,
    item_embeddings: np.ndarray | None = None,
    baseline_top: np.ndarray | None = None,
) -> dict[str, float]:
    """Beyond-accuracy metrics at each cut-off (definitions in the module docstring).

    Args:
      top: `[U, K]` int corpus indices, -1 padding; K may be below max(ks).
      popularity: `[N]` training interactions per catalog item.
      ks: Cut-offs.
      relevant: Per user, relevant corpus indices (needed for serendipity).
      item_categories: `N` category-name sequences (for ild_categories).
      item_embeddings: `[N, d]` item vectors (for ild_embedding).
      baseline_top: Popularity baseline lists `[U, K']` or `[K']` (with `relevant`, for
        serendipity).

    Returns:
      For each k: "coverage@k", "entropy@k", "entropy_normalized@k", "gini@k", "novelty@k",
      "mean_popularity@k", "popularity_percentile@k", and when their inputs are given
      "ild_categories@k", "ild_embedding@k", "serendipity@k".

    Raises:
      ValueError: bad `ks`/`top`, an item outside the catalog, or inputs not sized N / U.
    """
    ks = check_ks(ks)
    top = check_top(top, max(ks))
    popularity = np.asarray(popularity)
    num_items = len(popularity)
    if num_items == 0:
        raise ValueError("popularity is empty; it needs one count per catalog item")
    if item_categories is not None and len(item_categories) != num_items:
        raise ValueError(f"item_categories has {len(item_categories)} items, not {num_items}")
    if item_embeddings is not None and np.shape(item_embeddings)[0] != num_items:
        raise ValueError(f"item_embeddings {np.shape(item_embeddings)} must be [{num_items}, d]")
    if item_embeddings is not None:
        item_embeddings = np.asarray(item_embeddings, dtype=np.float64)
    results: dict[str, float] = {}
    for k in ks:
        lists = top[:, :k]
        exposure = exposure_counts(lists, num_items)
        bits, normalized = entropy(exposure)
        mean_count, percentile = popularity_of_lists(lists, popularity)
        results |= {
            f"coverage@{k}": coverage(exposure),
            f"entropy@{k}": bits,
            f"entropy_normalized@{k}": normalized,
            f"gini@{k}": gini(exposure),
            f"novelty@{k}": novelty(lists, popularity),
            f"mean_popularity@{k}": mean_count,
            f"popularity_percentile@{k}": percentile,
        }
        if item_categories is not None:
            results[f"ild_categories@{k}"] = ild_categories(lists, item_categories)
        if item_embeddings is not None:
            results[f"ild_embedding@{k}"] = ild_embedding(lists, item_embeddings)
        if relevant is not None and baseline_top is not None:
            results[f"serendipity@{k}"] = serendipity(lists, relevant, baseline_top, k)
    return results
