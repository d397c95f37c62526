"""Tests of ExampleValidator: each kind of anomaly from modified statistics, TFRecords and a
real tiny ingestion."""

import json
import os

import pytest
import tensorflow as tf

from pipeline import validation as V
from pipeline.schema import SchemaConfig, infer_schema
from pipeline.statistics import compute_statistics
from pipeline.validation import (
    Anomaly,
    SevereAnomaliesError,
    ValidationConfig,
    format_anomalies,
    validate,
    write_anomalies,
)
from recstack import features as F

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
CONFIG = ValidationConfig()


def numeric(kind, low, high, present=100, counts=(1, 1)):
    return {"kind": kind, "kinds": {kind: present}, "num_present": present,
            "min_num_values": counts[0], "max_num_values": counts[1],
            "numeric": {"min": low, "max": high, "mean": (low + high) / 2, "std": 1.0}}  # fmt: skip


def strings(counts, present=100, num_values=(1, 1), total=None):
    return {"kind": "bytes", "kinds": {"bytes": present}, "num_present": present,
            "min_num_values": num_values[0], "max_num_values": num_values[1],
            "bytes": {"num_unique": len(counts), "total_count": total or sum(counts.values()),
                      "top_values": [{"value": v, "count": c} for v, c in counts.items()]},
            }  # fmt: skip


def split_stats():
    return {"num_examples": 100, "features": {
        "event": strings({"view": 50, "click": 30, "purchase": 20}),
        "item_id": strings({"i1": 40, "i2": 30, "i3": 20, "i4": 10}),
        "hour": numeric("int", 0, 23),
        "timestamp": numeric("int", 1_700_000_000, 1_700_100_000),
        "history_item_ids": strings({"i1": 300, "i2": 200}, num_values=(0, 20)),
    }}  # fmt: skip


def baseline_stats():
    ingest = {F.STAT_ROWS_IN: 1000, F.STAT_DEAD_LETTERS: 10, F.STAT_ITEM_GINI: 0.3,
              F.STAT_CATALOG_ITEMS: 50, F.STAT_CATALOG_DEAD_LETTERS: 0}  # fmt: skip
    return {"splits": {"train": split_stats(), "eval": split_stats()}, "ingest": ingest}


SCHEMA = infer_schema(baseline_stats(), SchemaConfig())


def train_features(stats):
    return stats["splits"]["train"]["features"]


def errors(anomalies):
    return [a for a in anomalies if a.severity == V.ERROR]


def only(anomalies, kind):
    (anomaly,) = [a for a in anomalies if a.kind == kind]
    return anomaly


def test_clean_data_against_its_own_schema_and_baseline_has_no_anomalies():
    assert validate(baseline_stats(), SCHEMA, CONFIG, baseline_statistics=baseline_stats()) == []


def test_new_event_type_names_share_domain_value_and_config_key():
    stats = baseline_stats()
    train_features(stats)["event"] = strings({"view": 30, "like": 31, "click": 20, "purchase": 19})
    anomaly = only(validate(stats, SCHEMA, CONFIG), V.UNSEEN_CATEGORY)
    assert anomaly == Anomaly(
        "train", "event", V.UNSEEN_CATEGORY, V.ERROR,
        "train: feature 'event' has 31.0% values outside the schema domain ['click', 'purchase', "
        "'view'] (unexpected: 'like'); threshold 1.0% (validation.max_unseen_category_fraction)",
        0.31, 0.01,
    )  # fmt: skip


def test_rare_unseen_category_is_a_warning_and_warn_only_downgrades_errors():
    stats = baseline_stats()
    train_features(stats)["event"] = strings({"view": 500, "click": 300, "purchase": 199, "x": 1})
    assert only(validate(stats, SCHEMA, CONFIG), V.UNSEEN_CATEGORY).severity == V.WARNING
    train_features(stats)["event"] = strings({"view": 50, "like": 50})
    lenient = ValidationConfig(warn_only=(V.UNSEEN_CATEGORY,))
    anomaly = only(validate(stats, SCHEMA, lenient), V.UNSEEN_CATEGORY)
    assert anomaly.severity == V.WARNING and "validation.warn_only" in anomaly.description


def test_missing_and_partly_missing_required_features():
    stats = baseline_stats()
    del train_features(stats)["hour"]
    anomaly = only(validate(stats, SCHEMA, CONFIG), V.MISSING_FEATURE)
    assert (anomaly.split, anomaly.feature, anomaly.severity) == ("train", "hour", V.ERROR)
    assert (anomaly.value, anomaly.threshold) == (0.0, 1.0)
    assert "present in 0.0% of 100 examples but the schema requires 100%" in anomaly.description
    stats = baseline_stats()
    stats["splits"]["eval"]["features"]["event"]["num_present"] = 90
    anomaly = only(validate(stats, SCHEMA, CONFIG), V.MISSING_FEATURE)
    assert (anomaly.split, anomaly.value) == ("eval", 0.9)


