"""Tests of evaluation.beyond against hand-computed values and brute-force references."""

import itertools
import math

import numpy as np
import pytest

from evaluation import beyond

# Catalog of 5 items; 20 training interactions.
POPULARITY = np.array([10, 5, 3, 0, 2])
# At k=2 the lists are [0, 1] and [0, 3]; at k=3 user 0's list has only two items.
TOP = np.array([[0, 1, -1], [0, 3, 2]])
CATEGORIES = [["a"], ["a", "b"], [], ["c"], []]
EMBEDDINGS = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
RELEVANT = [{1, 4}, {3, 2}]
POPULARITY_LIST = np.array([0, 1, 2, 4, 3])


def _gini_reference(values):
    """Mean absolute difference over all ordered pairs / (2 * mean)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    differences = sum(abs(a - b) for a in values for b in values)
    return differences / (2 * n * n * values.mean())


def test_exposure_metrics_by_hand():
    result = beyond.beyond_accuracy_metrics(TOP, POPULARITY, [2])
    # Exposure at k=2: item 0 twice, items 1 and 3 once -> shares 1/2, 1/4, 1/4.
    assert result["coverage@2"] == pytest.approx(3 / 5)
    assert result["entropy@2"] == pytest.approx(1.5)
    assert result["entropy_normalized@2"] == pytest.approx(1.5 / math.log2(5))
    # Sorted exposure [0, 0, 1, 1, 2]: sum (2j - 6) x_j / (5 * 4) = (2 + 8) / 20.
    assert result["gini@2"] == pytest.approx(0.5)
    assert result["gini@2"] == pytest.approx(_gini_reference([2, 1, 0, 1, 0]))


def test_gini_extremes():
    assert beyond.gini(np.array([3, 3, 3])) == pytest.approx(0.0)
    assert beyond.gini(np.array([0, 0, 0, 7])) == pytest.approx(3 / 4)
    assert beyond.gini(np.zeros(4, dtype=int)) == 0.0


def test_novelty_and_popularity_by_hand():
    result = beyond.beyond_accuracy_metrics(TOP, POPULARITY, [2, 3])
    p = (POPULARITY + 1) / (20 + 5)  # add-one smoothed: [11, 6, 4, 1, 3] / 25
    user0 = (-math.log2(p[0]) - math.log2(p[1])) / 2
    user1 = (-math.log2(p[0]) - math.log2(p[3])) / 2
    assert result["novelty@2"] == pytest.approx((user0 + user1) / 2)
    user1_k3 = (-math.log2(p[0]) - math.log2(p[3]) - math.log2(p[2])) / 3
    assert result["novelty@3"] == pytest.approx((user0 + user1_k3) / 2)
    assert result["mean_popularity@2"] == pytest.approx(((10 + 5) / 2 + (10 + 0) / 2) / 2)
    # Catalog sorted [0, 2, 3, 5, 10]: midrank percentiles 90 (item 0), 70 (1), 10 (3), 50 (2).
    assert result["popularity_percentile@2"] == pytest.approx(((90 + 70) / 2 + (90 + 10) / 2) / 2)
    assert result["popularity_percentile@3"] == pytest.approx((80 + (90 + 10 + 50) / 3) / 2)


def test_ild_categories_by_hand():
    result = beyond.beyond_accuracy_metrics(TOP, POPULARITY, [2, 3], item_categories=CATEGORIES)
    # k=2: {a} vs {a, b} -> 1 - 1/2; {a} vs {c} -> 1.
    assert result["ild_categories@2"] == pytest.approx((0.5 + 1.0) / 2)
    # k=3: user 1 adds item 2 (no category): every pair is at distance 1.
    assert result["ild_categories@3"] == pytest.approx((0.5 + 1.0) / 2)
    # Two uncategorised items are at distance 0.
    assert beyond.ild_categories(np.array([[2, 4]]), CATEGORIES) == pytest.approx(0.0)


def test_ild_embedding_by_hand():
    result = beyond.beyond_accuracy_metrics(TOP, POPULARITY, [2], item_embeddings=EMBEDDINGS)
    # cos([1, 0], [1, 1]) = 1/sqrt(2); cos([1, 0], [0, 1]) = 0.
    assert result["ild_embedding@2"] == pytest.approx(((1 - 1 / math.sqrt(2)) + 1.0) / 2)
    # Opposite vectors are at distance 2; the zero vector has cosine 0 with everything.
    assert beyond.ild_embedding(np.array([[0, 4]]), EMBEDDINGS) == pytest.approx(2.0)
    assert beyond.ild_embedding(np.array([[0, 2, 4]]), EMBEDDINGS) == pytest.approx(4 / 3)


def test_ild_skips_lists_with_fewer_than_two_items():
    top = np.array([[0, -1], [-1, -1], [0, 3]])
    assert beyond.ild_embedding(top, EMBEDDINGS) == pytest.approx(1.0)
    assert beyond.ild_categories(top, CATEGORIES) == pytest.approx(1.0)
    assert beyond.ild_embedding(top[:2], EMBEDDINGS) == 0.0


def test_ild_matches_pairwise_reference():
    rng = np.random.default_rng(0)
    num_items = 30
    embeddings = rng.normal(size=(num_items, 4))
    categories = [rng.choice(list("abcdef"), rng.integers(0, 4), replace=False).tolist()
                  for _ in range(num_items)]  # fmt: skip
    top = np.stack([rng.permutation(num_items)[:6] for _ in range(25)])
    top[rng.random(top.shape) < 0.2] = -1
    cosine, jaccard = [], []
    for row in top.tolist():
        items = [i for i in row if i >= 0]
        pairs = list(itertools.combinations(items, 2))
        if not pairs:
            continue
        a, b = embeddings[[p[0] for p in pairs]], embeddings[[p[1] for p in pairs]]
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        cosine.append(np.mean(1 - cos))
        sets = [(set(categories[x]), set(categories[y])) for x, y in pairs]
        jaccard.append(np.mean([1 - len(x & y) / len(x | y) if x | y else 0.0 for x, y in sets]))
    assert beyond.ild_embedding(top, embeddings) == pytest.approx(np.mean(cosine))
    assert beyond.ild_categories(top, categories) == pytest.approx(np.mean(jaccard))


@pytest.mark.parametrize("baseline", [POPULARITY_LIST, np.stack([POPULARITY_LIST] * 2)])
def test_serendipity_by_hand(baseline):
    result = beyond.beyond_accuracy_metrics(
        TOP, POPULARITY, [2, 3], relevant=RELEVANT, baseline_top=baseline
    )
    # k=2: user 0 hits item 1, in the baseline's top-2 {0, 1}; user 1 hits item 3, not in it.
    assert result["serendipity@2"] == pytest.approx((0 + 1 / 2) / 2)
    # k=3: user 1 hits 3 and 2, but 2 is in the baseline's top-3 {0, 1, 2}.
    assert result["serendipity@3"] == pytest.approx((0 + 1 / 3) / 2)


def test_serendipity_per_user_baseline_and_skipped_users():
    top = np.array([[5, 6], [5, 6], [5, 6]])
    baseline = np.array([[5, 0], [1, 2], [5, 6]])
    relevant = [{5, 6}, {5}, set()]
    # User 0: 6 is unexpected -> 1/2; user 1: 5 unexpected -> 1/2; user 2 skipped.
    assert beyond.serendipity(top, relevant, baseline, 2) == pytest.approx(0.5)
    # Baseline with padding and fewer columns than k.
    assert beyond.serendipity(top, relevant, np.array([[5], [-1], [0]]), 2) == pytest.approx(
        (1 / 2 + 1 / 2) / 2
    )


def test_absent_inputs_skip_their_metrics_and_k_beyond_the_list():
    result = beyond.beyond_accuracy_metrics(TOP, POPULARITY, [10], relevant=RELEVANT)
    assert sorted(result) == sorted(
        f"{name}@10"
        for name in ("coverage", "entropy", "entropy_normalized", "gini", "novelty",
                     "mean_popularity", "popularity_percentile")
    )  # fmt: skip
    assert result["coverage@10"] == pytest.approx(4 / 5)


def test_all_padding_gives_zeros():
    result = beyond.beyond_accuracy_metrics(
        np.full((2, 3), -1), POPULARITY, [3], item_embeddings=EMBEDDINGS
    )
    assert all(value == 0.0 for value in result.values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top": np.array([[0, 7]])}, "item 7 but the catalog has 5"),
        ({"item_categories": [["a"]]}, "item_categories has 1 items"),
        ({"item_embeddings": np.zeros((2, 3))}, "must be \\[5, d\\]"),
        ({"popularity": np.array([])}, "popularity is empty"),
        ({"item_categories": ["a|b", [], [], [], []]}, "split '\\|'-joined strings"),
    ],
)
def test_rejects_bad_inputs(kwargs, message):
    arguments = {"top": TOP, "popularity": POPULARITY, "ks": [2]} | kwargs
    with pytest.raises(ValueError, match=message):
        beyond.beyond_accuracy_metrics(**arguments)
