"""Hyperparameter sweep of the `train:` section on an ingested data directory: one training run
per variant, printing eval Recall@10, NDCG@10 and Recall@50 (how the demo's settings were
chosen; see BENCHMARKS.md).

    .venv/bin/python benchmarks/sweep_train.py --data DIR \\
        --variant '{"epochs": 3}' --variant '{"epochs": 3, "text.mode": "frozen"}'

Each variant is a JSON object of `--set`-style keys (dotted for nested sections) applied to the
config's `train:` section. Make DIR with `bench_train.py --workdir W` (then DIR is `W/data`) or
`recstack ingest`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from recstack.config import DEFAULT_CONFIG, load_section
from trainer.config import TrainConfig
from trainer.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="output directory of `recstack ingest`")
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--variant", action="append", default=[], type=json.loads,
                        help="JSON object of overrides; repeat for more runs")  # fmt: skip
    args = parser.parse_args()
    variants = args.variant or [{}]
    with tempfile.TemporaryDirectory() as runs:
        for number, variant in enumerate(variants):
            sets = [f"{key}={json.dumps(value)}" for key, value in variant.items()]
            config = load_section(args.config, "train", TrainConfig, sets)
            start = time.perf_counter()
            result = train(config, args.data, os.path.join(runs, str(number)), verbose=0)
            m = result.metrics["model"]
            print(f"{json.dumps(variant)}  R@10 {m.get('recall@10', float('nan')):.4f}  "
                  f"NDCG@10 {m.get('ndcg@10', float('nan')):.4f}  "
                  f"R@50 {m.get('recall@50', float('nan')):.4f}  "
                  f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
