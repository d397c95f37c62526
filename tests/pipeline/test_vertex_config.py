"""Vertex AI settings: machine specs and the Vertex config built from YAML mappings, their
validation messages, and the fields `submit` needs."""

import pytest

from pipeline.vertex_config import MachineSpec, VertexConfig
from recstack.config import from_dict, to_dict

GPU = MachineSpec("n1-standard-16", "NVIDIA_TESLA_T4", 2, replica_count=2, boot_disk_size_gb=200)
TPU = MachineSpec("cloud-tpu", "TPU_V3", 8)


def _config(spec: MachineSpec, **overrides) -> VertexConfig:
    values = dict(project="my-project", pipeline_root="gs://bucket/root",
                  image="us-docker.pkg.dev/my-project/repo/recstack:0.1.0",
                  service_account="trainer@my-project.iam.gserviceaccount.com", trainer=spec,
                  step_cpu_limit="2", step_memory_limit="8G", labels={"team": "recs"})  # fmt: skip
    return VertexConfig(**{**values, **overrides})


def test_config_from_yaml_mapping_builds_the_nested_trainer_spec():
    values = {
        "project": "my-project",
        "trainer": {
            "machine_type": "cloud-tpu",
            "accelerator_type": "TPU_V3",
            "accelerator_count": 8,
        },  # fmt: skip
        "step_cpu_limit": 4,  # YAML gives a number
        "labels": {"team": "recs"},
    }
    config = from_dict(VertexConfig, values)
    assert config.trainer == TPU
    assert config.step_cpu_limit == "4"
    assert from_dict(VertexConfig, to_dict(config)) == config
    with pytest.raises(ValueError, match=r"VertexConfig.trainer: unknown key\(s\) \['gpus'\]"):
        from_dict(VertexConfig, {"trainer": {"gpus": 2}})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"accelerator_type": "NVIDIA_TESLA_T4"}, r"accelerator_count=0: set both"),
        ({"accelerator_count": 1}, r"accelerator_type='' with accelerator_count=1"),
        ({"accelerator_type": "nvidia-tesla-t4", "accelerator_count": 1}, r"Vertex enum"),
        ({"replica_count": 0}, r"replica_count=0 must be an integer >= 1"),
        ({"replica_count": "2"}, r"replica_count='2' must be an integer"),
        ({"machine_type": "cloud-tpu"}, r"needs a TPU accelerator_type"),
        ({"accelerator_type": "TPU_V3", "accelerator_count": 8}, r"set machine_type: cloud-tpu"),
        ({"machine_type": ""}, r"machine_type is empty"),
    ],
)
def test_machine_spec_rejects_impossible_machines(values, message):
    with pytest.raises(ValueError, match=message):
        MachineSpec(**values)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"pipeline_root": "/tmp/root"}, r"pipeline_root='/tmp/root'.*gs://"),
        ({"step_cpu_limit": "four"}, r"step_cpu_limit='four'.*500m"),
        ({"step_memory_limit": "16GB"}, r"step_memory_limit='16GB'.*16G"),
        ({"service_account": "trainer"}, r"service_account='trainer' is invalid.*@PROJECT"),
        ({"experiment": "My_Exp"}, r"experiment='My_Exp'"),
        ({"labels": {"Team": "recs"}}, r"label 'Team'"),
        ({"labels": ["team"]}, r"must be a mapping"),
        ({"trainer": {"machine_type": "n1"}}, r"is not a MachineSpec"),
    ],
)
def test_vertex_config_rejects_bad_values(values, message):
    with pytest.raises(ValueError, match=message):
        VertexConfig(**values)


def test_check_submittable_lists_every_missing_field():
    with pytest.raises(ValueError) as raised:
        VertexConfig().check_submittable()
    message = str(raised.value)
    for name in ("project", "pipeline_root (e.g. gs://", "image"):
        assert name in message
    assert "region" not in message  # it has a default
    with pytest.raises(ValueError, match=r"set region \(e.g. us-central1\)$"):
        _config(GPU, region="").check_submittable()
    _config(GPU).check_submittable()
