"""Trains the retrieval model from an ingested data directory into a run directory.

Run directory layout (what `recstack export` and TensorBoard read):
  run_config.json      the TrainConfig and the data directory it was trained on
  checkpoints/         tf.train checkpoints, one per epoch (the latest is exported)
  backup/              BackupAndRestore state while fit runs (resumes an interrupted run)
  tensorboard/         train/ (loss, learning rate) and eval/ (recall@k vs popularity)
  metrics.json         final eval recall@k of the model and of the popularity baseline
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence

import tensorflow as tf
import tf_keras

from recstack import features as F
from trainer import callbacks, data, evaluation, files
from trainer.config import TrainConfig
from trainer.model import TwoTowerModel

log = logging.getLogger(__name__)

RUN_CONFIG_FILE = "run_config.json"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"
BACKUP_DIR = "backup"
TENSORBOARD_DIR = "tensorboard"


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a finished training run produced.

    Attributes:
      run_dir: The run directory.
      metrics: `{"model": {k: recall}, "popularity": {k: recall}}` on the eval split.
      checkpoint: Path prefix of the last checkpoint.
    """

    run_dir: str
    metrics: dict[str, dict[int, float]]
    checkpoint: str


def build_model(config: TrainConfig, data_dir: str) -> TwoTowerModel:
    """The compiled (untrained) model for the vocabularies of `data_dir`."""
    layout = F.DataLayout(data_dir)
    model = TwoTowerModel(
        data.read_vocabulary(layout.user_vocab), data.read_vocabulary(layout.item_vocab), config
    )
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=config.learning_rate))
    return model


def train(
    config: TrainConfig,
    data_dir: str,
    run_dir: str,
    verbose: int = 2,
    extra_callbacks: Sequence[tf_keras.callbacks.Callback] = (),
) -> TrainResult:
    """Trains, evaluates after every epoch, checkpoints, and writes TensorBoard logs.

    A run interrupted mid-way (even by SIGKILL) resumes from its last completed epoch when
    called again with the same `run_dir`.

    Args:
      config: Hyperparameters.
      data_dir: Output directory of `recstack ingest`.
      run_dir: Where checkpoints, logs and metrics go (created if missing).
      verbose: Keras fit verbosity (1 = progress bar, 2 = one line per epoch).
      extra_callbacks: More Keras callbacks (early stopping, custom logging...), run after
        the built-in ones.
    """
    tf_keras.utils.set_random_seed(config.seed)
    layout = F.DataLayout(data_dir)
    files.ensure_dir(run_dir)
    files.write_json(
        os.path.join(run_dir, RUN_CONFIG_FILE), {"data_dir": data_dir, "train": config.to_dict()}
    )
    model = build_model(config, data_dir)
    train_data = data.make_dataset(
        layout.train_pattern, config.batch_size, shuffle_buffer=config.shuffle_buffer,
        seed=config.seed,
    )  # fmt: skip
    evaluator = callbacks.RetrievalEvaluation(
        evaluation.build_eval_set(layout),
        config.eval_ks,
        os.path.join(run_dir, TENSORBOARD_DIR, "eval"),
    )
    model(next(iter(train_data)))  # Builds the variables so BackupAndRestore can restore them.
    model.fit(
        train_data,
        epochs=config.epochs,
        verbose=verbose,
        callbacks=[
            tf_keras.callbacks.BackupAndRestore(os.path.join(run_dir, BACKUP_DIR)),
            tf_keras.callbacks.TensorBoard(
                os.path.join(run_dir, TENSORBOARD_DIR), update_freq="epoch"
            ),
            callbacks.CheckpointEachEpoch(os.path.join(run_dir, CHECKPOINT_DIR)),
            evaluator,
            *extra_callbacks,
        ],
    )
    if "model" not in evaluator.latest:  # Resumed after the last epoch had already finished.
        evaluator.on_epoch_end(config.epochs - 1)
    files.write_json(os.path.join(run_dir, METRICS_FILE), evaluator.latest)
    checkpoint = tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINT_DIR))
    log.info("trained %s; checkpoint %s", run_dir, checkpoint)
    return TrainResult(run_dir=run_dir, metrics=evaluator.latest, checkpoint=checkpoint)


def restore_model(run_dir: str) -> tuple[TwoTowerModel, TrainConfig, str]:
    """Rebuilds the model of a finished run from its config and latest checkpoint.

    Returns:
      (model, config, data_dir).

    Raises:
      FileNotFoundError: the run has no checkpoint yet.
    """
    saved = files.read_json(os.path.join(run_dir, RUN_CONFIG_FILE))
    config = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in saved["train"].items()})  # fmt: skip
    model = build_model(config, saved["data_dir"])
    checkpoint = tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINT_DIR))
    if checkpoint is None:
        raise FileNotFoundError(
            f"no checkpoint in {run_dir}/{CHECKPOINT_DIR}; run `recstack train`"
        )
    tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
    return model, config, saved["data_dir"]
