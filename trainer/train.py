"""Trains the recommender from an ingested data directory into a run directory.

Run directory layout (what `recstack export` and TensorBoard read):
  run_config.json      the TrainConfig, the data directory it was trained on and the run it
                       was warm-started from (`warm_start_from`, "" for none)
  vocab/tables.json    the ids of every id embedding's rows, for warm-starting a later run
                       (`trainer.warm_start`) without this run's data directory
  warm_start.json      what warm starting carried over (`WarmStartReport`), when warm-started
  checkpoints/         tf.train checkpoints, one per epoch (the latest is exported)
  backup/              BackupAndRestore state while fit runs (resumes an interrupted run)
  tensorboard/         train/ (Keras epoch scalars; step scalars: losses, learning rate,
                       examples/sec; embedding histograms; an optional profiler trace),
                       validation/, eval/ (retrieval metrics vs popularity), projector/
                       (item embeddings with titles), and the hparams summary of the config
  metrics.json         final eval metrics of the model and of the popularity baseline

Checkpoints and TensorBoard logs may live elsewhere (`RunPaths`), as Vertex AI asks.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence

import tensorflow as tf
import tf_keras

from recstack import config as config_lib
from recstack import features as F
from trainer import callbacks, data, evaluation, files, text_inputs
from trainer import tensorboard as tb
from trainer.catalog import read_catalog
from trainer.config import TrainConfig
from trainer.distribute import is_chief, make_strategy, writer_dir
from trainer.model import RecommenderModel
from trainer.warm_start import save_id_tables, warm_start

log = logging.getLogger(__name__)

RUN_CONFIG_FILE = "run_config.json"
METRICS_FILE = "metrics.json"
WARM_START_FILE = "warm_start.json"
CHECKPOINT_DIR = "checkpoints"
BACKUP_DIR = "backup"
TENSORBOARD_DIR = "tensorboard"
#: Ranking figures reported in metrics.json (whichever the objective produces).
RANKING_METRICS = ("rmse", "auc", "ranking_loss")


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """Where a run writes.

    Attributes:
      run_dir: Run config and metrics (and, by default, everything else).
      checkpoint_dir: Checkpoints and the BackupAndRestore state; default `run_dir`.
      tensorboard_dir: TensorBoard logs; default `run_dir/tensorboard`.
    """

    run_dir: str
    checkpoint_dir: str = ""
    tensorboard_dir: str = ""

    @property
    def checkpoints(self) -> str:
        return os.path.join(self.checkpoint_dir or self.run_dir, CHECKPOINT_DIR)

    @property
    def backup(self) -> str:
        return os.path.join(self.checkpoint_dir or self.run_dir, BACKUP_DIR)

    @property
    def tensorboard(self) -> str:
        return self.tensorboard_dir or os.path.join(self.run_dir, TENSORBOARD_DIR)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a finished training run produced.

    Attributes:
      run_dir: The run directory.
      metrics: `{"model": {name: value}, "popularity": {name: value}}` on the eval split
        (`evaluation.metric_names`), plus `"ranking": {...}` with a ranking task.
      checkpoint: Path prefix of the last checkpoint.
    """

    run_dir: str
    metrics: dict[str, dict[str, float]]
    checkpoint: str


def build_model(config: TrainConfig, data_dir: str, restoring: bool = False) -> RecommenderModel:
    """The compiled (untrained) model for the vocabularies and catalog of `data_dir`; call it
    inside the strategy's scope. With `restoring`, frozen text vectors are left for the
    checkpoint to fill instead of being computed."""
    layout = F.DataLayout(data_dir)
    catalog = read_catalog(layout)
    text_vectors, text_encoder = text_inputs.build(
        config.text, config.embedding_dim, catalog, restoring
    )
    model = RecommenderModel(
        data.read_vocabulary(layout.user_vocab),
        data.read_vocabulary(layout.item_vocab),
        catalog,
        config,
        text_vectors=text_vectors,
        text_encoder=text_encoder,
    )
    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate=config.learning_rate),
        jit_compile=config.hardware.jit_compile,
        steps_per_execution=config.hardware.steps_per_execution,
    )
    return model


