"""Keras callbacks of the training loop: checkpoints and full-corpus evaluation."""

from __future__ import annotations

import logging

import tensorflow as tf
import tf_keras

from trainer import evaluation

log = logging.getLogger(__name__)


class CheckpointEachEpoch(tf_keras.callbacks.Callback):
    """Saves the model's variables with a `tf.train.CheckpointManager` after every epoch.

    These are the checkpoints `recstack export` restores (BackupAndRestore's are for resuming
    an interrupted fit and are deleted when fit ends).
    """

    def __init__(self, directory: str, max_to_keep: int = 3) -> None:
        super().__init__()
        self.directory = directory
        self.max_to_keep = max_to_keep
        self._manager: tf.train.CheckpointManager | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._manager is None:
            checkpoint = tf.train.Checkpoint(model=self.model)
            self._manager = tf.train.CheckpointManager(
                checkpoint, self.directory, max_to_keep=self.max_to_keep
            )
        self._manager.save(checkpoint_number=epoch + 1)


class RetrievalEvaluation(tf_keras.callbacks.Callback):
    """Full-corpus retrieval metrics of the model and of the popularity baseline per epoch.

    Writes TensorBoard scalars `<metric>` and `popularity_<metric>` (`evaluation.metric_names`,
    e.g. `recall@10`, `ndcg@10`, `mrr`) under `log_dir`, adds `eval_<metric>` to the epoch
    logs, and keeps the latest figures in `self.latest` (`{"model": {name: value},
    "popularity": {name: value}}`).
    """

    def __init__(self, eval_set: evaluation.EvalSet, ks: tuple[int, ...], log_dir: str) -> None:
        super().__init__()
        self.eval_set = eval_set
        self.ks = ks
        self.writer = tf.summary.create_file_writer(log_dir)
        self.popularity = evaluation.evaluate(evaluation.popularity_scorer(eval_set), eval_set, ks)
        self.latest: dict[str, dict[str, float]] = {"popularity": self.popularity}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        items = self.model.embed_items(self.eval_set.corpus_ids)
        queries = self.model.embed_queries(self.eval_set.queries)
        scorer = evaluation.embedding_scorer(queries, items)
        metrics = evaluation.evaluate(scorer, self.eval_set, self.ks)
        self.latest["model"] = metrics
        with self.writer.as_default(step=epoch + 1):
            for name, value in metrics.items():
                tf.summary.scalar(name, value)
                tf.summary.scalar(f"popularity_{name}", self.popularity[name])
        self.writer.flush()
        if logs is not None:
            logs.update({f"eval_{name}": value for name, value in metrics.items()})
        figures = ", ".join(
            f"{name} {value:.4f} (popularity {self.popularity[name]:.4f})"
            for name, value in metrics.items()
        )
        log.info("epoch %d eval: %s", epoch + 1, figures)
