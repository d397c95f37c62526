"""The pipeline compiled for Vertex AI: KFP's own loader reads it back, every TFX stage is a
task, the Trainer is a custom job on the configured machines, the steps run the configured
image, and caching follows the design (data steps cached, state steps never)."""

import pytest
import yaml

from pipeline.config import load_pipeline_settings
from pipeline.definition import LOCAL, STAGE_TASKS, VERTEX, create_pipeline
from pipeline.vertex import compile_pipeline, load_compiled

IMAGE = "us-docker.pkg.dev/p/recstack/recstack:1"
UNCACHED = ("input-fingerprint", "latest-blessed-model-resolver", "schema-gen",
            "example-validator", "pusher")  # fmt: skip
CACHED = ("example-gen", "statistics-gen", "trainer", "evaluator")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    root = tmp_path_factory.mktemp("compile")
    config = {
        "pipeline": {
            "name": "recs", "root": "/gcs/b/recs", "interactions": "gs://b/raw/i-*.jsonl",
            "items": "gs://b/raw/items.jsonl", "serving_model_dir": "/gcs/b/models",
            "beam_args": ["--runner=DataflowRunner", "--project=p", "--region=europe-west4"],
        },
        "vertex": {
            "project": "p", "region": "europe-west4", "pipeline_root": "gs://b/vertex",
            "image": IMAGE, "step_cpu_limit": "2", "step_memory_limit": "8G",
            "trainer": {"machine_type": "a2-highgpu-2g", "accelerator_type": "NVIDIA_TESLA_A100",
                        "accelerator_count": 2, "replica_count": 2},
        },
        "train": {"epochs": 7, "hardware": {"strategy": "multi_worker"}},
    }  # fmt: skip
    path = root / "vertex.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_pipeline_settings(str(path))
    output = str(root / "pipeline.yaml")
    compile_pipeline(create_pipeline(settings, "code-v1", VERTEX), output)
    load_compiled(output)  # KFP's own loader accepts it.
    with open(output) as f:
        return yaml.safe_load(f)


def _tasks(spec: dict) -> dict:
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():  # Tasks inside the `blessed` condition.
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def test_every_tfx_stage_is_a_task(compiled):
    tasks = _tasks(compiled)
    for stage, task in STAGE_TASKS.items():
        assert task in tasks, stage
    assert "input-fingerprint" in tasks and "latest-blessed-model-resolver" in tasks


def test_trainer_is_a_custom_job_on_the_configured_machines(compiled):
    params = compiled["components"]["comp-trainer"]["inputDefinitions"]["parameters"]
    pools = params["worker_pool_specs"]["defaultValue"]
    assert len(pools) == 2  # chief + one worker pool
    for pool in pools:
        machine = pool["machine_spec"]
        assert machine["machine_type"] == "a2-highgpu-2g"
        assert machine["accelerator_type"] == "NVIDIA_TESLA_A100"
        assert int(machine["accelerator_count"]) == 2
        assert pool["container_spec"]["image_uri"] == IMAGE
        env = {e["name"]: e["value"] for e in pool["container_spec"]["env"]}
        assert env["TF_USE_LEGACY_KERAS"] == "1"
    assert [int(p["replica_count"]) for p in pools] == [1, 1]


def test_other_steps_run_the_image_with_resource_limits(compiled):
    executors = compiled["deploymentSpec"]["executors"]
    for task in ("example-gen", "statistics-gen", "evaluator"):
        container = executors[f"exec-{task}"]["container"]
        assert container["image"] == IMAGE
        assert container["resources"]["resourceCpuLimit"] == "2"
        assert container["resources"]["resourceMemoryLimit"] == "8G"


def test_config_reaches_the_steps(compiled):
    tasks = _tasks(compiled)

    def constant(task, name):
        return tasks[task]["inputs"]["parameters"][name]["runtimeValue"]["constant"]

    assert "DataflowRunner" in constant("example-gen", "beam_args_json")
    assert '"epochs": 7' in constant("trainer", "train_json")
    assert constant("trainer", "code_version") == "code-v1"
    assert constant("pusher", "serving_model_dir") == "/gcs/b/models"


def test_caching_is_on_for_data_steps_and_off_for_state_steps(compiled):
    tasks = _tasks(compiled)
    for task in CACHED:
        assert tasks[task]["cachingOptions"].get("enableCache") is True, task
    for task in UNCACHED:
        assert not tasks[task].get("cachingOptions", {}).get("enableCache"), task


def test_local_target_needs_no_vertex_settings(tmp_path):
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump({"pipeline": {"interactions": "i", "items": "t",
                                                 "serving_model_dir": "m"}}))  # fmt: skip
    pipeline_func = create_pipeline(load_pipeline_settings(str(path)), "v", LOCAL)
    compile_pipeline(pipeline_func, str(tmp_path / "compiled.yaml"))
    spec = yaml.safe_load(open(tmp_path / "compiled.yaml"))
    assert "comp-trainer" in spec["components"]
    assert "worker_pool_specs" not in str(spec["components"]["comp-trainer"])
