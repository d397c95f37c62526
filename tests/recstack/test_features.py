"""The feature contract: TF parse specs and data layout."""

import pytest
import tensorflow as tf

from recstack import features as F


def _bytes(*values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))


def test_parse_spec_reads_examples_written_with_contract_names():
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                F.USER_ID: _bytes("u1"),
                F.ITEM_ID: _bytes("i9"),
                F.TIMESTAMP: tf.train.Feature(int64_list=tf.train.Int64List(value=[1234])),
                F.EVENT: _bytes("click"),
            }
        )
    )
    parsed = tf.io.parse_example(
        [example.SerializeToString()], F.tf_parse_spec(F.INTERACTION_FEATURES)
    )
    assert parsed[F.USER_ID].numpy().tolist() == [b"u1"]
    assert parsed[F.TIMESTAMP].numpy().tolist() == [1234]
    assert parsed[F.VALUE].numpy().tolist() == [0.0]  # Missing optional value -> default.


def test_var_len_categories_parse_as_ragged():
    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={F.ITEM_ID: _bytes(item), F.CATEGORIES: _bytes(*cats)}
            )
        ).SerializeToString()
        for item, cats in (("a", ["x", "y"]), ("b", []))
    ]
    parsed = tf.io.parse_example(examples, F.tf_parse_spec(F.ITEM_FEATURES))
    assert parsed[F.CATEGORIES].to_list() == [[b"x", b"y"], []]
    assert parsed[F.TITLE].numpy().tolist() == [b"", b""]


def test_missing_required_feature_fails():
    example = tf.train.Example(features=tf.train.Features(feature={F.USER_ID: _bytes("u")}))
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.io.parse_example([example.SerializeToString()], F.tf_parse_spec(F.INTERACTION_FEATURES))


def test_layout_paths_and_bad_dtype():
    layout = F.DataLayout("gs://bucket/data")
    assert layout.train_pattern == "gs://bucket/data/train-*.tfrecord.gz"
    assert layout.item_vocab == "gs://bucket/data/" + F.ITEM_VOCAB_FILE
    with pytest.raises(ValueError, match="'bytes'"):
        F.Feature("x", "bytes")
