"""The two towers: queries (user, recent items, context) and candidates (item id, categories,
text), both mapping into the shared `embedding_dim` retrieval space."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from recstack import features as F
from trainer.history import HistoryEncoder
from trainer.id_embedding import IdEmbedding
from trainer.pooling import masked_mean

#: Widths of the context embeddings.
HOUR_DIM, WEEKDAY_DIM = 8, 4


class QueryTower(tf_keras.layers.Layer):
    """Query features -> `[batch, dim]`.

    Args:
      user_vocabulary: Known user ids (unknown users hash into OOV rows; their history still
        describes them).
      item_embedding: The candidate tower's item id embedding, shared by the history encoder.
      dim: Output width.
      num_oov_buckets: OOV rows of the user embedding.
      history_length: History slots (0: no history).
      attention_layers, attention_heads: Self-attention over the history (see
        `HistoryEncoder`).
      use_context: Add hour-of-day and weekday embeddings.

    Call:
      features: `{user_id: string [batch], history_item_ids: string [batch, history_length],
        hour: int [batch], weekday: int [batch]}` (history and context only when enabled).
      Returns: float32 `[batch, dim]`.
    """

    def __init__(
        self,
        user_vocabulary: list[str],
        item_embedding: tf_keras.layers.Layer,
        dim: int,
        num_oov_buckets: int = 1,
        history_length: int = 20,
        attention_layers: int = 0,
        attention_heads: int = 2,
        use_context: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.history_length, self.use_context = history_length, use_context
        self.user_embedding = IdEmbedding(user_vocabulary, dim, num_oov_buckets, name="user_id")
        self.history = (
            HistoryEncoder(
                item_embedding,
                history_length,
                dim,
                attention_layers,
                attention_heads,
                name="history",
            )  # fmt: skip
            if history_length
            else None
        )
        if use_context:
            self.hour = tf_keras.layers.Embedding(24, HOUR_DIM, name="hour")
            self.weekday = tf_keras.layers.Embedding(7, WEEKDAY_DIM, name="weekday")
        self.projection = tf_keras.layers.Dense(dim, name="projection")

    @property
    def vocabulary(self) -> list[str]:
        """The known user ids."""
        return self.user_embedding.vocabulary

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        parts = [self.user_embedding(features[F.USER_ID])]
        if self.history is not None:
            parts.append(self.history(features[F.HISTORY_ITEM_IDS], training=training))
        if self.use_context:
            parts.append(self.hour(tf.clip_by_value(features[F.HOUR], 0, 23)))
            parts.append(self.weekday(tf.clip_by_value(features[F.WEEKDAY], 0, 6)))
        return self.projection(tf.concat(parts, axis=-1))


class CandidateTower(tf_keras.layers.Layer):
    """Item ids -> `[batch, dim]`, from the id embedding plus catalog features looked up by id.

    The catalog's categories and text are held inside the layer (looked up by id in the
    graph), so callers pass only ids; an id missing from the catalog gets no categories and
    empty text, and an id missing from the vocabulary an OOV embedding row.

    Args:
      item_embedding: Item id embedding (`IdEmbedding`), shared with the query tower.
      catalog_ids: `[n]` catalog item ids.
      dim: Output width.
      categories: `[n, c]` category names per item, "" padded; None: no category features.
      category_vocabulary: Known category names.
      text_vectors: `[n, t]` frozen text vectors per catalog item (held in a non-trainable
        variable, so checkpoints carry them); None: none.
      text_encoder: Layer mapping `[batch]` strings to `[batch, t]` (a trainable text tower);
        needs `texts`.
      texts: `[n]` item texts for `text_encoder`.

    Call:
      item_ids: string `[batch]`. Returns: float32 `[batch, dim]`.
    """

    def __init__(
        self,
        item_embedding: IdEmbedding,
        catalog_ids: np.ndarray,
        dim: int,
        categories: np.ndarray | None = None,
        category_vocabulary: tuple[str, ...] = (),
        text_vectors: np.ndarray | None = None,
        text_encoder: tf_keras.layers.Layer | None = None,
        texts: np.ndarray | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if text_encoder is not None and texts is None:
            raise ValueError("CandidateTower: text_encoder needs the catalog texts")
        self.item_embedding = item_embedding
        n = len(catalog_ids)
        # Row n of every catalog matrix is the "unknown item" row.
        self.row_of = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(np.asarray(catalog_ids, dtype=str)), tf.range(n, dtype=tf.int64)
            ),
            default_value=n,
        )
        self.categories = None
        if categories is not None and category_vocabulary:
            padded = np.concatenate([categories, np.full((1, categories.shape[1]), "")])
            self.category_names = tf.constant(padded.astype(str))
            self.category_lookup = tf_keras.layers.StringLookup(
                vocabulary=list(category_vocabulary), mask_token=""
            )
            self.categories = tf_keras.layers.Embedding(
                len(category_vocabulary) + 2, dim, name="categories"
            )
        self.text_vectors = None
        if text_vectors is not None:
            zero = np.zeros((1, text_vectors.shape[1]), np.float32)
            # A non-trainable variable, so checkpoints hold the vectors and a restored model
            # need not encode the catalog again.
            self.text_vectors = tf.Variable(
                np.concatenate([text_vectors, zero]).astype(np.float32),
                trainable=False,
                name="text_vectors",
            )
        self.text_encoder = text_encoder
        if text_encoder is not None:
            self.texts = tf.constant(np.concatenate([np.asarray(texts, dtype=str), [""]]))
        self.projection = tf_keras.layers.Dense(dim, name="projection")

    def call(self, item_ids: tf.Tensor, training: bool = False) -> tf.Tensor:
        rows = self.row_of.lookup(item_ids)
        parts = [self.item_embedding(item_ids)]
        if self.categories is not None:
            names = tf.gather(self.category_names, rows)
            indices = self.category_lookup(names)
            parts.append(masked_mean(self.categories(indices), tf.not_equal(indices, 0)))
        if self.text_vectors is not None:
            parts.append(tf.gather(self.text_vectors, rows))
        if self.text_encoder is not None:
            # Each distinct item's text is encoded once per batch (popular items repeat).
            distinct, position = tf.unique(tf.reshape(rows, [-1]))
            encoded = self.text_encoder(tf.gather(self.texts, distinct), training=training)
            parts.append(tf.reshape(tf.gather(encoded, position), [-1, encoded.shape[-1]]))
        return self.projection(tf.concat(parts, axis=-1))
