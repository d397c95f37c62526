"""Tests of evaluation.segments: segment boundaries and per-segment breakdowns."""

import numpy as np
import pytest

from evaluation import segments
from evaluation.metrics import accuracy_metrics


def test_user_segment_boundaries():
    labels = segments.user_segments(np.array([0, 1, 10, 11, 3]), light_max=10)
    np.testing.assert_array_equal(labels, ["new", "light", "light", "heavy", "light"])
    np.testing.assert_array_equal(segments.user_segments(np.array([2, 3]), 2), ["light", "heavy"])


@pytest.mark.parametrize(
    ("counts", "light_max"), [(np.array([1, -1]), 10), (np.array([1]), 0), (np.ones((2, 2)), 1)]
)
def test_user_segments_reject_bad_input(counts, light_max):
    with pytest.raises(ValueError):
        segments.user_segments(counts, light_max)


def test_item_segments_by_cumulative_share():
    # 100 interactions. Shares held by strictly more popular items: item 0: 0, item 1: .5,
    # item 2: .8, items 3 and 4 (tied): .9, item 5: 1.
    popularity = np.array([50, 30, 10, 5, 5, 0])
    labels = segments.item_segments(popularity, head_share=0.2, tail_share=0.2)
    np.testing.assert_array_equal(labels, ["head", "torso", "tail", "tail", "tail", "tail"])
    labels = segments.item_segments(popularity, head_share=0.6, tail_share=0.05)
    np.testing.assert_array_equal(labels, ["head", "head", "torso", "torso", "torso", "tail"])


def test_item_segment_boundaries_and_ties():
    # Item 1 (80) first, item 0 starts at share .8: not head (.8 < .8 fails), tail (>= .8).
    labels = segments.item_segments(np.array([20, 80]), head_share=0.8, tail_share=0.2)
    np.testing.assert_array_equal(labels, ["tail", "head"])
    # Tied items share one label even when the boundary falls between them.
    labels = segments.item_segments(np.array([10, 10, 1]), head_share=0.3, tail_share=0.0)
    np.testing.assert_array_equal(labels, ["head", "head", "torso"])
    np.testing.assert_array_equal(segments.item_segments(np.zeros(3, int)), ["tail"] * 3)


@pytest.mark.parametrize(("head", "tail"), [(0.7, 0.5), (-0.1, 0.2), (0.2, -0.1)])
def test_item_segments_reject_bad_shares(head, tail):
    with pytest.raises(ValueError, match="sum to <= 1"):
        segments.item_segments(np.array([3, 1]), head, tail)


def test_breakdown_by_user_segment():
    top = np.array([[0, 1], [2, 3], [4, 5]])
    relevant = [{0}, {3}, {9}]
    labels = np.array(["light", "heavy", "light"])
    result = segments.breakdown(lambda t, r: accuracy_metrics(t, r, [1, 2]), top, relevant, labels)
    assert list(result) == ["light", "heavy"]  # standard order, absent "new" left out
    assert result["light"]["recall@1"] == pytest.approx(0.5)  # users 0 (hit) and 2 (miss)
    assert result["light"]["users_evaluated"] == 2.0
    assert result["heavy"]["recall@1"] == 0.0 and result["heavy"]["recall@2"] == 1.0


def test_breakdown_rejects_misaligned_segments():
    with pytest.raises(ValueError, match="one entry per user"):
        segments.breakdown(lambda t, r: {}, np.array([[0]]), [{0}], np.array(["new", "new"]))


def test_item_segment_breakdown_by_hand():
    labels = np.array(["head", "head", "torso", "tail", "tail", "tail"])
    top = np.array([[0, 3, -1], [2, 1, 5]])
    relevant = [{0, 4}, {5, 1}]
    result = segments.item_segment_breakdown(top, relevant, labels, [1, 3])
    assert list(result) == ["head", "torso", "tail"]
    # Head: user 0 relevant {0}, hit at rank 1; user 1 relevant {1}, hit at rank 2.
    assert result["head"]["recall@1"] == pytest.approx((1 + 0) / 2)
    assert result["head"]["recall@3"] == pytest.approx(1.0)
    # Tail: user 0 relevant {4}, never recommended; user 1 relevant {5}, hit at rank 3.
    assert result["tail"]["recall@3"] == pytest.approx((0 + 1) / 2)
    # Torso: no relevant item -> no users, recall 0.
    assert result["torso"]["users"] == 0.0 and result["torso"]["recall@3"] == 0.0
    # Shares of the 5 recommended items at k=3 (padding excluded): head 0, 1; torso 2; tail 3, 5.
    assert result["head"]["share@3"] == pytest.approx(2 / 5)
    assert result["torso"]["share@3"] == pytest.approx(1 / 5)
    assert result["tail"]["share@3"] == pytest.approx(2 / 5)
    assert result["head"]["share@1"] == pytest.approx(1 / 2)


def test_item_segment_breakdown_matches_reference():
    rng = np.random.default_rng(0)
    labels = rng.choice(["head", "torso", "tail"], 30)
    top = np.stack([rng.permutation(30)[:8] for _ in range(60)])
    top[rng.random(top.shape) < 0.1] = -1
    relevant = [set(rng.choice(30, rng.integers(0, 6), replace=False).tolist()) for _ in top]
    result = segments.item_segment_breakdown(top, relevant, labels, [4, 10])
    for name in ("head", "torso", "tail"):
        for k in (4, 10):
            recalls = []
            for row, rel in zip(top.tolist(), relevant, strict=True):
                in_segment = {i for i in rel if labels[i] == name}
                if in_segment:
                    recalls.append(len(in_segment & set(row[:k])) / len(in_segment))
            recommended = [i for row in top.tolist() for i in row[:k] if i >= 0]
            share = sum(labels[i] == name for i in recommended) / len(recommended)
            assert result[name][f"recall@{k}"] == pytest.approx(np.mean(recalls))
            assert result[name][f"share@{k}"] == pytest.approx(share)
            assert result[name]["users"] == len(recalls)


def test_item_segment_breakdown_rejects_items_outside_the_labels():
    with pytest.raises(ValueError, match="segments cover 2 items"):
        segments.item_segment_breakdown(np.array([[0, 2]]), [{0}], np.array(["head", "tail"]), [2])
