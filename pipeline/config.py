"""The pipeline's configuration: one YAML file (`tfx_config/local.yaml`, `vertex.yaml`) whose
sections configure every stage.

Sections: `pipeline` (`PipelineConfig`: inputs, roots, serving path), `schema`, `validation`,
`evaluator`, `vertex`, and the stage sections shared with the `recstack` commands (`ingest`,
`train`, `export`). `load_pipeline_settings` reads them all into one frozen `PipelineSettings`;
each stage receives its own section as JSON (`section_json`), so a kfp component gets exactly
the config it runs with, and a change to one section re-runs only the stages that read it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from typing import Any

from recstack import config as config_lib

#: kfp's pipeline name rule (kfp.dsl.utils).
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
#: Sections of a config file read by other commands (`recstack generate`, `serve`).
OTHER_SECTIONS = ("generate", "serve", "evaluate")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Inputs, locations and switches of the pipeline.

    Attributes:
      name: Pipeline name (kfp's; run directories are named after it).
      root: Pipeline root: `runs/` (one directory per run with its artifacts and manifest),
        `cache/` (the step cache) and `state/` (the stored schema and the blessed models).
        Local path or `gs://` (Vertex).
      interactions: Path or glob of the interaction logs (JSON Lines or CSV, as `recstack
        ingest` reads them).
      items: Path or glob of the item catalog.
      users: Optional path or glob of the users table ("" for none).
      serving_model_dir: The Pusher's target: blessed models are copied to
        `<serving_model_dir>/<model>/<next version>/`, where `recstack serve` (or TF Serving)
        polls for them.
      beam_args: Beam options of ExampleGen and StatisticsGen, e.g. `--runner=DataflowRunner`,
        `--project=...`, `--region=...`, `--temp_location=gs://...`.
      warm_start: Initialise the Trainer from the last blessed model (vocabularies grown).
      enable_cache: Skip steps whose inputs, config and code are unchanged.
      schema_file: A curated schema to validate against; "" stores the schema inferred on the
        first run under `<root>/state/schema.json` and validates every later run against it.
    """

    name: str = "recstack"
    root: str = "pipeline_out"
    interactions: str = ""
    items: str = ""
    users: str = ""
    serving_model_dir: str = ""
    beam_args: tuple[str, ...] = ()
    warm_start: bool = True
    enable_cache: bool = True
    schema_file: str = ""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"pipeline.name={self.name!r}: use 1-128 lower-case ASCII letters, digits and "
                "'-', starting with a letter or digit (kfp and Vertex AI name rules)"
            )

    def check_inputs(self) -> None:
        """Raises ValueError naming the missing settings a run needs."""
        missing = [
            f for f in ("interactions", "items", "serving_model_dir") if not getattr(self, f)
        ]
        if missing:
            raise ValueError(
                f"pipeline config: set {', '.join('pipeline.' + m for m in missing)} "
                "(in the YAML file or with --set pipeline.KEY=VALUE)"
            )

    @property
    def runs_dir(self) -> str:
        return os.path.join(self.root, "runs")

    @property
    def cache_dir(self) -> str:
        return os.path.join(self.root, "cache")

    @property
    def state_dir(self) -> str:
        return os.path.join(self.root, "state")

    @property
    def stored_schema(self) -> str:
        """Where the schema is read from (and, when inferred, stored)."""
        return self.schema_file or os.path.join(self.state_dir, "schema.json")


@dataclasses.dataclass(frozen=True)
class EvaluatorConfig:
    """How the Evaluator blesses a model.

    The candidate (the Trainer's model) and the currently blessed model are evaluated on the
    same eval split (`pipeline.evaluator`), next to a popularity baseline.

    Attributes:
      ks: Cut-offs of recall@k and ndcg@k.
      metric: The metric compared with the blessed model, e.g. "recall@10".
      thresholds: Absolute lower bounds `{metric: minimum}`; any miss withholds the blessing.
      max_relative_drop: The candidate may trail the blessed model on `metric` by at most this
        share of the blessed value (0.0: it must be at least as good).
      min_lift_over_popularity: If > 0, the candidate's `metric` must be at least this
        multiple of the popularity baseline's.
    """

    ks: tuple[int, ...] = (10, 50)
    metric: str = "recall@10"
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)
    max_relative_drop: float = 0.0
    min_lift_over_popularity: float = 0.0

    def __post_init__(self) -> None:
        names = {f"{m}@{k}" for m in ("recall", "ndcg") for k in self.ks} | {"mrr"}
        for name in (self.metric, *self.thresholds):
            if name not in names:
                raise ValueError(
                    f"evaluator: unknown metric {name!r}; with ks={list(self.ks)} the metrics "
                    f"are {sorted(names)}"
                )
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"evaluator.ks={list(self.ks)}: use positive cut-offs, e.g. [10, 50]")
        if not 0.0 <= self.max_relative_drop < 1.0:
            raise ValueError(f"evaluator.max_relative_drop={self.max_relative_drop}: use [0, 1)")
        if self.min_lift_over_popularity < 0:
            raise ValueError(
                f"evaluator.min_lift_over_popularity={self.min_lift_over_popularity}: use 0 "
                "(no popularity check) or a positive multiple"
            )


