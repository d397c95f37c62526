"""A stand-in text encoder: hashed bag of words over a fixed random table. Not BERT.

It has no pretrained knowledge: texts sharing words get similar vectors, nothing more. It
exists so that the embedding job (`beam_jobs.embed_text`) and its tests have a small,
deterministic SavedModel honouring the encoder contract until the BERT text tower is
exported:

    signature `serving_default`: {"text": string [batch]} -> {"embedding": float32 [batch, dim]}

and the loaded object is also callable, `model(text) -> [batch, dim]`.

Save one for a demo run with

    python -m beam_jobs.hashing_encoder --output out/hashing_encoder --dim 64
"""

from __future__ import annotations

import argparse
import logging

import tensorflow as tf

from recstack import features

logger = logging.getLogger(__name__)

#: Name of the signature input holding the texts.
INPUT_TEXT = "text"


class HashingTextEncoder(tf.Module):
    """Lowercases, splits on whitespace, hashes tokens into buckets and mean-pools their rows.

    Each of `num_buckets` buckets owns one row of a random normal table drawn from `seed`; a
    text's vector is the mean of its tokens' rows, L2-normalised. A text without tokens (empty
    or whitespace only) gets the table's extra last row, normalised, so every text has a finite
    unit vector.
    """

    def __init__(self, dim: int, num_buckets: int, seed: int) -> None:
        """Args:
        dim: Vector dimension, >= 1.
        num_buckets: Hash buckets (distinct token rows), >= 1.
        seed: Seed of the table; equal seeds give equal encoders.

        Raises:
          ValueError: `dim` or `num_buckets` is below 1.
        """
        super().__init__(name="hashing_text_encoder")
        if dim < 1 or num_buckets < 1:
            raise ValueError(f"dim={dim} and num_buckets={num_buckets} must both be >= 1")
        self.num_buckets = num_buckets
        table = tf.random.stateless_normal([num_buckets + 1, dim], seed=[seed, 0])
        self.table = tf.Variable(table, trainable=False, name="table")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_TEXT)])
    def __call__(self, text: tf.Tensor) -> tf.Tensor:
        """Returns the `[batch, dim]` float32 unit vectors of the `[batch]` string `text`."""
        tokens = tf.strings.split(tf.strings.lower(text, encoding="utf-8"))
        buckets = tf.ragged.map_flat_values(
            tf.strings.to_hash_bucket_fast, tokens, self.num_buckets
        )
        rows = tf.ragged.map_flat_values(tf.gather, self.table, buckets)
        summed = tf.reduce_sum(rows, axis=1)
        counts = tf.cast(tokens.row_lengths(), tf.float32)[:, tf.newaxis]
        empty = tf.broadcast_to(self.table[self.num_buckets], tf.shape(summed))
        pooled = tf.where(counts > 0, summed / tf.maximum(counts, 1.0), empty)
        return tf.math.l2_normalize(pooled, axis=1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_TEXT)])
    def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        """The `serving_default` signature: `{"embedding": [batch, dim]}`."""
        return {features.ITEM_EMBEDDING: self(text)}


def save_hashing_encoder(path: str, dim: int = 32, num_buckets: int = 4096, seed: int = 0) -> str:
    """Saves a `HashingTextEncoder` as a SavedModel honouring the encoder contract.

    Args:
      path: Directory to write (local or `gs://`).
      dim: Vector dimension.
      num_buckets: Hash buckets.
      seed: Table seed; the same arguments always give the same vectors.

    Returns:
      `path`.

    Raises:
      ValueError: `dim` or `num_buckets` is below 1.
    """
    encoder = HashingTextEncoder(dim, num_buckets, seed)
    tf.saved_model.save(encoder, path, signatures={features.SERVING_SIGNATURE: encoder.serve})
    return path


def run(argv: list[str] | None = None) -> str:
    """Command-line entry: saves a hashing encoder; returns its path."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="SavedModel directory to write.")
    parser.add_argument("--dim", type=int, default=32, help="Vector dimension.")
    parser.add_argument("--num-buckets", type=int, default=4096, help="Hash buckets.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random table.")
    args = parser.parse_args(argv)
    path = save_hashing_encoder(args.output, args.dim, args.num_buckets, args.seed)
    logger.info("Saved a %d-dim hashing text encoder to %s", args.dim, path)
    return path


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run()
