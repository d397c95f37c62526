"""Tests of SchemaGen: schemas inferred from hand-written statistics."""

import pytest

from pipeline.schema import (
    SchemaConfig,
    format_number,
    format_schema,
    infer_schema,
    read_schema,
    write_schema,
)
from recstack.config import from_dict


def numeric(kind, low, high, present=10, counts=(1, 1)):
    return {"kind": kind, "kinds": {kind: present}, "num_present": present,
            "min_num_values": counts[0], "max_num_values": counts[1],
            "numeric": {"min": low, "max": high, "mean": (low + high) / 2, "std": 1.0}}  # fmt: skip


def strings(counts, present=10, num_values=(1, 1), num_unique=None):
    top = [{"value": v, "count": c} for v, c in counts.items()]
    return {"kind": "bytes", "kinds": {"bytes": present}, "num_present": present,
            "min_num_values": num_values[0], "max_num_values": num_values[1],
            "bytes": {"num_unique": num_unique or len(counts),
                      "total_count": sum(counts.values()), "top_values": top}}  # fmt: skip


def statistics(features, num_examples=10, split="train"):
    return {"splits": {split: {"num_examples": num_examples, "features": features}}}


TRAIN = {
    "event": strings({"view": 5, "click": 3, "purchase": 2}),
    "user_id": strings({"u1": 6, "u2": 4}),
    "hour": numeric("int", 3, 5),
    "timestamp": numeric("int", 1_700_000_000, 1_700_100_000),
    "value": numeric("float", 0.0, 12.5, present=8),
    "label": numeric("float", 1.0, 1.0),
    "history_item_ids": strings({"a": 9, "b": 3}, num_values=(0, 20)),
}


def test_low_cardinality_strings_get_a_sorted_domain_ids_none():
    features = infer_schema(statistics(TRAIN), SchemaConfig())["splits"]["train"]["features"]
    assert features["event"]["string_domain"] == ["click", "purchase", "view"]
    assert "string_domain" not in features["user_id"]  # an id, however few values it has
    assert "string_domain" not in features["history_item_ids"]
    assert features["event"]["type"] == "bytes" and features["hour"]["type"] == "int"


def test_domain_needs_every_value_and_at_most_max_domain_size():
    many = strings({f"c{i}": 1 for i in range(5)})
    truncated = strings({"x": 5, "y": 3}, num_unique=3)  # top values left one out
    features = infer_schema(
        statistics({"many": many, "truncated": truncated}), SchemaConfig(max_domain_size=4)
    )["splits"]["train"]["features"]
    assert "string_domain" not in features["many"]
    assert "string_domain" not in features["truncated"]


def test_ranges_known_observed_and_open():
    features = infer_schema(statistics(TRAIN), SchemaConfig())["splits"]["train"]["features"]
    assert features["hour"]["range"] == {"min": 0, "max": 23, "enforced": True}  # known bounds
    assert features["label"]["range"] == {"min": 1.0, "max": 1.0, "enforced": True}
    assert features["timestamp"]["range"] == {
        "min": 1_700_000_000, "max": 1_700_100_000, "enforced": False,
    }  # fmt: skip
    assert features["value"]["range"]["enforced"] is False
    assert "range" not in features["event"]


def test_presence_required_only_when_always_present_by_default():
    features = infer_schema(statistics(TRAIN), SchemaConfig())["splits"]["train"]["features"]
    assert features["hour"]["presence"] == {"required": True, "min_fraction": 1.0}
    assert features["value"]["presence"] == {"required": False, "min_fraction": 0.0}
    relaxed = infer_schema(statistics(TRAIN), SchemaConfig(min_presence=0.8))
    assert relaxed["splits"]["train"]["features"]["value"]["presence"]["required"] is True


def test_value_counts_fixed_capped_and_open():
    categories = strings({"jazz": 4, "rock": 9}, num_values=(1, 3))
    features = infer_schema(statistics({**TRAIN, "categories": categories}), SchemaConfig())[
        "splits"
    ]["train"]["features"]
    assert features["event"]["value_count"] == {"min": 1, "max": 1}
    assert features["history_item_ids"]["value_count"] == {"min": 0, "max": 20}
    assert features["categories"]["value_count"] == {"min": 0, "max": None}


def test_empty_splits_get_no_schema():
    stats = statistics(TRAIN)
    stats["splits"]["test"] = {"num_examples": 0, "features": {}}
    assert set(infer_schema(stats, SchemaConfig())["splits"]) == {"train"}


def test_write_read_round_trip(tmp_path):
    schema = infer_schema(statistics(TRAIN), SchemaConfig())
    path = str(tmp_path / "sub" / "schema.json")
    write_schema(schema, path)
    assert read_schema(path) == schema
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["schema.json"]


def test_read_schema_rejects_other_files(tmp_path):
    (tmp_path / "x.json").write_text('{"splits": {}}')
    with pytest.raises(ValueError, match="not a version-1 schema"):
        read_schema(str(tmp_path / "x.json"))
    with pytest.raises(FileNotFoundError):
        read_schema(str(tmp_path / "missing.json"))


def test_format_schema_lists_every_feature():
    text = format_schema(infer_schema(statistics(TRAIN), SchemaConfig()))
    lines = text.splitlines()
    assert lines[0] == "train:" and len(lines) == 2 + len(TRAIN)
    event = next(line for line in lines if line.split()[0] == "event")
    assert event.split() == ["event", "bytes", "required", "1", "{click,", "purchase,", "view}"]
    timestamp = next(line for line in lines if line.split()[0] == "timestamp")
    assert timestamp.endswith("[1700000000, 1700100000] (not enforced)")
    assert next(line for line in lines if "history_item_ids" in line).split()[3] == "0-20"


def test_format_number():
    assert [format_number(v) for v in (3, 2.0, 0.125, 1_700_000_000)] == [
        "3", "2", "0.125", "1700000000",
    ]  # fmt: skip


def test_config_from_yaml_lists_and_validation():
    config = from_dict(SchemaConfig, {"known_ranges": [["hour", 0, 23]], "max_domain_size": 5})
    assert config.known_ranges == (("hour", 0, 23),)
    with pytest.raises(ValueError, match=r"known_ranges entry \['hour', 5, 1\]"):
        SchemaConfig(known_ranges=(("hour", 5, 1),))
    with pytest.raises(ValueError, match="min_presence=0"):
        SchemaConfig(min_presence=0)
