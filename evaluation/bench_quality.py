"""`recstack bench quality`: the full quality table against the baselines, with the issue's
targets checked, on generated data (planted structure) or on MovieLens-format data.

    recstack bench quality [--workdir bench_quality] [--movielens DIR] [--skip-cold-start]

Steps: data (generate, or import MovieLens) -> Beam ingest -> train the model (the config's
`train:` section) and the same model without logQ correction -> `run_evaluation` (model,
popularity, item-kNN, TFRS recipe, re-ranked variants, lambda sweep) -> debiasing table (logQ
on/off, plain and IPS metrics) -> cold start (items held out of training: text model vs id-only
vs random) -> report (JSON, TensorBoard, HTML) and the targets:

- Recall@10 at least 1.3x the TFRS recipe's;
- at the chosen lambda, intra-list diversity +20% with at most 3% NDCG@10 loss;
- cold-item Recall@100 at least 3x random.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from evaluation.config import EvaluateConfig
from evaluation.evaluate import run_evaluation
from evaluation.report import EvaluationReport, format_table, write_json, write_tensorboard
from recstack import config as config_lib

TARGET_RECIPE_LIFT = 1.3
TARGET_DIVERSITY_GAIN = 0.20
TARGET_NDCG_LOSS = 0.03
TARGET_COLD_LIFT = 3.0
DEBIAS_METRICS = ("recall@10", "ndcg@10", "ips_recall@10", "ips_ndcg@10", "novelty@10",
                  "mean_popularity@10", "coverage@10")  # fmt: skip


def prepare_data(workdir: str, config_path: str | None, movielens: str = "") -> str:
    """Raw data (generated, or imported from `movielens`) ingested under `workdir`; returns
    the data directory."""
    from beam_jobs.config import IngestConfig
    from beam_jobs.ingest import run_ingest
    from recstack import synthetic

    raw, data = os.path.join(workdir, "raw"), os.path.join(workdir, "data")
    ingest = config_lib.load_section(config_path, "ingest", IngestConfig)
    if movielens:
        from beam_jobs.importers.registry import import_dataset

        outputs = import_dataset("auto", movielens, raw)["outputs"]
        ingest = dataclasses.replace(ingest, user_attributes=())
        run_ingest(ingest, outputs["interactions"], outputs["items"], data, overwrite=True)
        return data
    generated = synthetic.generate(
        config_lib.load_section(config_path, "generate", synthetic.SyntheticConfig)
    )
    paths = synthetic.write(generated, raw)
    run_ingest(ingest, paths["interactions"], paths["items"], data, overwrite=True,
               users=paths["users"])  # fmt: skip
    return data


def train_runs(workdir: str, data: str, config_path: str | None) -> dict[str, str]:
    """The model (`train:` section) and the same without logQ correction; returns run dirs."""
    from trainer.config import TrainConfig
    from trainer.train import train

    config = config_lib.load_section(config_path, "train", TrainConfig)
    runs = {}
    for name, logq in (("logq", True), ("no_logq", False)):
        runs[name] = os.path.join(workdir, f"run_{name}")
        train(dataclasses.replace(config, logq_correction=logq), data, runs[name], verbose=0)
    return runs


def _target(value: float, target: float, at_least: bool = True) -> dict:
    return {"value": value, "target": target,
            "met": value >= target if at_least else value <= target}  # fmt: skip


def targets(report: EvaluationReport) -> dict[str, dict]:
    """Each target with its measured value and whether it is met."""
    metrics = report.metrics
    result = {}
    if "tfrs_recipe" in metrics:
        lift = metrics["model"]["recall@10"] / max(metrics["tfrs_recipe"]["recall@10"], 1e-12)
        result["recall@10 vs TFRS recipe"] = _target(lift, TARGET_RECIPE_LIFT)
    if report.lambda_curve:
        accuracy, diversity = report.lambda_metrics
        base = next(p for p in report.lambda_curve if p["lambda"] == 0.0)
        chosen = next(p for p in report.lambda_curve if p["lambda"] == report.chosen_lambda)
        gain = chosen[diversity] / max(base[diversity], 1e-12) - 1.0
        loss = 1.0 - chosen[accuracy] / max(base[accuracy], 1e-12)
        at = f"at lambda {report.chosen_lambda}"
        result[f"{diversity} gain {at}"] = _target(gain, TARGET_DIVERSITY_GAIN)
        result[f"{accuracy} loss {at}"] = _target(loss, TARGET_NDCG_LOSS, at_least=False)
    cold = report.cold_start
    if cold.get("text_model") and cold.get("random"):
        lift = cold["text_model"]["recall@100"] / max(cold["random"]["recall@100"], 1e-12)
        result["cold-item recall@100 vs random"] = _target(lift, TARGET_COLD_LIFT)
    return result


def run_bench(
    workdir: str,
    config_path: str | None = None,
    movielens: str = "",
    cold_start: bool = True,
    evaluate: EvaluateConfig | None = None,
) -> dict:
    """Runs the benchmark under `workdir`; returns `{"report", "targets", "seconds"}`."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    data = prepare_data(workdir, config_path, movielens)
    seconds["data"] = time.perf_counter() - started
    started = time.perf_counter()
    runs = train_runs(workdir, data, config_path)
    seconds["train"] = time.perf_counter() - started
    started = time.perf_counter()
    evaluate = evaluate or config_lib.load_section(config_path, "evaluate", EvaluateConfig)
    report = run_evaluation(data, evaluate, run_dir=runs["logq"])
    no_logq = run_evaluation(data, dataclasses.replace(evaluate, baselines=("popularity",),
                                                       rerank_variants=()),
                             run_dir=runs["no_logq"], progress=False)  # fmt: skip
    debiasing = {
        "logQ correction": {m: report.metrics["model"][m] for m in DEBIAS_METRICS},
        "no logQ correction": {m: no_logq.metrics["model"][m] for m in DEBIAS_METRICS},
    }
    seconds["evaluate"] = time.perf_counter() - started
    cold = {}
    if cold_start:
        from evaluation.cold_start import evaluate_cold_start

        started = time.perf_counter()
        result = evaluate_cold_start(data, os.path.join(workdir, "cold_start"),
                                     train_overrides=_train_section(config_path))  # fmt: skip
        cold = result.metrics
        seconds["cold_start"] = time.perf_counter() - started
    report = dataclasses.replace(report, debiasing=debiasing, cold_start=cold)
    report.meta["source"] = f"MovieLens {movielens}" if movielens else "generated (planted)"
    out = os.path.join(workdir, "report")
    os.makedirs(out, exist_ok=True)
    write_json(report, os.path.join(out, "report.json"))
    write_tensorboard(report, os.path.join(out, "tensorboard"))
    from evaluation.html_report import write_html

    write_html(report, os.path.join(out, "report.html"))
    return {"report": report, "targets": targets(report), "seconds": seconds, "output": out}


def _train_section(config_path: str | None) -> dict:
    return dict(config_lib.read_yaml(config_path or config_lib.DEFAULT_CONFIG).get("train") or {})


def print_result(result: dict) -> None:
    """The table, the debiasing and cold-start figures, the targets and one JSON line."""
    report = result["report"]
    print(format_table(report))
    for title, table in (("debiasing", report.debiasing), ("cold start", report.cold_start)):
        if table:
            print(f"\n{title}:")
            for system, values in table.items():
                shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float))
                print(f"  {system:<22} {shown}")
    print("\ntargets:")
    for name, target in result["targets"].items():
        print(f"  {'MET ' if target['met'] else 'MISS'} {name}: {target['value']:.3f} "
              f"(target {target['target']})")  # fmt: skip
    print(
        f"report: {result['output']}/report.html; seconds: "
        + ", ".join(f"{k} {v:.0f}" for k, v in result["seconds"].items())
    )
    summary = {"targets": result["targets"], "seconds": result["seconds"],
               "model": report.metrics["model"]}  # fmt: skip
    print(json.dumps(summary, sort_keys=True, default=float))
