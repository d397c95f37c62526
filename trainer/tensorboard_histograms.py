"""Per-epoch TensorBoard histograms of embedding tables."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import tensorflow as tf
import tf_keras

VALUES_PREFIX = "embeddings/"
ROW_NORMS_PREFIX = "embedding_norms/"

TensorSource = tf.Variable | Callable[[], tf.Tensor]
EmbeddingSources = Mapping[str, TensorSource] | Callable[[], Mapping[str, tf.Tensor]]


class EmbeddingHistograms(tf_keras.callbacks.Callback):
    """Writes histograms of embedding tables after every epoch.

    For each table `name` of shape `[num_rows, embedding_dim]` it writes, at step `epoch + 1`:
      `embeddings/<name>`       all the table's values;
      `embedding_norms/<name>`  the L2 norm of each row (`[num_rows]`), which shows collapse
                                (norms shrinking to 0) or a few rows (popular ids) growing
                                far longer than the rest, which the values alone hide.
    Tables of rank other than 2 get only the values histogram.
    """

    def __init__(self, log_dir: str, embeddings: EmbeddingSources) -> None:
        """Creates the callback; the summary writer is opened when training begins.

        Args:
          log_dir: Directory of the event files (e.g. `<run_dir>/tensorboard/train`).
          embeddings: `{name: table}` where a table is a `tf.Variable` or a callable returning
            a tensor (or Variable, or array), e.g.
            `{"item": lambda: model.item_model.embedding.embeddings}`; or a callable returning
            such a `{name: tensor}` dict, called after every epoch (for tables created only
            once the model is built).

        Raises:
          ValueError: `embeddings` is an empty dict.
          TypeError: `embeddings` or one of its entries is neither a Variable nor a callable
            (a callable returning something other than a dict raises it after the epoch).
        """
        super().__init__()
        if isinstance(embeddings, Mapping):
            if not embeddings:
                raise ValueError("embeddings={} is empty; pass {name: variable or callable}")
            for name, source in embeddings.items():
                if not (isinstance(source, tf.Variable) or callable(source)):
                    raise TypeError(
                        f"embeddings[{name!r}] is a {type(source).__name__}; pass a tf.Variable "
                        "or a callable returning the table"
                    )
        elif not callable(embeddings):
            raise TypeError(
                f"embeddings is a {type(embeddings).__name__}; pass a dict or a callable "
                "returning one"
            )
        self.log_dir = log_dir
        self.embeddings = embeddings
        self._writer: tf.summary.SummaryWriter | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        with self._writer.as_default(step=epoch + 1):
            for name, table in self._tables().items():
                tf.summary.histogram(VALUES_PREFIX + name, table)
                if table.shape.rank == 2:
                    tf.summary.histogram(ROW_NORMS_PREFIX + name, tf.norm(table, axis=1))
        self._writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _tables(self) -> dict[str, tf.Tensor]:
        if isinstance(self.embeddings, Mapping):
            sources = {
                name: source if isinstance(source, tf.Variable) else source()
                for name, source in self.embeddings.items()
            }
        else:
            sources = self.embeddings()
            if not isinstance(sources, Mapping):
                raise TypeError(
                    f"the embeddings callable returned a {type(sources).__name__}; it must "
                    "return a {name: tensor} dict"
                )
            if not sources:
                raise ValueError("the embeddings callable returned {}; it must name a table")
        return {name: tf.convert_to_tensor(table) for name, table in sources.items()}
