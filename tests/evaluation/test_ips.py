"""Tests of evaluation.ips: propensities, clipped weights and IPS-weighted recall / NDCG."""

import dataclasses
import math

import numpy as np
import pytest

from evaluation import ips
from evaluation.metrics import accuracy_metrics

LOG3 = math.log2(3)
POPULARITY = np.array([100, 25, 1, 0])


def test_propensities_normalised_to_max_one():
    # sqrt(count / 100): [1, .5, .1, 0].
    np.testing.assert_allclose(ips.propensities(POPULARITY), [1.0, 0.5, 0.1, 0.0])
    np.testing.assert_allclose(ips.propensities(POPULARITY, power=1.0), [1, 0.25, 0.01, 0])
    np.testing.assert_allclose(ips.propensities(np.zeros(2)), [0.0, 0.0])


def test_weights_are_clipped_as_configured():
    # Floor .2: items 2 (p=.1) and 3 (unseen) both get 1 / .2.
    weights = ips.ips_weights(POPULARITY, ips.IPSConfig(power=0.5, min_propensity=0.2))
    np.testing.assert_allclose(weights, [1.0, 2.0, 5.0, 5.0])
    weights = ips.ips_weights(POPULARITY, ips.IPSConfig(power=0.5, min_propensity=0.05))
    np.testing.assert_allclose(weights, [1.0, 2.0, 10.0, 20.0])
    # Default config: floor .01 caps the unseen item at 100.
    np.testing.assert_allclose(ips.ips_weights(POPULARITY), [1.0, 2.0, 10.0, 100.0])
    # power 0 switches the correction off.
    np.testing.assert_allclose(ips.ips_weights(POPULARITY, ips.IPSConfig(power=0.0)), 1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"power": -1.0}, "power"), ({"min_propensity": 0.0}, "min_propensity"),
     ({"min_propensity": 1.5}, "min_propensity")],
)  # fmt: skip
def test_config_validation_and_immutability(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ips.IPSConfig(**kwargs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ips.IPSConfig().power = 1.0  # type: ignore[misc]


def test_ips_metrics_by_hand():
    weights = np.array([1.0, 2.0, 5.0, 5.0])
    # Relevant {1, 3} (weights 2 and 5); item 1 is hit at rank 2.
    result = ips.ips_metrics(np.array([[0, 1, 2]]), [{1, 3}], weights, [1, 2, 3])
    assert result["ips_recall@1"] == 0.0
    assert result["ips_recall@2"] == pytest.approx(2 / 7)
    assert result["ips_ndcg@1"] == 0.0
    # Ideal: the heavier relevant item (5) first, then 2.
    assert result["ips_ndcg@2"] == pytest.approx((2 / LOG3) / (5 + 2 / LOG3))
    assert result["ips_ndcg@3"] == pytest.approx((2 / LOG3) / (5 + 2 / LOG3))


def test_ips_metrics_skip_users_and_pad_short_lists():
    weights = np.array([1.0, 2.0, 5.0, 5.0])
    top = np.array([[3, -1], [0, 1], [-1, -1]])
    result = ips.ips_metrics(top, [{3}, set(), {2}], weights, [1, 4])
    # User 0 hits its only relevant item at rank 1; user 1 skipped; user 2 all padding.
    assert result["ips_recall@4"] == pytest.approx(0.5)
    assert result["ips_ndcg@1"] == pytest.approx(0.5)
    assert ips.ips_metrics(top, [set()] * 3, weights, [2]) == {
        "ips_recall@2": 0.0,
        "ips_ndcg@2": 0.0,
    }


def test_uniform_weights_reduce_to_plain_metrics():
    rng = np.random.default_rng(0)
    top = np.stack([rng.permutation(40)[:10] for _ in range(80)])
    top[rng.random(top.shape) < 0.1] = -1
    relevant = [set(rng.choice(40, rng.integers(0, 7), replace=False).tolist()) for _ in top]
    weighted = ips.ips_metrics(top, relevant, np.full(40, 3.0), [5, 12])
    plain = accuracy_metrics(top, relevant, [5, 12])
    for k in (5, 12):
        assert weighted[f"ips_recall@{k}"] == pytest.approx(plain[f"recall@{k}"])
        assert weighted[f"ips_ndcg@{k}"] == pytest.approx(plain[f"ndcg@{k}"])


def test_ips_metrics_match_reference():
    rng = np.random.default_rng(1)
    weights = rng.uniform(1, 10, 30)
    top = np.stack([rng.permutation(30)[:8] for _ in range(50)])
    relevant = [set(rng.choice(30, rng.integers(0, 12), replace=False).tolist()) for _ in top]
    ks = [3, 8]
    recall, ndcg = {k: [] for k in ks}, {k: [] for k in ks}
    for row, rel in zip(top.tolist(), relevant, strict=True):
        if not rel:
            continue
        ideal = sorted((weights[i] for i in rel), reverse=True)
        for k in ks:
            gains = [weights[i] if i in rel else 0.0 for i in row[:k]]
            recall[k].append(sum(gains) / sum(weights[i] for i in rel))
            dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
            ndcg[k].append(dcg / sum(w / math.log2(r + 2) for r, w in enumerate(ideal[:k])))
    result = ips.ips_metrics(top, relevant, weights, ks)
    for k in ks:
        assert result[f"ips_recall@{k}"] == pytest.approx(np.mean(recall[k]))
        assert result[f"ips_ndcg@{k}"] == pytest.approx(np.mean(ndcg[k]))


@pytest.mark.parametrize(
    ("weights", "message"),
    [(np.array([1.0, 0.0, 1.0]), "positive"), (np.array([1.0, 1.0]), "item 2 has no weight")],
)
def test_ips_metrics_reject_bad_weights(weights, message):
    with pytest.raises(ValueError, match=message):
        ips.ips_metrics(np.array([[0, 1]]), [{2}], weights, [2])
