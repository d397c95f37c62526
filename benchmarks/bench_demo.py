"""Benchmark of the walking skeleton: demo wall time per stage, and quality vs popularity.

Targets (issue 2): the whole demo finishes in under 10 minutes on 2 CPU cores after install;
the model's Recall@K beats the popularity baseline computed in the same run.

    .venv/bin/python benchmarks/bench_demo.py [--config tfx_config/demo.yaml] [--repeats 1]

Prints a table and one JSON line (for BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import statistics
import tempfile

from pipeline.demo import run_demo

BUDGET_SECONDS = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    reports = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as workdir:
            with contextlib.redirect_stdout(io.StringIO()):
                reports.append(run_demo(os.path.join(workdir, "demo"), args.config))
    stages = list(reports[0].seconds)
    median = {s: statistics.median(r.seconds[s] for r in reports) for s in stages}
    total = sum(median.values())
    metrics = reports[-1].metrics

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{datetime.date.today()}, {args.repeats} run(s), median seconds")  # fmt: skip
    for stage in stages:
        print(f"  {stage:<10} {median[stage]:7.1f} s")
    print(f"  {'total':<10} {total:7.1f} s   = {total / BUDGET_SECONDS:.2f} of the 600 s budget")
    steps = list(reports[0].run.manifest["step_seconds"])
    print("  pipeline steps (kfp tasks, each a subprocess):")
    for step in steps:
        seconds = statistics.median(r.run.manifest["step_seconds"].get(step, 0.0) for r in reports)
        print(f"    {step:<30} {seconds:6.1f} s")
    print(f"  rows ingested: {reports[-1].stats['rows_in']}")
    for name, model in metrics["model"].items():
        popularity = metrics["popularity"][name]
        print(f"  {name:<10} model {model:.4f}  popularity {popularity:.4f}  "
              f"x{model / popularity:.2f}")  # fmt: skip
    print(json.dumps({"seconds": median, "total": total, "metrics": metrics}, sort_keys=True))


if __name__ == "__main__":
    main()
