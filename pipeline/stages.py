"""The pipeline's stages as plain functions over artifact directories.

The kfp components (`pipeline.components`) are one-line wrappers around these, so every stage
runs, and is tested, without kfp too. Each function takes the directories of its input
artifacts, its config section as JSON, and the directory of its output artifact (which it
creates); none reads anything else, so a step's result depends only on what its cache key
covers.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from pipeline import lineage, state
from pipeline.artifacts import (
    ANOMALIES_FILE,
    BLESSED_FILE,
    EVALUATION_FILE,
    NOT_BLESSED_FILE,
    PUSHED_FILE,
    RUN_SUBDIR,
    SCHEMA_FILE,
    SERVING_SUBDIR,
    STATISTICS_FILE,
    TENSORBOARD_SUBDIR,
)
from recstack import config as config_lib
from recstack import fs

log = logging.getLogger(__name__)


def _config(cls_path: str, section_json: str) -> Any:
    from pipeline.config import _class

    return config_lib.from_dict(_class(cls_path), json.loads(section_json))


def beam_path(path: str) -> str:
    """`path` as Beam's file systems name it: Vertex AI mounts Cloud Storage at `/gcs/BUCKET`
    for its steps, while Dataflow workers reach it as `gs://BUCKET`."""
    return "gs://" + path[len("/gcs/") :] if path.startswith("/gcs/") else path


def run_input_fingerprint(patterns_json: str) -> str:
    """ExampleGen's driver: the fingerprint of the input files (`lineage.fingerprint`)."""
    files = lineage.list_inputs(json.loads(patterns_json))
    log.info("input: %d files, %d bytes", len(files), sum(f["bytes"] for f in files))
    return lineage.fingerprint(files)


def run_resolver(
    state_dir: str, static_key: str, data_fingerprint: str, warm_start: bool
) -> state.Resolved:
    """The latest blessed model, as warm-start base and baseline (`state.resolve`)."""
    resolved = state.resolve(state_dir, state.inputs_key(static_key, data_fingerprint), warm_start)
    log.info("resolved %s", resolved)
    return resolved


def run_example_gen(
    interactions: str, items: str, users: str, ingest_json: str, beam_args_json: str, output: str
) -> dict:
    """ExampleGen: the Beam ingest job (`beam_jobs.ingest.run_ingest`) into `output`."""
    from beam_jobs.ingest import run_ingest
    from beam_jobs.summary import format_summary

    config = _config("beam_jobs.config.IngestConfig", ingest_json)
    beam_args = json.loads(beam_args_json)
    stats = run_ingest(config, interactions, items, beam_path(output), beam_args, overwrite=True,
                       users=users or None, progress=False)  # fmt: skip
    print(format_summary(stats))
    return stats


def run_statistics_gen(examples: str, beam_args_json: str, output: str) -> dict:
    """StatisticsGen: per-split feature statistics of the examples, plus TensorBoard logs."""
    from pipeline.statistics import compute_statistics
    from pipeline.statistics_summaries import write_statistics_summaries

    beam_args = json.loads(beam_args_json)
    if not any(a.startswith(("--runner", "--direct_running_mode")) for a in beam_args):
        # Locally, one process is faster than the multi-process default for this light job.
        beam_args = [*beam_args, "--direct_running_mode=in_memory"]
    stats = compute_statistics(beam_path(examples), beam_path(output), beam_args)
    write_statistics_summaries(stats, os.path.join(output, TENSORBOARD_SUBDIR))
    return stats


def run_schema_gen(
    statistics: str, stored_schema: str, schema_json: str, output: str, curated: bool = False
) -> bool:
    """SchemaGen: the stored schema when there is one, else the schema inferred from the
    statistics, which is then stored. Returns whether it was inferred.

    Raises:
      FileNotFoundError: `curated` (the user named a schema file) and it does not exist.
    """
    from pipeline.schema import format_schema, infer_schema, read_schema, write_schema

    inferred = not fs.exists(stored_schema)
    if inferred and curated:
        raise FileNotFoundError(
            f"pipeline.schema_file={stored_schema} does not exist; fix the path, or set "
            "schema_file: '' to infer the schema on the first run and store it in the state"
        )
    if inferred:
        config = _config("pipeline.schema.SchemaConfig", schema_json)
        schema = infer_schema(fs.read_json(os.path.join(statistics, STATISTICS_FILE)), config)
        write_schema(schema, stored_schema)
        log.info("inferred the schema and stored it at %s", stored_schema)
    else:
        schema = read_schema(stored_schema)
        log.info("using the stored schema %s", stored_schema)
    write_schema(schema, os.path.join(output, SCHEMA_FILE))
    print(format_schema(schema))
    return inferred


