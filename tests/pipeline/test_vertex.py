"""Vertex AI: the Trainer's worker pools, env and image in compiled YAML; other steps' limits;
`submit` against a stand-in for google-cloud-aiplatform. (Config validation: test_vertex_config.)"""

# No `from __future__ import annotations`: kfp reads the component annotations at runtime.

import sys
import types

import pytest
import yaml
from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from pipeline import vertex
from pipeline.vertex_config import MachineSpec, VertexConfig

IMAGE = "us-docker.pkg.dev/my-project/repo/recstack:0.1.0"
SERVICE_ACCOUNT = "trainer@my-project.iam.gserviceaccount.com"
ENV = {"TF_USE_LEGACY_KERAS": "1", "RECSTACK_STRATEGY": "multi_worker"}
GPU = MachineSpec("n1-standard-16", "NVIDIA_TESLA_T4", 2, replica_count=2,
                         boot_disk_size_gb=200)  # fmt: skip
TPU = MachineSpec("cloud-tpu", "TPU_V3", 8)


def example_gen(num_rows: int, examples: Output[Dataset]):
    print(num_rows, examples.path)


def trainer(examples: Input[Dataset], epochs: int, model: Output[Model]):
    print(examples.path, epochs, model.path)


def pusher(model: Input[Model]):
    print(model.path)


def _config(spec: MachineSpec, **overrides) -> VertexConfig:
    values = dict(project="my-project", pipeline_root="gs://bucket/root", image=IMAGE,
                  service_account=SERVICE_ACCOUNT, trainer=spec, step_cpu_limit="2",
                  step_memory_limit="8G", labels={"team": "recs"})  # fmt: skip
    return VertexConfig(**{**values, **overrides})


def _pipeline(config: VertexConfig):
    def component(fn):
        return dsl.component(fn, base_image=config.image, install_kfp_package=False)

    train = vertex.custom_training_op(
        component(trainer), config.trainer, config, ENV, display_name="Trainer"
    )
    gen, push = component(example_gen), component(pusher)

    @dsl.pipeline(name="tiny-recstack")
    def pipe(num_rows: int = 10, epochs: int = 2):
        rows = gen(num_rows=num_rows).set_display_name("ExampleGen")
        vertex.apply_step_resources(rows, config)
        model = train(examples=rows.outputs["examples"], epochs=epochs)
        model.set_display_name("Trainer")
        vertex.apply_step_resources(push(model=model.outputs["model"]), config)

    return pipe


@pytest.fixture(params=[GPU, TPU], ids=["gpu", "tpu"])
def compiled(request, tmp_path):
    """(MachineSpec, the compiled YAML as a dict) after a round trip through kfp's loader."""
    path = vertex.compile_pipeline(_pipeline(_config(request.param)), str(tmp_path / "p.yaml"))
    loaded = vertex.load_compiled(path)
    assert set(loaded.pipeline_spec.root.dag.tasks) == {"example-gen", "trainer", "pusher"}
    with open(path, encoding="utf-8") as f:
        return request.param, yaml.safe_load(f)


def test_trainer_worker_pools_carry_machines_env_and_image(compiled):
    spec, pipeline = compiled
    params = pipeline["components"]["comp-trainer"]["inputDefinitions"]["parameters"]
    pools = params["worker_pool_specs"]["defaultValue"]
    # One chief pool, then the remaining replicas as one worker pool.
    expected_replicas = [1] + ([spec.replica_count - 1] if spec.replica_count > 1 else [])
    assert [pool["replica_count"] for pool in pools] == expected_replicas
    for pool in pools:
        assert pool["machine_spec"] == {
            "machine_type": spec.machine_type,
            "accelerator_type": spec.accelerator_type,
            "accelerator_count": spec.accelerator_count,
        }
        assert pool["disk_spec"]["boot_disk_size_gb"] == spec.boot_disk_size_gb
        container = pool["container_spec"]
        assert container["image_uri"] == IMAGE
        assert container["env"] == [{"name": k, "value": v} for k, v in ENV.items()]
        assert container["args"][-2:] == ["--function_to_execute", "trainer"]
    assert params["service_account"]["defaultValue"] == SERVICE_ACCOUNT
    assert params["labels"]["defaultValue"] == {"team": "recs"}
    assert params["display_name"]["defaultValue"] == "Trainer"
    launcher = pipeline["deploymentSpec"]["executors"]["exec-trainer"]["container"]
    assert launcher["image"].startswith("gcr.io/ml-pipeline/google-cloud-pipeline-components:")


