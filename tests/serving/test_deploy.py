"""The TF Serving deployment assets in `serving/deploy/` parse as TF Serving reads them, and
agree with each other: file paths, ports, names, labels and CPU counts."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from recstack import features
from serving.batching import BatchingConfig, load_batching_parameters
from serving.tf_serving_protos import BatchingParameters, MonitoringConfig

DEPLOY = Path(__file__).resolve().parents[2] / "serving" / "deploy"
K8S = DEPLOY / "k8s"
MODELS = [features.MODEL_RETRIEVAL, features.MODEL_RANKING, features.MODEL_RECOMMENDER]
#: The `tensorflow_model_server` flags the Dockerfile may use (checked in TF Serving r2.11 and
#: r2.20 `model_servers/main.cc`), so a typo fails here rather than at container start.
TF_SERVING_FLAGS = {
    "port",
    "rest_api_port",
    "model_config_file",
    "enable_batching",
    "batching_parameters_file",
    "monitoring_config_file",
    "file_system_poll_wait_seconds",
    "enable_model_warmup",
}


def parse_text(path: Path, message):
    return text_format.Parse(path.read_text(), message)


def k8s(name: str) -> dict:
    (doc,) = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d is not None]
    return doc


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def dockerfile(instruction: str) -> list[str]:
    return [args for name, args in dockerfile_instructions() if name == instruction]


def entrypoint_flags() -> dict[str, str]:
    (entrypoint,) = dockerfile("ENTRYPOINT")
    binary, *flags = json.loads(entrypoint)
    assert binary.endswith("/tensorflow_model_server")
    assert all(re.fullmatch(r"--\w+=\S+", f) for f in flags), flags
    return dict(flag[2:].split("=", 1) for flag in flags)


def copied_files() -> dict[str, str]:
    """Path in the image -> source file in serving/deploy/, from the COPY instructions."""
    copies = {}
    for args in dockerfile("COPY"):
        *sources, dest = args.split()
        assert dest.endswith("/"), f"COPY {args}: copy into a directory"
        copies.update({dest + Path(src).name: src for src in sources})
    return copies


def container() -> dict:
    (only,) = k8s("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    return only


def container_ports() -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container()["ports"]}


# --- TF Serving config files --------------------------------------------------------------


def test_models_config_serves_the_three_models_from_the_model_volume():
    config = parse_text(DEPLOY / "models.config", model_server_config_pb2.ModelServerConfig())
    models = config.model_config_list.config
    assert [m.name for m in models] == MODELS
    for model in models:
        assert model.base_path == f"/models/{model.name}"
        assert model.model_platform == "tensorflow"
        assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
        # Labels in the start-up config need --allow_version_labels_for_unavailable_models.
        assert not model.version_labels
    (mount,) = container()["volumeMounts"]
    assert mount["mountPath"] == "/models" and mount["readOnly"] is True
    assert dockerfile("VOLUME") == ['["/models"]']


def test_readme_version_label_example_is_a_valid_model_server_config():
    readme = (DEPLOY / "README.md").read_text()
    (example,) = re.findall(r"```textproto\n(.*?)```", readme, re.S)
    config = text_format.Parse(example, model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == features.MODEL_RECOMMENDER
    versions = set(model.model_version_policy.specific.versions)
    assert set(model.version_labels) == {"stable", "canary"}
    assert set(model.version_labels.values()) == versions
    assert "--allow_version_labels_for_unavailable_models=true" in readme


def test_batching_parameters_parse_as_tf_serving_and_fit_the_pod():
    params = parse_text(DEPLOY / "batching_parameters.txt", BatchingParameters())
    assert params.max_batch_size.value == 64
    assert params.batch_timeout_micros.value == 2000
    config = load_batching_parameters(str(DEPLOY / "batching_parameters.txt"))
    assert config == BatchingConfig(
        max_batch_size=64,
        batch_timeout_micros=2000,
        num_batch_threads=4,
        max_enqueued_batches=4,
        thread_pool_name="recstack_batch_threads",
        pad_variable_length_inputs=True,
    )
    # One batch thread per CPU the pod gets (TF Serving's CPU guidance).
    assert config.num_batch_threads == int(container()["resources"]["requests"]["cpu"])


def test_monitoring_config_serves_prometheus_where_the_pod_monitor_scrapes():
    config = parse_text(DEPLOY / "monitoring.config", MonitoringConfig())
    assert config.prometheus_config.enable
    (endpoint,) = k8s("podmonitoring.yaml")["spec"]["endpoints"]
    assert endpoint["path"] == config.prometheus_config.path == "/monitoring/prometheus/metrics"
    # TF Serving serves metrics on the REST port.
    assert container_ports()[endpoint["port"]] == int(entrypoint_flags()["rest_api_port"])


# --- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_flags_name_tf_serving_flags_and_files_it_copies_from_deploy():
    flags = entrypoint_flags()
    assert set(flags) <= TF_SERVING_FLAGS, set(flags) - TF_SERVING_FLAGS
    assert flags["enable_batching"] == "true"
    copies = copied_files()
    for flag in ("model_config_file", "batching_parameters_file", "monitoring_config_file"):
        assert flags[flag] in copies, f"--{flag}={flags[flag]} is not COPYed into the image"
        assert (DEPLOY / copies[flags[flag]]).is_file()
    assert int(flags["file_system_poll_wait_seconds"]) > 0


def test_dockerfile_ports_match_the_container_and_service():
    flags = entrypoint_flags()
    grpc_port, rest_port = int(flags["port"]), int(flags["rest_api_port"])
    assert (grpc_port, rest_port) == (8500, 8501)
    (exposed,) = dockerfile("EXPOSE")
    assert sorted(int(p) for p in exposed.split()) == [grpc_port, rest_port]
    assert container_ports() == {"grpc": grpc_port, "http": rest_port}
    service_ports = {p["name"]: p for p in k8s("service.yaml")["spec"]["ports"]}
    assert {name: p["port"] for name, p in service_ports.items()} == container_ports()
    assert all(p["targetPort"] in container_ports() for p in service_ports.values())


def test_dockerfile_builds_on_a_pinned_scann_tf_serving_image():
    (arg,) = dockerfile("ARG")
    name, default = arg.split("=", 1)
    assert dockerfile("FROM") == [f"${{{name}}}"]
    image, tag = default.rsplit(":", 1)
    assert image == "google/tf-serving-scann"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin a version, not {tag!r}"


# --- Kubernetes ---------------------------------------------------------------------------------


def test_k8s_manifests_are_single_kubernetes_objects():
    kinds = {}
    for path in sorted(K8S.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert len(docs) == 1, f"{path.name}: one object per file"
        (doc,) = docs
        assert {"apiVersion", "kind"} <= set(doc), path.name
        kinds[doc["kind"]] = doc
    assert set(kinds) == {
        "Kustomization",
        "ServiceAccount",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodMonitoring",
    }
    assert kinds["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"
    assert kinds["Deployment"]["apiVersion"] == "apps/v1"
    names = {doc["metadata"]["name"] for kind, doc in kinds.items() if kind != "Kustomization"}
    assert names == {"recstack-serving"}


def test_service_and_pod_monitor_select_the_deployment_pods():
    deployment = k8s("deployment.yaml")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        k8s("service.yaml")["spec"]["selector"],
        k8s("podmonitoring.yaml")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector and selector.items() <= pod_labels.items()


def test_probes_ask_the_rest_api_for_a_served_model():
    c = container()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["port"] == "http", probe
        assert re.fullmatch(r"/v1/models/(\w+)", get["path"])[1] in MODELS, probe


def test_hpa_scales_the_deployment_on_its_cpu_request():
    hpa = k8s("hpa.yaml")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": k8s("deployment.yaml")["metadata"]["name"],
    }
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    assert "cpu" in container()["resources"]["requests"]  # utilization is relative to it


def test_model_volume_is_the_bucket_read_with_the_pods_service_account():
    pod = k8s("deployment.yaml")["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == k8s("serviceaccount.yaml")["metadata"]["name"]
    assert pod["metadata"]["annotations"]["gke-gcsfuse/volumes"] == "true"
    (volume,) = pod["spec"]["volumes"]
    assert volume["name"] == container()["volumeMounts"][0]["name"]
    assert volume["csi"]["driver"] == "gcsfuse.csi.storage.gke.io"
    assert volume["csi"]["readOnly"] is True
    assert "only-dir=models" in volume["csi"]["volumeAttributes"]["mountOptions"].split(",")


def test_kustomization_applies_every_manifest_and_sets_the_image():
    kustomization = k8s("kustomization.yaml")
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(manifests)
    (image,) = kustomization["images"]
    assert image["name"] == container()["image"]


def test_deploy_files_are_not_git_ignored():
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    names = [
        "Dockerfile",
        "README.md",
        "models.config",
        "batching_parameters.txt",
        "monitoring.config",
    ]
    files = [str(DEPLOY / n) for n in names] + [str(p) for p in K8S.glob("*.yaml")]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *files],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 128:
        pytest.skip(f"not a git checkout: {result.stderr.strip()}")
    assert result.returncode == 1, f"ignored by .gitignore: {result.stdout.split()}"
