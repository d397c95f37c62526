"""Tests of StatisticsGen: exact statistics of a small hand-written TFRecord set."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from pipeline.statistics import STATISTICS_FILE, compute_statistics, parse_example, read_json
from pipeline.statistics_combiners import FeatureStatsFn, TopValuesFn
from recstack import features as F

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


#: An empty int64 list (a bare [] is written as an empty bytes list).
EMPTY_INTS = tf.train.Feature(int64_list=tf.train.Int64List())


def _feature(value):
    if isinstance(value, tf.train.Feature):
        return value
    values = value if isinstance(value, list) else [value]
    if all(isinstance(v, str) for v in values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))
    if all(isinstance(v, int) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def write_examples(path, rows):
    """Writes dicts of feature values (str/int/float, lists of one of them, or a
    tf.train.Feature) as a GZIP TFRecord file of tf.train.Examples."""
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for row in rows:
            writer.write(_serialized(row))


TRAIN = [
    {"user_id": "u1", "event": "click", "hour": 3, "value": 1.5, "history_item_ids": [],
     "history_timestamps": EMPTY_INTS, "mixed": 7},
    {"user_id": "u2", "event": "view", "hour": 5, "value": 2.5, "history_item_ids": ["a"],
     "history_timestamps": [10], "mixed": 8},
    {"user_id": "u1", "event": "click", "hour": 7, "history_item_ids": ["a", "b", "c"],
     "history_timestamps": [10, 20, 30], "mixed": "x"},
    {"user_id": "u3", "event": "view", "hour": 9, "value": 4.0, "history_item_ids": ["b"],
     "history_timestamps": [40], "mixed": 9},
    {"user_id": "u1", "event": "purchase", "hour": 11, "history_item_ids": ["a", "b"],
     "history_timestamps": [50, 60]},
]  # fmt: skip
EVAL = [{"user_id": "u9", "event": "view", "hour": 23}, {"user_id": "u9", "event": "view"}]
ITEMS = [{"item_id": "a", "categories": ["jazz", "rock"]}]
INGEST_STATS = {F.STAT_ROWS_IN: 10, F.STAT_DEAD_LETTERS: 3, F.STAT_ITEM_GINI: 0.25}


def make_data_dir(root, splits, ingest_stats=None):
    """Writes `{split: rows}` as `<split>-00000-of-00001.tfrecord.gz` plus stats.json."""
    os.makedirs(root, exist_ok=True)
    for split, rows in splits.items():
        write_examples(os.path.join(root, f"{split}-00000-of-00001{F.TFRECORD_SUFFIX}"), rows)
    with open(os.path.join(root, F.STATS_FILE), "w") as f:
        json.dump(ingest_stats or INGEST_STATS, f)
    return str(root)


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    data_dir = make_data_dir(root / "data", {"train": TRAIN, "eval": EVAL, "items": ITEMS})
    output_dir = str(root / "out")
    return compute_statistics(data_dir, output_dir, IN_MEMORY, top_k=2), output_dir


def test_counts_examples_of_the_splits_that_have_files(computed):
    stats, _ = computed
    assert {s: v["num_examples"] for s, v in stats["splits"].items()} == {
        "train": 5, "eval": 2, "items": 1,
    }  # fmt: skip


def test_numeric_feature_has_exact_moments(computed):
    hour = computed[0]["splits"]["train"]["features"]["hour"]
    values = [3, 5, 7, 9, 11]
    assert hour["kind"] == "int" and hour["kinds"] == {"int": 5}
    assert (hour["num_present"], hour["num_missing"]) == (5, 0)
    assert hour["numeric"]["min"] == 3 and hour["numeric"]["max"] == 11
    assert hour["numeric"]["mean"] == pytest.approx(np.mean(values))
    assert hour["numeric"]["std"] == pytest.approx(np.std(values))


def test_partly_missing_float_feature(computed):
    value = computed[0]["splits"]["train"]["features"]["value"]
    assert (value["num_present"], value["num_missing"]) == (3, 2)
    assert value["numeric"]["mean"] == pytest.approx(np.mean([1.5, 2.5, 4.0]))
    assert value["numeric"]["std"] == pytest.approx(np.std([1.5, 2.5, 4.0]))


def test_list_feature_counts_values_and_pools_them_for_moments(computed):
    features = computed[0]["splits"]["train"]["features"]
    timestamps = features["history_timestamps"]
    pooled = [10, 10, 20, 30, 40, 50, 60]
    assert (timestamps["min_num_values"], timestamps["max_num_values"]) == (0, 3)
    assert timestamps["avg_num_values"] == pytest.approx(7 / 5)
    assert timestamps["numeric"]["count"] == 7
    assert timestamps["numeric"]["mean"] == pytest.approx(np.mean(pooled))
    assert timestamps["numeric"]["std"] == pytest.approx(np.std(pooled))
    history = features["history_item_ids"]["bytes"]
    assert (history["num_unique"], history["total_count"]) == (3, 7)
    assert history["top_values"] == [{"value": "a", "count": 3}, {"value": "b", "count": 3}]


def test_top_values_are_the_most_frequent_with_ties_by_value(computed):
    features = computed[0]["splits"]["train"]["features"]
    event = features["event"]["bytes"]
    assert (event["num_unique"], event["total_count"]) == (3, 5)
    assert event["top_values"] == [{"value": "click", "count": 2}, {"value": "view", "count": 2}]
    users = features["user_id"]["bytes"]
    assert users["top_values"] == [{"value": "u1", "count": 3}, {"value": "u2", "count": 1}]
    assert "numeric" not in features["event"]


def test_feature_with_several_kinds_records_each(computed):
    mixed = computed[0]["splits"]["train"]["features"]["mixed"]
    assert mixed["kinds"] == {"bytes": 1, "int": 3} and mixed["kind"] == "int"
    assert (mixed["num_present"], mixed["num_missing"]) == (4, 1)
    assert mixed["numeric"]["mean"] == pytest.approx(8.0)
    assert mixed["bytes"]["top_values"] == [{"value": "x", "count": 1}]


def test_missing_features_of_other_splits(computed):
    eval_hour = computed[0]["splits"]["eval"]["features"]["hour"]
    assert (eval_hour["num_present"], eval_hour["num_missing"]) == (1, 1)
    categories = computed[0]["splits"]["items"]["features"]["categories"]
    assert (categories["min_num_values"], categories["max_num_values"]) == (2, 2)


def test_writes_statistics_json_with_ingest_stats_and_no_temp_files(computed):
    stats, output_dir = computed
    assert stats["ingest"] == INGEST_STATS
    assert os.listdir(output_dir) == [STATISTICS_FILE]
    assert read_json(os.path.join(output_dir, STATISTICS_FILE)) == stats


def test_missing_eval_split_names_the_glob(tmp_path):
    data_dir = make_data_dir(tmp_path / "data", {"train": TRAIN})
    with pytest.raises(FileNotFoundError, match="eval-"):
        compute_statistics(data_dir, str(tmp_path / "out"), IN_MEMORY)


def test_feature_stats_merge_equals_one_pass():
    examples = [parse_example(_serialized(row)) for row in TRAIN]
    fn = FeatureStatsFn()
    one_pass = fn.create_accumulator()
    for example in examples:
        one_pass = fn.add_input(one_pass, example)
    parts = [fn.create_accumulator() for _ in range(3)]
    for i, example in enumerate(examples):
        parts[i % 3] = fn.add_input(parts[i % 3], example)
    merged = fn.extract_output(fn.merge_accumulators(parts))
    expected = fn.extract_output(one_pass)
    assert merged[0] == expected[0] == 5
    for name, stats in expected[1].items():
        numeric = stats.pop("numeric", None)
        assert merged[1][name].pop("numeric", None) == pytest.approx(numeric), name
        assert merged[1][name] == stats


def test_top_values_trim_while_merging_stays_exact():
    counts = {f"v{i}": (i * 7) % 5 + 1 for i in range(12)}
    fn = TopValuesFn(top_k=2)
    parts = [fn.create_accumulator() for _ in range(2)]
    for i, pair in enumerate(counts.items()):
        parts[i % 2] = fn.add_input(parts[i % 2], pair)
    result = fn.extract_output(fn.merge_accumulators(parts))
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:2]
    assert result["top_values"] == [{"value": v, "count": c} for v, c in expected]
    assert (result["num_unique"], result["total_count"]) == (12, sum(counts.values()))


def _serialized(row):
    features = {name: _feature(value) for name, value in row.items()}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()
