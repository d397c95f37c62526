"""The quality benchmark's target checks and the evaluate config's validation."""

import pytest

from evaluation.bench_quality import targets
from evaluation.config import EvaluateConfig
from evaluation.report import EvaluationReport

CURVE = [
    {"lambda": 0.0, "ndcg@10": 0.200, "ild_categories@10": 0.40},
    {"lambda": 0.2, "ndcg@10": 0.198, "ild_categories@10": 0.50},  # -1% NDCG, +25% ILD
    {"lambda": 0.4, "ndcg@10": 0.180, "ild_categories@10": 0.70},  # -10% NDCG
]


def _report(chosen=0.2, recipe=0.10, cold=None):
    return EvaluationReport(
        meta={}, metrics={"model": {"recall@10": 0.20}, "tfrs_recipe": {"recall@10": recipe}},
        lambda_curve=CURVE, lambda_metrics=("ndcg@10", "ild_categories@10"),
        chosen_lambda=chosen, cold_start=cold or {},
    )  # fmt: skip


def test_targets_are_computed_from_the_report():
    result = targets(_report(cold={"text_model": {"recall@100": 0.45},
                                   "random": {"recall@100": 0.05}}))  # fmt: skip
    assert result["recall@10 vs TFRS recipe"] == {"value": 2.0, "target": 1.3, "met": True}
    gain = result["ild_categories@10 gain at lambda 0.2"]
    assert gain["value"] == pytest.approx(0.25) and gain["met"]
    loss = result["ndcg@10 loss at lambda 0.2"]
    assert loss["value"] == pytest.approx(0.01) and loss["met"]
    assert result["cold-item recall@100 vs random"]["value"] == pytest.approx(9.0)


def test_missed_targets_are_reported_as_missed():
    result = targets(_report(chosen=0.4, recipe=0.18))
    assert not result["recall@10 vs TFRS recipe"]["met"]  # 1.11x
    assert not result["ndcg@10 loss at lambda 0.4"]["met"]  # 10% > 3%
    assert result["ild_categories@10 gain at lambda 0.4"]["met"]  # +75%
    assert "cold-item recall@100 vs random" not in result  # no cold-start run


def test_chosen_lambda_zero_has_no_gain():
    result = targets(_report(chosen=0.0))
    assert result["ild_categories@10 gain at lambda 0.0"]["value"] == 0.0
    assert not result["ild_categories@10 gain at lambda 0.0"]["met"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ks": (0, 10)}, "positive cut-offs"),
        ({"baselines": ("popularity", "svd")}, "unknown.*svd"),
        ({"lambdas": (0.1, 0.5)}, "including 0"),
        ({"lambdas": (0.0, 1.5)}, r"in \[0, 1\]"),
        ({"pool_size": 50}, "pool_size=50 is below the largest cut-off 100"),
        ({"rerank_variants": ("mmr", "magic")}, "unknown.*magic"),
        ({"sweep_accuracy": "ndcg"}, "not a metric at a cut-off"),
        ({"sweep_diversity": "ild_categories@5"}, "share their cut-off"),
    ],
)
def test_evaluate_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EvaluateConfig(**kwargs)


def test_sweep_cut_off_comes_from_the_accuracy_metric():
    config = EvaluateConfig(sweep_accuracy="recall@50", sweep_diversity="ild_embedding@50")
    assert config.sweep_k == 50
