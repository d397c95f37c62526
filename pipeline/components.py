"""The pipeline's kfp components: thin wrappers over `pipeline.stages`.

kfp ships only a component function's own source to the step's process (locally a
subprocess, on Vertex AI a container of `vertex.image`), so every import sits inside the body
and the work is done by `pipeline.stages`, which the installed `recstack` package provides.
This module must not use `from __future__ import annotations`: kfp reads the annotations
(`Input[Dataset]`, `Output[Model]`) as types.

`build_components(base_image)` turns the functions into components for one target (the
container image matters on Vertex AI only).
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output


def input_fingerprint(patterns_json: str) -> str:
    """ExampleGen's driver: fingerprint of the input logs (never cached)."""
    import recstack  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
    from pipeline.stages import run_input_fingerprint

    return run_input_fingerprint(patterns_json)


def latest_blessed_model_resolver(
    state_dir: str, static_key: str, data_fingerprint: str, warm_start: bool
) -> NamedTuple(
    "Resolved",
    base_model_uri=str,
    baseline_model_uri=str,
    baseline_statistics_uri=str,
    baseline_examples_uri=str,
):
    """Resolver: the latest blessed model and its data (never cached)."""
    import recstack  # noqa: F401
    from pipeline.stages import run_resolver

    resolved = run_resolver(state_dir, static_key, data_fingerprint, warm_start)
    return (
        resolved.base_model_uri,
        resolved.baseline_model_uri,
        resolved.baseline_statistics_uri,
        resolved.baseline_examples_uri,
    )


def example_gen(
    interactions: str,
    items: str,
    users: str,
    ingest_json: str,
    beam_args_json: str,
    data_fingerprint: str,
    code_version: str,
    examples: Output[Dataset],
):
    """ExampleGen: the Beam ingest job (TFRecords, vocabularies, stats, dead letters)."""
    import recstack  # noqa: F401
    from pipeline.stages import run_example_gen

    run_example_gen(interactions, items, users, ingest_json, beam_args_json, examples.path)
    examples.metadata["data_fingerprint"] = data_fingerprint


def statistics_gen(
    examples: Input[Dataset], beam_args_json: str, code_version: str, statistics: Output[Artifact]
):
    """StatisticsGen: per-split feature statistics (Beam) and their TensorBoard logs."""
    import recstack  # noqa: F401
    from pipeline.stages import run_statistics_gen

    run_statistics_gen(examples.path, beam_args_json, statistics.path)


def schema_gen(
    statistics: Input[Artifact],
    stored_schema: str,
    schema_json: str,
    curated: bool,
    code_version: str,
    schema: Output[Artifact],
):
    """SchemaGen: the stored schema, or one inferred from the statistics (then stored)."""
    import recstack  # noqa: F401
    from pipeline.stages import run_schema_gen

    schema.metadata["inferred"] = run_schema_gen(
        statistics.path, stored_schema, schema_json, schema.path, curated
    )


def example_validator(
    statistics: Input[Artifact],
    schema: Input[Artifact],
    examples: Input[Dataset],
    baseline_statistics_uri: str,
    baseline_examples_uri: str,
    validation_json: str,
    code_version: str,
    anomalies: Output[Artifact],
):
    """ExampleValidator: anomalies against the schema and the blessed data; fails on severe."""
    import recstack  # noqa: F401
    from pipeline.stages import run_example_validator

    found = run_example_validator(
        statistics.path, schema.path, examples.path, baseline_statistics_uri,
        baseline_examples_uri, validation_json, anomalies.path,
    )  # fmt: skip
    anomalies.metadata["count"] = len(found)


def trainer(
    examples: Input[Dataset],
    base_model_uri: str,
    train_json: str,
    export_json: str,
    code_version: str,
    model: Output[Model],
):
    """Trainer: TFRS training (warm-started from the base model) and the SavedModel export."""
    import recstack  # noqa: F401
    from pipeline.stages import run_trainer

    result = run_trainer(examples.path, base_model_uri, train_json, export_json, model.path)
    model.metadata["eval_metrics"] = result["metrics"]["model"]


def evaluator(
    examples: Input[Dataset],
    model: Input[Model],
    baseline_model_uri: str,
    evaluator_json: str,
    code_version: str,
    evaluation: Output[Artifact],
    blessing: Output[Artifact],
) -> bool:
    """Evaluator: metrics of the candidate and the blessed model on the eval split; blessing."""
    import recstack  # noqa: F401
    from pipeline.stages import run_evaluator

    blessed = run_evaluator(examples.path, model.path, baseline_model_uri, evaluator_json,
                            evaluation.path, blessing.path)  # fmt: skip
    blessing.metadata["blessed"] = blessed
    return blessed


def pusher(
    model: Input[Model],
    blessing: Input[Artifact],
    examples: Input[Dataset],
    statistics: Input[Artifact],
    serving_model_dir: str,
    state_dir: str,
    lineage_json: str,
    data_fingerprint: str,
    base_model_uri: str,
    baseline_model_uri: str,
    baseline_statistics_uri: str,
    baseline_examples_uri: str,
    pushed_model: Output[Artifact],
):
    """Pusher: the blessed model as the next serving version (never cached)."""
    import json

    import recstack  # noqa: F401
    from pipeline.stages import run_pusher

    record = {
        **json.loads(lineage_json),
        "data_fingerprint": data_fingerprint,
        "base_model_uri": base_model_uri,
        "baseline_model_uri": baseline_model_uri,
        "baseline_statistics_uri": baseline_statistics_uri,
        "baseline_examples_uri": baseline_examples_uri,
    }
    result = run_pusher(
        model.path, blessing.path, examples.path, statistics.path, serving_model_dir,
        state_dir, json.dumps(record), pushed_model.path,
    )  # fmt: skip
    pushed_model.metadata["version"] = result["version"]


FUNCTIONS = (
    input_fingerprint,
    latest_blessed_model_resolver,
    example_gen,
    statistics_gen,
    schema_gen,
    example_validator,
    trainer,
    evaluator,
    pusher,
)


#: The image of local runs (ignored by the SubprocessRunner, which runs this interpreter).
LOCAL_IMAGE = "python:3.11"


def build_components(base_image: str = LOCAL_IMAGE) -> dict:
    """`{function name: kfp component}` running in `base_image` (on Vertex AI)."""
    return {
        fn.__name__: dsl.component(fn, base_image=base_image, install_kfp_package=False)
        for fn in FUNCTIONS
    }
