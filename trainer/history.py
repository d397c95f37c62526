"""Encoding a user's recent items: masked mean pooling, optionally after self-attention.

History items are embedded with the candidate tower's item id embedding (shared weights), so
what the model learns about an item as a candidate also describes users who consumed it.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from trainer.pooling import masked_mean

#: History slots holding this id are padding.
PAD_ID = ""


class MaskedMeanPooling(tf_keras.layers.Layer):
    """Mean of the unmasked vectors of each sequence.

    Call:
      sequence: float `[batch, length, dim]`.
      mask: bool `[batch, length]`, True for real positions.
      Returns: float `[batch, dim]`; all-zero rows for sequences with no real position.
    """

    def call(self, sequence: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        return masked_mean(sequence, mask)


class SelfAttentionBlock(tf_keras.layers.Layer):
    """One post-norm Transformer encoder block over a padded sequence.

    Args:
      dim: Width of the sequence vectors.
      heads: Attention heads (`dim` need not divide by it; each head has `dim // heads`
        dimensions, at least 1).
      dropout: Dropout after attention and feed-forward while training.

    Call:
      sequence: float `[batch, length, dim]`; mask: bool `[batch, length]`.
      Returns: float `[batch, length, dim]`; padded positions attend to nothing real and are
        ignored by later pooling.
    """

    def __init__(self, dim: int, heads: int = 2, dropout: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dim, self.heads, self.dropout = dim, heads, dropout
        self.attention = tf_keras.layers.MultiHeadAttention(
            num_heads=heads, key_dim=max(1, dim // heads), dropout=dropout
        )
        self.norm1 = tf_keras.layers.LayerNormalization(epsilon=1e-6)
        self.norm2 = tf_keras.layers.LayerNormalization(epsilon=1e-6)
        self.feed_forward = tf_keras.Sequential(
            [tf_keras.layers.Dense(2 * dim, activation="relu"), tf_keras.layers.Dense(dim)]
        )

    def call(self, sequence: tf.Tensor, mask: tf.Tensor, training: bool = False) -> tf.Tensor:
        pair_mask = tf.logical_and(mask[:, :, None], mask[:, None, :])
        attended = self.attention(sequence, sequence, attention_mask=pair_mask, training=training)
        sequence = self.norm1(sequence + attended)
        return self.norm2(sequence + self.feed_forward(sequence))

    def get_config(self) -> dict:
        return {**super().get_config(), "dim": self.dim, "heads": self.heads,
                "dropout": self.dropout}  # fmt: skip


class HistoryEncoder(tf_keras.layers.Layer):
    """`[batch, length]` history item ids -> `[batch, dim]` summary of the user's recent items.

    Args:
      item_embedding: Layer mapping `[batch, length]` ids to `[batch, length, dim]` (the
        candidate tower's id embedding, shared).
      length: History slots (the input's second dimension).
      dim: Width of the item embeddings.
      attention_layers: Self-attention blocks before pooling (with learned position
        embeddings); 0 pools the item embeddings directly.
      heads: Heads per attention block.

    Call:
      history: string `[batch, length]`, most recent item last, padded with `PAD_ID`.
      Returns: float `[batch, dim]`; zeros when the history is empty.
    """

    def __init__(
        self,
        item_embedding: tf_keras.layers.Layer,
        length: int,
        dim: int,
        attention_layers: int = 0,
        heads: int = 2,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.item_embedding = item_embedding
        self.length, self.dim = length, dim
        self.attention_layers, self.heads = attention_layers, heads
        self.blocks = [SelfAttentionBlock(dim, heads, name=f"block_{i}")
                       for i in range(attention_layers)]  # fmt: skip
        self.positions = (
            tf_keras.layers.Embedding(length, dim, name="positions") if attention_layers else None
        )
        self.pooling = MaskedMeanPooling()

    def call(self, history: tf.Tensor, training: bool = False) -> tf.Tensor:
        mask = tf.not_equal(history, PAD_ID)
        sequence = self.item_embedding(history)
        if self.blocks:
            sequence = sequence + self.positions(tf.range(tf.shape(history)[1]))[None]
            for block in self.blocks:
                sequence = block(sequence, mask, training=training)
        return self.pooling(sequence, mask)


def dense_history(history: tf.RaggedTensor, length: int) -> tf.Tensor:
    """`[batch, None]` ragged history (oldest first) -> `[batch, length]` of the `length` most
    recent ids, oldest first, right-padded with `PAD_ID`."""
    return history[:, -length:].to_tensor(default_value=PAD_ID, shape=[None, length])