def _dataset(
    pattern: str, config: TrainConfig, shuffle: bool, rows: int | None = None
) -> tf.data.Dataset:
    """Batched model features of a split; with `rows`, the dataset declares its cardinality
    (`ceil(rows / batch_size)` batches), so Keras knows the steps of an epoch before the first
    one ends, which step-level `BackupAndRestore` needs to resume mid-epoch."""
    dataset = data.make_training_dataset(
        pattern,
        config.batch_size,
        config.query.history_length,
        shuffle_buffer=config.shuffle_buffer if shuffle else 0,
        seed=config.seed,
    )
    if rows is not None:
        steps = -(-rows // config.batch_size)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    options = tf.data.Options()
    # Shard by element: the data may have fewer files than there are workers.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def train(
    config: TrainConfig,
    data_dir: str,
    run_dir: str | RunPaths,
    verbose: int = 2,
    extra_callbacks: Sequence[tf_keras.callbacks.Callback] = (),
    warm_start_from: str = "",
) -> TrainResult:
    """Trains, evaluates after every epoch, checkpoints, and writes TensorBoard logs.

    A run interrupted mid-way (even by SIGKILL) resumes from its last backup (every
    `checkpoint_steps` steps, else every epoch) when called again with the same paths.

    With `warm_start_from`, a fresh run starts from that run's latest checkpoint, its user and
    item vocabularies grown to this data's (`trainer.warm_start`; continuous training); a
    resumed run continues from its own backup instead.

    Args:
      config: Hyperparameters.
      data_dir: Output directory of `recstack ingest`.
      run_dir: Run directory, or `RunPaths` placing checkpoints and logs elsewhere.
      verbose: Keras fit verbosity (1 = progress bar, 2 = one line per epoch).
      extra_callbacks: More Keras callbacks, run after the built-in ones.
      warm_start_from: Run directory of a finished run with the same config to initialise
        from ("": random initialisation).

    Raises:
      ValueError: `warm_start_from` was trained with another embedding_dim or architecture.
    """
    paths = run_dir if isinstance(run_dir, RunPaths) else RunPaths(run_dir)
    tf_keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.hardware)
    layout = F.DataLayout(data_dir)
    chief = is_chief(strategy)  # Other workers compute the same results and write nothing.
    if chief:
        files.ensure_dir(paths.run_dir)
        files.write_json(
            os.path.join(paths.run_dir, RUN_CONFIG_FILE),
            {"data_dir": data_dir, "train": config.to_dict(), "warm_start_from": warm_start_from},
        )
    train_rows = files.read_json(layout.stats)[F.STAT_TRAIN_ROWS]
    train_data = _dataset(layout.train_pattern, config, shuffle=True, rows=train_rows)
    eval_data = _dataset(layout.eval_pattern, config, shuffle=False)
    with strategy.scope():
        model = build_model(config, data_dir)
        # Builds the variables, in the scope so they are distributed, before BackupAndRestore
        # restores them.
        model(next(iter(train_data)))
        if warm_start_from:
            _warm_start(model, warm_start_from, paths, chief)
    if chief:
        save_id_tables(model, paths.run_dir)
    evaluator = callbacks.RetrievalEvaluation(
        evaluation.build_eval_set(layout, config.query.history_length, model.catalog.ids),
        config.eval_ks,
        writer_dir(os.path.join(paths.tensorboard, "eval"), strategy),
    )
    board = writer_dir(paths.tensorboard, strategy)
    metric_tags = [f"eval/{name}" for name in evaluation.metric_names(config.eval_ks)]
    tb.write_hparams(board, config.to_dict(), metric_tags)
    save_freq = config.checkpoint_steps or "epoch"
    history = model.fit(
        train_data,
        epochs=config.epochs,
        validation_data=eval_data,
        verbose=verbose,
        callbacks=[
            tf_keras.callbacks.BackupAndRestore(paths.backup, save_freq=save_freq),
            tf_keras.callbacks.TensorBoard(board, update_freq="epoch"),
            *_tensorboard_callbacks(config, model, board),
            callbacks.CheckpointEachEpoch(writer_dir(paths.checkpoints, strategy)),
            evaluator,
            *extra_callbacks,
        ],
    )
    if "model" not in evaluator.latest:  # Resumed after the last epoch had already finished.
        evaluator.on_epoch_end(config.epochs - 1)
    metrics = dict(evaluator.latest)
    if model.ranker is not None:
        # The last epoch's validation pass already measured the eval split; evaluate only when
        # fit ran no epoch (a resumed run that had finished).
        results = {
            name[len("val_") :]: values[-1]
            for name, values in history.history.items()
            if name.startswith("val_")
        }
        if not results:
            results = model.evaluate(eval_data, verbose=0, return_dict=True)
        metrics["ranking"] = {k: float(v) for k, v in results.items() if k in RANKING_METRICS}
    tb.write_final_metrics(
        board, {f"eval/{name}": value for name, value in metrics["model"].items()}, config.epochs
    )
    if chief:
        files.write_json(os.path.join(paths.run_dir, METRICS_FILE), metrics)
    checkpoint = tf.train.latest_checkpoint(paths.checkpoints)
    log.info("trained %s; checkpoint %s", paths.run_dir, checkpoint)
    return TrainResult(run_dir=paths.run_dir, metrics=metrics, checkpoint=checkpoint)


