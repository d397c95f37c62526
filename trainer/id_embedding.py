"""`IdEmbedding`: string ids -> dense vectors, with hashed out-of-vocabulary buckets."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tf_keras


class IdEmbedding(tf_keras.layers.Layer):
    """Looks up a trainable embedding per id.

    Ids missing from `vocabulary` are hashed into `num_oov_buckets` shared rows, so unknown users
    or items still get a (generic) vector instead of an error.

    Args:
      vocabulary: Known ids; row `i + num_oov_buckets` belongs to `vocabulary[i]`.
      embedding_dim: Output width.
      num_oov_buckets: Rows for unknown ids (at least 1).

    Call:
      ids: string tensor `[batch]`.
      Returns: float32 tensor `[batch, embedding_dim]`.
    """

    def __init__(
        self, vocabulary: Sequence[str], embedding_dim: int, num_oov_buckets: int = 1, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if not vocabulary:
            raise ValueError("IdEmbedding needs a non-empty vocabulary")
        if num_oov_buckets < 1:
            raise ValueError(f"num_oov_buckets={num_oov_buckets} must be at least 1")
        self.vocabulary = list(vocabulary)
        self.embedding_dim = embedding_dim
        self.num_oov_buckets = num_oov_buckets
        self.lookup = tf_keras.layers.StringLookup(
            vocabulary=self.vocabulary, num_oov_indices=num_oov_buckets, mask_token=None
        )
        self.embedding = tf_keras.layers.Embedding(
            len(self.vocabulary) + num_oov_buckets, embedding_dim
        )

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        return self.embedding(self.lookup(ids))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            vocabulary=self.vocabulary,
            embedding_dim=self.embedding_dim,
            num_oov_buckets=self.num_oov_buckets,
        )
        return config
