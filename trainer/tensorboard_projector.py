"""TensorBoard embedding projector files for the item embeddings."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tf_keras
from tensorboard.plugins import projector

METADATA_FILE = "metadata.tsv"
CHECKPOINT_NAME = "embeddings"
TENSOR_KEY = "item_embeddings"
# The key tf.train.Checkpoint(item_embeddings=variable) stores the variable's value under.
TENSOR_NAME = f"{TENSOR_KEY}/.ATTRIBUTES/VARIABLE_VALUE"


class EmbeddingProjector(tf_keras.callbacks.Callback):
    """Writes the projector plugin's files for item embeddings when training ends.

    Files under `log_dir` (which TensorBoard shows as one projector run):
      `embeddings-<k>.*`, `checkpoint`  a `tf.train` checkpoint holding the `[n, d]`
                                       embeddings under `TENSOR_NAME` (only the latest kept);
      `metadata.tsv`                   header `item_id<TAB>title`, then one row per item,
                                       in the embeddings' row order;
      `projector_config.pbtxt`         points the projector at the tensor and the metadata
                                       (paths relative to `log_dir`; the plugin finds the
                                       latest checkpoint through the `checkpoint` file);
      `events.out.tfevents.*`          empty, so TensorBoard sees `log_dir` as a run (it
                                       looks for projector configs in runs only).
    Tabs and line breaks (newlines, carriage returns and the others `str.splitlines` knows) in
    ids and titles become spaces so each item stays one row of two columns.
    """

    def __init__(
        self,
        log_dir: str,
        embeddings_fn: Callable[[], np.ndarray],
        item_ids: Sequence[str | bytes],
        titles: Sequence[str | bytes],
        max_items: int | None = None,
        each_epoch: bool = False,
    ) -> None:
        """Creates the callback; nothing is written before training ends (or an epoch does).

        Args:
          log_dir: Directory of the projector files, e.g. `<run_dir>/tensorboard/projector`.
          embeddings_fn: Returns the item embeddings, float `[n, d]`, row i for `item_ids[i]`
            (e.g. `lambda: model.embed_items(ids)`).
          item_ids: `[n]` item ids (str, or UTF-8 bytes as read from a vocabulary).
          titles: `[n]` display titles, same order.
          max_items: Keep only the first `max_items` items (the projector gets slow beyond
            ~100k points). None keeps all.
          each_epoch: Also write after every epoch (the projector shows the latest).

        Raises:
          ValueError: `item_ids` and `titles` differ in length, are empty, or `max_items`
            is below 1.
        """
        super().__init__()
        if len(item_ids) != len(titles):
            raise ValueError(
                f"{len(item_ids)} item_ids but {len(titles)} titles; pass one title per item"
            )
        if not len(item_ids):
            raise ValueError("item_ids is empty; pass the ids of the embedded items")
        if max_items is not None and max_items < 1:
            raise ValueError(f"max_items={max_items} must be at least 1, or None to keep all")
        self.log_dir = log_dir
        self.embeddings_fn = embeddings_fn
        self.num_items = len(item_ids)
        self.max_items = self.num_items if max_items is None else min(max_items, self.num_items)
        self.item_ids = [_cell(i) for i in item_ids[: self.max_items]]
        self.titles = [_cell(t) for t in titles[: self.max_items]]
        self.each_epoch = each_epoch
        self._variable: tf.Variable | None = None
        self._manager: tf.train.CheckpointManager | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.each_epoch:
            self.write()

    def on_train_end(self, logs: dict | None = None) -> None:
        self.write()

    def write(self) -> str:
        """Writes the current embeddings, the metadata and the projector config.

        Returns:
          The checkpoint path prefix holding the embeddings.

        Raises:
          ValueError: `embeddings_fn` returned something other than `[n, d]` for the `n`
            item ids given.
        """
        embeddings = np.asarray(self.embeddings_fn())
        if embeddings.ndim != 2 or embeddings.shape[0] != self.num_items:
            raise ValueError(
                f"embeddings_fn returned shape {embeddings.shape}, expected "
                f"[{self.num_items}, embedding_dim] (one row per item id); embed the same ids "
                "that were passed as item_ids"
            )
        embeddings = embeddings[: self.max_items]
        if self._manager is None:
            self._create(embeddings)
        else:
            self._variable.assign(embeddings)
        return self._manager.save()

    def _create(self, embeddings: np.ndarray) -> None:
        tf.io.gfile.makedirs(self.log_dir)
        self._variable = tf.Variable(embeddings, trainable=False, name=TENSOR_KEY)
        self._manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(**{TENSOR_KEY: self._variable}),
            self.log_dir,
            max_to_keep=1,
            checkpoint_name=CHECKPOINT_NAME,
        )
        rows = ["item_id\ttitle"] + [
            f"{i}\t{t}" for i, t in zip(self.item_ids, self.titles, strict=True)
        ]
        with tf.io.gfile.GFile(os.path.join(self.log_dir, METADATA_FILE), "w") as f:
            f.write("\n".join(rows) + "\n")
        config = projector.ProjectorConfig()
        embedding = config.embeddings.add()
        embedding.tensor_name = TENSOR_NAME
        embedding.metadata_path = METADATA_FILE
        projector.visualize_embeddings(self.log_dir, config)
        # TensorBoard only looks for projector configs in runs, i.e. directories holding an
        # event file (or the root log dir): an empty one makes `log_dir` a run.
        tf.summary.create_file_writer(self.log_dir).close()


def _cell(value: str | bytes) -> str:
    """`value` as one TSV cell: decoded, with tabs and line breaks turned into spaces."""
    text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    return " ".join(text.replace("\t", " ").splitlines())
