"""The MMR lambda sweep and lambda choice against hand-traced clusters and budgets."""

import numpy as np
import pytest

from evaluation.lambda_sweep import choose_lambda, lambda_sweep


def _ild(top, embeddings):
    """Mean pairwise cosine distance of each list, averaged over users."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    values = []
    for row in top:
        items = [i for i in row if i >= 0]
        pairs = [(a, b) for n, a in enumerate(items) for b in items[n + 1 :]]
        values.append(np.mean([1.0 - unit[a] @ unit[b] for a, b in pairs]))
    return float(np.mean(values))


def _clustered_pool():
    """Four orthogonal clusters of near-duplicates; relevance falls cluster by cluster.

    Scaled relevance: A 1, .95, .9, .85; B .6, .55, .5; C .3, .25; D 0. After the first pick,
    MMR prefers a new cluster X over a duplicate A' iff s(A') - s(X) < lambda / (1 - lambda).
    lambda 0: A A A A (ILD 0). lambda .25 (threshold 1/3): A1 A2 B1 A3 (2 clusters, ILD 3/6).
    lambda >= .5 (threshold >= 1): one item per cluster (ILD 1).
    """
    cluster = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 3])
    noise = 1e-3 * np.random.default_rng(2).normal(size=(10, 4))
    embeddings = (np.eye(4)[cluster] + noise).astype(np.float32)
    relevance = np.array([[1.0, 0.95, 0.9, 0.85, 0.6, 0.55, 0.5, 0.3, 0.25, 0.0]], np.float32)
    return np.arange(10)[None], relevance, embeddings


def test_lambda_sweep_is_monotone_in_diversity():
    pool, relevance, embeddings = _clustered_pool()
    lambdas = [0.0, 0.25, 0.5, 0.75, 1.0]
    points = lambda_sweep(
        pool, relevance, embeddings, 4, lambdas, lambda top: {"ild": _ild(top, embeddings)}
    )
    assert [p["mmr_lambda"] for p in points] == lambdas
    ild = [p["ild"] for p in points]
    assert all(later >= earlier - 1e-6 for earlier, later in zip(ild, ild[1:], strict=False))
    np.testing.assert_allclose(ild, [0.0, 0.5, 1.0, 1.0, 1.0], atol=1e-2)


def test_choose_lambda_respects_the_accuracy_budget():
    points = [
        {"mmr_lambda": 0.5, "ndcg": 0.290, "ild": 0.5},  # 3.3% loss
        {"mmr_lambda": 0.0, "ndcg": 0.300, "ild": 0.2},
        {"mmr_lambda": 0.25, "ndcg": 0.295, "ild": 0.4},  # 1.7% loss
        {"mmr_lambda": 0.75, "ndcg": 0.200, "ild": 0.9},  # 33% loss
    ]
    chosen, curve = choose_lambda(points, "ndcg", "ild")
    assert chosen == 0.25
    assert [p["mmr_lambda"] for p in curve] == [0.0, 0.25, 0.5, 0.75]
    assert [p["within_budget"] for p in curve] == [True, True, False, False]
    assert curve[2]["relative_accuracy_loss"] == pytest.approx(1 / 30)
    assert choose_lambda(points, "ndcg", "ild", max_accuracy_loss=0.05)[0] == 0.5
    assert choose_lambda(points, "ndcg", "ild", max_accuracy_loss=0.0)[0] == 0.0
    with pytest.raises(ValueError, match="mmr_lambda=0"):
        choose_lambda(points[2:], "ndcg", "ild")
