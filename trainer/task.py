"""`python -m trainer.task`: the training entry point of a Vertex AI custom-training job.

Every replica of the job runs the same command. Flags win over the environment Vertex AI
sets on each replica:

  AIP_MODEL_DIR            run directory (config, metrics, checkpoints) without `--run-dir`
  AIP_CHECKPOINT_DIR       checkpoints and BackupAndRestore state without `--checkpoint-dir`
  AIP_TENSORBOARD_LOG_DIR  TensorBoard logs without `--tensorboard-dir`
  TF_CONFIG                the cluster; with more than one training task and no `--strategy`
                           the run uses MultiWorkerMirroredStrategy
  RECSTACK_DATA_DIR        ingested data directory without `--data-dir`

Every replica gets the same paths: BackupAndRestore needs one shared directory to resume
all workers from the same step, and `trainer.train` sends the writes of non-chief workers to
private temporary directories. Only the chief prints the final metrics as JSON.

    python -m trainer.task --data-dir gs://b/data --config tfx_config/demo.yaml --epochs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from recstack.config import DEFAULT_CONFIG, load_section
from trainer.config import STRATEGIES, TrainConfig

if TYPE_CHECKING:
    from trainer.train import RunPaths

log = logging.getLogger(__name__)

MODEL_DIR_ENV = "AIP_MODEL_DIR"
CHECKPOINT_DIR_ENV = "AIP_CHECKPOINT_DIR"
TENSORBOARD_DIR_ENV = "AIP_TENSORBOARD_LOG_DIR"
TF_CONFIG_ENV = "TF_CONFIG"
DATA_DIR_ENV = "RECSTACK_DATA_DIR"
#: TF_CONFIG jobs whose tasks take part in MultiWorkerMirroredStrategy training.
TRAINING_JOBS = ("chief", "worker")


def build_parser() -> argparse.ArgumentParser:
    """The parser of `python -m trainer.task`; unset flags are None so the environment and
    the YAML file fill them."""
    parser = argparse.ArgumentParser(prog="python -m trainer.task", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--data-dir", help=f"output of `recstack ingest` (or ${DATA_DIR_ENV})")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="YAML file with a `train` section")
    parser.add_argument("--run-dir", help=f"run directory (default ${MODEL_DIR_ENV})")
    parser.add_argument("--checkpoint-dir", help=f"checkpoints (default ${CHECKPOINT_DIR_ENV})")
    parser.add_argument("--tensorboard-dir", help=f"TensorBoard (default ${TENSORBOARD_DIR_ENV})")
    parser.add_argument("--strategy", choices=STRATEGIES, help="default: from TF_CONFIG")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--checkpoint-steps", type=int, help="steps between backups (0: epoch)")
    parser.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction)
    parser.add_argument("--jit-compile", action=argparse.BooleanOptionalAction)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a train field, dotted for nested ones (repeatable)",
    )
    return parser


def resolve_data_dir(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """`--data-dir`, else `$RECSTACK_DATA_DIR`.

    Raises:
      ValueError: neither is set.
    """
    data_dir = args.data_dir or environ.get(DATA_DIR_ENV, "")
    if not data_dir:
        raise ValueError(f"--data-dir is required (or set {DATA_DIR_ENV}): the ingested data")
    return data_dir


def resolve_paths(args: argparse.Namespace, environ: Mapping[str, str]) -> RunPaths:
    """Where the run writes: each flag, else its Vertex AI variable (`AIP_*`).

    An unset checkpoint or TensorBoard directory stays empty, which `RunPaths` reads as "inside
    the run directory".

    Raises:
      ValueError: neither `--run-dir` nor `AIP_MODEL_DIR` is set.
    """
    from trainer.train import RunPaths  # Loads TensorFlow: not needed for `--help`.

    run_dir = args.run_dir or environ.get(MODEL_DIR_ENV, "")
    if not run_dir:
        raise ValueError(
            f"--run-dir is required outside Vertex AI, which sets {MODEL_DIR_ENV} instead"
        )
    return RunPaths(
        run_dir=run_dir,
        checkpoint_dir=args.checkpoint_dir or environ.get(CHECKPOINT_DIR_ENV, ""),
        tensorboard_dir=args.tensorboard_dir or environ.get(TENSORBOARD_DIR_ENV, ""),
    )


def resolve_config(args: argparse.Namespace, environ: Mapping[str, str]) -> TrainConfig:
    """The `train` section of `--config` with the flags applied.

    Without `--strategy`, a `TF_CONFIG` naming more than one chief/worker task turns a
    `default` or `mirrored` strategy into `multi_worker` (each replica would otherwise train
    its own model); a single task leaves the file's strategy alone.

    Raises:
      ValueError: a flag or the file holds an impossible value (the message names it), or
        `TF_CONFIG` is not JSON, or `multi_worker` is asked for without a cluster.
    """
    config = load_section(
        args.config,
        "train",
        TrainConfig,
        args.set,
        epochs=args.epochs,
        checkpoint_steps=args.checkpoint_steps,
    )
    hardware = config.hardware
    tasks = training_tasks(environ)
    strategy = args.strategy
    if strategy is None and tasks > 1 and hardware.strategy in ("default", "mirrored"):
        strategy = "multi_worker"
        log.info("%s names %d training tasks: using multi_worker", TF_CONFIG_ENV, tasks)
    elif tasks > 1 and (strategy or hardware.strategy) != "multi_worker":
        log.warning(
            "%s names %d training tasks but the strategy is %s: each task trains its own model",
            TF_CONFIG_ENV, tasks, strategy or hardware.strategy,
        )  # fmt: skip
    if (strategy or hardware.strategy) == "multi_worker" and tasks == 0:
        raise ValueError(
            f"strategy multi_worker needs {TF_CONFIG_ENV} naming the cluster, e.g. "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
            '"task": {"type": "worker", "index": 0}}; or pass --strategy default'
        )
    overrides = {
        "strategy": strategy,
        "mixed_precision": args.mixed_precision,
        "jit_compile": args.jit_compile,
    }
    hardware = dataclasses.replace(
        hardware, **{k: v for k, v in overrides.items() if v is not None}
    )
    return dataclasses.replace(config, hardware=hardware)


def training_tasks(environ: Mapping[str, str]) -> int:
    """Number of chief and worker tasks in `TF_CONFIG` (0 when it is unset or has no cluster).

    Raises:
      ValueError: `TF_CONFIG` is not a JSON object, or its cluster is not a mapping of job
        names to address lists.
    """
    cluster = _tf_config(environ).get("cluster", {})
    if not isinstance(cluster, dict) or not all(isinstance(v, list) for v in cluster.values()):
        raise ValueError(
            f"{TF_CONFIG_ENV} cluster={cluster!r} must map job names to lists of host:port"
        )
    return sum(len(cluster.get(job, [])) for job in TRAINING_JOBS)


def is_chief_task(config: TrainConfig, environ: Mapping[str, str]) -> bool:
    """True on the replica that reports: every replica unless training is multi-worker, then
    the `chief` task, or worker 0 when the cluster has no chief (as `distribute.is_chief`)."""
    if config.hardware.strategy != "multi_worker":
        return True
    from trainer import distribute  # Lazy: resolving flags needs no TensorFlow.

    tf_config = _tf_config(environ)
    task = tf_config.get("task", {})
    return distribute.is_chief_task(
        task.get("type"), task.get("index"), tf_config.get("cluster", {})
    )


def _tf_config(environ: Mapping[str, str]) -> dict[str, Any]:
    text = environ.get(TF_CONFIG_ENV, "")
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{TF_CONFIG_ENV} is not valid JSON ({e}): {text[:200]!r}") from e
    if not isinstance(value, dict):
        raise ValueError(f"{TF_CONFIG_ENV} must be a JSON object, got {text[:200]!r}")
    return value


def _task_label(environ: Mapping[str, str]) -> str:
    task = _tf_config(environ).get("task", {})
    return f"{task['type']}:{task.get('index', 0)} " if "type" in task else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Parses flags and environment, trains, and prints the metrics JSON on the chief.

    Returns:
      The exit status (0); bad flags or environment exit with status 2 and a message.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    environ = os.environ
    try:
        label = _task_label(environ)
    except ValueError as e:
        parser.error(str(e))
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s {label}%(name)s: %(message)s",
    )
    try:
        data_dir = resolve_data_dir(args, environ)
        paths = resolve_paths(args, environ)
        config = resolve_config(args, environ)
    except ValueError as e:
        parser.error(str(e))
    log.info("training on %s with strategy %s into %s", data_dir, config.hardware.strategy, paths)
    from trainer.train import train

    result = train(config, data_dir, paths, verbose=2)
    if is_chief_task(config, environ):
        print(json.dumps(result.metrics, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
