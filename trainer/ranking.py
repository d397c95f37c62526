"""`DcnRanker`: a DCN-v2 scorer of (query, candidate) pairs for the ranking task."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras


class DcnRanker(tf_keras.layers.Layer):
    """Deep & Cross Network v2 over the concatenated query and candidate embeddings.

    The input `x0 = [query, candidate, query * candidate]` goes through `cross_layers`
    `tfrs.layers.dcn.Cross` layers (explicit feature crosses, x_{l+1} = x0 * (W x_l + b) +
    x_l), then ReLU layers, then one linear output.

    Args:
      cross_layers: Cross layers (0: deep part only).
      projection_dim: Low-rank size of each cross layer's W (0: full rank).
      deep_layers: Widths of the ReLU layers.

    Call:
      query: float `[batch, d]`; candidate: float `[batch, d]`.
      Returns: float32 `[batch]` scores (a rating, or a logit for binary objectives).
    """

    def __init__(
        self,
        cross_layers: int = 2,
        projection_dim: int = 0,
        deep_layers: Sequence[int] = (64, 32),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.cross_layers, self.projection_dim = cross_layers, projection_dim
        self.deep_layers = tuple(deep_layers)
        self.crosses = [
            tfrs.layers.dcn.Cross(projection_dim=projection_dim or None, name=f"cross_{i}")
            for i in range(cross_layers)
        ]
        self.deep = [tf_keras.layers.Dense(width, activation="relu", name=f"deep_{i}")
                     for i, width in enumerate(self.deep_layers)]  # fmt: skip
        self.output_layer = tf_keras.layers.Dense(1, name="score")

    def call(self, query: tf.Tensor, candidate: tf.Tensor) -> tf.Tensor:
        x0 = tf.concat([query, candidate, query * candidate], axis=-1)
        x = x0
        for cross in self.crosses:
            x = cross(x0, x)
        for layer in self.deep:
            x = layer(x)
        return tf.squeeze(self.output_layer(x), axis=-1)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "cross_layers": self.cross_layers,
            "projection_dim": self.projection_dim,
            "deep_layers": list(self.deep_layers),
        }
