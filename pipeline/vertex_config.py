"""Vertex AI settings: the Trainer's machines (`MachineSpec`) and the pipeline's `VertexConfig`.

Both are frozen dataclasses built from the `vertex` section of a pipeline YAML file
(`pipeline.config.STAGE_SECTIONS`) and validated on construction, so a bad machine, limit or
label fails before anything is compiled or submitted. This module imports no kfp or Google
Cloud library; `pipeline.vertex` uses these settings to compile and submit the pipeline.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

# The patterns kfp's PipelineTask.set_cpu_limit / set_memory_limit accept.
_CPU = re.compile(r"([0-9]*[.])?[0-9]+m?$")
_MEMORY = re.compile(r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$")
_ACCELERATOR = re.compile(r"^[A-Z][A-Z0-9_]*$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_EXPERIMENT = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
_GCS = re.compile(r"^gs://[^/]+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_TPU_POD_TYPES = ("TPU_V2", "TPU_V3")  # The TPU types Vertex attaches to machine "cloud-tpu".


def _check(name: str, value: Any, pattern: re.Pattern[str], fix: str) -> None:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{name}={value!r} is invalid; {fix}")


def _int_at_least(where: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{where}={value!r} must be an integer >= {low}")


@dataclasses.dataclass(frozen=True)
class MachineSpec:
    """The machines of a Vertex CustomJob (the Trainer's worker pools).

    Attributes:
      machine_type: Compute Engine machine type, e.g. "n1-standard-8"; "cloud-tpu" for TPU v2/v3.
      accelerator_type: Vertex enum name ("NVIDIA_TESLA_T4", "NVIDIA_L4", "TPU_V3"); "" for
        none. Set exactly when `accelerator_count > 0`.
      accelerator_count: Accelerators per replica (GPUs per machine, TPU cores: 8 for a v3-8).
      replica_count: Machines; the first is the chief, the rest one worker pool of identical
        machines (for `MultiWorkerMirroredStrategy`).
      boot_disk_size_gb: Boot disk of each replica (pd-ssd).
    """

    machine_type: str = "n1-standard-8"
    accelerator_type: str = ""
    accelerator_count: int = 0
    replica_count: int = 1
    boot_disk_size_gb: int = 100

    def __post_init__(self) -> None:
        if not self.machine_type:
            raise ValueError("machine_type is empty; set it, e.g. machine_type: n1-standard-8")
        _int_at_least("accelerator_count", self.accelerator_count, 0)
        _int_at_least("replica_count", self.replica_count, 1)
        _int_at_least("boot_disk_size_gb", self.boot_disk_size_gb, 1)
        kind, count = self.accelerator_type, self.accelerator_count
        if kind:
            _check(
                "accelerator_type", kind, _ACCELERATOR, "use the Vertex enum, e.g. NVIDIA_TESLA_T4"
            )
        if bool(kind) != (count > 0):
            raise ValueError(
                f"accelerator_type={kind!r} with accelerator_count={count}: set both (e.g. "
                'NVIDIA_TESLA_T4 and 1) or neither ("" and 0)'
            )
        if self.machine_type == "cloud-tpu" and not kind.startswith("TPU_"):
            raise ValueError(
                f"machine_type='cloud-tpu' needs a TPU accelerator_type, got {kind!r}; "
                "e.g. accelerator_type: TPU_V3, accelerator_count: 8"
            )
        if kind in _TPU_POD_TYPES and self.machine_type != "cloud-tpu":
            raise ValueError(
                f"accelerator_type={kind!r} runs on machine_type 'cloud-tpu', got "
                f"{self.machine_type!r}; set machine_type: cloud-tpu"
            )


@dataclasses.dataclass(frozen=True)
class VertexConfig:
    """Where and how the pipeline runs on Vertex AI Pipelines.

    Attributes:
      project: Google Cloud project id.
      region: Vertex AI region, e.g. "us-central1".
      service_account: Run-as service account of the pipeline and the CustomJob ("" uses the
        Vertex default).
      pipeline_root: gs:// folder for the run artifacts.
      image: Container image holding recstack and kfp; the base_image of every component.
      trainer: Machines of the Trainer's CustomJob.
      step_cpu_limit: CPU limit of the other steps (kfp syntax: "4", "500m").
      step_memory_limit: Memory limit of the other steps (kfp syntax: "16G", "512Mi").
      experiment: Vertex AI experiment the runs are logged to ("" for none).
      enable_caching: False re-runs every step; True keeps the compiled per-step settings.
      labels: Labels of the PipelineJob and the CustomJob (lower-case keys and values).
    """

    project: str = ""
    region: str = "us-central1"
    service_account: str = ""
    pipeline_root: str = ""
    image: str = ""
    trainer: MachineSpec = MachineSpec()
    step_cpu_limit: str = "4"
    step_memory_limit: str = "16G"
    experiment: str = ""
    enable_caching: bool = True
    labels: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.trainer, MachineSpec):
            raise ValueError(
                f"trainer={self.trainer!r} is not a MachineSpec; build it with from_dict"
            )
        # YAML reads `step_cpu_limit: 4` as a number; kfp wants the string.
        for name in ("step_cpu_limit", "step_memory_limit"):
            value = getattr(self, name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                object.__setattr__(self, name, str(value))
        _check("step_cpu_limit", self.step_cpu_limit, _CPU, "write e.g. 4, 0.5 or 500m")
        _check("step_memory_limit", self.step_memory_limit, _MEMORY, "write e.g. 16G or 512Mi")
        for name, pattern, fix in (
            ("pipeline_root", _GCS, "Vertex AI writes artifacts to gs://BUCKET/PATH"),
            ("service_account", _EMAIL, "write NAME@PROJECT.iam.gserviceaccount.com"),
            ("experiment", _EXPERIMENT, "use lower-case letters, digits and '-'"),
        ):
            if getattr(self, name):
                _check(name, getattr(self, name), pattern, fix)
        if not isinstance(self.labels, dict):
            raise ValueError(
                f"labels={self.labels!r} must be a mapping, e.g. labels: {{team: recs}}"
            )
        for key, value in self.labels.items():
            if not _LABEL_KEY.match(str(key)) or not _LABEL_VALUE.match(str(value)):
                raise ValueError(
                    f"label {key!r}: {value!r} is invalid; keys start with a lower-case letter, "
                    "keys and values hold up to 63 lower-case letters, digits, '_' or '-'"
                )

    def check_submittable(self) -> None:
        """Raises ValueError listing every field `submit` needs that is still empty."""
        missing = [
            f"{name} (e.g. {example})"
            for name, example in (
                ("project", "my-gcp-project"),
                ("region", "us-central1"),
                ("pipeline_root", "gs://my-bucket/pipeline_root"),
                ("image", "us-docker.pkg.dev/my-gcp-project/repo/recstack:0.1.0"),
            )
            if not getattr(self, name)
        ]
        if missing:
            raise ValueError("the Vertex config cannot be submitted; set " + ", ".join(missing))