def test_other_steps_run_the_config_image_with_limits(compiled):
    _, pipeline = compiled
    tasks = pipeline["root"]["dag"]["tasks"]
    assert tasks["example-gen"]["taskInfo"]["name"] == "ExampleGen"
    assert tasks["trainer"]["taskInfo"]["name"] == "Trainer"
    for executor in ("exec-example-gen", "exec-pusher"):
        container = pipeline["deploymentSpec"]["executors"][executor]["container"]
        assert container["image"] == IMAGE
        assert container["resources"]["resourceCpuLimit"] == "2"
        assert container["resources"]["resourceMemoryLimit"] == "8G"


def test_custom_training_op_rejects_a_component_on_another_image():
    plain = dsl.component(trainer, base_image="python:3.11", install_kfp_package=False)
    with pytest.raises(ValueError, match=r"base_image=config.image"):
        vertex.custom_training_op(plain, GPU, _config(GPU), ENV)


def test_custom_training_op_without_gcpc_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "google_cloud_pipeline_components.v1.custom_job", None)
    component = dsl.component(trainer, base_image=IMAGE, install_kfp_package=False)
    with pytest.raises(ImportError, match=r"recstack\[vertex\]"):
        vertex.custom_training_op(component, GPU, _config(GPU), ENV)


class _FakeAiplatform(types.ModuleType):
    """Records what `submit` asks of google.cloud.aiplatform."""

    def __init__(self):
        super().__init__("google.cloud.aiplatform")
        self.calls = []
        calls = self.calls

        class PipelineJob:
            def __init__(self, **kwargs):
                calls.append(("PipelineJob", kwargs))
                self.resource_name = "projects/my-project/locations/europe-west4/pipelineJobs/r1"

            def submit(self, **kwargs):
                calls.append(("submit", kwargs))

            def run(self, **kwargs):
                calls.append(("run", kwargs))

        self.PipelineJob = PipelineJob

    def init(self, **kwargs):
        self.calls.append(("init", kwargs))


@pytest.mark.parametrize("wait", [False, True])
def test_submit_creates_the_pipeline_job(monkeypatch, tmp_path, wait):
    fake = _FakeAiplatform()
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", fake)
    path = vertex.compile_pipeline(_pipeline(_config(GPU)), str(tmp_path / "p.yaml"))
    config = _config(GPU, region="europe-west4", experiment="recs-exp", enable_caching=False)
    run = vertex.submit(path, config, {"epochs": 3}, wait=wait)
    assert fake.calls == [
        ("init", {"project": "my-project", "location": "europe-west4"}),
        (
            "PipelineJob",
            {
                "display_name": "tiny-recstack",
                "template_path": path,
                "pipeline_root": "gs://bucket/root",
                "parameter_values": {"epochs": 3},
                "enable_caching": False,
                "labels": {"team": "recs"},
                "project": "my-project",
                "location": "europe-west4",
            },
        ),  # fmt: skip
        ("run", {"sync": True, "service_account": SERVICE_ACCOUNT, "experiment": "recs-exp"})
        if wait
        else ("submit", {"service_account": SERVICE_ACCOUNT, "experiment": "recs-exp"}),
    ]
    assert run.resource_name == "projects/my-project/locations/europe-west4/pipelineJobs/r1"
    assert run.dashboard_url == (
        "https://console.cloud.google.com/vertex-ai/locations/europe-west4/pipelines/runs/r1"
        "?project=my-project"
    )


def test_submit_keeps_compiled_caching_and_takes_the_run_name(monkeypatch, tmp_path):
    fake = _FakeAiplatform()
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", fake)
    path = vertex.compile_pipeline(_pipeline(_config(GPU)), str(tmp_path / "p.yaml"))
    vertex.submit(path, _config(GPU, labels={}), {}, run_name="nightly 2024-05-01")
    job = fake.calls[1][1]
    assert job["display_name"] == "nightly 2024-05-01"
    assert job["enable_caching"] is None and job["labels"] is None


def test_submit_without_aiplatform_names_the_extra(monkeypatch, tmp_path):
    # Whether or not the extra is installed here, make the import fail.
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", None)
    with pytest.raises(ImportError, match=r"pip install 'recstack\[vertex\]'"):
        vertex.submit(str(tmp_path / "p.yaml"), _config(GPU), {})


def test_submit_checks_the_config_first(tmp_path):
    with pytest.raises(ValueError, match=r"set project"):
        vertex.submit(str(tmp_path / "p.yaml"), VertexConfig(), {})


def test_dashboard_url_rejects_other_resource_names():
    with pytest.raises(ValueError, match=r"projects/P/locations/R/pipelineJobs/ID"):
        vertex.dashboard_url("projects/p/locations/r/customJobs/1")