def test_type_change():
    stats = baseline_stats()
    train_features(stats)["hour"]["kinds"] = {"int": 90, "float": 10}
    anomaly = only(validate(stats, SCHEMA, CONFIG), V.TYPE_CHANGE)
    assert anomaly.severity == V.ERROR and anomaly.value == pytest.approx(0.1)
    assert "has type float in 10 of 100 examples but the schema says int" in anomaly.description


def test_out_of_range_hour_but_open_range_timestamp_passes():
    stats = baseline_stats()
    train_features(stats)["hour"]["numeric"]["max"] = 27
    train_features(stats)["timestamp"]["numeric"]["max"] = 1_800_000_000
    (anomaly,) = validate(stats, SCHEMA, CONFIG)
    assert (anomaly.kind, anomaly.feature, anomaly.value, anomaly.threshold) == (
        V.OUT_OF_RANGE, "hour", 27, 23,
    )  # fmt: skip
    assert "values in [0, 27] outside the schema range [0, 23]" in anomaly.description


def test_value_count_above_the_capped_history_length():
    stats = baseline_stats()
    train_features(stats)["history_item_ids"]["max_num_values"] = 25
    anomaly = only(validate(stats, SCHEMA, CONFIG), V.VALUE_COUNT)
    assert "has 0-25 values per example, outside the schema's 0-20" in anomaly.description


def test_unexpected_feature_is_a_warning_and_test_split_uses_train_schema():
    stats = baseline_stats()
    train_features(stats)["country"] = strings({"DE": 100})
    stats["splits"]["test"] = split_stats()
    (anomaly,) = validate(stats, SCHEMA, CONFIG)
    assert (anomaly.kind, anomaly.feature, anomaly.severity) == (
        V.UNEXPECTED_FEATURE, "country", V.WARNING,
    )  # fmt: skip


def test_empty_train_split_is_an_error_empty_test_split_is_not():
    stats = baseline_stats()
    stats["splits"]["train"] = {"num_examples": 0, "features": {}}
    stats["splits"]["test"] = {"num_examples": 0, "features": {}}
    (anomaly,) = validate(stats, SCHEMA, CONFIG)
    assert (anomaly.kind, anomaly.split, anomaly.severity) == (V.EMPTY_SPLIT, "train", V.ERROR)


def test_high_dead_letter_shares():
    stats = baseline_stats()
    stats["ingest"][F.STAT_DEAD_LETTERS] = 100
    stats["ingest"][F.STAT_CATALOG_DEAD_LETTERS] = 1  # 1 of 51: 2.0%, within 5%
    (anomaly,) = validate(stats, SCHEMA, CONFIG)
    assert (anomaly.kind, anomaly.split, anomaly.value, anomaly.threshold) == (
        V.DEAD_LETTERS, "ingest", 0.1, 0.05,
    )  # fmt: skip
    assert anomaly.description == (
        "ingest: 100 of 1000 interaction rows (10.0%) went to dead letters (dead_letters-*.jsonl "
        "give the reasons); threshold 5.0% (validation.max_dead_letter_fraction)"
    )
    stats["ingest"][F.STAT_CATALOG_DEAD_LETTERS] = 10  # 10 of 60
    found = validate(stats, SCHEMA, CONFIG)
    assert [a.feature for a in found] == [F.STAT_DEAD_LETTERS, F.STAT_CATALOG_DEAD_LETTERS]


def _write_vocab(data_dir, name, counts):
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, name), "w") as f:
        f.writelines(F.format_vocabulary_line(t, n, 0) for t, n in counts.items())


def test_baseline_statistics_and_data_dirs_enable_the_drift_and_new_id_checks(tmp_path):
    """The checks themselves are tested in test_drift.py."""
    stats = baseline_stats()
    stats["ingest"][F.STAT_ITEM_GINI] = 0.45
    assert validate(stats, SCHEMA, CONFIG) == []
    (anomaly,) = validate(stats, SCHEMA, CONFIG, baseline_statistics=baseline_stats())
    assert anomaly.kind == V.GINI_DRIFT
    base, now = str(tmp_path / "base"), str(tmp_path / "now")
    for data_dir, ids in ((base, ["a"]), (now, ["a", "b", "c"])):
        _write_vocab(data_dir, F.ITEM_VOCAB_FILE, dict.fromkeys(ids, 10))
        _write_vocab(data_dir, F.USER_VOCAB_FILE, {"u1": 10})
    found = validate(baseline_stats(), SCHEMA, CONFIG, data_dir=now, baseline_data_dir=base)
    assert [(a.kind, a.severity) for a in found] == [(V.NEW_ITEMS, V.ERROR)]


