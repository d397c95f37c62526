"""Vertex AI Pipelines: the Trainer as a CustomJob, step resources, compiling and submitting.

`create_pipeline(config)` builds one kfp pipeline for both runners. For Vertex it wraps the
Trainer with `custom_training_op` (a Vertex CustomJob: GPUs, TPUs, several replicas), gives
the other steps `apply_step_resources`, and `compile_pipeline` writes the YAML that `submit`
sends to Vertex AI Pipelines. The machine specs and the rest of the settings are
`pipeline.vertex_config`'s `MachineSpec` and `VertexConfig` (also importable from here). The
Google Cloud libraries (`google-cloud-pipeline-components`, `google-cloud-aiplatform`) are the
optional extra `recstack[vertex]` and are imported only by the functions that need them, so
local runs and compiling the plain pipeline work without.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from kfp import compiler, components

from pipeline.vertex_config import MachineSpec as MachineSpec
from pipeline.vertex_config import VertexConfig as VertexConfig

_VERTEX_EXTRA = "pip install 'recstack[vertex]'"


def custom_training_op(
    component: Any,
    spec: MachineSpec,
    config: VertexConfig,
    env: dict[str, str],
    display_name: str = "",
) -> Callable[..., Any]:
    """Wraps a kfp component so that it runs as a Vertex AI CustomJob on `spec`'s machines.

    The CustomJob runs the component's own image, so build the component with
    `dsl.component(fn, base_image=config.image)`. Set environment variables here: on the
    wrapped task `set_env_variable` reaches only the launcher, not the training container.

    Args:
      component: A kfp container or Python component.
      spec: Machine type, accelerators, replicas and disk of every replica.
      config: Supplies the service account and labels.
      env: Environment variables of each replica's container.
      display_name: Name of the CustomJob ("" uses the component's name).

    Returns:
      A component factory taking the same inputs as `component` (plus CustomJob settings).

    Raises:
      ImportError: google-cloud-pipeline-components is not installed.
      ValueError: the component's image is not `config.image`.
    """
    try:
        from google_cloud_pipeline_components.v1.custom_job import (
            create_custom_training_job_from_component,
        )
    except ImportError as e:
        raise ImportError(
            f"running the Trainer as a Vertex CustomJob needs google-cloud-pipeline-components; "
            f"{_VERTEX_EXTRA}"
        ) from e
    image = component.component_spec.implementation.container.image
    if config.image and image != config.image:
        raise ValueError(
            f"component {component.name!r} runs image {image!r}, not config image "
            f"{config.image!r}; build it with dsl.component(fn, base_image=config.image)"
        )
    return create_custom_training_job_from_component(
        component,
        display_name=display_name,
        machine_type=spec.machine_type,
        accelerator_type=spec.accelerator_type,
        accelerator_count=spec.accelerator_count,
        replica_count=spec.replica_count,
        boot_disk_size_gb=spec.boot_disk_size_gb,
        service_account=config.service_account,
        labels=dict(config.labels) or None,
        env=[{"name": name, "value": value} for name, value in env.items()],
    )


def apply_step_resources(task: Any, config: VertexConfig) -> Any:
    """Sets `config`'s CPU and memory limits on a (non-CustomJob) pipeline task; returns it.

    The local runner ignores them (with a warning); Vertex picks a machine that fits.
    """
    return task.set_cpu_limit(config.step_cpu_limit).set_memory_limit(config.step_memory_limit)


def compile_pipeline(pipeline_func: Any, output_path: str) -> str:
    """Compiles a `@dsl.pipeline` function to the YAML Vertex AI Pipelines runs.

    Returns:
      `output_path` (its folder is created).
    """
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    compiler.Compiler().compile(pipeline_func=pipeline_func, package_path=output_path)
    return output_path


def load_compiled(path: str) -> Any:
    """Loads compiled pipeline YAML with kfp's own loader, which validates it.

    Returns:
      The kfp `YamlComponent` (`.pipeline_spec` holds the parsed spec).

    Raises:
      ValueError: the file holds a single component, not a pipeline.
    """
    loaded = components.load_component_from_file(path)
    if not loaded.pipeline_spec.root.dag.tasks:
        raise ValueError(f"{path} holds no pipeline tasks; compile a @dsl.pipeline function")
    return loaded


@dataclasses.dataclass(frozen=True)
class SubmittedRun:
    """A PipelineJob created on Vertex AI.

    Attributes:
      resource_name: "projects/P/locations/R/pipelineJobs/ID".
      dashboard_url: The run's page in the Cloud console.
    """

    resource_name: str
    dashboard_url: str


def submit(
    compiled_path: str,
    config: VertexConfig,
    parameter_values: dict[str, Any],
    run_name: str = "",
    wait: bool = False,
) -> SubmittedRun:
    """Creates a Vertex AI PipelineJob from compiled YAML.

    Args:
      compiled_path: Output of `compile_pipeline` (local path or gs:// URI).
      config: Project, region, pipeline root, service account, experiment, caching, labels.
      parameter_values: Values of the pipeline's parameters.
      run_name: Display name of the run ("" uses the pipeline's name from a local file).
      wait: Block until the run finishes (raises RuntimeError when it fails).

    Raises:
      ImportError: google-cloud-aiplatform is not installed.
      ValueError: `config.check_submittable()` fails.
    """
    config.check_submittable()
    try:
        from google.cloud import aiplatform
    except ImportError as e:
        raise ImportError(
            f"submitting to Vertex AI Pipelines needs google-cloud-aiplatform; {_VERTEX_EXTRA}"
        ) from e
    if not run_name and os.path.isfile(compiled_path):
        run_name = load_compiled(compiled_path).name
    aiplatform.init(project=config.project, location=config.region)
    job = aiplatform.PipelineJob(
        display_name=run_name,
        template_path=compiled_path,
        pipeline_root=config.pipeline_root,
        parameter_values=dict(parameter_values),
        # None keeps each step's compiled caching options (a custom cache key, a step that
        # must always run); only False overrides them all.
        enable_caching=None if config.enable_caching else False,
        labels=dict(config.labels) or None,
        project=config.project,
        location=config.region,
    )
    options = dict(
        service_account=config.service_account or None, experiment=config.experiment or None
    )
    if wait:
        job.run(sync=True, **options)
    else:
        job.submit(**options)
    return SubmittedRun(job.resource_name, dashboard_url(job.resource_name))


def dashboard_url(resource_name: str) -> str:
    """The Cloud console page of "projects/P/locations/R/pipelineJobs/ID"."""
    parts = resource_name.split("/")
    if len(parts) != 6 or parts[0::2] != ["projects", "locations", "pipelineJobs"]:
        raise ValueError(f"{resource_name!r} is not projects/P/locations/R/pipelineJobs/ID")
    project, region, job_id = parts[1::2]
    return (
        f"https://console.cloud.google.com/vertex-ai/locations/{region}/pipelines/runs/"
        f"{job_id}?project={project}"
    )