#: Stage sections of a pipeline YAML file and the dataclass each is loaded into (by import
#: path, so importing this module stays light).
STAGE_SECTIONS = {
    "ingest": "beam_jobs.config.IngestConfig",
    "schema": "pipeline.schema.SchemaConfig",
    "validation": "pipeline.validation.ValidationConfig",
    "train": "trainer.config.TrainConfig",
    "export": "trainer.export.ExportConfig",
    "evaluator": "pipeline.config.EvaluatorConfig",
    "vertex": "pipeline.vertex_config.VertexConfig",
}


def _class(path: str) -> type:
    import importlib

    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    """Every section of a pipeline config file, validated.

    Attributes:
      path: The YAML file.
      pipeline: The `pipeline` section.
      sections: `{section: plain dict}` of the stage sections in `STAGE_SECTIONS`, each
        checked by building its dataclass (so typos fail before anything runs).
    """

    path: str
    pipeline: PipelineConfig
    sections: dict[str, dict[str, Any]]

    def section(self, name: str) -> Any:
        """The dataclass of section `name`."""
        return config_lib.from_dict(_class(STAGE_SECTIONS[name]), self.sections[name], name)

    def section_json(self, name: str) -> str:
        """Section `name` as canonical JSON (what a component receives)."""
        return json.dumps(self.sections[name], sort_keys=True)

    def digest(self, *names: str) -> str:
        """sha256 of sections `names` (all, with the pipeline section, when none given)."""
        chosen = names or tuple(self.sections)
        payload = {n: self.sections[n] for n in chosen}
        if not names:
            payload["pipeline"] = config_lib.to_dict(self.pipeline)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def load_pipeline_settings(
    path: str, assignments: list[str] | tuple[str, ...] = (), absolute: bool = True
) -> PipelineSettings:
    """Reads the pipeline config at `path`, applying `--set` style `assignments`.

    Args:
      path: YAML file.
      assignments: `section.key=value` strings (`recstack.config.parse_assignments`).
      absolute: Make local paths of the pipeline section absolute (against the working
        directory), since steps run in other processes.

    Raises:
      ValueError: an unknown section key, or a value a stage's config rejects.
    """
    values = config_lib.merge(config_lib.read_yaml(path), config_lib.parse_assignments(assignments))
    unknown = sorted(set(values) - {"pipeline", *STAGE_SECTIONS, *OTHER_SECTIONS})
    if unknown:
        raise ValueError(
            f"{path}: unknown section(s) {unknown}; the sections are "
            f"{sorted({'pipeline', *STAGE_SECTIONS, *OTHER_SECTIONS})}"
        )
    pipeline = config_lib.from_dict(PipelineConfig, dict(values.get("pipeline") or {}), "pipeline")
    if absolute:
        pipeline = dataclasses.replace(
            pipeline,
            **{
                f: _absolute(getattr(pipeline, f))
                for f in (
                    "root",
                    "interactions",
                    "items",
                    "users",
                    "serving_model_dir",
                    "schema_file",
                )  # fmt: skip
            },
        )
    sections = {}
    for name, cls_path in STAGE_SECTIONS.items():
        built = config_lib.from_dict(_class(cls_path), dict(values.get(name) or {}), name)
        sections[name] = config_lib.to_dict(built)
    return PipelineSettings(path=path, pipeline=pipeline, sections=sections)


def _absolute(path: str) -> str:
    if not path or "://" in path:
        return path
    return os.path.abspath(path)
