"""Tests of a run's summary (`pipeline.report`) and of the local runner's helpers: run ids,
`RunResult`, failure messages and the static key (runs themselves: test_pipeline_runs.py)."""

import datetime
import os
import re

import pytest
import yaml

from pipeline import local_runner
from pipeline.config import load_pipeline_settings
from pipeline.definition import static_key
from pipeline.local_runner import RunResult, new_run_id
from pipeline.report import format_run
from pipeline.validation import Anomaly, write_anomalies

EVALUATION = {
    "metric": "recall@10",
    "candidate": {"recall@10": 0.25, "mrr": 0.125},
    "blessed_model": {"recall@10": 0.2},
    "popularity": {"recall@10": 0.1, "mrr": 0.05},
    "blessed": True,
    "reasons": ["pass: recall@10 0.2500 >= blessed 0.2000 x (1 - 0.00)"],
}


def manifest(pushed=None, evaluation=EVALUATION, status="succeeded"):
    return {
        "run_id": "r1",
        "status": status,
        "stages": {
            "ExampleGen": {"ran": False, "cached": True, "artifacts": {"examples": "/c/e"}},
            "Trainer": {"ran": True, "cached": False, "artifacts": {"model": "/r/m"}},
            "Pusher": {"ran": False, "artifacts": {}},
        },
        "evaluation": evaluation,
        "pushed": pushed,
        "serving_model_dir": "/srv/models",
    }


def result(**kwargs):
    return RunResult(run_id="r1", run_dir="/root/runs/r1", manifest=manifest(**kwargs))


# format_run


def test_format_run_shows_stages_evaluation_and_push():
    text = format_run(result(pushed={"version": 3, "models": {}, "already_pushed": False}))
    lines = text.splitlines()
    assert lines[4].startswith("evaluation on the eval split")  # the heading names the protocol
    assert lines[:4] + lines[5:] == [
        "pipeline run r1: succeeded",
        "  ExampleGen        cached (inputs, config and code unchanged)",
        "  Trainer           ran",
        "  Pusher            skipped",
        "  metric          candidate   blessed popularity",
        "  recall@10          0.2500    0.2000     0.1000",
        "  mrr                0.1250         -     0.0500",
        "  BLESSED on recall@10:",
        "    pass: recall@10 0.2500 >= blessed 0.2000 x (1 - 0.00)",
        "pushed version 3 to /srv/models",
        "manifest: /root/runs/r1/manifest.json",
        "TensorBoard: recstack tensorboard --run-dir /root/runs/r1",
    ]


def test_format_run_of_a_repeated_run_says_nothing_new():
    text = format_run(result(pushed={"version": 2, "models": {}, "already_pushed": True}))
    assert "nothing new to push: the model already serves as version 2" in text.splitlines()
    assert "pushed version" not in text


def test_format_run_of_a_first_run_not_blessed():
    evaluation = {**EVALUATION, "blessed_model": None, "blessed": False,
                  "reasons": ["FAIL: recall@50 0.0100 >= threshold 0.0500"]}  # fmt: skip
    lines = format_run(result(evaluation=evaluation)).splitlines()
    assert "  recall@10          0.2500         -     0.1000" in lines
    assert "  NOT BLESSED on recall@10:" in lines
    assert "    FAIL: recall@50 0.0100 >= threshold 0.0500" in lines
    assert "nothing pushed" in lines


def test_format_run_of_a_failed_run_has_no_evaluation():
    text = format_run(result(evaluation=None, status="failed"))
    assert text.splitlines()[0] == "pipeline run r1: failed"
    assert "evaluation" not in text and "nothing pushed" in text


# RunResult


def test_run_result_properties():
    pushed = result(pushed={"version": 3, "models": {}, "already_pushed": False})
    assert pushed.pushed_version == 3
    assert pushed.cached == ["ExampleGen"]
    assert pushed.evaluation == EVALUATION
    assert result(pushed={"version": 3, "already_pushed": True}).pushed_version is None
    assert result().pushed_version is None
    assert result(evaluation=None).evaluation is None


# new_run_id


def test_run_id_is_the_utc_time_with_microseconds(monkeypatch):
    monkeypatch.setattr(local_runner.time, "time", lambda: 1_700_000_000.25)
    assert new_run_id() == "20231114-221320-250000"  # 2023-11-14 22:13:20.25 UTC


