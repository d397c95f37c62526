"""Tests of the stage functions that need no Beam job or training: paths, Resolver, SchemaGen
and the Pusher's guards (the full stages run in tests/pipeline/test_pipeline_runs.py)."""

import json
import os

import pytest

from pipeline import lineage, stages, state
from pipeline.pusher import LINEAGE_FILE
from pipeline.schema import SCHEMA_VERSION

# beam_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/gcs/bucket/runs/x", "gs://bucket/runs/x"),
        ("/gcs/bucket", "gs://bucket"),
        ("gs://bucket/x", "gs://bucket/x"),
        ("/tmp/gcs/bucket/x", "/tmp/gcs/bucket/x"),
        ("/gcsfuse/bucket/x", "/gcsfuse/bucket/x"),
        ("relative/x", "relative/x"),
    ],
)
def test_beam_path_turns_the_vertex_mount_into_gcs(path, expected):
    assert stages.beam_path(path) == expected


# InputFingerprint and Resolver


def test_input_fingerprint_covers_every_pattern(tmp_path):
    (tmp_path / "a.jsonl").write_text("1\n")
    (tmp_path / "b.jsonl").write_text("22\n")
    patterns = [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), ""]
    expected = lineage.fingerprint(lineage.list_inputs(patterns))
    assert stages.run_input_fingerprint(json.dumps(patterns)) == expected
    assert stages.run_input_fingerprint(json.dumps(patterns[:1])) != expected


def test_resolver_keys_the_state_by_config_code_and_data(tmp_path):
    record = {"model_uri": "/m1", "statistics_uri": "/s1", "examples_uri": "/e1",
              "base_model_uri": "/m0", "baseline_model_uri": "/m0",
              "inputs_key": state.inputs_key("static", "data-1"), "version": 1}  # fmt: skip
    state.append_record(str(tmp_path), record)
    repeat = stages.run_resolver(str(tmp_path), "static", "data-1", warm_start=True)
    assert (repeat.base_model_uri, repeat.baseline_model_uri) == ("/m0", "/m0")
    new_data = stages.run_resolver(str(tmp_path), "static", "data-2", warm_start=True)
    assert (new_data.base_model_uri, new_data.baseline_statistics_uri) == ("/m1", "/s1")
    new_config = stages.run_resolver(str(tmp_path), "static-2", "data-1", warm_start=False)
    assert (new_config.base_model_uri, new_config.baseline_model_uri) == ("", "/m1")


# SchemaGen


def strings(counts, present=4):
    top = [{"value": v, "count": c} for v, c in counts.items()]
    return {"kind": "bytes", "kinds": {"bytes": present}, "num_present": present,
            "min_num_values": 1, "max_num_values": 1,
            "bytes": {"num_unique": len(counts), "total_count": sum(counts.values()),
                      "top_values": top}}  # fmt: skip


def numeric(low, high, present=4):
    return {"kind": "int", "kinds": {"int": present}, "num_present": present,
            "min_num_values": 1, "max_num_values": 1,
            "numeric": {"count": present, "min": low, "max": high, "mean": low,
                        "std": 0.0}}  # fmt: skip


def write_statistics(directory, events, ratings=(1, 5)):
    """A statistics artifact (`statistics.json` as StatisticsGen writes it) of one split."""
    features = {"event": strings(events), "rating": numeric(*ratings)}
    statistics = {"splits": {"train": {"num_examples": 4, "features": features}}}
    os.makedirs(directory)
    with open(os.path.join(directory, stages.STATISTICS_FILE), "w") as f:
        json.dump(statistics, f)
    return str(directory)


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


EXPECTED_SCHEMA = {
    "version": SCHEMA_VERSION,
    "splits": {"train": {"features": {
        "event": {"type": "bytes", "presence": {"required": True, "min_fraction": 1.0},
                  "value_count": {"min": 1, "max": 1}, "string_domain": ["click", "view"]},
        "rating": {"type": "int", "presence": {"required": True, "min_fraction": 1.0},
                   "value_count": {"min": 1, "max": 1},
                   "range": {"min": 1, "max": 5, "enforced": True}},
    }}},
}  # fmt: skip


def test_schema_gen_infers_and_stores_the_schema_on_the_first_run(tmp_path):
    statistics = write_statistics(tmp_path / "statistics", {"view": 3, "click": 1})
    stored = str(tmp_path / "state" / "schema.json")  # state/ does not exist yet
    output = str(tmp_path / "schema")
    assert stages.run_schema_gen(statistics, stored, "{}", output) is True
    assert read_json(stored) == EXPECTED_SCHEMA
    assert read_json(os.path.join(output, stages.SCHEMA_FILE)) == EXPECTED_SCHEMA


def test_schema_gen_infers_with_its_config_section(tmp_path):
    statistics = write_statistics(tmp_path / "statistics", {"view": 3, "click": 1})
    stored = str(tmp_path / "schema.json")
    stages.run_schema_gen(statistics, stored, json.dumps({"max_domain_size": 1}), str(tmp_path))
    assert "string_domain" not in read_json(stored)["splits"]["train"]["features"]["event"]


