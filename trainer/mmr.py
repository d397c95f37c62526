"""Maximal marginal relevance (MMR): re-ranking a candidate list for diversity, in the graph.

Greedy selection (Carbonell & Goldstein, 1998): each step takes the candidate maximising

    (1 - lambda) * relevance(i) - lambda * max_{j already selected} cosine(e_i, e_j)

where relevance is the ranking score min-max scaled to [0, 1] over each list's valid
candidates, so lambda weighs two quantities on the same scale. The first pick is always the
most relevant candidate; lambda = 0 reproduces the ranking order; lambda = 1 picks, after the
first, the candidate least similar to everything chosen so far.
"""

from __future__ import annotations

import tensorflow as tf


def scaled_relevance(relevance: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """Min-max scales each row's valid scores to [0, 1] (a row with one distinct valid score
    gets 1 everywhere); invalid positions get 0.

    Args:
      relevance: float32 `[batch, candidates]`; valid: bool `[batch, candidates]`.

    Returns:
      float32 `[batch, candidates]`.
    """
    low = tf.reduce_min(tf.where(valid, relevance, relevance.dtype.max), axis=1, keepdims=True)
    high = tf.reduce_max(tf.where(valid, relevance, relevance.dtype.min), axis=1, keepdims=True)
    span = high - low
    scaled = tf.where(span > 0, (relevance - low) / tf.where(span > 0, span, 1.0), 1.0)
    return tf.where(valid, scaled, 0.0)


def mmr_select(
    relevance: tf.Tensor,
    embeddings: tf.Tensor,
    valid: tf.Tensor,
    k: tf.Tensor,
    mmr_lambda: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Selects `k` candidates per list by MMR.

    Args:
      relevance: float32 `[batch, candidates]` ranking scores (higher is better).
      embeddings: float32 `[batch, candidates, d]`; similarity is their cosine.
      valid: bool `[batch, candidates]`; False marks candidates that may not be selected.
      k: int32 scalar, how many to select.
      mmr_lambda: float32 `[batch]` diversity weight of each list, in [0, 1].

    Returns:
      positions: int32 `[batch, k]`, indices into `candidates` in selection order.
      selected: bool `[batch, k]`; False where the list ran out of valid candidates (the
        position is then meaningless).
    """
    unit = tf.math.l2_normalize(embeddings, axis=-1)
    similarity = tf.matmul(unit, unit, transpose_b=True)  # [batch, candidates, candidates]
    scaled = scaled_relevance(relevance, valid)
    weight = mmr_lambda[:, None]
    available = valid
    # Similarities may be negative; nothing is selected yet, so the max starts below all.
    max_similarity = tf.fill(tf.shape(scaled), -float("inf"))
    positions = tf.TensorArray(tf.int32, size=k)
    selected = tf.TensorArray(tf.bool, size=k)
    for step in tf.range(k):
        gain = (1.0 - weight) * scaled - weight * max_similarity
        # Nothing is selected yet on the first step: take the most relevant.
        gain = tf.where(step == 0, scaled, gain)
        gain = tf.where(available, gain, -float("inf"))
        pick = tf.argmax(gain, axis=1, output_type=tf.int32)
        positions = positions.write(step, pick)
        selected = selected.write(step, tf.gather(available, pick, batch_dims=1))
        available = tf.logical_and(
            available,
            tf.logical_not(
                tf.one_hot(pick, tf.shape(valid)[1], on_value=True, off_value=False)
            ),  # fmt: skip
        )
        max_similarity = tf.maximum(max_similarity, tf.gather(similarity, pick, batch_dims=1))
    return tf.transpose(positions.stack()), tf.transpose(selected.stack())
