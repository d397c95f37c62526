"""Choosing the `tf.distribute` strategy and numeric policy from `HardwareConfig`."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable

import tensorflow as tf
import tf_keras

from trainer.config import HardwareConfig


def make_strategy(hardware: HardwareConfig) -> tf.distribute.Strategy:
    """Returns the strategy named by `hardware.strategy` and sets the mixed-precision policy.

    - `default`: the default strategy (one CPU or GPU).
    - `mirrored`: `MirroredStrategy` over every local GPU (CPU when there is none).
    - `multi_worker`: `MultiWorkerMirroredStrategy`; the cluster comes from `TF_CONFIG`.
    - `tpu`: `TPUStrategy` on `hardware.tpu` (or the environment's TPU).

    Raises:
      ValueError: `multi_worker` without a `TF_CONFIG` naming a cluster.
    """
    if hardware.mixed_precision:
        policy = "mixed_bfloat16" if hardware.strategy == "tpu" else "mixed_float16"
        tf_keras.mixed_precision.set_global_policy(policy)
    else:
        tf_keras.mixed_precision.set_global_policy("float32")
    if hardware.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if hardware.strategy == "multi_worker":
        if "cluster" not in json.loads(os.environ.get("TF_CONFIG", "{}")):
            raise ValueError(
                "hardware.strategy=multi_worker needs TF_CONFIG with a cluster and this task's "
                'type and index, e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                '"task": {"type": "worker", "index": 0}}'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if hardware.strategy == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=hardware.tpu or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the task that writes checkpoints, metrics and TensorBoard logs: the only task
    outside multi-worker training, else the chief (or worker 0 when there is no chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return is_chief_task(resolver.task_type, resolver.task_id, resolver.cluster_spec().jobs)


def is_chief_task(task_type: str | None, task_id: int | None, jobs: Iterable[str]) -> bool:
    """The chief rule of a cluster with `jobs` (e.g. `["chief", "worker"]`): the `chief` task,
    or worker 0 when the cluster has no chief."""
    if task_type == "chief":
        return True
    return task_type == "worker" and int(task_id or 0) == 0 and "chief" not in jobs


def writer_dir(directory: str, strategy: tf.distribute.Strategy) -> str:
    """`directory` on the chief; a private temporary directory on other workers, which must
    still write (saving is collective) but whose files nobody reads."""
    if is_chief(strategy):
        return directory
    return tempfile.mkdtemp(prefix=f"worker-{strategy.cluster_resolver.task_id}-")
