"""The re-ranked variants reported beside the model."""

import numpy as np

from evaluation.config import EvaluateConfig
from evaluation.rerank import ItemSideData, mmr_rerank
from evaluation.variants import rerank_variants, variant_configs
from trainer.evaluation import EvalSet

# Five items: 0-1 in "a", 2-3 in "b", 4 in "c"; item 0 is very popular.
SIDE = ItemSideData(
    item_ids=["i0", "i1", "i2", "i3", "i4"],
    embeddings=np.array([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99], [0.7, 0.7]], np.float32),
    categories=[["a"], ["a"], ["b"], ["b"], ["c"]],
    popularity=np.array([100, 5, 5, 5, 1]),
)
POOL = np.array([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]])
RELEVANCE = np.array([[5.0, 4.9, 4.0, 3.9, 1.0], [5.0, 4.0, 3.0, 2.0, 1.0]], np.float32)
EVAL_SET = EvalSet(
    corpus_ids=np.array(SIDE.item_ids, dtype=object), popularity=SIDE.popularity,
    users=np.array(["u0", "u1"], dtype=object),
    exclude=[np.array([0, 1]), np.array([2])], relevant=[{2}, {4}],
)  # fmt: skip


def test_each_configured_variant_is_a_system():
    config = EvaluateConfig(ks=(2, 3), pool_size=5, rerank_variants=("mmr", "filtered"),
                            exclude_categories=("c",), sweep_accuracy="ndcg@2",
                            sweep_diversity="ild_categories@2")  # fmt: skip
    assert set(variant_configs(config, 0.5)) == {"model+mmr", "model+filtered"}
    tops = rerank_variants(POOL, RELEVANCE, EVAL_SET, SIDE, config, chosen_lambda=0.5)
    assert tops["model+filtered"].tolist() == [[0, 1, 2], [3, 2, 1]]  # item 4 ("c") dropped
    # MMR at the chosen lambda on the filtered pool: independent of the variant plumbing.
    filtered_pool = np.where(POOL == 4, -1, POOL)
    filtered_rel = np.where(POOL == 4, -np.inf, RELEVANCE).astype(np.float32)
    expected = mmr_rerank(filtered_pool, filtered_rel, SIDE.embeddings, 3, 0.5)
    np.testing.assert_array_equal(tops["model+mmr"], expected)
    assert 4 not in tops["model+mmr"]


def test_novelty_variant_demotes_the_popular_item():
    config = EvaluateConfig(ks=(2,), pool_size=5, rerank_variants=("novelty",),
                            novelty_beta=1.0, sweep_accuracy="ndcg@2",
                            sweep_diversity="ild_categories@2")  # fmt: skip
    top = rerank_variants(POOL, RELEVANCE, EVAL_SET, SIDE, config, 0.0)["model+novelty"]
    assert top[0, 0] != 0  # item 0 was first by relevance but is 20x more popular than item 1


def test_calibrated_variant_follows_the_users_history():
    config = EvaluateConfig(ks=(2,), pool_size=5, rerank_variants=("calibrated",),
                            calibration_lambda=0.9, sweep_accuracy="ndcg@2",
                            sweep_diversity="ild_categories@2")  # fmt: skip
    pool = np.array([[0, 1, 4, 2, 3], [0, 1, 4, 2, 3]])
    relevance = np.array([[5.0, 4.9, 4.8, 1.0, 0.9]] * 2, np.float32)
    top = rerank_variants(pool, relevance, EVAL_SET, SIDE, config, 0.0)["model+calibrated"]
    # By relevance both lists would be [0, 1] ("a", "a"). User 0's history is all "a": it
    # stays; user 1's history is item 2 ("b"): calibration brings a "b" item in.
    assert top[0].tolist() == [0, 1]
    assert {2, 3} & set(top[1].tolist())