def test_run_id_is_now():
    run_id = new_run_id()
    assert re.fullmatch(r"\d{8}-\d{6}-\d{6}", run_id)
    stamp = datetime.datetime.strptime(run_id, "%Y%m%d-%H%M%S-%f").replace(tzinfo=datetime.UTC)
    now = datetime.datetime.now(datetime.UTC)
    assert abs((now - stamp).total_seconds()) < 60


def test_run_ids_sort_in_time_order(monkeypatch):
    times = [1_700_000_000.9, 1_700_000_001.05, 1_700_000_010.5, 1_700_086_400.0,
             1_999_999_999.0]  # fmt: skip
    ids = []
    for now in times:
        monkeypatch.setattr(local_runner.time, "time", lambda now=now: now)
        ids.append(new_run_id())
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_consecutive_run_ids_are_unique():
    ids = [new_run_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


# _failure_message


def failed_manifest(tmp_path, anomalies, validator_ran=True):
    stages = {
        "ExampleGen": {"ran": True, "artifacts": {"examples": "/r/examples"}},
        "ExampleValidator": {"ran": validator_ran, "artifacts": {}},
        "Trainer": {"ran": False, "artifacts": {}},
    }
    if anomalies is not None:
        directory = tmp_path / "anomalies"
        write_anomalies(anomalies, str(directory / "anomalies.json"))
        stages["ExampleValidator"]["artifacts"]["anomalies"] = str(directory)
    return {"run_id": "r7", "stages": stages, "manifest": "/runs/r7/manifest.json"}


SEVERE = Anomaly(split="train", feature="event", kind="unseen_category", severity="error",
                 description="event has values outside the schema: ['buy']")  # fmt: skip
WARNING = Anomaly(split="ingest", feature=None, kind="dead_letters", severity="warning",
                  description="2% of the rows were dead letters")  # fmt: skip


def test_failure_message_of_severe_anomalies_is_the_report(tmp_path):
    message = local_runner._failure_message(
        failed_manifest(tmp_path, [WARNING, SEVERE]), RuntimeError("Task failed")
    )
    lines = message.splitlines()
    assert lines[0] == (
        "ExampleValidator stopped the pipeline: the new data has severe anomalies; "
        "nothing was trained or pushed."
    )
    assert "1 error, 1 warning" in lines[1]
    # Errors first, each with its kind and description.
    assert lines[2].split() == ["ERROR", "[unseen_category]", *SEVERE.description.split()]
    assert lines[3].split()[:2] == ["WARNING", "[dead_letters]"]
    assert lines[-1].startswith("run r7 failed; manifest: ") and "manifest.json" in lines[-1]
    assert "Task failed" not in message


def test_failure_message_strips_kfp_colour_codes(tmp_path):
    failure = RuntimeError("\x1b[1;31mTask 'trainer' finished with status \x1b[91mFAILURE\x1b[0m\n")
    manifest = failed_manifest(tmp_path, [WARNING])  # not severe: some other step failed
    manifest["stages"]["Trainer"]["ran"] = True
    message = local_runner._failure_message(manifest, failure)
    assert "\x1b" not in message
    assert message.startswith(
        "Task 'trainer' finished with status FAILURE (stages without output: ['Trainer']); "
        "run r7 failed"
    )
    assert message.endswith("; the step's log is above")


def test_failure_message_before_the_validator_ran(tmp_path):
    manifest = failed_manifest(tmp_path, None, validator_ran=False)
    manifest["stages"]["ExampleGen"]["artifacts"] = {}
    message = local_runner._failure_message(manifest, RuntimeError("ingest broke"))
    assert message.startswith("ingest broke (stages without output: ['ExampleGen'])")


# static_key


@pytest.fixture
def settings_file(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"pipeline": {"name": "x", "root": str(tmp_path)}}))
    return str(path)


def test_static_key_follows_config_and_code(settings_file):
    settings = load_pipeline_settings(settings_file)
    key = static_key(settings, "code-1")
    assert static_key(load_pipeline_settings(settings_file), "code-1") == key
    assert static_key(settings, "code-2") != key
    assert static_key(load_pipeline_settings(settings_file, ["train.epochs=9"]), "code-1") != key
    assert len(key) == 64 and os.path.basename(settings_file) not in key
