"""The local runner: `recstack pipeline run --config tfx_config/local.yaml`.

Runs `create_pipeline(settings)` with `kfp.local`'s SubprocessRunner in this Python
environment (offline; every step is a subprocess of this interpreter), with kfp's step cache
under `<root>/cache`. Each run gets `<root>/runs/<run id>/`, holding kfp's task directories
and `manifest.json`: which data, config and code produced each artifact, which steps were
cached, what was pushed, and where the TensorBoard logs are (`recstack tensorboard`).
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import re
import time
import warnings
from typing import Any

from pipeline import lineage
from pipeline.artifacts import (
    ANOMALIES_FILE,
    EVALUATION_FILE,
    PUSHED_FILE,
    RUN_SUBDIR,
    TENSORBOARD_SUBDIR,
)
from pipeline.config import PipelineSettings
from pipeline.definition import LOCAL, OUTPUT_STAGES, STAGE_TASKS, create_pipeline, static_key
from recstack import fs

log = logging.getLogger(__name__)


_TASK_NAME = re.compile(r"[Tt]ask '?([a-z0-9-]+)'?")


class _TaskTimer(logging.Filter):
    """Wall-clock seconds of each kfp task, read from kfp.local's log records ("Executing
    task 'x'", "Task 'x' finished with status ...") on the root logger.

    A filter, not a handler: kfp.local replaces the root logger's handlers while it runs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(record.msg))
        name = _TASK_NAME.search(text)
        if name is None:
            return True
        task = name.group(1)
        if text.startswith("Executing task"):
            self.started[task] = record.created
        elif "finished with status" in text and task in self.started:
            self.seconds[task] = record.created - self.started[task]
        return True


