"""`BertEmbeddings`: token ids -> word + position + token-type embeddings, LayerNorm-ed."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from trainer.bert.transformer import assign, build_sublayer

#: (HuggingFace name, attribute of `BertEmbeddings`) of the three tables.
TABLE_WEIGHTS = (
    ("embeddings.word_embeddings.weight", "word_embeddings"),
    ("embeddings.position_embeddings.weight", "position_embeddings"),
    ("embeddings.token_type_embeddings.weight", "token_type_embeddings"),
)


@tf_keras.saving.register_keras_serializable(package="recstack")
class BertEmbeddings(tf_keras.layers.Layer):
    """BERT's input embeddings for single-segment inputs (every token type is 0).

    Args:
      vocab_size: Rows of the word table.
      hidden_size: Embedding width.
      max_position_embeddings: Rows of the position table, the longest sequence.
      type_vocab_size: Rows of the token-type table (only row 0 is used).
      layer_norm_eps: LayerNorm epsilon.
      dropout_rate: Dropout on the output, only when called with `training=True`.

    Call:
      input_ids: int tensor `[batch, seq]`, `seq <= max_position_embeddings`.
      Returns: float tensor `[batch, seq, hidden_size]`.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        max_position_embeddings: int,
        type_vocab_size: int,
        layer_norm_eps: float = 1e-12,
        dropout_rate: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.dropout_rate = dropout_rate
        self.norm = tf_keras.layers.LayerNormalization(epsilon=layer_norm_eps, name="norm")
        self.dropout = tf_keras.layers.Dropout(dropout_rate)

    def build(self, input_shape) -> None:
        rows = (self.vocab_size, self.max_position_embeddings, self.type_vocab_size)
        for (_, attribute), num_rows in zip(TABLE_WEIGHTS, rows, strict=True):
            init = tf_keras.initializers.TruncatedNormal(stddev=0.02)  # BERT's initializer.
            table = self.add_weight(attribute, [num_rows, self.hidden_size], initializer=init)
            setattr(self, attribute, table)
        build_sublayer(self.norm, [None, None, self.hidden_size])
        super().build(input_shape)

    def call(self, input_ids: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        seq = input_ids.shape[1]
        if seq is not None and seq > self.max_position_embeddings:
            raise ValueError(
                f"sequences of {seq} tokens exceed max_position_embeddings="
                f"{self.max_position_embeddings} of this BERT; lower max_length"
            )
        positions = tf.range(tf.shape(input_ids)[1])
        embedded = (
            tf.gather(self.word_embeddings, input_ids)
            + tf.gather(self.position_embeddings, positions)[tf.newaxis]
            + self.token_type_embeddings[0]
        )
        return self.dropout(self.norm(embedded), training=training)

    def load_hf_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Assigns the tables and the LayerNorm from HuggingFace-named arrays.

        Raises:
          KeyError: a weight is missing. ValueError: a shape does not match.
        """
        if not self.built:
            build_sublayer(self, None)
        for name, attribute in TABLE_WEIGHTS:
            assign(getattr(self, attribute), weights[name], name)
        assign(
            self.norm.gamma, weights["embeddings.LayerNorm.weight"], "embeddings.LayerNorm.weight"
        )
        assign(self.norm.beta, weights["embeddings.LayerNorm.bias"], "embeddings.LayerNorm.bias")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            layer_norm_eps=self.layer_norm_eps,
            dropout_rate=self.dropout_rate,
        )
        return config
