"""EvaluationReport: JSON round trip, lifts against baselines, the text table, TensorBoard."""

import json
import math

import numpy as np
import pytest

from evaluation.report import (
    EvaluationReport,
    format_table,
    lifts,
    markdown_table,
    metric_lift,
    read_json,
    write_json,
    write_tensorboard,
)

CURVE = [
    {"lambda": 0.0, "ndcg@10": 0.10, "ild_categories@10": 0.30},
    {"lambda": 0.5, "ndcg@10": 0.08, "ild_categories@10": 0.45},
    {"lambda": 1.0, "ndcg@10": 0.05, "ild_categories@10": 0.70},
]


def _report(**overrides) -> EvaluationReport:
    fields = dict(
        meta={"split": "test", "ks": [10], "users": 40, "items": 6, "command": "recstack evaluate"},
        metrics={
            "model": {"recall@10": 0.3, "ndcg@10": 0.12, "gini@10": 0.5, "coverage@10": 0.0},
            "popularity": {"recall@10": 0.1, "ndcg@10": 0.0, "gini@10": 0.9},
            "itemknn": {"recall@10": 0.6, "ndcg@10": 0.24, "gini@10": 0.25, "coverage@10": 0.0},
        },
        lambda_curve=CURVE,
        lambda_metrics=("ndcg@10", "ild_categories@10"),
        chosen_lambda=0.5,
        exposure={"model": [5, 0, 3, 1, 1, 0], "popularity": [0, 0, 0, 0, 10, 10]},
        training_popularity=[50, 1, 2, 3, 10, 7],
        segments={"model": {"new": {"recall@10": 0.2}, "tail": {"recall@10": 0.05}}},
        cold_start={"text": {"recall@10": 0.2}, "random": {"recall@10": 0.01}},
        debiasing={"logq": {"recall@10": 0.3, "ips_recall@10": 0.2}},
    )
    return EvaluationReport(**(fields | overrides))


def test_json_round_trip_gives_an_equal_report(tmp_path):
    report = _report()
    path = write_json(report, str(tmp_path / "out" / "report.json"))
    assert read_json(path) == report
    assert json.loads((tmp_path / "out" / "report.json").read_text())["chosen_lambda"] == 0.5


def test_json_turns_numpy_values_into_numbers_and_non_finite_ones_into_null(tmp_path):
    metrics = {"model": {"recall@10": np.float32(0.25), "ndcg@10": float("nan")}}
    report = _report(metrics=metrics, exposure={"model": np.array([3, 0, 1])})
    back = read_json(write_json(report, str(tmp_path / "report.json")))
    assert back.metrics == {"model": {"recall@10": 0.25, "ndcg@10": None}}
    assert back.exposure == {"model": [3, 0, 1]}


def test_from_dict_names_unknown_and_missing_keys():
    with pytest.raises(ValueError, match=r"unknown keys \['rows'\], missing \['metrics'\]"):
        EvaluationReport.from_dict({"meta": {}, "rows": []})


def test_a_lambda_curve_needs_its_two_metrics():
    with pytest.raises(ValueError, match="lambda_metrics=None"):
        _report(lambda_metrics=None)
    with pytest.raises(ValueError, match=r"lambda_curve\[1\] .* missing \['ndcg@10'\]"):
        _report(lambda_curve=[CURVE[0], {"lambda": 0.5, "ild_categories@10": 0.4}])


def test_lifts_divide_model_by_baseline_on_shared_metrics():
    got = lifts(_report(), "itemknn")
    # gini is lower-is-better: the model's 0.5 is half as good as the baseline's 0.25.
    assert got == {"recall@10": 0.5, "ndcg@10": 0.5, "gini@10": 0.5, "coverage@10": 1.0}
    assert lifts(_report(), "popularity") == {
        "recall@10": pytest.approx(3.0),
        "ndcg@10": math.inf,
        "gini@10": pytest.approx(0.9 / 0.5),
    }


@pytest.mark.parametrize(
    "metric, model, baseline, expected",
    [
        ("recall@10", 0.2, 0.1, 2.0),
        ("recall@10", 0.2, 0.0, math.inf),
        ("recall@10", 0.0, 0.0, 1.0),
        ("recall@10", 0.0, 0.1, 0.0),
        ("gini@10", 0.4, 0.8, 2.0),
        ("gini@10", 0.0, 0.8, math.inf),
        ("gini@10", 0.8, 0.0, 0.0),
        ("mean_popularity@10", 50.0, 200.0, 4.0),
        ("mean_popularity", 0.0, 0.0, 1.0),
        ("recall@10", None, 0.1, None),
        ("recall@10", 0.1, float("nan"), None),
        ("recall@10", -0.1, 0.1, None),
    ],
)
def test_metric_lift_is_above_one_when_the_model_is_better(metric, model, baseline, expected):
    assert metric_lift(metric, model, baseline) == expected


def test_lifts_name_the_known_systems_for_an_unknown_baseline():
    with pytest.raises(ValueError, match=r"no system 'tfrs' .* \['itemknn', 'model', 'popul"):
        lifts(_report(), "tfrs")


def test_format_table_has_a_row_per_metric_and_model_lifts_in_parentheses():
    assert format_table(_report()).splitlines() == [
        "metric                     model   popularity       itemknn",
        "-------------------------  -----  -----------  ------------",
        "recall@10                    0.3  0.1 (3.00x)   0.6 (0.50x)",
        "ndcg@10                     0.12      0 (inf)  0.24 (0.50x)",
        "gini@10 (lower is better)    0.5  0.9 (1.80x)  0.25 (0.50x)",
        "coverage@10                    0            -     0 (1.00x)",
        "(x): how many times better the model is than that baseline",
    ]


def test_markdown_table_matches_the_text_table():
    lines = markdown_table(_report()).splitlines()
    assert lines[0] == "| metric | model | popularity | itemknn |"
    assert lines[2] == "| recall@10 | 0.3 | 0.1 (3.00x) | 0.6 (0.50x) |"
    assert len(lines) == 2 + 4


def _scalars(logdir):
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(
        str(logdir), size_guidance={event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    return {
        tag: [(event.step, tf.make_ndarray(event.tensor_proto).item()) for event in events]
        for tag in accumulator.Tags()["tensors"]
        for events in [accumulator.Tensors(tag)]
    }


def test_tensorboard_holds_the_metrics_the_lambda_curve_and_the_table(tmp_path):
    metrics = _report().metrics | {"tfrs_recipe": {"recall@10": None}}
    write_tensorboard(_report(metrics=metrics), str(tmp_path))
    events = _scalars(tmp_path)

    assert events["model/recall@10"] == [(0, pytest.approx(0.3))]
    assert events["popularity/gini@10"] == [(0, pytest.approx(0.9))]
    assert "tfrs_recipe/recall@10" not in events  # a missing value is no point at all
    assert events["lambda_curve/lambda"] == [(0, 0.0), (1, 0.5), (2, 1.0)]
    assert events["lambda_curve/ndcg@10"] == [
        (step, pytest.approx(point["ndcg@10"])) for step, point in enumerate(CURVE)
    ]
    assert events["lambda_curve/chosen_lambda"] == [(0, 0.5)]
    assert events["segments/model/tail/recall@10"] == [(0, pytest.approx(0.05))]
    assert events["cold_start/random/recall@10"] == [(0, pytest.approx(0.01))]
    assert events["debiasing/logq/ips_recall@10"] == [(0, pytest.approx(0.2))]
    [(step, text)] = events["report/metrics"]
    assert (
        text.decode().splitlines()[0] == "| metric | model | popularity | itemknn | tfrs_recipe |"
    )