def test_schema_gen_reuses_the_stored_schema_on_later_runs(tmp_path):
    stored = str(tmp_path / "state" / "schema.json")
    first = write_statistics(tmp_path / "run1", {"view": 3, "click": 1})
    stages.run_schema_gen(first, stored, "{}", str(tmp_path / "schema1"))
    # New data with a new event and a wider range: the stored schema stays the reference, so
    # the ExampleValidator can flag the difference.
    second = write_statistics(tmp_path / "run2", {"view": 2, "buy": 2}, ratings=(0, 9))
    output = str(tmp_path / "schema2")
    assert stages.run_schema_gen(second, stored, "{}", output) is False
    assert read_json(os.path.join(output, stages.SCHEMA_FILE)) == EXPECTED_SCHEMA
    assert read_json(stored) == EXPECTED_SCHEMA


def test_schema_gen_rejects_a_stored_file_that_is_not_a_schema(tmp_path):
    stored = tmp_path / "schema.json"
    stored.write_text(json.dumps({"version": 99, "splits": {}}))
    statistics = write_statistics(tmp_path / "statistics", {"view": 1})
    with pytest.raises(ValueError, match="not a version-1 schema"):
        stages.run_schema_gen(statistics, str(stored), "{}", str(tmp_path / "out"))


# Pusher


def make_model(root):
    """A Trainer artifact with one fake exported model."""
    version = os.path.join(root, "serving", "retrieval", "1")
    os.makedirs(version)
    with open(os.path.join(version, "saved_model.pb"), "w") as f:
        f.write("graph")
    return str(root)


EVALUATION = {"metric": "recall@10", "candidate": {"recall@10": 0.3}, "blessed": True}


def make_blessing(root, blessed):
    os.makedirs(root)
    marker = stages.BLESSED_FILE if blessed else stages.NOT_BLESSED_FILE
    (root / marker).write_text("")
    (root / stages.EVALUATION_FILE).write_text(json.dumps({**EVALUATION, "blessed": blessed}))
    return str(root)


LINEAGE = {
    "run_id": "run-1", "pipeline": "tiny", "code_version": "c0de", "static_key": "static",
    "data_fingerprint": "data", "config": {"train": {"epochs": 1}}, "base_model_uri": "",
    "baseline_model_uri": "", "baseline_statistics_uri": "", "baseline_examples_uri": "",
}  # fmt: skip


@pytest.fixture
def space(tmp_path):
    return {
        "model": make_model(tmp_path / "model"),
        "examples": str(tmp_path / "examples"),
        "statistics": str(tmp_path / "statistics"),
        "serving": str(tmp_path / "models"),
        "state": str(tmp_path / "state"),
        "tmp": tmp_path,
    }


def push(space, blessing, output="pushed"):
    return stages.run_pusher(
        space["model"], blessing, space["examples"], space["statistics"], space["serving"],
        space["state"], json.dumps(LINEAGE), str(space["tmp"] / output),
    )  # fmt: skip


def test_pusher_refuses_a_model_that_is_not_blessed(space):
    blessing = make_blessing(space["tmp"] / "blessing", blessed=False)
    with pytest.raises(ValueError, match=r"model is not blessed .*refusing to push it"):
        push(space, blessing)
    assert not os.path.exists(space["serving"])
    assert state.read_records(space["state"]) == []


def test_pusher_pushes_and_records_a_blessed_model(space):
    result = push(space, make_blessing(space["tmp"] / "blessing", blessed=True))
    version_dir = os.path.join(space["serving"], "retrieval", "1")
    assert result == {"version": 1, "models": {"retrieval": version_dir}, "already_pushed": False}
    assert read_json(str(space["tmp"] / "pushed" / stages.PUSHED_FILE)) == result
    [record] = state.read_records(space["state"])
    assert record.pop("pushed_at") > 0
    expected = {k: v for k, v in LINEAGE.items() if k != "config"}  # config: lineage file only
    assert record == {
        **expected, "inputs_key": state.inputs_key("static", "data"),
        "model_uri": space["model"], "examples_uri": space["examples"],
        "statistics_uri": space["statistics"], "version": 1,
    }  # fmt: skip
    served_lineage = read_json(os.path.join(version_dir, LINEAGE_FILE))
    assert served_lineage["config"] == LINEAGE["config"]
    assert served_lineage["evaluation"] == EVALUATION
    assert served_lineage["model_uri"] == space["model"]
    assert (served_lineage["version"], served_lineage["model"]) == (1, "retrieval")


def test_pusher_does_not_push_the_same_model_twice(space):
    blessing = make_blessing(space["tmp"] / "blessing", blessed=True)
    push(space, blessing, output="pushed1")
    again = push(space, blessing, output="pushed2")
    assert again == {"version": 1, "models": {}, "already_pushed": True}
    assert read_json(str(space["tmp"] / "pushed2" / stages.PUSHED_FILE)) == again
    assert os.listdir(os.path.join(space["serving"], "retrieval")) == ["1"]
    assert len(state.read_records(space["state"])) == 1


def test_a_model_pushed_before_is_recognised_from_the_state_alone(space):
    # Recorded as version 5 (say, by a run whose serving directory was since cleaned up).
    state.append_record(space["state"], {"model_uri": space["model"], "version": 5})
    result = push(space, make_blessing(space["tmp"] / "blessing", blessed=True))
    assert result == {"version": 5, "models": {}, "already_pushed": True}
    assert not os.path.exists(space["serving"])
