"""`recstack evaluate`: picks the model source, runs the evaluation, writes the report."""

from __future__ import annotations

import argparse
import os

from evaluation.config import EvaluateConfig
from evaluation.evaluate import Model, run_evaluation
from evaluation.report import format_table, write_json, write_tensorboard
from evaluation.sources import check_history_splits, newest_version, saved_model_call
from recstack import features as F
from recstack.config import load_section


def evaluate_command(args: argparse.Namespace) -> str:
    """Runs `recstack evaluate` for parsed `args`; returns the report directory."""
    from evaluation.html_report import write_html

    config = load_section(args.config, "evaluate", EvaluateConfig, args.set)
    if not (args.run_dir or args.model_dir or args.target):
        raise SystemExit("recstack evaluate: give --run-dir, --model-dir or --target")
    client = None
    model = None
    if args.model_dir:
        version = newest_version(args.model_dir)
        check_history_splits(version, "eval")
        model = Model(call=saved_model_call(version), name=f"exported {version}")
    elif args.target:
        from evaluation.sources import server_call
        from serving.client import ServingClient

        client = ServingClient(args.target, timeout_s=60.0)
        client.wait_until_ready(timeout_s=60.0, model=F.MODEL_RECOMMENDER)
        model = Model(call=server_call(client), name=f"server {args.target}")
    try:
        report = run_evaluation(args.data, config, model=model, run_dir=args.run_dir or "")
    finally:
        if client is not None:
            client.close()
    os.makedirs(args.output, exist_ok=True)
    write_json(report, os.path.join(args.output, "report.json"))
    write_tensorboard(report, os.path.join(args.output, "tensorboard"))
    html = write_html(report, os.path.join(args.output, "report.html"))
    print(format_table(report))
    print(f"\nMMR lambda chosen: {report.chosen_lambda} (most {report.lambda_metrics[1]} within "
          f"{config.max_accuracy_loss:.0%} of {report.lambda_metrics[0]} at lambda 0)")  # fmt: skip
    print(f"report: {html}\nTensorBoard: tensorboard --logdir {args.output}/tensorboard")
    return args.output
