"""Tests of the stand-in hashing text encoder and its SavedModel contract."""

import numpy as np
import pytest
import tensorflow as tf

from beam_jobs.hashing_encoder import HashingTextEncoder, run, save_hashing_encoder
from recstack import features

TEXTS = ["Kind of Blue", "kind  OF blue", "Élan vital é", "", "   "]


def _expected(table, num_buckets, text):
    """Mean of the token rows, L2-normalised; the extra last row for texts without tokens."""
    tokens = text.lower().split()
    if not tokens:
        pooled = table[num_buckets]
    else:
        buckets = tf.strings.to_hash_bucket_fast(tokens, num_buckets).numpy()
        pooled = table[buckets].mean(axis=0)
    return pooled / np.linalg.norm(pooled)


def test_saved_encoder_pools_hashed_token_rows(tmp_path):
    path = save_hashing_encoder(str(tmp_path / "enc"), dim=6, num_buckets=32, seed=5)
    model = tf.saved_model.load(path)
    table = model.table.numpy()
    assert table.shape == (33, 6)
    outputs = model.signatures[features.SERVING_SIGNATURE](text=tf.constant(TEXTS))
    assert list(outputs) == [features.ITEM_EMBEDDING]
    vectors = outputs[features.ITEM_EMBEDDING].numpy()
    expected = [_expected(table, 32, text) for text in TEXTS]
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(tf.constant(TEXTS)).numpy(), vectors)
    np.testing.assert_allclose(vectors[0], vectors[1])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)


def test_the_seed_alone_determines_the_vectors():
    texts = tf.constant(["a b c"])
    first, again, other = (HashingTextEncoder(4, 16, seed)(texts) for seed in (1, 1, 2))
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert not np.allclose(first.numpy(), other.numpy())


def test_invalid_sizes_are_named():
    with pytest.raises(ValueError, match="dim=0 and num_buckets=8 must both be >= 1"):
        HashingTextEncoder(0, 8, 0)


def test_command_line_saves_the_encoder(tmp_path):
    path = run(["--output", str(tmp_path / "enc"), "--dim", "3", "--num-buckets", "4"])
    vectors = tf.saved_model.load(path)(tf.constant(["x"]))
    assert vectors.shape == (1, 3)
