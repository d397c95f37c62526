"""Query and candidate towers, history pooling and the DCN ranker: shapes, masking, unknown ids,
config and SavedModel round trips."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from recstack import features as F
from trainer.catalog import catalog_from_rows
from trainer.history import HistoryEncoder, MaskedMeanPooling, SelfAttentionBlock, dense_history
from trainer.id_embedding import IdEmbedding
from trainer.ranking import DcnRanker
from trainer.towers import CandidateTower, QueryTower

ITEMS = ["a", "b", "c"]


def test_masked_mean_pooling_ignores_padding_and_empty_rows_give_zeros():
    sequence = tf.constant([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 5.0]] * 3])
    mask = tf.constant([[True, True, False], [False, False, False]])
    got = MaskedMeanPooling()(sequence, mask).numpy()
    np.testing.assert_allclose(got, [[2.0, 3.0], [0.0, 0.0]])


def test_dense_history_keeps_the_most_recent_items():
    history = tf.ragged.constant([["a", "b", "c"], [], ["x"]])
    got = dense_history(history, 2).numpy().astype(str).tolist()
    assert got == [["b", "c"], ["", ""], ["x", ""]]


@pytest.mark.parametrize("attention_layers", [0, 1])
def test_history_encoder_shares_item_embeddings_and_masks_padding(attention_layers):
    items = IdEmbedding(ITEMS, 4)
    encoder = HistoryEncoder(items, length=3, dim=4, attention_layers=attention_layers)
    history = tf.constant([["a", "b", ""], ["a", "b", "c"], ["", "", ""]])
    out = encoder(history).numpy()
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out[2], 0.0)  # Empty history.
    if attention_layers == 0:  # Plain masked mean of the shared embedding rows.
        table = items(tf.constant(ITEMS)).numpy()
        np.testing.assert_allclose(out[0], table[:2].mean(0), rtol=1e-6)
    # Padding content never matters: the same real items give the same vector.
    padded = encoder(tf.constant([["a", "b", ""]])).numpy()
    np.testing.assert_allclose(out[0], padded[0], rtol=1e-5)


def test_self_attention_block_config_round_trip():
    block = SelfAttentionBlock(8, heads=2, name="blk")
    clone = SelfAttentionBlock.from_config(block.get_config())
    assert (clone.dim, clone.heads, clone.name) == (8, 2, "blk")


def _query_tower(**kwargs):
    items = IdEmbedding(ITEMS, 4)
    return QueryTower(["u1", "u2"], items, dim=6, history_length=2, **kwargs), items


def _query_batch(users, histories, hours=None):
    n = len(users)
    return {
        F.USER_ID: tf.constant(users),
        F.HISTORY_ITEM_IDS: tf.constant(histories),
        F.HOUR: tf.constant(hours or [0] * n, tf.int64),
        F.WEEKDAY: tf.constant([0] * n, tf.int64),
    }


def test_unknown_users_still_get_a_vector_from_their_history():
    tower, _ = _query_tower()
    out = tower(_query_batch(["new", "new", "u1"], [["a", ""], ["c", "b"], ["a", ""]])).numpy()
    assert out.shape == (3, 6) and np.isfinite(out).all()
    # Same unknown user, different histories: different queries.
    assert not np.allclose(out[0], out[1])


def test_context_changes_the_query_only_when_enabled():
    with_context, _ = _query_tower(use_context=True)
    batch = _query_batch(["u1", "u1"], [["a", ""], ["a", ""]], hours=[1, 20])
    out = with_context(batch).numpy()
    assert not np.allclose(out[0], out[1])
    without, _ = _query_tower(use_context=False)
    out = without(batch).numpy()
    np.testing.assert_allclose(out[0], out[1])


def _catalog():
    return catalog_from_rows(
        [
            {F.ITEM_ID: "a", F.TITLE: "A", F.CATEGORIES: ["jazz"]},
            {F.ITEM_ID: "b", F.TITLE: "B", F.CATEGORIES: ["jazz", "rock"]},
            {F.ITEM_ID: "cold", F.TITLE: "Cold", F.CATEGORIES: ["rock"]},
        ]
    )


def test_catalog_pads_categories_and_orders_the_vocabulary_by_frequency():
    catalog = _catalog()
    assert catalog.categories.tolist() == [["jazz", ""], ["jazz", "rock"], ["rock", ""]]
    assert catalog.category_vocabulary == ("jazz", "rock")  # Tie broken by name.
    assert catalog.texts.tolist() == ["A\njazz", "B\njazz, rock", "Cold\nrock"]


def test_candidate_tower_uses_catalog_categories_and_text_vectors_by_id():
    catalog = _catalog()
    items = IdEmbedding(["a", "b"], 4)  # "cold" has no id row of its own.
    text = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    tower = CandidateTower(items, catalog.ids, 5, catalog.categories,
                           catalog.category_vocabulary, text_vectors=text)  # fmt: skip
    out = tower(tf.constant(["a", "cold", "unknown", "unknown2"])).numpy()
    assert out.shape == (4, 5)
    # A cold item and an unknown item share the OOV id row, but the cold item's categories
    # and text set it apart; two unknown items are identical.
    assert not np.allclose(out[1], out[2])
    np.testing.assert_allclose(out[2], out[3])
    # The projection input is [id (4), categories (5), text (2)].
    assert tower.projection.kernel.shape == (4 + 5 + 2, 5)


def test_candidate_tower_with_a_text_encoder_feeds_it_the_catalog_texts():
    catalog = _catalog()
    seen = []

    class Recorder(tf_keras.layers.Layer):
        def call(self, texts, training=False):
            seen.append(texts.numpy().astype(str).tolist())
            return tf.ones([tf.shape(texts)[0], 3])

    tower = CandidateTower(IdEmbedding(["a"], 4), catalog.ids, 5, text_encoder=Recorder(),
                           texts=catalog.texts)  # fmt: skip
    tower(tf.constant(["cold", "nope"]))
    assert seen[-1] == ["Cold\nrock", ""]
    # Repeated items (and all unknown ids, which share the empty text) are encoded once.
    tower(tf.constant(["b", "cold", "b", "nope", "x"]))
    assert seen[-1] == ["B\njazz, rock", "Cold\nrock", ""]
    with pytest.raises(ValueError, match="texts"):
        CandidateTower(IdEmbedding(["a"], 4), catalog.ids, 5, text_encoder=Recorder())


def test_candidate_tower_encodes_each_distinct_text_once_with_per_row_results():
    catalog = _catalog()
    texts = {text: float(i + 1) for i, text in enumerate(catalog.texts.tolist() + [""])}

    class Length(tf_keras.layers.Layer):  # A text's vector: [index + 1, 2 * (index + 1)].
        def call(self, texts_in, training=False):
            keys = tf.constant(list(texts))
            values = tf.constant(list(texts.values()))
            value = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(keys, values), 0.0
            ).lookup(texts_in)
            return tf.stack([value, 2 * value], axis=1)

    tower = CandidateTower(IdEmbedding(["a"], 4), catalog.ids, 2, text_encoder=Length(),
                           texts=catalog.texts)  # fmt: skip
    ids = ["b", "a", "b", "zzz", "cold", "a"]
    out = tower(tf.constant(ids)).numpy()
    # Only the text columns (the last 2 of the projection input) differ between rows with
    # the same id embedding; recompute the projection by hand.
    rows = {"a": 0, "b": 1, "cold": 2}
    text = np.array([[texts[catalog.texts[rows[i]]] if i in rows else texts[""]] * 2
                     for i in ids]) * [1, 2]  # fmt: skip
    ids_part = tower.item_embedding(tf.constant(ids)).numpy()
    kernel, bias = (w.numpy() for w in tower.projection.weights)
    np.testing.assert_allclose(out, np.concatenate([ids_part, text], 1) @ kernel + bias,
                               rtol=1e-5)  # fmt: skip


def test_dcn_ranker_shapes_config_and_saved_model_round_trip(tmp_path):
    ranker = DcnRanker(cross_layers=2, projection_dim=3, deep_layers=(8,))
    query, candidate = tf.random.normal([5, 4], seed=1), tf.random.normal([5, 4], seed=2)
    scores = ranker(query, candidate)
    assert scores.shape == (5,)
    config = ranker.get_config()
    assert (config["cross_layers"], config["projection_dim"], config["deep_layers"]) == (2, 3, [8])

    q_in, c_in = tf_keras.Input((4,)), tf_keras.Input((4,))
    model = tf_keras.Model([q_in, c_in], DcnRanker(1, 0, (4,))(q_in, c_in))
    path = str(tmp_path / "ranker")
    model.save(path, save_format="tf")
    loaded = tf_keras.models.load_model(path, custom_objects={"DcnRanker": DcnRanker})
    np.testing.assert_allclose(
        loaded([query, candidate]).numpy(), model([query, candidate]).numpy(), rtol=1e-5
    )
