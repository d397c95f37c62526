"""Tests of evaluation.metrics against hand-computed values and slow per-user references."""

import math

import numpy as np
import pytest

from evaluation import metrics
from trainer import retrieval_metrics

LOG3 = math.log2(3)


def _reference(top, relevant, ks):
    """Per-user loops straight from the definitions, skipping users with no relevant item."""
    sums, users = {}, 0
    for row, rel in zip(top, relevant, strict=True):
        if not rel:
            continue
        users += 1
        row = list(row) + [-1] * (max(ks) - len(row))
        hit = [1 if item in rel else 0 for item in row]
        values = {}
        for k in ks:
            h = sum(hit[:k])
            r, p = h / len(rel), h / k
            dcg = sum(hit[i] / math.log2(i + 2) for i in range(k))
            idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rel), k)))
            ap = sum(sum(hit[: i + 1]) / (i + 1) * hit[i] for i in range(k)) / min(len(rel), k)
            values |= {f"recall@{k}": r, f"precision@{k}": p, f"ndcg@{k}": dcg / idcg}
            values |= {f"f1@{k}": 2 * p * r / (p + r) if h else 0.0, f"map@{k}": ap}
            values[f"hit_rate@{k}"] = float(h > 0)
        values["mrr"] = 1 / (hit.index(1) + 1) if 1 in hit else 0.0
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + value
    return {name: value / users for name, value in sums.items()}


def test_hand_computed_single_user_with_k_beyond_the_list():
    # Hits [0, 1, 0, 0] (item 2 at rank 2) of relevant {2, 5}; k=5 exceeds the width 4.
    result = metrics.accuracy_metrics(np.array([[1, 2, 3, -1]]), [{2, 5}], [1, 2, 4, 5])
    expected = {
        "recall@1": 0.0, "recall@2": 0.5, "recall@4": 0.5, "recall@5": 0.5,
        "precision@1": 0.0, "precision@2": 0.5, "precision@4": 0.25, "precision@5": 0.2,
        "f1@2": 0.5, "f1@4": 2 * 0.5 * 0.25 / 0.75, "f1@5": 2 * 0.5 * 0.2 / 0.7,
        "ndcg@1": 0.0, "ndcg@2": (1 / LOG3) / (1 + 1 / LOG3), "ndcg@5": (1 / LOG3) / (1 + 1 / LOG3),
        "map@1": 0.0, "map@2": (1 / 2) / 2, "map@5": (1 / 2) / 2,
        "hit_rate@1": 0.0, "hit_rate@2": 1.0, "mrr": 0.5,
        "users_evaluated": 1.0, "users_skipped": 0.0,
    }  # fmt: skip
    for name, value in expected.items():
        assert result[name] == pytest.approx(value), name


def test_fewer_relevant_items_than_k_reaches_one():
    # One relevant item, ranked first: ideal DCG and AP divide by min(|rel|, k) = 1.
    result = metrics.accuracy_metrics(np.array([[0, 9, 8]]), [{0}], [3])
    assert result["ndcg@3"] == pytest.approx(1.0)
    assert result["map@3"] == pytest.approx(1.0)
    assert result["recall@3"] == pytest.approx(1.0)
    assert result["precision@3"] == pytest.approx(1 / 3)
    assert result["f1@3"] == pytest.approx(2 * (1 / 3) / (4 / 3))


def test_users_without_relevant_items_are_skipped_and_counted():
    top = np.array([[0, 1], [0, 1], [-1, -1]])
    result = metrics.accuracy_metrics(top, [{1}, set(), {0}], [2])
    # User 0: hit at rank 2; user 1 skipped; user 2 has only padding.
    assert result["users_evaluated"] == 2.0 and result["users_skipped"] == 1.0
    assert result["recall@2"] == pytest.approx(0.5)
    assert result["mrr"] == pytest.approx(0.25)
    assert result["ndcg@2"] == pytest.approx((1 / LOG3) / 2)


def test_all_padding_and_no_users():
    padded = metrics.accuracy_metrics(np.full((2, 3), -1), [{0}, {1, 2}], [1, 3])
    assert all(padded[name] == 0.0 for name in metrics.metric_names([1, 3]))
    empty = metrics.accuracy_metrics(np.zeros((0, 3), dtype=np.int64), [], [2])
    assert empty == dict.fromkeys(metrics.metric_names([2]), 0.0) | {
        "users_evaluated": 0.0,
        "users_skipped": 0.0,
    }
    skipped = metrics.accuracy_metrics(np.array([[0, 1]]), [set()], [2])
    assert skipped["recall@2"] == 0.0 and skipped["users_skipped"] == 1.0