def run_example_validator(
    statistics: str,
    schema: str,
    examples: str,
    baseline_statistics: str,
    baseline_examples: str,
    validation_json: str,
    output: str,
) -> list:
    """ExampleValidator: anomalies of the statistics against the schema (and drift against
    the blessed model's data). Writes `anomalies.json` first, then raises on severe ones.

    Raises:
      SevereAnomaliesError: an anomaly of severity "error"; its message is the report.
    """
    from pipeline.schema import read_schema
    from pipeline.validation import (
        SevereAnomaliesError,
        format_anomalies,
        validate,
        write_anomalies,
    )

    config = _config("pipeline.validation.ValidationConfig", validation_json)
    baseline = (
        fs.read_json(os.path.join(baseline_statistics, STATISTICS_FILE))
        if baseline_statistics
        else None
    )
    anomalies = validate(
        fs.read_json(os.path.join(statistics, STATISTICS_FILE)),
        read_schema(os.path.join(schema, SCHEMA_FILE)),
        config,
        baseline_statistics=baseline,
        data_dir=examples,
        baseline_data_dir=baseline_examples or None,
    )
    write_anomalies(anomalies, os.path.join(output, ANOMALIES_FILE))
    report = format_anomalies(anomalies)
    print(report)
    if any(a.severity == "error" for a in anomalies):
        raise SevereAnomaliesError(report)
    return anomalies


def run_trainer(
    examples: str, base_model: str, train_json: str, export_json: str, output: str
) -> dict:
    """Trainer: trains (warm-started from `base_model`'s run when set) into `output/run`, then
    exports the serving models with their ScaNN index into `output/serving`."""
    from trainer.export import export_models
    from trainer.train import train

    run_dir = os.path.join(output, RUN_SUBDIR)
    base_run = os.path.join(base_model, RUN_SUBDIR) if base_model else ""
    result = train(_config("trainer.config.TrainConfig", train_json), examples, run_dir,
                   warm_start_from=base_run)  # fmt: skip
    exported = export_models(run_dir, os.path.join(output, SERVING_SUBDIR),
                             _config("trainer.export.ExportConfig", export_json))  # fmt: skip
    return {"metrics": result.metrics, "exported": exported}


def run_evaluator(
    examples: str,
    model: str,
    baseline_model: str,
    evaluator_json: str,
    evaluation_output: str,
    blessing_output: str,
) -> bool:
    """Evaluator: evaluates the candidate against the blessed model and writes the blessing
    (TFX style: an empty `BLESSED` or `NOT_BLESSED` file, plus the evaluation as JSON)."""
    from pipeline.evaluator import evaluate_models
    from pipeline.summaries import write_evaluation_summaries

    config = _config("pipeline.config.EvaluatorConfig", evaluator_json)
    result = evaluate_models(examples, model, baseline_model, config)
    fs.write_json(os.path.join(evaluation_output, EVALUATION_FILE), result)
    write_evaluation_summaries(result, os.path.join(evaluation_output, TENSORBOARD_SUBDIR))
    marker = BLESSED_FILE if result["blessed"] else NOT_BLESSED_FILE
    fs.write_json(os.path.join(blessing_output, EVALUATION_FILE), result)
    with fs.open_file(os.path.join(blessing_output, marker), "w") as f:
        f.write("")
    print("\n".join([f"{'BLESSED' if result['blessed'] else 'NOT BLESSED'}:", *result["reasons"]]))
    return bool(result["blessed"])


def run_pusher(
    model: str,
    blessing: str,
    examples: str,
    statistics: str,
    serving_model_dir: str,
    state_dir: str,
    lineage_json: str,
    output: str,
) -> dict:
    """Pusher: pushes a blessed model as the next serving version and records it in the
    pipeline state; a model pushed before is not pushed twice.

    Raises:
      ValueError: the blessing says NOT_BLESSED (the pipeline only calls the Pusher when
        blessed; this guards direct calls).
    """
    from pipeline.pusher import push

    if not fs.exists(os.path.join(blessing, BLESSED_FILE)):
        raise ValueError(f"{model} is not blessed ({blessing}); refusing to push it")
    previous = state.pushed_version(state_dir, model)
    lineage = json.loads(lineage_json)
    lineage["inputs_key"] = state.inputs_key(lineage["static_key"], lineage["data_fingerprint"])
    # The whole config goes into the version's lineage file, not into the state.
    record = {key: value for key, value in lineage.items() if key != "config"}
    if previous is not None:
        result = {"version": previous, "models": {}, "already_pushed": True}
        log.info("%s is already serving as version %d; nothing to push", model, previous)
    else:
        evaluation = fs.read_json(os.path.join(blessing, EVALUATION_FILE))
        result = push(model, serving_model_dir,
                      {**lineage, "model_uri": model, "examples_uri": examples,
                       "statistics_uri": statistics, "evaluation": evaluation})  # fmt: skip
        state.append_record(state_dir, {**record, "model_uri": model, "examples_uri": examples,
                                        "statistics_uri": statistics,
                                        "version": result["version"]})  # fmt: skip
        result["already_pushed"] = False
    fs.write_json(os.path.join(output, PUSHED_FILE), result)
    if result["already_pushed"]:
        print(f"already serving as version {result['version']} in {serving_model_dir}")
    else:
        print(f"pushed version {result['version']} to {serving_model_dir}")
    return result
