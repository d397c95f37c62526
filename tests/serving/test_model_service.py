"""ModelService over real gRPC sockets, with TensorFlow Serving's official stubs."""

import grpc
import pytest
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
)

from recstack import features


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


def test_reload_config_is_unimplemented(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "not supported yet" in info.value.details()
