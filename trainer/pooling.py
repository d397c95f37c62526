"""Masked mean pooling, shared by the history encoder, the category features and the BERT
text tower."""

from __future__ import annotations

import tensorflow as tf


def masked_mean(sequence: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of the vectors of each sequence where `mask` is set.

    Args:
      sequence: float tensor `[batch, length, dim]`.
      mask: bool or int tensor `[batch, length]`, true/1 on real positions.

    Returns:
      float tensor `[batch, dim]`; a row with no real position gives zeros.
    """
    weights = tf.cast(mask, sequence.dtype)[:, :, tf.newaxis]
    total = tf.reduce_sum(sequence * weights, axis=1)
    count = tf.reduce_sum(weights, axis=1)
    return tf.math.divide_no_nan(total, count)
