"""Top-k with exclusions and recall@k against hand-computed values."""

import numpy as np
import pytest

from trainer.retrieval_metrics import recall_at_k, top_k_excluding


def test_top_k_orders_by_score_and_breaks_ties_by_index():
    scores = np.array([[0.1, 0.9, 0.9, 0.5], [1.0, 0.0, 2.0, 2.0]])
    top = top_k_excluding(scores, [np.array([]), np.array([])], 3)
    assert top.tolist() == [[1, 2, 3], [2, 3, 0]]


def test_excluded_items_never_returned_and_rows_padded():
    scores = np.array([[5.0, 4.0, 3.0], [1.0, 2.0, 3.0]])
    top = top_k_excluding(scores, [np.array([0]), np.array([0, 1, 2])], 3)
    assert top.tolist() == [[1, 2, -1], [-1, -1, -1]]


def test_top_k_rejects_bad_k_and_mismatched_exclusions():
    with pytest.raises(ValueError, match="k=4"):
        top_k_excluding(np.zeros((1, 3)), [np.array([])], 4)
    with pytest.raises(ValueError, match="2 rows for 1 queries"):
        top_k_excluding(np.zeros((1, 3)), [np.array([]), np.array([])], 1)


def test_recall_hand_computed():
    top = np.array([[3, 1, 2, -1], [0, 4, 5, 6], [7, 8, 9, 10]])
    relevant = [{1, 9}, {6}, set()]
    recall = recall_at_k(top, relevant, (1, 2, 4))
    # Query 0: @1 0/2, @2 1/2, @4 1/2. Query 1: @1 0, @2 0, @4 1. Query 2 skipped (no relevant).
    assert recall == {1: 0.0, 2: pytest.approx(0.25), 4: pytest.approx(0.75)}


def test_recall_with_fewer_relevant_than_k_and_no_queries():
    assert recall_at_k(np.array([[2, 0, 1]]), [{0}], (3,)) == {3: 1.0}
    assert recall_at_k(np.zeros((1, 2), int), [set()], (2,)) == {2: 0.0}
    with pytest.raises(ValueError, match="needs 5"):
        recall_at_k(np.zeros((1, 2), int), [{1}], (5,))


def test_ndcg_by_hand():
    from trainer.retrieval_metrics import ndcg_at_k

    top = np.array([[5, 1, 7, 2], [0, 3, 4, 6]])
    relevant = [{1, 2}, {9}]
    got = ndcg_at_k(top, relevant, (2, 4))
    # Row 0: hits at ranks 2 and 4; ideal puts 2 hits at ranks 1, 2. Row 1: no hit.
    ideal = 1 + 1 / np.log2(3)
    row0_k2 = (1 / np.log2(3)) / ideal
    row0_k4 = (1 / np.log2(3) + 1 / np.log2(5)) / ideal
    assert got[2] == pytest.approx(row0_k2 / 2)
    assert got[4] == pytest.approx(row0_k4 / 2)
    # A single relevant item at rank 1 is a perfect ranking.
    assert ndcg_at_k(np.array([[3, 1]]), [{3}], (1, 2)) == {1: 1.0, 2: 1.0}


def test_mrr_by_hand():
    from trainer.retrieval_metrics import mean_reciprocal_rank

    top = np.array([[5, 1, 7], [0, 3, 4], [8, 8, 8]])
    # Ranks 2, 1 and none; the query with no relevant item is skipped.
    assert mean_reciprocal_rank(top, [{1, 7}, {0}, {2}]) == pytest.approx((0.5 + 1 + 0) / 3)
    assert mean_reciprocal_rank(top[:1], [set()]) == 0.0
