"""Tests of the evaluation baselines: ItemKNN against hand-computed and dense reference
similarities, the random scorer, the registry, and the baselines on a tiny ingested dataset."""

import math
import subprocess
import sys

import numpy as np
import pytest

from evaluation import baselines, recipe
from recstack import features as F
from trainer.evaluation import EvalSet, build_eval_set, evaluate
from trainer.retrieval_metrics import top_k_excluding

# Items 0..4; item 3 has one user and co-occurs with nothing, item 4 has no user.
CORPUS = np.array(["i0", "i1", "i2", "i3", "i4"], dtype=object)
HISTORIES = {"u0": [0, 1], "u1": [0, 1, 2, 1], "u2": [1, 2], "u3": [3]}  # u1 repeats item 1.
S01 = S12 = 2 / math.sqrt(2 * 3)  # Two shared users; items 0, 1, 2 have 2, 3, 2 users.
S02 = 1 / math.sqrt(2 * 2)
HAND_SIMILARITY = np.array(
    [
        [0, S01, S02, 0, 0],
        [S01, 0, S12, 0, 0],
        [S02, S12, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]
)


def _eval_set(users, corpus=CORPUS, exclude=None):
    return EvalSet(
        corpus_ids=corpus,
        popularity=np.zeros(len(corpus), dtype=np.int64),
        users=np.array(users, dtype=object),
        exclude=exclude or [np.array([], dtype=np.int64)] * len(users),
        relevant=[set() for _ in users],
    )


def _fit(histories, eval_set, **kwargs):
    users = [u for u, items in histories.items() for _ in items]
    items = [i for items in histories.values() for i in items]
    return baselines.ItemKNN(**kwargs).fit_interactions(users, np.array(items), eval_set)


def _dense_reference(matrix, neighbours, shrinkage):
    """Cosine of binary item columns, top `neighbours` positive per row by (-sim, index)."""
    co = matrix.T @ matrix
    norms = np.sqrt(np.diag(co))
    sim = np.where(co > 0, co / (np.outer(norms, norms) + shrinkage + 1e-300), 0.0)
    np.fill_diagonal(sim, 0.0)
    pruned = np.zeros_like(sim)
    for row, values in enumerate(sim):
        keep = np.lexsort((np.arange(len(values)), -values))[:neighbours]
        keep = keep[values[keep] > 0]
        pruned[row, keep] = values[keep]
    return pruned


def test_itemknn_similarity_matches_hand_computation():
    knn = _fit(HISTORIES, _eval_set(["u0"]))
    np.testing.assert_allclose(knn.similarity(), HAND_SIMILARITY)


def test_itemknn_shrinkage_and_neighbour_cut_off():
    knn = _fit(HISTORIES, _eval_set(["u0"]), neighbours=1, shrinkage=1.0)
    shrunk = 2 / (math.sqrt(6) + 1)
    expected = np.zeros((5, 5))
    # Item 1's two best neighbours tie (0 and 2): the lower index is kept.
    expected[0, 1] = expected[1, 0] = expected[2, 1] = shrunk
    np.testing.assert_allclose(knn.similarity(), expected)


def test_itemknn_scores_sum_neighbours_of_whole_history():
    eval_set = _eval_set(["u2", "u3", "stranger"])
    scores = _fit(HISTORIES, eval_set).scorer()(np.array([0, 1, 2]))
    np.testing.assert_allclose(scores[0], [S01 + S02, S12, S12, 0, 0])
    np.testing.assert_array_equal(scores[1:], 0.0)  # No co-occurrence; no training history.


def test_itemknn_training_items_are_excluded_from_rankings():
    eval_set = _eval_set(["u2"], exclude=[np.array([1, 2])])
    scores = _fit(HISTORIES, eval_set).scorer()(np.array([0]))
    assert scores[0, 1:3].min() > scores[0, 3:].max()  # Training items outscore items 3, 4 ...
    top = top_k_excluding(scores, eval_set.exclude, 3)
    np.testing.assert_array_equal(top, [[0, 3, 4]])  # ... but are never recommended.


@pytest.mark.parametrize("neighbours, shrinkage", [(3, 0.0), (100, 2.0)])
def test_itemknn_blocks_match_dense_reference(neighbours, shrinkage):
    rng = np.random.default_rng(0)
    matrix = (rng.random((40, 25)) < 0.15).astype(np.float64)
    matrix[:, 7] = 0  # An item nobody used.
    corpus = np.array([f"i{j}" for j in range(25)], dtype=object)
    users, items = np.nonzero(matrix)
    eval_set = _eval_set([f"u{u}" for u in range(40)], corpus)
    expected = _dense_reference(matrix, neighbours, shrinkage)
    for block in ({}, {"block_cells": 1, "block_pairs": 1}, {"block_cells": 60}):
        knn = baselines.ItemKNN(neighbours, shrinkage, **block)
        knn.fit_interactions([f"u{u}" for u in users], items, eval_set)
        np.testing.assert_allclose(knn.similarity(), expected, err_msg=str(block))
        np.testing.assert_allclose(knn.scorer()(np.arange(40)), matrix @ expected)


def test_itemknn_rejects_bad_input():
    with pytest.raises(ValueError, match="outside the corpus of 5 items"):
        baselines.ItemKNN().fit_interactions(["u"], np.array([5]), _eval_set(["u"]))
    with pytest.raises(ValueError, match="not fitted"):
        baselines.ItemKNN().scorer()
    with pytest.raises(ValueError, match="neighbours=0"):
        baselines.ItemKNN(neighbours=0)


def test_random_scorer_is_seeded_and_batch_independent():
    eval_set = _eval_set(["a", "b", "c"])
    scores = baselines.random_scorer(eval_set, seed=3)(np.array([0, 1, 2]))
    assert scores.shape == (3, 5) and ((scores >= 0) & (scores < 1)).all()
    np.testing.assert_array_equal(baselines.random_scorer(eval_set, 3)(np.array([2])), scores[2:])
    assert not np.allclose(baselines.random_scorer(eval_set, 4)(np.array([0, 1, 2])), scores)


def test_registry_and_config_validation():
    assert list(baselines.BASELINES) == ["popularity", "itemknn", "tfrs_recipe", "random"]
    with pytest.raises(ValueError, match="unknown baseline 'knn'; choose from popularity"):
        baselines.build_baseline("knn", F.DataLayout("unused"), _eval_set(["a"]))
    with pytest.raises(ValueError, match="shrinkage=-1"):
        baselines.BaselineConfig(shrinkage=-1)


def test_benchmark_shim_still_imports():
    code = "import sys; sys.path.insert(0, 'benchmarks'); import basic_retrieval_recipe as r; "
    code += "print(r.TUTORIAL_BATCH_SIZE, r.train_and_evaluate.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["8192", "evaluation.recipe"]


@pytest.fixture(scope="module")
def tiny(data_dir):
    """(layout, eval set) of the shared tiny ingested data directory (150 users, 80 items)."""
    layout = F.DataLayout(data_dir)
    return layout, build_eval_set(layout)


@pytest.mark.slow
def test_itemknn_beats_random_on_tiny_data(tiny):
    layout, eval_set = tiny
    config = baselines.BaselineConfig(neighbours=20)
    knn = evaluate(baselines.build_baseline("itemknn", layout, eval_set, config), eval_set, [10])
    rand = evaluate(baselines.build_baseline("random", layout, eval_set, config), eval_set, [10])
    assert knn["recall@10"] > 2 * rand["recall@10"], (knn, rand)
    popularity = baselines.build_baseline("popularity", layout, eval_set)(np.array([0, 1]))
    np.testing.assert_array_equal(popularity, [eval_set.popularity] * 2)


@pytest.mark.slow
def test_recipe_trains_and_scores_the_corpus(tiny):
    layout, eval_set = tiny
    model = recipe.train_recipe(layout, epochs=2, batch_size=256, seed=0)
    rows = np.arange(min(7, len(eval_set.users)))
    scores = recipe.recipe_scorer(model, eval_set)(rows)
    assert scores.shape == (len(rows), len(eval_set.corpus_ids))
    assert np.isfinite(scores).all() and scores.std() > 0