class PipelineFailedError(RuntimeError):
    """A step failed; the message names it and, for ExampleValidator, holds the anomalies."""


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a local run did.

    Attributes:
      run_id: Name of the run directory.
      run_dir: `<root>/runs/<run_id>`.
      manifest: The run's manifest (also in `run_dir/manifest.json`).
    """

    run_id: str
    run_dir: str
    manifest: dict[str, Any]

    @property
    def pushed_version(self) -> int | None:
        pushed = self.manifest.get("pushed")
        return None if not pushed or pushed.get("already_pushed") else pushed["version"]

    @property
    def evaluation(self) -> dict[str, Any] | None:
        return self.manifest.get("evaluation")

    @property
    def cached(self) -> list[str]:
        """TFX names of the stages whose results came from the cache."""
        return [s for s, info in self.manifest["stages"].items() if info.get("cached")]


def new_run_id() -> str:
    """A sortable, unique run id: UTC time with microseconds."""
    now = time.time()
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"-{int(now % 1 * 1e6):06d}"


def run_local(settings: PipelineSettings, run_id: str = "") -> RunResult:
    """Runs the pipeline once, locally, and writes the run's manifest.

    Raises:
      PipelineFailedError: a step failed (the manifest is written first); when the
        ExampleValidator stopped the run, the message is its anomaly report.
    """
    from kfp import local

    config = settings.pipeline
    config.check_inputs()
    run_id = run_id or new_run_id()
    run_dir = os.path.join(config.runs_dir, run_id)
    code = lineage.code_version()
    inputs = lineage.list_inputs([config.interactions, config.items, config.users])
    pipeline_func = create_pipeline(settings, code, LOCAL, run_id)
    warnings.filterwarnings("ignore", message=".*no effect in the current local runner")
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=run_dir,
        enable_caching=config.enable_cache,
        cache_root=config.cache_dir,
        raise_on_error=True,
    )
    started = time.time()
    outputs, failure = {}, None
    timer, root = _TaskTimer(), logging.getLogger()
    root.addFilter(timer)
    try:
        outputs = {name: a.uri for name, a in pipeline_func().outputs.items()}
    except RuntimeError as e:
        failure = e
    finally:
        root.removeFilter(timer)
    manifest = _manifest(settings, run_id, run_dir, code, inputs, outputs, started, failure)
    for info in manifest["stages"].values():
        info["seconds"] = round(timer.seconds.get(info["task"], 0.0), 2)
    manifest["step_seconds"] = {task: round(s, 2) for task, s in timer.seconds.items()}
    lineage.write_manifest(run_dir, manifest)
    if failure is not None:
        raise PipelineFailedError(_failure_message(manifest, failure)) from failure
    return RunResult(run_id=run_id, run_dir=run_dir, manifest=manifest)


def _task_dirs(run_dir: str) -> dict[str, str]:
    """`{task name: directory}` of the steps that ran (not cached) in this run."""
    found = {}
    for kfp_run in sorted(glob.glob(os.path.join(run_dir, "*", ""))):
        for task in os.listdir(kfp_run):
            if os.path.isdir(os.path.join(kfp_run, task)):
                found[task] = os.path.join(kfp_run, task)
    return found


def _read(path: str) -> Any:
    """A JSON artifact file, or None when the step did not write it."""
    return fs.read_json(path) if fs.exists(path) else None


def _manifest(
    settings: PipelineSettings,
    run_id: str,
    run_dir: str,
    code: str,
    inputs: list[dict],
    outputs: dict[str, str],
    started: float,
    failure: Exception | None,
) -> dict[str, Any]:
    ran = _task_dirs(run_dir)
    stages: dict[str, dict[str, Any]] = {}
    for stage, task in STAGE_TASKS.items():
        stages[stage] = {"task": task, "ran": task in ran, "artifacts": {}}
    for name, uri in outputs.items():
        stage = stages[OUTPUT_STAGES[name]]
        stage["artifacts"][name] = uri
        stage["cached"] = not os.path.abspath(uri).startswith(os.path.abspath(run_dir) + os.sep)
    for stage in stages.values():  # A failed run: the artifacts its steps left behind.
        if not stage["artifacts"] and stage["task"] in ran:
            directory = ran[stage["task"]]
            stage["artifacts"] = {
                n: os.path.join(directory, n)
                for n in os.listdir(directory)
                if os.path.isdir(os.path.join(directory, n))
            }
    pusher_dir = ran.get(STAGE_TASKS["Pusher"])
    pushed = _read(os.path.join(pusher_dir, "pushed_model", PUSHED_FILE)) if pusher_dir else None
    evaluation = outputs.get("evaluation")
    model = outputs.get("model")
    tensorboard = {
        "statistics": os.path.join(outputs.get("statistics", ""), TENSORBOARD_SUBDIR),
        "training": os.path.join(model, RUN_SUBDIR, "tensorboard") if model else "",
        "evaluation": os.path.join(evaluation, TENSORBOARD_SUBDIR) if evaluation else "",
    }
    config = settings.pipeline
    return {
        "run_id": run_id,
        "pipeline": config.name,
        "status": "failed" if failure else "succeeded",
        "started": started,
        "finished": time.time(),
        "code_version": code,
        "git_revision": lineage.git_revision(),
        "config_file": os.path.abspath(settings.path),
        "config_sha256": settings.digest(),
        "static_key": static_key(settings, code),
        "config": {**settings.sections, "pipeline": dataclasses.asdict(config)},
        "data": {"files": inputs, "fingerprint": lineage.fingerprint(inputs)},
        "stages": stages,
        "evaluation": _read(os.path.join(evaluation, EVALUATION_FILE)) if evaluation else None,
        "pushed": pushed,
        "serving_model_dir": config.serving_model_dir,
        "tensorboard": {k: v for k, v in tensorboard.items() if v and os.path.isdir(v)},
        "manifest": os.path.join(run_dir, lineage.MANIFEST_FILE),
    }


def _failure_message(manifest: dict[str, Any], failure: Exception) -> str:
    validator = manifest["stages"]["ExampleValidator"]
    anomalies_dir = validator["artifacts"].get("anomalies")
    anomalies = _read(os.path.join(anomalies_dir, ANOMALIES_FILE)) if anomalies_dir else None
    where = f"run {manifest['run_id']} failed; manifest: {manifest.get('manifest', '-')}"
    if anomalies and anomalies["summary"]["severe"]:
        from pipeline.validation import Anomaly, format_anomalies

        report = format_anomalies([Anomaly(**a) for a in anomalies["anomalies"]])
        return (
            f"ExampleValidator stopped the pipeline: the new data has severe anomalies; "
            f"nothing was trained or pushed.\n{report}\n{where}"
        )
    failed = [s for s, info in manifest["stages"].items() if info["ran"] and not info["artifacts"]]
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(failure)).strip()
    return f"{text} (stages without output: {failed}); {where}; the step's log is above"
