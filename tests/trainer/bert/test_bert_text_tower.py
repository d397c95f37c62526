"""Tests of `BertTextTower`: reference outputs, projection, modes, config and SavedModels."""

import shutil

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from numpy_bert import bert_forward, mean_pool

from trainer.bert.text_tower import BertTextTower
from trainer.bert.tokenizer import ATTENTION_MASK, INPUT_IDS

TEXTS = ["the little boy can play music", "Blue Train, hard bop!", "", "music " * 40]


@pytest.fixture()
def tiny_copy(tiny_dir, tmp_path):
    """A copy of the tiny checkpoint that a test may delete."""
    return shutil.copytree(tiny_dir, tmp_path / "checkpoint")


def test_tower_is_the_mean_of_the_reference_token_vectors(tiny_dir, tiny):
    config, weights = tiny
    tower = BertTextTower.from_checkpoint(tiny_dir, max_length=16)
    tokens = tower.tokenizer(tf.constant(TEXTS))
    assert tokens[ATTENTION_MASK].numpy().sum(axis=1).tolist() == [8, 8, 2, 16]
    sequence = bert_forward(weights, config.to_dict(), tokens[INPUT_IDS], tokens[ATTENTION_MASK])
    expected = mean_pool(sequence, tokens[ATTENTION_MASK])
    actual = tower(tf.constant(TEXTS))
    assert actual.dtype == tf.float32 and actual.shape == (len(TEXTS), config.hidden_size)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
    dynamic = BertTextTower.from_checkpoint(tiny_dir, max_length=16, pad_to_max_length=False)
    np.testing.assert_allclose(dynamic(tf.constant(TEXTS)), actual, rtol=0, atol=1e-6)


def test_minilm_similarities_equal_the_published_ones():
    """sbert.net's usage example: all-MiniLM-L6-v2 cosine similarities, rounded to 4 places."""
    texts = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    tower = BertTextTower.from_checkpoint(max_length=32, pad_to_max_length=False)
    vectors = tf.math.l2_normalize(tower(tf.constant(texts)), axis=1).numpy()
    similarities = vectors @ vectors.T
    published = [similarities[0, 1], similarities[0, 2], similarities[1, 2]]
    np.testing.assert_allclose(published, [0.6660, 0.1046, 0.1411], rtol=0, atol=1e-4)


def test_projection_is_the_only_trainable_part_of_a_frozen_tower(tiny_dir):
    tower = BertTextTower.from_checkpoint(tiny_dir, max_length=8, output_dim=5)
    assert tower(tf.constant(TEXTS[:2])).shape == (2, 5)
    assert sorted(v.name.split("/", 1)[1] for v in tower.trainable_variables) == [
        "projection/bias:0",
        "projection/kernel:0",
    ]
    top = BertTextTower.from_checkpoint(
        tiny_dir, max_length=8, mode="finetune_top_layers", finetune_top_layers=2
    )
    top(tf.constant(TEXTS[:1]))
    assert {v.name.split("/")[2] for v in top.trainable_variables} == {"layer_1", "layer_2"}


def test_bad_arguments_are_named(tiny_dir, tiny):
    config, _ = tiny
    with pytest.raises(ValueError, match="max_length=129 exceeds .* max_position_embeddings=128"):
        BertTextTower.from_checkpoint(tiny_dir, max_length=129)
    with pytest.raises(ValueError, match="has 6 tokens but the config's vocab_size is 341"):
        BertTextTower(config, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"], lower_case=True)
    with pytest.raises(ValueError, match="output_dim=-1"):
        BertTextTower.from_checkpoint(tiny_dir, output_dim=-1)


def test_get_config_round_trip(tiny_dir):
    tower = BertTextTower.from_checkpoint(
        tiny_dir, max_length=12, output_dim=4, mode="finetune_top_layers", finetune_top_layers=1
    )
    texts = tf.constant(TEXTS)
    expected = tower(texts)
    clone = BertTextTower.from_config(tower.get_config())
    assert clone.get_config() == tower.get_config()
    clone(texts)
    clone.set_weights(tower.get_weights())
    np.testing.assert_array_equal(clone(texts), expected)


def _model(tower):
    texts = tf_keras.Input(shape=(), dtype=tf.string, name="text")
    return tf_keras.Model(texts, tf_keras.layers.Dense(3, name="head")(tower(texts)))


@pytest.mark.slow
def test_saved_models_load_back_without_the_checkpoint(tiny_copy, tmp_path):
    tower = BertTextTower.from_checkpoint(
        str(tiny_copy), max_length=12, output_dim=6, name="text_tower"
    )
    model = _model(tower)
    texts = tf.constant(TEXTS)
    expected = model(texts).numpy()
    model.save(str(tmp_path / "keras"), save_format="tf")
    tf.saved_model.save(model, str(tmp_path / "plain"))
    shutil.rmtree(tiny_copy)

    loaded = tf_keras.models.load_model(str(tmp_path / "keras"))
    assert isinstance(loaded.get_layer("text_tower"), BertTextTower)
    np.testing.assert_allclose(loaded(texts), expected, rtol=0, atol=1e-6)
    serve = tf.saved_model.load(str(tmp_path / "plain")).signatures["serving_default"]
    (outputs,) = serve(text=texts).values()
    np.testing.assert_allclose(outputs, expected, rtol=0, atol=1e-6)