def test_report_json_and_error(tmp_path):
    stats = baseline_stats()
    stats["ingest"][F.STAT_DEAD_LETTERS] = 100
    train_features(stats)["country"] = strings({"DE": 100})
    found = validate(stats, SCHEMA, CONFIG)
    assert [a.severity for a in found] == [V.ERROR, V.WARNING]
    report = format_anomalies(list(reversed(found)))
    lines = report.splitlines()
    assert lines[0] == "ExampleValidator: 1 error, 1 warning, 0 info"
    assert lines[1].startswith("  ERROR   [dead_letters] ingest: 100 of 1000")
    assert lines[2].startswith("  WARNING [unexpected_feature] train: feature 'country'")
    assert str(SevereAnomaliesError(found)) == format_anomalies(found)
    assert str(SevereAnomaliesError(report)) == report
    write_anomalies(found, str(tmp_path / "anomalies.json"))
    written = json.loads((tmp_path / "anomalies.json").read_text())
    assert written["summary"] == {"counts": {"error": 1, "warning": 1, "info": 0}, "severe": True}
    assert written["anomalies"][0]["kind"] == V.DEAD_LETTERS
    assert format_anomalies([]) == "ExampleValidator: no anomalies\n"


def test_unknown_warn_only_kind_is_rejected():
    with pytest.raises(ValueError, match=r"unknown kinds \['typo'\]"):
        ValidationConfig(warn_only=("typo",))


def _example(row):
    feature = {}
    for name, value in row.items():
        if isinstance(value, str):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _data_dir(root, train_rows, eval_rows):
    os.makedirs(root)
    for split, rows in (("train", train_rows), ("eval", eval_rows)):
        path = os.path.join(root, f"{split}-00000-of-00001{F.TFRECORD_SUFFIX}")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for row in rows:
                writer.write(_example(row))
    with open(os.path.join(root, F.STATS_FILE), "w") as f:
        json.dump({F.STAT_ROWS_IN: 20, F.STAT_DEAD_LETTERS: 0}, f)
    return str(root)


def test_tfrecords_with_a_new_event_and_an_impossible_hour(tmp_path):
    rows = [
        {"user_id": f"u{i % 3}", "event": ("view", "click")[i % 2], "hour": i} for i in range(10)
    ]
    bad = [{**row, "hour": 30} if i == 0 else row for i, row in enumerate(rows)]
    bad += [{"user_id": "u1", "event": "like", "hour": 1}]
    baseline = compute_statistics(
        _data_dir(tmp_path / "a", rows, rows), str(tmp_path / "sa"), IN_MEMORY
    )
    current = compute_statistics(
        _data_dir(tmp_path / "b", bad, rows), str(tmp_path / "sb"), IN_MEMORY
    )
    schema = infer_schema(baseline, SchemaConfig())
    assert validate(baseline, schema, CONFIG, baseline_statistics=baseline) == []
    found = validate(current, schema, CONFIG, baseline_statistics=baseline)
    assert {(a.split, a.feature, a.kind) for a in errors(found)} == {
        ("train", "event", V.UNSEEN_CATEGORY),  # 1 of 11
        ("train", "hour", V.OUT_OF_RANGE),
    }  # fmt: skip
    assert only(found, V.UNSEEN_CATEGORY).value == pytest.approx(1 / 11)


@pytest.fixture(scope="module")
def ingested(data_dir, tmp_path_factory):
    """The shared tiny ingestion (tests/conftest.py) and its statistics."""
    stats_dir = str(tmp_path_factory.mktemp("ingested") / "stats")
    return data_dir, compute_statistics(data_dir, stats_dir, IN_MEMORY)


def test_real_ingestion_statistics_match_stats_json_and_validate_clean(ingested):
    data_dir, stats = ingested
    ingest, train = stats["ingest"], stats["splits"]["train"]
    assert train["num_examples"] == ingest[F.STAT_TRAIN_ROWS]
    assert stats["splits"]["eval"]["num_examples"] == ingest[F.STAT_EVAL_ROWS]
    assert stats["splits"]["items"]["num_examples"] == ingest[F.STAT_CATALOG_ITEMS]
    events = {t["value"]: t["count"] for t in train["features"]["event"]["bytes"]["top_values"]}
    assert events == ingest[F.STAT_EVENTS_PER_SPLIT]["train"]
    with open(F.DataLayout(data_dir).item_vocab) as f:
        assert train["features"]["item_id"]["bytes"]["num_unique"] == len(f.readlines())
    schema = infer_schema(stats, SchemaConfig())
    assert schema["splits"]["train"]["features"]["event"]["string_domain"] == sorted(events)
    found = validate(stats, schema, CONFIG, stats, data_dir=data_dir, baseline_data_dir=data_dir)
    assert found == []