def test_matches_per_user_reference_on_random_lists():
    rng = np.random.default_rng(0)
    num_users, num_items, width = 300, 40, 12
    top = np.stack([rng.permutation(num_items)[:width] for _ in range(num_users)])
    top[rng.random(top.shape) < 0.1] = -1  # padding anywhere, including mid-list
    relevant = [set(rng.choice(num_items, rng.integers(0, 6), replace=False).tolist()) for _ in top]
    ks = [1, 3, 10, 15]
    result = metrics.accuracy_metrics(top, relevant, ks)
    expected = _reference(top.tolist(), relevant, ks)
    for name, value in expected.items():
        assert result[name] == pytest.approx(value), name


def test_agrees_with_trainer_retrieval_metrics():
    rng = np.random.default_rng(1)
    top = np.stack([rng.permutation(30)[:10] for _ in range(50)])
    relevant = [set(rng.choice(30, 3, replace=False).tolist()) for _ in top]
    result = metrics.accuracy_metrics(top, relevant, [5, 10])
    recall = retrieval_metrics.recall_at_k(top, relevant, [5, 10])
    ndcg = retrieval_metrics.ndcg_at_k(top, relevant, [5, 10])
    assert result["recall@5"] == pytest.approx(recall[5])
    assert result["ndcg@10"] == pytest.approx(ndcg[10])
    assert result["mrr"] == pytest.approx(retrieval_metrics.mean_reciprocal_rank(top, relevant))


def test_hit_matrix_marks_relevant_items_only():
    hits = metrics.hit_matrix(np.array([[3, -1, 1], [0, 2, -1]]), [{1, 3}, {2}])
    np.testing.assert_array_equal(hits, [[True, False, True], [False, True, False]])


@pytest.mark.parametrize(
    ("top", "relevant", "ks", "message"),
    [
        (np.array([[1, 1]]), [{1}], [2], "repeats an item"),
        (np.array([[1, -2]]), [{1}], [2], "-1 is padding"),
        (np.array([[1.0, 2.0]]), [{1}], [2], "integer array"),
        (np.array([[1, 2]]), [{1}, {2}], [2], "2 users but top has 1"),
        (np.array([[1, 2]]), [{1}], [0], "positive integers"),
        (np.array([[1, 2]]), [{-3}], [1], "corpus index -3"),
    ],
)
def test_rejects_bad_inputs(top, relevant, ks, message):
    with pytest.raises(ValueError, match=message):
        metrics.accuracy_metrics(top, relevant, ks)


def test_auc_counts_ties_as_half_and_respects_exclusions():
    scores = np.array([[0.9, 0.5, 0.5, 0.1]])
    # Relevant item 1 (0.5) vs 0.9 (loss), 0.5 (tie: 1/2), 0.1 (win): 1.5 / 3.
    assert metrics.auc(scores, [{1}]) == pytest.approx(0.5)
    # Excluding item 0 leaves the tie and the win: 1.5 / 2.
    assert metrics.auc(scores, [{1}], [np.array([0])]) == pytest.approx(0.75)
    # A relevant item that is excluded is dropped, too.
    assert metrics.auc(scores, [{0, 1}], [np.array([0])]) == pytest.approx(0.75)


def test_auc_skips_users_without_positives_or_negatives():
    scores = np.array([[1.0, 0.0], [0.3, 0.2], [0.0, 1.0]])
    assert metrics.auc(scores, [{0}, set(), {0, 1}]) == pytest.approx(1.0)
    assert math.isnan(metrics.auc(scores[1:2], [set()]))


def test_auc_matches_pairwise_reference_with_many_ties():
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 4, size=(40, 25)).astype(float)
    relevant = [set(rng.choice(25, rng.integers(0, 5), replace=False).tolist()) for _ in scores]
    exclude = [rng.choice(25, 3, replace=False) for _ in scores]
    values = []
    for row, rel, out in zip(scores, relevant, exclude, strict=True):
        positives = [row[i] for i in rel if i not in out]
        negatives = [row[i] for i in range(25) if i not in rel and i not in out]
        if positives and negatives:
            pairs = [(p > n) + 0.5 * (p == n) for p in positives for n in negatives]
            values.append(sum(pairs) / len(pairs))
    assert metrics.auc(scores, relevant, exclude) == pytest.approx(np.mean(values))


def test_auc_rejects_nan_and_bad_shapes():
    with pytest.raises(ValueError, match="NaN"):
        metrics.auc(np.array([[np.nan, 1.0]]), [{0}])
    with pytest.raises(ValueError, match="num_users, N"):
        metrics.auc(np.array([[0.0, 1.0]]), [{0}, {1}])


def test_rmse_and_mae():
    prediction, label = np.array([1.0, 2.0, 3.0]), np.array([1.0, 4.0, 0.0])
    assert metrics.rmse(prediction, label) == pytest.approx(math.sqrt((0 + 4 + 9) / 3))
    assert metrics.mae(prediction, label) == pytest.approx((0 + 2 + 3) / 3)
    with pytest.raises(ValueError, match="equal, non-empty"):
        metrics.rmse(prediction, label[:2])