def _warm_start(model: RecommenderModel, base_run_dir: str, paths: RunPaths, chief: bool) -> None:
    """Warm-starts a fresh run and writes `warm_start.json`; a run with BackupAndRestore state
    is resuming its own progress, which fit restores over any initialisation."""
    # BackupAndRestore keeps its checkpoint in a subdirectory (`chief/`) until fit ends.
    backups = [os.path.join(paths.backup, *parts, "*.index") for parts in ((), ("*",))]
    if any(tf.io.gfile.glob(pattern) for pattern in backups):
        log.info("resuming %s from its backup, not warm-starting it", paths.run_dir)
        return
    report = warm_start(model, base_run_dir)
    if chief:
        files.write_json(os.path.join(paths.run_dir, WARM_START_FILE), report.to_dict())


def _tensorboard_callbacks(
    config: TrainConfig, model: RecommenderModel, board: str
) -> list[tf_keras.callbacks.Callback]:
    """Step scalars, embedding histograms, the item projector and the profiler window."""
    settings, catalog = config.tensorboard, model.catalog
    train_dir = os.path.join(board, "train")
    result: list[tf_keras.callbacks.Callback] = [
        tb.TrainingScalars(train_dir, settings.update_steps, batch_size=config.batch_size)
    ]
    if settings.histograms:
        tables = {
            "item_id": model.item_embedding.embedding.embeddings,
            "user_id": model.query_model.user_embedding.embedding.embeddings,
        }
        result.append(tb.EmbeddingHistograms(train_dir, tables))
    if settings.projector_items:
        ids = catalog.ids[: settings.projector_items]
        result.append(
            tb.EmbeddingProjector(
                os.path.join(board, "projector"),
                lambda: model.embed_items(ids),
                ids,
                catalog.titles[: settings.projector_items],
            )  # fmt: skip
        )
    if settings.profile_steps:
        result.append(tb.ProfilerWindow(train_dir, tuple(settings.profile_steps)))
    return result


def load_run_config(run_dir: str) -> tuple[TrainConfig, str]:
    """Returns the `(TrainConfig, data_dir)` a run was trained with."""
    saved = files.read_json(os.path.join(run_dir, RUN_CONFIG_FILE))
    return config_lib.from_dict(TrainConfig, saved["train"]), saved["data_dir"]


def restore_model(
    run_dir: str, checkpoint_dir: str = ""
) -> tuple[RecommenderModel, TrainConfig, str]:
    """Rebuilds the model of a finished run from its config and latest checkpoint.

    Returns:
      (model, config, data_dir).

    Raises:
      FileNotFoundError: the run has no checkpoint yet.
      AssertionError: the checkpoint lacks some of the model's variables (it was written by a
        different model).
    """
    config, data_dir = load_run_config(run_dir)
    model = build_model(config, data_dir, restoring=True)
    directory = RunPaths(run_dir, checkpoint_dir).checkpoints
    checkpoint = tf.train.latest_checkpoint(directory)
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint in {directory}; run `recstack train`")
    # Every variable of the model (frozen text vectors included) must come from the checkpoint;
    # the optimizer's slots may stay behind.
    status = tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
    status.assert_existing_objects_matched()
    return model, config, data_dir
