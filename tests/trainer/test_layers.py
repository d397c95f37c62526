"""Custom layers: behaviour and get_config / save-load round trips."""

import numpy as np
import tensorflow as tf
import tf_keras

from trainer.id_embedding import IdEmbedding
from trainer.model import SamplingProbability


def test_id_embedding_known_and_unknown_ids():
    layer = IdEmbedding(["a", "b"], embedding_dim=4, num_oov_buckets=1)
    out = layer(tf.constant(["a", "b", "zzz", "a"])).numpy()
    assert out.shape == (4, 4)
    weights = layer.embedding.embeddings.numpy()
    np.testing.assert_allclose(out[0], weights[1])  # Row 0 is the OOV bucket.
    np.testing.assert_allclose(out[2], weights[0])
    np.testing.assert_allclose(out[3], out[0])


def test_id_embedding_saved_model_round_trip(tmp_path):
    inputs = tf_keras.Input(shape=(), dtype=tf.string)
    model = tf_keras.Model(inputs, IdEmbedding(["a", "b", "c"], 3, 2)(inputs))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = tf_keras.models.load_model(path, custom_objects={"IdEmbedding": IdEmbedding})
    ids = tf.constant(["c", "a", "new"])
    np.testing.assert_allclose(loaded(ids).numpy(), model(ids).numpy())
    config = loaded.layers[-1].get_config()
    assert config["vocabulary"] == ["a", "b", "c"] and config["num_oov_buckets"] == 2


def test_sampling_probability_lookup_and_config():
    layer = SamplingProbability(["x", "y"], [0.75, 0.25])
    got = layer(tf.constant(["y", "x", "unknown"])).numpy()
    np.testing.assert_allclose(got, [0.25, 0.75, 0.25])
    clone = SamplingProbability.from_config(layer.get_config())
    np.testing.assert_allclose(clone(tf.constant(["x"])).numpy(), [0.75])
