"""Tests of `BertEncoder` against the NumPy reference, its training modes and its config."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from numpy_bert import bert_forward, mean_pool

from trainer.bert.encoder import BertEncoder, check_mode
from trainer.bert.text_tower import masked_mean
from trainer.bert.tokenizer import ATTENTION_MASK, INPUT_IDS

TOLERANCE = 1e-4
#: Trainable variables: embeddings (3 tables + LayerNorm scale and bias) and per transformer
#: layer 6 Dense (kernel, bias) and 2 LayerNorms (scale, bias).
EMBEDDING_VARIABLES = 5
LAYER_VARIABLES = 16
#: Layers of the tiny BERT of conftest.py.
TINY_LAYERS = 3


def _batch(vocab_size, seed=0):
    """Three sequences of 12 ids: full, 7 tokens, 2 tokens (the rest is padding)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000 if vocab_size > 2000 else 5, vocab_size, size=(3, 12), dtype=np.int32)
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 2:] = 0
    ids[mask == 0] = 0
    return {INPUT_IDS: ids, ATTENTION_MASK: mask}


def _encoder(checkpoint, **kwargs):
    config, weights = checkpoint
    encoder = BertEncoder(config, **kwargs)
    encoder.load_weights_from(weights)
    return encoder


def _assert_matches_reference(checkpoint, encoder):
    config, weights = checkpoint
    batch = _batch(config.vocab_size)
    actual = encoder(batch).numpy()
    expected = bert_forward(weights, config.to_dict(), batch[INPUT_IDS], batch[ATTENTION_MASK])
    assert actual.shape == expected.shape == (3, 12, config.hidden_size)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE)
    pooled = masked_mean(tf.constant(actual), batch[ATTENTION_MASK]).numpy()
    reference = mean_pool(expected, batch[ATTENTION_MASK])
    np.testing.assert_allclose(pooled, reference, rtol=0, atol=TOLERANCE)
    return np.abs(actual - expected).max()


def test_minilm_matches_the_numpy_reference(minilm):
    error = _assert_matches_reference(minilm, _encoder(minilm))
    assert error < 1e-5  # Measured: ~2e-6 in float32.


def test_tiny_bert_matches_the_numpy_reference(tiny):
    _assert_matches_reference(tiny, _encoder(tiny))


def _trainable(encoder):
    return {v.name.split("/")[1] for v in encoder.trainable_variables}, len(
        encoder.trainable_variables
    )


def test_modes_choose_the_trainable_variables(tiny):
    assert tiny[0].num_hidden_layers == TINY_LAYERS
    encoder = _encoder(tiny)
    assert _trainable(encoder) == (
        {"embeddings", "layer_0", "layer_1", "layer_2"},
        EMBEDDING_VARIABLES + TINY_LAYERS * LAYER_VARIABLES,
    )
    encoder.set_mode("finetune_top_layers", 2)
    assert _trainable(encoder) == ({"layer_1", "layer_2"}, 2 * LAYER_VARIABLES)
    assert len(encoder.non_trainable_variables) == EMBEDDING_VARIABLES + LAYER_VARIABLES
    encoder.set_mode("frozen")
    assert _trainable(encoder) == (set(), 0)


def test_a_training_step_changes_only_the_top_layers(tiny):
    encoder = _encoder(tiny, mode="finetune_top_layers", finetune_top_layers=1)
    batch = _batch(tiny[0].vocab_size)
    before = {v.name: v.numpy() for v in encoder.variables}
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(batch, training=True) ** 2)
    grads = tape.gradient(loss, encoder.trainable_variables)
    tf_keras.optimizers.SGD(0.1).apply_gradients(
        zip(grads, encoder.trainable_variables, strict=True)
    )
    changed = {
        v.name.split("/")[1] for v in encoder.variables if (v.numpy() != before[v.name]).any()
    }
    assert changed == {"layer_2"}


@pytest.mark.parametrize(
    ("mode", "top", "message"),
    [
        ("partial", 0, "mode='partial' is not one of"),
        ("finetune_top_layers", 0, r"finetune_top_layers=0 must be in 1\.\.3"),
        ("finetune_top_layers", 4, r"finetune_top_layers=4 must be in 1\.\.3"),
        ("full", 2, "only used with mode='finetune_top_layers'"),
    ],
)
def test_bad_modes_are_named(mode, top, message):
    with pytest.raises(ValueError, match=message):
        check_mode(mode, top, TINY_LAYERS)


def test_get_config_round_trip_and_weight_checks(tiny):
    config, weights = tiny
    encoder = _encoder(tiny, mode="finetune_top_layers", finetune_top_layers=2, dropout_rate=0.1)
    clone = BertEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
    clone.load_weights_from(weights)
    assert clone.config == config and _trainable(clone) == _trainable(encoder)
    batch = _batch(config.vocab_size)
    np.testing.assert_array_equal(clone(batch), encoder(batch))
    cut = {k: v for k, v in weights.items() if not k.endswith("layer.2.output.dense.bias")}
    with pytest.raises(KeyError, match=r"lack 1 entries .*encoder\.layer\.2\.output\.dense\.bias"):
        clone.load_weights_from(cut)
    bad = {**weights, "bert.encoder.layer.0.attention.self.key.weight": np.zeros((32, 31))}
    with pytest.raises(ValueError, match=r"'encoder\.layer\.0\.attention\.self\.key\.weight' has"):
        clone.load_weights_from(bad)
