"""`create_pipeline(settings)`: the whole stack as one kfp pipeline, with TFX's stage names.

    InputFingerprint ─► LatestBlessedModelResolver ─┐ (base model, baseline model and data)
           │                                        ▼
           └──► ExampleGen ─► StatisticsGen ─► SchemaGen ─► ExampleValidator
                    │                │                            │ (severe anomalies stop here)
                    └────────────────┴───────► Trainer ◄──────────┘
                                                  │ (warm start, ScaNN export)
                                               Evaluator ─► [blessed] ─► Pusher

The same function serves both runners: `pipeline.local_runner` runs it with `kfp.local`;
`pipeline.vertex` compiles it for Vertex AI Pipelines, where the Trainer becomes a custom job
with the worker pools of `vertex.trainer`. Everything a step depends on is one of its inputs:
its config section, the code version, the data fingerprint and upstream artifacts, so kfp's
cache skips exactly the steps whose inputs did not change. The fingerprint, Resolver,
SchemaGen, ExampleValidator and Pusher read or write state outside their inputs and are never
cached (they take seconds).

(No `from __future__ import annotations` here: kfp reads the pipeline's return annotation.)
"""

import hashlib
import json
from collections.abc import Callable
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Model

from pipeline.components import build_components
from pipeline.config import PipelineSettings

LOCAL, VERTEX = "local", "vertex"
#: Task names (kfp derives them from the component functions), by TFX stage name.
STAGE_TASKS = {
    "ExampleGen": "example-gen",
    "StatisticsGen": "statistics-gen",
    "SchemaGen": "schema-gen",
    "ExampleValidator": "example-validator",
    "Trainer": "trainer",
    "Evaluator": "evaluator",
    "Pusher": "pusher",
}


class PipelineOutputs(NamedTuple):
    """The artifacts a run returns (their URIs also when a step was cached), by output name."""

    examples: Dataset
    statistics: Artifact
    schema: Artifact
    anomalies: Artifact
    model: Model
    evaluation: Artifact
    blessing: Artifact


#: Output artifact of each stage, by the name `PipelineOutputs` gives it.
OUTPUT_STAGES = {
    "examples": "ExampleGen",
    "statistics": "StatisticsGen",
    "schema": "SchemaGen",
    "anomalies": "ExampleValidator",
    "model": "Trainer",
    "evaluation": "Evaluator",
    "blessing": "Evaluator",
}


def static_key(settings: PipelineSettings, code_version: str) -> str:
    """Identity of a run's config and code (the data fingerprint is added at run time)."""
    payload = json.dumps({"config": settings.digest(), "code": code_version}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def create_pipeline(
    settings: PipelineSettings, code_version: str, target: str = LOCAL, run_id: str = ""
) -> Callable:
    """The pipeline function for `settings`.

    Args:
      settings: Every section of the pipeline config.
      code_version: `lineage.code_version()` (part of every cache key and the lineage).
      target: `LOCAL` (kfp.local) or `VERTEX` (compiled; the Trainer as a custom job).
      run_id: Recorded in the lineage of a pushed model.

    Returns:
      A `@dsl.pipeline` function without parameters.
    """
    config = settings.pipeline
    vertex = settings.section("vertex")
    ops = build_components(vertex.image) if target == VERTEX else build_components()
    beam_args = json.dumps(list(config.beam_args))
    patterns = json.dumps([config.interactions, config.items, config.users])
    key = static_key(settings, code_version)
    lineage = {
        "run_id": run_id,
        "pipeline": config.name,
        "code_version": code_version,
        "config_sha256": settings.digest(),
        "static_key": key,
        "config": {**settings.sections, "pipeline": _plain(config)},
    }
    trainer_op = ops["trainer"]
    if target == VERTEX:
        from pipeline.vertex import custom_training_op

        trainer_op = custom_training_op(ops["trainer"], vertex.trainer, vertex,
                                        env={"TF_USE_LEGACY_KERAS": "1"})  # fmt: skip

    @dsl.pipeline(name=config.name, description="recstack: logs -> served recommender")
    def recstack_pipeline() -> PipelineOutputs:
        fingerprint = ops["input_fingerprint"](patterns_json=patterns)
        resolver = ops["latest_blessed_model_resolver"](
            state_dir=config.state_dir, static_key=key,
            data_fingerprint=fingerprint.output, warm_start=config.warm_start,
        )  # fmt: skip
        examples = ops["example_gen"](
            interactions=config.interactions, items=config.items, users=config.users,
            ingest_json=settings.section_json("ingest"), beam_args_json=beam_args,
            data_fingerprint=fingerprint.output, code_version=code_version,
        )  # fmt: skip
        statistics = ops["statistics_gen"](
            examples=examples.outputs["examples"], beam_args_json=beam_args,
            code_version=code_version,
        )  # fmt: skip
        schema = ops["schema_gen"](
            statistics=statistics.outputs["statistics"], stored_schema=config.stored_schema,
            schema_json=settings.section_json("schema"), curated=bool(config.schema_file),
            code_version=code_version,
        )  # fmt: skip
        validator = ops["example_validator"](
            statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"],
            examples=examples.outputs["examples"],
            baseline_statistics_uri=resolver.outputs["baseline_statistics_uri"],
            baseline_examples_uri=resolver.outputs["baseline_examples_uri"],
            validation_json=settings.section_json("validation"), code_version=code_version,
        )  # fmt: skip
        trainer = trainer_op(
            examples=examples.outputs["examples"],
            base_model_uri=resolver.outputs["base_model_uri"],
            train_json=settings.section_json("train"),
            export_json=settings.section_json("export"), code_version=code_version,
        ).after(validator)  # fmt: skip
        evaluator = ops["evaluator"](
            examples=examples.outputs["examples"], model=trainer.outputs["model"],
            baseline_model_uri=resolver.outputs["baseline_model_uri"],
            evaluator_json=settings.section_json("evaluator"), code_version=code_version,
        )  # fmt: skip
        with dsl.If(evaluator.outputs["Output"] == True, name="blessed"):  # noqa: E712
            pusher = ops["pusher"](
                model=trainer.outputs["model"], blessing=evaluator.outputs["blessing"],
                examples=examples.outputs["examples"],
                statistics=statistics.outputs["statistics"],
                serving_model_dir=config.serving_model_dir, state_dir=config.state_dir,
                lineage_json=json.dumps(lineage, sort_keys=True),
                data_fingerprint=fingerprint.output,
                base_model_uri=resolver.outputs["base_model_uri"],
                baseline_model_uri=resolver.outputs["baseline_model_uri"],
                baseline_statistics_uri=resolver.outputs["baseline_statistics_uri"],
                baseline_examples_uri=resolver.outputs["baseline_examples_uri"],
            )  # fmt: skip
        for task in (fingerprint, resolver, schema, validator, pusher):
            task.set_caching_options(False)
        for task in (examples, statistics, trainer, evaluator):
            task.set_caching_options(config.enable_cache)
        if target == VERTEX:
            from pipeline.vertex import apply_step_resources

            for task in (examples, statistics, schema, validator, evaluator, pusher):
                apply_step_resources(task, vertex)
        return PipelineOutputs(
            examples=examples.outputs["examples"],
            statistics=statistics.outputs["statistics"],
            schema=schema.outputs["schema"],
            anomalies=validator.outputs["anomalies"],
            model=trainer.outputs["model"],
            evaluation=evaluator.outputs["evaluation"],
            blessing=evaluator.outputs["blessing"],
        )

    return recstack_pipeline


def _plain(config) -> dict:
    from recstack.config import to_dict

    return to_dict(config)
