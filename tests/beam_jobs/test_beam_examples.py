"""Tests of the tf.train.Example conversion and the TFRecord writer."""

import glob

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing import test_pipeline

from beam_jobs.examples import WriteExamples, serialize_example
from recstack import features

ITEM = {
    features.ITEM_ID: "i7",
    features.TITLE: "Kind of Blue",
    features.DESCRIPTION: "Modal jazz, é",
    features.CATEGORIES: ["jazz", "modal"],
}


def _parse(serialized, feature_specs):
    return tf.io.parse_example(tf.constant(serialized), features.tf_parse_spec(feature_specs))


def test_interaction_round_trips_through_the_parse_spec():
    row = {
        features.USER_ID: "u1",
        features.ITEM_ID: "i7",
        features.TIMESTAMP: 1_700_000_123,
        features.EVENT: "click",
        features.VALUE: 2.5,
        "ignored": "x",
    }
    parsed = _parse(
        [serialize_example(row, features.INTERACTION_FEATURES)], features.INTERACTION_FEATURES
    )
    assert parsed[features.USER_ID].numpy().tolist() == [b"u1"]
    assert parsed[features.ITEM_ID].numpy().tolist() == [b"i7"]
    assert parsed[features.TIMESTAMP].numpy().tolist() == [1_700_000_123]
    assert parsed[features.EVENT].numpy().tolist() == [b"click"]
    assert parsed[features.VALUE].numpy().tolist() == [2.5]
    assert "ignored" not in parsed


def test_item_categories_are_a_list_feature():
    cold = {features.ITEM_ID: "i8", features.CATEGORIES: []}
    serialized = [serialize_example(r, features.ITEM_FEATURES) for r in (ITEM, cold)]
    parsed = _parse(serialized, features.ITEM_FEATURES)
    assert parsed[features.DESCRIPTION].numpy().tolist() == ["Modal jazz, é".encode(), b""]
    assert parsed[features.CATEGORIES].to_list() == [[b"jazz", b"modal"], []]


def test_missing_required_feature_is_named():
    with pytest.raises(ValueError, match="row has no 'user_id'"):
        serialize_example({features.ITEM_ID: "i"}, features.INTERACTION_FEATURES)


def test_write_examples_writes_gzip_shards_that_the_layout_globs(tmp_path):
    with test_pipeline.TestPipeline() as p:
        _ = (
            p
            | beam.Create([ITEM])
            | WriteExamples(
                str(tmp_path), features.ITEMS_PREFIX, features.ITEM_FEATURES, num_shards=2
            )
        )
    files = sorted(glob.glob(features.DataLayout(str(tmp_path)).items_pattern))
    assert [f.rsplit("/", 1)[1] for f in files] == [
        f"items-0000{i}-of-00002{features.TFRECORD_SUFFIX}" for i in range(2)
    ]
    records = list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())
    parsed = _parse(records, features.ITEM_FEATURES)
    assert parsed[features.ITEM_ID].numpy().tolist() == [b"i7"]
    assert parsed[features.CATEGORIES].to_list() == [[b"jazz", b"modal"]]


def _protobuf_example(row, feature_specs):
    """The same Example built with TensorFlow's protobuf classes."""
    example = tf.train.Example()
    for spec in feature_specs:
        value = row.get(spec.name, spec.default)
        values = list(value) if spec.var_len else [value]
        feature = example.features.feature[spec.name]
        if spec.dtype == features.DTYPE_STRING:
            feature.bytes_list.SetInParent()
            feature.bytes_list.value.extend(v.encode("utf-8") for v in values)
        elif spec.dtype == features.DTYPE_INT64:
            feature.int64_list.SetInParent()
            feature.int64_list.value.extend(values)
        else:
            feature.float_list.SetInParent()
            feature.float_list.value.extend(values)
    return example


@pytest.mark.parametrize(
    "row",
    [
        {features.USER_ID: "u", features.ITEM_ID: "é🎵", features.TIMESTAMP: 1_700_000_123,
         features.EVENT: "", features.VALUE: 0.3, features.HISTORY_ITEM_IDS: ["a", "b" * 300],
         features.HISTORY_TIMESTAMPS: [-5, 0, 2**62]},
        {features.USER_ID: "u", features.ITEM_ID: "i", features.TIMESTAMP: 0,
         features.EVENT: "view", features.HOUR: 23},
    ],
)  # fmt: skip
def test_the_wire_encoding_equals_protobufs_own(row):
    ours = serialize_example(row, features.INTERACTION_FEATURES)
    expected = _protobuf_example(row, features.INTERACTION_FEATURES)
    assert tf.train.Example.FromString(ours) == expected
    assert ours == expected.SerializeToString(deterministic=True)
