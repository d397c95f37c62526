"""Benchmark of issue 4: training speed and retrieval quality by text mode, side by side with
popularity and the TFRS basic-retrieval recipe, on generated data with planted text.

For each model (`id_only`, `frozen_bert`, `finetune_top2`, with the `train` section of the
config otherwise unchanged), the script reports training examples/sec (steady state: the
intervals between full training batches, so tracing, validation and evaluation are left out),
the wall time of the whole run, and full-corpus Recall@10 / NDCG@10 on the eval split. The
recipe (`basic_retrieval_recipe.py`) trains in the same process on the same split for the
same epochs, at the model's batch size and at the tutorial's 8192; its best batch size and
epoch is the baseline of the quality ratio (its last epoch is shown too). Target: the
model's Recall@10 at least 1.3x the recipe's.

    .venv/bin/python benchmarks/bench_train.py [--config tfx_config/demo.yaml]
        [--users 3000 --items 1500] [--models id_only,frozen_bert,finetune_top2]
        [--finetune-epochs 2] [--mixed-precision] [--workdir DIR]

Prints a table and one JSON line (for BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tf_keras  # noqa: E402

from recstack import features as F  # noqa: E402
from recstack.config import DEFAULT_CONFIG, load_section  # noqa: E402
from trainer.config import TEXT_FINETUNE, TEXT_FROZEN, TrainConfig  # noqa: E402

TARGET_RATIO = 1.3
#: The compared text modes (the config's own `text.checkpoint` and `max_length` are kept).
MODELS = {
    "id_only": {"mode": "none"},
    "frozen_bert": {"mode": TEXT_FROZEN},
    "finetune_top2": {"mode": TEXT_FINETUNE, "finetune_top_layers": 2},
}


class ExampleRate(tf_keras.callbacks.Callback):
    """Steady-state training examples/sec: `batch_size` examples per interval between two
    consecutive training-batch ends of one epoch, the interval ending in each epoch's last
    (possibly partial) batch left out."""

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.seconds = 0.0
        self.batches = 0
        self._ends: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._ends = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._ends.append(time.perf_counter())

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        full = self._ends[:-1]  # The last interval ends in the partial batch.
        if len(full) > 1:
            self.seconds += full[-1] - full[0]
            self.batches += len(full) - 1

    @property
    def rate(self) -> float:
        return self.batches * self.batch_size / self.seconds if self.seconds else float("nan")


def make_data(workdir: str, users: int, items: int, seed: int) -> str:
    """Generates logs with planted topics in the item text and ingests them; returns the data
    directory (reused when it already exists)."""
    from beam_jobs.config import IngestConfig
    from beam_jobs.ingest import run_ingest
    from recstack import synthetic

    data_dir = os.path.join(workdir, "data")
    if os.path.exists(F.DataLayout(data_dir).stats):
        return data_dir
    config = synthetic.SyntheticConfig(num_users=users, num_items=items, seed=seed)
    paths = synthetic.write(synthetic.generate(config), os.path.join(workdir, "raw"))
    run_ingest(IngestConfig(), paths["interactions"], paths["items"], data_dir, [])
    return data_dir


def run_model(name: str, config: TrainConfig, data_dir: str, workdir: str) -> dict:
    from trainer.train import train

    rate = ExampleRate(config.batch_size)
    start = time.perf_counter()
    result = train(config, data_dir, os.path.join(workdir, f"run_{name}"), verbose=0,
                   extra_callbacks=[rate])  # fmt: skip
    return {
        "examples_per_sec": rate.rate,
        "wall_seconds": time.perf_counter() - start,
        "epochs": config.epochs,
        "metrics": result.metrics["model"],
    }


def run_recipe(config: TrainConfig, data_dir: str) -> dict:
    """The recipe at the model's batch size and at the tutorial's (8192); the best batch size
    and epoch by Recall@10 is the baseline (the most favourable choice for the recipe)."""
    from basic_retrieval_recipe import TUTORIAL_BATCH_SIZE, train_and_evaluate

    from trainer import evaluation

    layout = F.DataLayout(data_dir)
    eval_set = evaluation.build_eval_set(layout, config.query.history_length)
    runs = []
    for batch_size in dict.fromkeys((config.batch_size, TUTORIAL_BATCH_SIZE)):
        rate = ExampleRate(batch_size)
        start = time.perf_counter()
        per_epoch = train_and_evaluate(
            layout, eval_set, config.epochs, batch_size, config.eval_ks, config.seed, [rate]
        )
        best = max(range(len(per_epoch)), key=lambda e: per_epoch[e]["recall@10"])
        runs.append(
            {
                "batch_size": batch_size,
                "examples_per_sec": rate.rate,
                "wall_seconds": time.perf_counter() - start,
                "epochs": config.epochs,
                "best_epoch": best + 1,
                "metrics": per_epoch[best],
                "last_epoch_metrics": per_epoch[-1],
            }
        )
    result = max(runs, key=lambda r: r["metrics"]["recall@10"])
    result["all_batch_sizes"] = {
        r["batch_size"]: {
            "recall@10": r["metrics"]["recall@10"],
            "examples_per_sec": r["examples_per_sec"],
        }
        for r in runs
    }
    result["popularity"] = evaluation.evaluate(
        evaluation.popularity_scorer(eval_set), eval_set, config.eval_ks
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", type=int, default=0, help="0: the config's")
    parser.add_argument(
        "--finetune-epochs",
        type=int,
        default=0,
        help="epochs of finetune_top2 (slow on CPU); 0: as the others",
    )
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--workdir", default="", help="keep data and runs here (default: temp)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in args.models.split(","):
        if name not in MODELS:
            parser.error(f"--models: {name!r} is not one of {list(MODELS)}")

    base = load_section(args.config, "train", TrainConfig)
    if args.epochs:
        base = dataclasses.replace(base, epochs=args.epochs)
    if 10 not in base.eval_ks:
        base = dataclasses.replace(base, eval_ks=(10, *base.eval_ks))
    if args.mixed_precision:
        base = dataclasses.replace(
            base, hardware=dataclasses.replace(base.hardware, mixed_precision=True)
        )
    with tempfile.TemporaryDirectory() as temp:
        workdir = args.workdir or temp
        data_dir = make_data(workdir, args.users, args.items, args.seed)
        results = {"recipe": run_recipe(base, data_dir)}
        for name in args.models.split(","):
            epochs = args.finetune_epochs if name == "finetune_top2" else 0
            config = dataclasses.replace(
                base,
                epochs=epochs or base.epochs,
                text=dataclasses.replace(base.text, **MODELS[name]),
            )
            results[name] = run_model(name, config, data_dir, workdir)
            print(f"  {name}: done in {results[name]['wall_seconds']:.0f} s", flush=True)
    report(results, base, args)


def report(results: dict, base: TrainConfig, args: argparse.Namespace) -> None:
    recipe = results["recipe"]
    popularity = recipe.pop("popularity")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{datetime.date.today()}; data: {args.users} users x {args.items} items; "
          f"batch {base.batch_size}")  # fmt: skip
    print(f"  {'model':<14}{'epochs':>7}{'ex/s':>9}{'wall s':>8}{'R@10':>8}{'x recipe':>9}"
          f"{'NDCG@10':>9}{'x recipe':>9}")  # fmt: skip
    print(f"  {'popularity':<14}{'':>7}{'':>9}{'':>8}{popularity['recall@10']:>8.4f}"
          f"{popularity['recall@10'] / recipe['metrics']['recall@10']:>9.2f}"
          f"{popularity['ndcg@10']:>9.4f}"
          f"{popularity['ndcg@10'] / recipe['metrics']['ndcg@10']:>9.2f}")  # fmt: skip
    for name, r in results.items():
        m = r["metrics"]
        print(f"  {name:<14}{r['epochs']:>7}{r['examples_per_sec']:>9.0f}"
              f"{r['wall_seconds']:>8.0f}{m['recall@10']:>8.4f}"
              f"{m['recall@10'] / recipe['metrics']['recall@10']:>9.2f}{m['ndcg@10']:>9.4f}"
              f"{m['ndcg@10'] / recipe['metrics']['ndcg@10']:>9.2f}")  # fmt: skip
    print(f"  recipe: batch {recipe['batch_size']}, best epoch {recipe['best_epoch']}; its last "
          f"epoch R@10 {recipe['last_epoch_metrics']['recall@10']:.4f}")  # fmt: skip
    for size, run in recipe["all_batch_sizes"].items():
        print(f"  recipe at batch {size}: best R@10 {run['recall@10']:.4f}, "
              f"{run['examples_per_sec']:.0f} examples/s")  # fmt: skip
    for name in results:
        if name != "recipe":
            ratio = results[name]["metrics"]["recall@10"] / recipe["metrics"]["recall@10"]
            verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
            print(f"  target R@10 >= {TARGET_RATIO}x recipe, {name}: {ratio:.2f}x, {verdict}")
    print(json.dumps({"popularity": popularity, **results}, sort_keys=True))


if __name__ == "__main__":
    main()
