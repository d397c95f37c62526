"""Offline re-ranking controls (MMR, novelty, filters, `rerank`) against hand-traced examples
and independent computations."""

import numpy as np
import pytest
import tensorflow as tf

from evaluation.rerank import (
    ItemSideData,
    RerankConfig,
    apply_filters,
    mmr_rerank,
    novelty_boost,
    rerank,
)
from trainer.mmr import mmr_select


def test_mmr_matches_a_hand_traced_example():
    # Item 1 duplicates item 3, item 4 is orthogonal to both, item 0 sits at 45 degrees.
    embeddings = np.array([[1, 1], [1, 0], [5, 5], [1, 0], [0, 1], [3, 3]], np.float32)
    pool = np.array([[3, 1, 4, -1, 0]] * 2)
    relevance = np.array([[1.0, 0.9, 0.5, 7.0, 0.0]] * 2, np.float32)
    # lambda 0.5, scaled relevance 3: 1, 1: 0.9, 4: 0.5, 0: 0. Step 1 takes 3. Step 2 gains:
    # 1: .5*.9 - .5*1 = -.05, 4: .5*.5 - 0 = .25, 0: 0 - .5*.707 = -.35 -> 4. Step 3: 1 (-.05)
    # beats 0 (-.35). Step 4: 0. Step 5: the pool is spent.
    top = mmr_rerank(pool, relevance, embeddings, k=5, mmr_lambda=np.array([0.5, 0.0]))
    assert top.tolist() == [[3, 4, 1, 0, -1], [3, 1, 4, 0, -1]]


def test_mmr_rerank_is_trainer_mmr_select_in_batches():
    rng = np.random.default_rng(0)
    users, size, n, k = 7, 9, 30, 5
    embeddings = rng.normal(size=(n, 4)).astype(np.float32)
    pool = np.stack([rng.choice(n, size, replace=False) for _ in range(users)])
    pool[rng.random(pool.shape) < 0.2] = -1
    relevance = rng.normal(size=(users, size)).astype(np.float32)
    lambdas = rng.random(users).astype(np.float32)
    top = mmr_rerank(pool, relevance, embeddings, k, lambdas, batch_size=3)
    positions, selected = mmr_select(
        tf.constant(relevance),
        tf.constant(embeddings[np.maximum(pool, 0)]),
        tf.constant(pool >= 0),
        tf.constant(k),
        tf.constant(lambdas),
    )
    expected = np.where(selected, np.take_along_axis(pool, positions.numpy(), axis=1), -1)
    np.testing.assert_array_equal(top, expected)


def test_lambda_zero_keeps_the_relevance_order():
    rng = np.random.default_rng(1)
    pool = np.stack([rng.permutation(20)[:10] for _ in range(4)])
    pool[:, ::3] = -1
    relevance = rng.normal(size=pool.shape).astype(np.float32)
    top = mmr_rerank(pool, relevance, rng.normal(size=(20, 3)), k=6, mmr_lambda=0.0)
    for u in range(4):
        ranked = [pool[u, j] for j in np.argsort(-relevance[u]) if pool[u, j] >= 0]
        assert top[u].tolist() == ranked[:6] + [-1] * (6 - len(ranked[:6]))


def test_novelty_boost_promotes_the_less_popular_of_equal_items():
    popularity = np.array([100.0, 0.0, 10.0, 50.0])
    pool = np.array([[0, 1, 2, -1]])
    relevance = np.array([[1.0, 1.0, 0.0, 0.0]], np.float32)
    info = -np.log2((popularity + 1) / (popularity.sum() + 4))
    novelty = (info - info.min()) / (info.max() - info.min())
    boosted = novelty_boost(relevance, pool, popularity, beta=0.5)
    # Relevance 1, 1, 0 scales to 1, 1, 0; the padded slot gets -inf.
    np.testing.assert_allclose(boosted[0, :3], [1, 1, 0] + 0.5 * novelty[[0, 1, 2]], rtol=1e-6)
    assert boosted[0, 3] == -np.inf
    side = ItemSideData(["a", "b", "c", "d"], np.eye(4, dtype=np.float32), [[]] * 4, popularity)
    plain = rerank(pool, relevance, side, RerankConfig(), k=3)
    novel = rerank(pool, relevance, side, RerankConfig(novelty_beta=0.5), k=3)
    assert plain.tolist() == [[0, 1, 2]]
    assert novel.tolist() == [[1, 0, 2]]


def test_filters_drop_excluded_categories_and_items_and_keep_order():
    item_ids = ["m0", "m1", "m2", "m3", "m4"]
    categories = [["Drama"], ["Horror", "Drama"], ["Comedy"], ["Comedy"], ["Drama"]]
    pool = np.array([[4, 1, 3, 2, 0, -1]])
    relevance = np.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]], np.float32)
    kept, scores = apply_filters(pool, relevance, item_ids, categories, ["Horror"], ["m3"])
    assert kept.tolist() == [[4, -1, -1, 2, 0, -1]]
    assert scores[0, [0, 3, 4]].tolist() == [5.0, 2.0, 1.0]
    assert np.all(np.isneginf(scores[0, [1, 2]]))
    side = ItemSideData(item_ids, np.eye(5, dtype=np.float32), categories, np.ones(5))
    config = RerankConfig(exclude_categories=("Horror",), exclude_items=("m3",))
    assert rerank(pool, relevance, side, config, k=4).tolist() == [[4, 2, 0, -1]]


def test_bad_inputs_name_the_fix():
    with pytest.raises(ValueError, match="set one to 0"):
        RerankConfig(mmr_lambda=0.2, calibration_lambda=0.3)
    with pytest.raises(ValueError, match="corpus has 3 items"):
        mmr_rerank(np.array([[0, 5]]), np.zeros((1, 2)), np.eye(3), k=1, mmr_lambda=0.0)
    with pytest.raises(ValueError, match="mmr_lambda"):
        mmr_rerank(np.array([[0, 1]]), np.zeros((1, 2)), np.eye(3), k=1, mmr_lambda=1.5)
    side = ItemSideData(["a", "b"], np.eye(2), [["x"], ["y"]], np.ones(2))
    with pytest.raises(ValueError, match="user_category_distributions"):
        rerank(np.array([[0, 1]]), np.zeros((1, 2)), side, RerankConfig(calibration_lambda=0.5), 1)
