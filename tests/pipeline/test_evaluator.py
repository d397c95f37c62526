"""Tests of the Evaluator's blessing rule (`decide`); evaluating trained runs is covered by
tests/pipeline/test_pipeline_runs.py."""

import pytest

from pipeline.config import EvaluatorConfig
from pipeline.evaluator import Blessing, decide


def metrics(recall10, recall50=0.5, mrr=0.1):
    return {"recall@10": recall10, "recall@50": recall50, "ndcg@10": recall10 / 2,
            "ndcg@50": recall50 / 2, "mrr": mrr}  # fmt: skip


POPULARITY = metrics(0.1, 0.3)


def test_first_run_without_blessed_model_is_blessed():
    verdict = decide(metrics(0.01), None, POPULARITY, EvaluatorConfig())
    assert verdict == Blessing(
        blessed=True, reasons=("pass: no blessed model yet: nothing to compare with",)
    )


def test_candidate_at_least_as_good_as_the_blessed_model_is_blessed():
    verdict = decide(metrics(0.2), metrics(0.2), POPULARITY, EvaluatorConfig())
    assert verdict.blessed
    assert verdict.reasons == ("pass: recall@10 0.2000 >= blessed 0.2000 x (1 - 0.00)",)


def test_candidate_worse_than_the_blessed_model_is_not_blessed():
    verdict = decide(metrics(0.1999), metrics(0.2), POPULARITY, EvaluatorConfig())
    assert not verdict.blessed
    assert verdict.reasons == ("FAIL: recall@10 0.1999 >= blessed 0.2000 x (1 - 0.00)",)


@pytest.mark.parametrize(("candidate", "blessed"), [(0.181, True), (0.179, False)])
def test_max_relative_drop_allows_trailing_by_that_share(candidate, blessed):
    # Blessed 0.2 with a 10% allowance: the floor is 0.18.
    config = EvaluatorConfig(max_relative_drop=0.1)
    verdict = decide(metrics(candidate), metrics(0.2), POPULARITY, config)
    assert verdict.blessed is blessed
    prefix = "pass: " if blessed else "FAIL: "
    assert verdict.reasons == (f"{prefix}recall@10 {candidate:.4f} >= blessed 0.2000 x (1 - 0.10)",)


def test_comparison_uses_the_configured_metric_only():
    # Far worse on recall@10, better on recall@50, which is what is compared.
    config = EvaluatorConfig(metric="recall@50")
    verdict = decide(metrics(0.01, 0.6), metrics(0.3, 0.5), POPULARITY, config)
    assert verdict.blessed
    assert verdict.reasons == ("pass: recall@50 0.6000 >= blessed 0.5000 x (1 - 0.00)",)


@pytest.mark.parametrize(("recall50", "blessed"), [(0.05, True), (0.0499, False)])
def test_absolute_thresholds_are_lower_bounds(recall50, blessed):
    config = EvaluatorConfig(thresholds={"recall@50": 0.05})
    verdict = decide(metrics(0.2, recall50), None, POPULARITY, config)
    assert verdict.blessed is blessed
    prefix = "pass: " if blessed else "FAIL: "
    assert verdict.reasons[0] == f"{prefix}recall@50 {recall50:.4f} >= threshold 0.0500"


def test_a_missed_threshold_withholds_the_blessing_even_on_the_first_run():
    config = EvaluatorConfig(thresholds={"mrr": 0.2, "recall@10": 0.1})
    verdict = decide(metrics(0.3, mrr=0.15), None, POPULARITY, config)
    assert not verdict.blessed
    assert verdict.reasons == (  # thresholds by name, then the comparison
        "FAIL: mrr 0.1500 >= threshold 0.2000",
        "pass: recall@10 0.3000 >= threshold 0.1000",
        "pass: no blessed model yet: nothing to compare with",
    )


@pytest.mark.parametrize(("candidate", "blessed"), [(0.151, True), (0.149, False)])
def test_lift_over_popularity(candidate, blessed):
    # Popularity's recall@10 is 0.1; a lift of 1.5 asks for 0.15.
    config = EvaluatorConfig(min_lift_over_popularity=1.5)
    verdict = decide(metrics(candidate), None, POPULARITY, config)
    assert verdict.blessed is blessed
    prefix = "pass: " if blessed else "FAIL: "
    assert verdict.reasons[-1] == f"{prefix}recall@10 {candidate:.4f} >= popularity 0.1000 x 1.5"


def test_no_lift_check_unless_asked():
    verdict = decide(metrics(0.01), None, metrics(0.5), EvaluatorConfig())
    assert verdict.blessed
    assert not any("popularity" in reason for reason in verdict.reasons)


def test_every_check_must_pass():
    config = EvaluatorConfig(thresholds={"recall@50": 0.1}, max_relative_drop=0.5,
                             min_lift_over_popularity=2.0)  # fmt: skip
    candidate, blessed = metrics(0.19, 0.4), metrics(0.3)  # 0.19 >= 0.15 but < 2 x 0.1
    verdict = decide(candidate, blessed, POPULARITY, config)
    assert not verdict.blessed
    assert [reason[:6] for reason in verdict.reasons] == ["pass: ", "pass: ", "FAIL: "]
    assert decide(metrics(0.21, 0.4), blessed, POPULARITY, config).blessed
