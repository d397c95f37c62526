"""ModelService over real gRPC sockets, with TensorFlow Serving's official stubs."""

import dataclasses
import pathlib

import grpc
import pytest
import tensorflow as tf
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serving_toy_models import expected_recommendations
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from recstack import features
from serving import model_config
from serving.config import ServeConfig
from serving.metrics import UNRESOLVED, ServingMetrics
from serving.model_service import ModelServicer
from serving.registry import ModelRegistry
from serving.server import ModelServer, create_server


@pytest.fixture
def stub(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


def status_request(model, version=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    return request


def test_status_reports_newest_version_available(stub):
    response = stub.GetModelStatus(status_request(features.MODEL_RETRIEVAL), timeout=10)
    assert len(response.model_version_status) == 1
    status = response.model_version_status[0]
    assert status.version == 2
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.HasField("status")
    assert status.status.error_code == error_codes_pb2.OK
    assert status.status.error_message == ""


def test_status_of_the_loaded_version(stub):
    response = stub.GetModelStatus(status_request(features.MODEL_RETRIEVAL, 2), timeout=10)
    assert [s.version for s in response.model_version_status] == [2]


@pytest.mark.parametrize(
    ("model", "version", "details"),
    [
        ("nope", None, "Could not find any versions of model nope"),
        (features.MODEL_RETRIEVAL, 1, "Could not find version 1 of model retrieval"),
    ],
)
def test_unknown_model_or_version_is_not_found(stub, model, version, details):
    with pytest.raises(grpc.RpcError) as info:
        stub.GetModelStatus(status_request(model, version), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == details


def test_missing_model_spec_is_invalid(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "Missing ModelSpec"


def test_reload_without_model_config_list_is_invalid(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(
        "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
        "ModelConfigList is currently supported"
    )


# --- Several versions, labels and reloads, on a server of their own -------------------------

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END


@dataclasses.dataclass
class Served:
    """A running server over model `m` (all versions; labels stable -> 1, canary -> 2)."""

    registry: ModelRegistry
    server: ModelServer
    base: pathlib.Path
    models: model_service_pb2_grpc.ModelServiceStub
    predictions: prediction_service_pb2_grpc.PredictionServiceStub
    health: health_pb2_grpc.HealthStub
    metrics: ServingMetrics


def model_entry(name, base_path, extra=""):
    return (
        f'config {{ name: "{name}" base_path: "{base_path}" model_platform: "tensorflow" {extra} }}'
    )


def reload_request(*entries):
    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse("model_config_list { " + " ".join(entries) + " }", request.config)
    return request


M_ENTRY_EXTRA = (
    "model_version_policy { all {} } "
    'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 }'
)


@pytest.fixture
def served(tmp_path, install_version):
    for version in (1, 2):
        install_version(str(tmp_path / "m"), version)
    config = model_config.parse_model_config(
        "model_config_list { " + model_entry("m", tmp_path / "m", M_ENTRY_EXTRA) + " }"
    )
    registry = ModelRegistry(config=config)
    metrics = ServingMetrics()
    # No poll thread: the tests poll when they mean to.
    config = ServeConfig(port=0, host="localhost", file_system_poll_wait_seconds=0)
    server = create_server(registry, config, metrics)
    server.start()
    with grpc.insecure_channel(f"localhost:{server.port}") as channel:
        yield Served(
            registry,
            server,
            tmp_path,
            model_service_pb2_grpc.ModelServiceStub(channel),
            prediction_service_pb2_grpc.PredictionServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
            metrics,
        )
    server.stop(grace=1.0).wait()


def predict(stub, model="m", version=None, label=None, user="alice"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.inputs[features.INPUT_USER_ID].CopyFrom(tf.make_tensor_proto([user]))
    response = stub.Predict(request, timeout=10)
    items = [i.decode() for i in tf.make_ndarray(response.outputs[features.OUTPUT_ITEM_IDS])[0]]
    return response.model_spec.version.value, items


def states(response):
    return [
        (s.version, s.state, s.status.error_code, s.status.error_message)
        for s in response.model_version_status
    ]


def health_of(served, service):
    return served.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def test_predict_by_label_and_version_with_the_official_stubs(served):
    for label, version in (("stable", 1), ("canary", 2)):
        assert predict(served.predictions, label=label) == (
            version,
            expected_recommendations("alice", version)[0],
        )
    assert predict(served.predictions, version=1)[0] == 1
    assert predict(served.predictions)[0] == 2  # Newest.

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "m"
    request.model_spec.version_label = "stable"
    assert served.predictions.GetModelMetadata(request, timeout=10).model_spec.version.value == 1


def test_unknown_label_is_invalid_argument_as_in_tf_serving(served):
    with pytest.raises(grpc.RpcError) as info:
        predict(served.predictions, label="nope")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("Unrecognized servable version label: nope")


def test_status_reports_every_version_and_the_failed_one_as_end(served, install_version):
    install_version(str(served.base / "m"), 3, broken=True)
    assert served.registry.poll()

    response = served.models.GetModelStatus(status_request("m"), timeout=10)
    (v3, *available) = states(response)
    assert available == [
        (2, AVAILABLE, error_codes_pb2.OK, ""),
        (1, AVAILABLE, error_codes_pb2.OK, ""),
    ]
    assert v3[:3] == (3, END, error_codes_pb2.INVALID_ARGUMENT)
    assert "saved_model.pb is not a SavedModel" in v3[3]
    assert predict(served.predictions)[0] == 2  # The broken version is not offered.

    (only,) = states(served.models.GetModelStatus(status_request("m", 3), timeout=10))
    assert only[:3] == (3, END, error_codes_pb2.INVALID_ARGUMENT)


def test_status_of_a_label(served):
    request = status_request("m")
    request.model_spec.version_label = "stable"
    response = served.models.GetModelStatus(request, timeout=10)
    assert states(response) == [(1, AVAILABLE, error_codes_pb2.OK, "")]
    request.model_spec.version_label = "nope"
    with pytest.raises(grpc.RpcError) as info:
        served.models.GetModelStatus(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("Unrecognized servable version label: nope")


def test_reload_adds_a_model(served, install_version):
    install_version(str(served.base / "n"), 4)
    request = reload_request(
        model_entry("m", served.base / "m", M_ENTRY_EXTRA), model_entry("n", served.base / "n")
    )
    response = served.models.HandleReloadConfigRequest(request, timeout=30)
    assert response.status.error_code == error_codes_pb2.OK
    assert predict(served.predictions, model="n", user="bob") == (
        4,
        expected_recommendations("bob", 4)[0],
    )
    assert states(served.models.GetModelStatus(status_request("n"), timeout=10)) == [
        (4, AVAILABLE, error_codes_pb2.OK, "")
    ]
    assert health_of(served, "n") == health_pb2.HealthCheckResponse.SERVING


def test_reload_removes_a_model_and_changes_labels(served, install_version):
    install_version(str(served.base / "n"), 1)
    entry = model_entry("n", served.base / "n", 'version_labels { key: "stable" value: 1 }')
    response = served.models.HandleReloadConfigRequest(reload_request(entry), timeout=30)
    assert response.status.error_code == error_codes_pb2.OK

    with pytest.raises(grpc.RpcError) as info:
        served.models.GetModelStatus(status_request("m"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "Could not find any versions of model m"
    with pytest.raises(grpc.RpcError) as info:
        predict(served.predictions, model="m")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert health_of(served, "m") == health_pb2.HealthCheckResponse.NOT_SERVING
    assert predict(served.predictions, model="n", label="stable")[0] == 1


@pytest.mark.parametrize(
    ("entry", "code", "details"),
    [
        (
            lambda base: model_entry("m", base / "m").replace('"tensorflow"', '"onnx"'),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Model m requests unsupported platform onnx",
        ),
        (
            lambda base: model_entry("m", base / "m") + " " + model_entry("m", base / "m"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Illegal to list model m multiple times in config list",
        ),
        (
            lambda base: model_entry("m", base / "m", 'version_labels { key: "x" value: 1 }'),
            grpc.StatusCode.FAILED_PRECONDITION,
            "Request to assign label to version 1 of model m, which is not currently available",
        ),
        (
            lambda base: model_entry("ghost", base / "ghost"),
            grpc.StatusCode.UNKNOWN,
            "1 model(s) did not become available: {{name: ghost due to error",
        ),
    ],
)
def test_rejected_reload_keeps_the_old_config_serving(served, entry, code, details):
    with pytest.raises(grpc.RpcError) as info:
        served.models.HandleReloadConfigRequest(reload_request(entry(served.base)), timeout=30)
    assert info.value.code() == code
    assert details in info.value.details()

    assert predict(served.predictions, label="stable")[0] == 1
    response = served.models.GetModelStatus(status_request("m"), timeout=10)
    assert [s.version for s in response.model_version_status] == [2, 1]


def test_reload_core_method_returns_the_error_status(served):
    servicer = ModelServicer(served.registry)
    response = servicer.reload_config(reload_request(model_entry("../m", served.base / "m")))
    assert response.status.error_code == error_codes_pb2.INVALID_ARGUMENT
    assert "'../m' is not a plain directory name" in response.status.error_message
    assert served.registry.names == ("m",)


def count(metrics, rpc, code, model=UNRESOLVED, version=UNRESOLVED):
    labels = {"rpc": rpc, "model": model, "version": version, "signature": UNRESOLVED,
              "code": code}  # fmt: skip
    return metrics.registry.get_sample_value("recstack_serving_requests_total", labels) or 0.0


def test_model_service_rpcs_are_counted(served):
    served.models.GetModelStatus(status_request("m"), timeout=10)
    served.models.GetModelStatus(status_request("m", 1), timeout=10)
    with pytest.raises(grpc.RpcError):
        served.models.GetModelStatus(status_request("no-such-model-9"), timeout=10)
    served.models.HandleReloadConfigRequest(
        reload_request(model_entry("m", served.base / "m", M_ENTRY_EXTRA)), timeout=30
    )
    with pytest.raises(grpc.RpcError):
        served.models.HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(), timeout=10
        )

    assert count(served.metrics, "GetModelStatus", "OK", model="m") == 1
    assert count(served.metrics, "GetModelStatus", "OK", model="m", version="1") == 1
    assert count(served.metrics, "GetModelStatus", "NOT_FOUND") == 1
    assert count(served.metrics, "HandleReloadConfigRequest", "OK") == 1
    assert count(served.metrics, "HandleReloadConfigRequest", "INVALID_ARGUMENT") == 1
