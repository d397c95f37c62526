"""Tests of the pipeline state: the blessed-model records and the Resolver's reading of them."""

import hashlib
import os
import time

import pytest

from pipeline import state
from pipeline.state import Resolved


def record(name, key, version, **extra):
    """A pushed model's record, every URI derived from `name` so mix-ups show."""
    return {
        "model_uri": f"/runs/{name}/model", "examples_uri": f"/runs/{name}/examples",
        "statistics_uri": f"/runs/{name}/statistics", "inputs_key": key, "version": version,
        **extra,
    }  # fmt: skip


def test_inputs_key_hashes_static_key_and_fingerprint():
    expected = hashlib.sha256(b"config-and-code:data").hexdigest()
    assert state.inputs_key("config-and-code", "data") == expected
    assert state.inputs_key("a", "b") != state.inputs_key("b", "a")


def test_no_state_file_means_no_records(tmp_path):
    assert state.read_records(str(tmp_path / "state")) == []


def test_records_are_appended_oldest_first_with_push_time(tmp_path):
    state_dir = str(tmp_path / "state")  # created by the first append
    before = time.time()
    state.append_record(state_dir, record("a", "k1", 1))
    state.append_record(state_dir, record("b", "k2", 2))
    after = time.time()
    records = state.read_records(state_dir)
    assert [r["model_uri"] for r in records] == ["/runs/a/model", "/runs/b/model"]
    assert all(before <= r["pushed_at"] <= after for r in records)
    assert {k: v for k, v in records[1].items() if k != "pushed_at"} == record("b", "k2", 2)
    assert os.listdir(state_dir) == [state.STATE_FILE]  # no staging file left


def test_resolve_without_records_is_empty(tmp_path):
    assert state.resolve(str(tmp_path), "key", warm_start=True) == Resolved()


@pytest.fixture
def two_pushes(tmp_path):
    """Two pushed models; the second was warm-started from and compared with the first."""
    state_dir = str(tmp_path / "state")
    state.append_record(state_dir, record("a", "key-a", 1))
    state.append_record(
        state_dir,
        record("b", "key-b", 2, base_model_uri="/runs/a/model",
               baseline_model_uri="/runs/a/model", baseline_statistics_uri="/runs/a/statistics",
               baseline_examples_uri="/runs/a/examples"),
    )  # fmt: skip
    return state_dir


def test_new_inputs_resolve_to_the_latest_blessed_model(two_pushes):
    assert state.resolve(two_pushes, "key-new", warm_start=True) == Resolved(
        base_model_uri="/runs/b/model",
        baseline_model_uri="/runs/b/model",
        baseline_statistics_uri="/runs/b/statistics",
        baseline_examples_uri="/runs/b/examples",
    )


def test_without_warm_start_there_is_no_base_but_still_a_baseline(two_pushes):
    assert state.resolve(two_pushes, "key-new", warm_start=False) == Resolved(
        base_model_uri="",
        baseline_model_uri="/runs/b/model",
        baseline_statistics_uri="/runs/b/statistics",
        baseline_examples_uri="/runs/b/examples",
    )


def test_a_repeated_run_gets_the_base_and_baseline_its_first_run_had(two_pushes):
    # Same inputs as the latest push: resolving to that model itself would change the
    # Trainer's inputs and defeat the cache.
    for warm_start in (True, False):
        assert state.resolve(two_pushes, "key-b", warm_start=warm_start) == Resolved(
            base_model_uri="/runs/a/model",
            baseline_model_uri="/runs/a/model",
            baseline_statistics_uri="/runs/a/statistics",
            baseline_examples_uri="/runs/a/examples",
        )


def test_a_repeat_of_the_first_push_resolves_to_nothing(tmp_path):
    state_dir = str(tmp_path)
    state.append_record(state_dir, record("a", "key-a", 1))  # no base or baseline fields
    assert state.resolve(state_dir, "key-a", warm_start=True) == Resolved()


def test_only_the_latest_record_counts_as_a_repeat(two_pushes):
    # The inputs of an older push are new relative to the latest blessed model.
    resolved = state.resolve(two_pushes, "key-a", warm_start=True)
    assert resolved.base_model_uri == "/runs/b/model"
    assert resolved.baseline_model_uri == "/runs/b/model"


def test_pushed_version_finds_the_models_serving_version(two_pushes):
    assert state.pushed_version(two_pushes, "/runs/a/model") == 1
    assert state.pushed_version(two_pushes, "/runs/b/model") == 2
    assert state.pushed_version(two_pushes, "/runs/c/model") is None


def test_pushed_version_is_an_int_and_none_without_state(tmp_path):
    state.append_record(str(tmp_path), record("a", "k", "3"))
    assert state.pushed_version(str(tmp_path), "/runs/a/model") == 3
    assert state.pushed_version(str(tmp_path / "nothing"), "/runs/a/model") is None
