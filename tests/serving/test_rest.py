"""TensorFlow Serving's REST API over real HTTP sockets, checked against the gRPC front end
(official stubs), independently computed values and TF Serving's documented JSON formats."""

import base64
import concurrent.futures
import contextlib
import http.client
import json
import os
import re
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from serving_toy_models import MODEL_K, RegistryWith, expected_recommendations
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from recstack import features
from serving._rpc import RpcAbort
from serving.config import ServeConfig
from serving.metrics import UNRESOLVED, ServingMetrics
from serving.model_config import AllVersions, ModelConfig, ModelConfigList
from serving.model_service import ModelServicer
from serving.prediction_service import PredictionServicer
from serving.registry import ModelRegistry
from serving.rest import RestServer
from serving.rest_json_values import format_float
from serving.server import create_server

RETRIEVAL = f"/v1/models/{features.MODEL_RETRIEVAL}"
TYPED = "typed"
#: TF Serving's HTTP status per gRPC code (`ToHTTPStatusCode` in model_servers/http_server.cc).
TF_SERVING_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
}
#: Not UTF-8, so never valid as a JSON string.
BINARY = b"\xff\x00bin\xfe"


class TypedModel(tf.Module):
    """Signatures with every JSON-typed dtype, one output, a scalar, and an unsupported dtype."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 2], tf.float32, name="x"),
            tf.TensorSpec([None], tf.int64, name="n"),
            tf.TensorSpec([None], tf.bool, name="flag"),
            tf.TensorSpec([None], tf.string, name="raw"),
            tf.TensorSpec([None], tf.float64, name="d"),
        ]
    )
    def typed(self, x, n, flag, raw, d):
        return {
            "total": tf.reduce_sum(x, axis=1) + tf.cast(n, tf.float32),
            "n_plus": n + 1,
            "flag_not": tf.logical_not(flag),
            "raw_bytes": raw,
            "echo": raw,
            "d2": d * 2.0,
        }

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def single(self, x):
        return {"y": tf.reduce_sum(x, axis=1)}

    @tf.function(input_signature=[tf.TensorSpec([], tf.float32, name="s")])
    def scalar(self, s):
        return {"v": s * 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float16, name="h")])
    def half(self, h):
        return {"h32": tf.cast(h, tf.float32)}


def expected_typed(x, n, flag, raw, d):
    """The typed signature's outputs, computed with numpy."""
    x = np.asarray(x, np.float32)
    return {
        "total": x.sum(axis=1) + np.asarray(n).astype(np.float32),
        "n_plus": np.asarray(n, np.int64) + 1,
        "flag_not": ~np.asarray(flag),
        "raw_bytes": np.asarray(raw, object),
        "echo": np.asarray(raw, object),
        "d2": np.asarray(d, np.float64) * 2.0,
    }


class Endpoint:
    """A started RestServer with a client, plus gRPC stubs of the same registry."""

    def __init__(self, rest, channel=None):
        self.rest = rest
        if channel is not None:
            self.predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            self.model_stub = model_service_pb2_grpc.ModelServiceStub(channel)

    def call(self, method, path, body=None, headers=None):
        """(status, headers, parsed JSON body) of one request on a fresh connection."""
        if isinstance(body, dict):
            body = json.dumps(body)
        connection = http.client.HTTPConnection("localhost", self.rest.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        assert response.headers["Content-Type"] == "application/json"
        return response.status, response.headers, json.loads(data) if data else None


def start_rest(registry, prediction=None, **kwargs):
    prediction = prediction or PredictionServicer(registry)
    rest = RestServer(prediction, ModelServicer(registry), "localhost", 0, **kwargs)
    rest.start()
    return rest


@pytest.fixture(scope="module")
def rest_server(registry):
    rest = start_rest(registry)
    yield rest
    rest.stop()


@pytest.fixture
def api(rest_server, channel):
    return Endpoint(rest_server, channel)


@pytest.fixture(scope="module")
def typed_registry(tmp_path_factory):
    module = TypedModel()
    base = tmp_path_factory.mktemp("typed_models")
    signatures = {
        features.SERVING_SIGNATURE: module.typed.get_concrete_function(),
        "single": module.single.get_concrete_function(),
        "scalar": module.scalar.get_concrete_function(),
        "half": module.half.get_concrete_function(),
    }
    tf.saved_model.save(module, str(base / TYPED / "1"), signatures=signatures)
    return ModelRegistry(str(base))


@contextlib.contextmanager
def rest_and_grpc(registry):
    """An Endpoint with a RestServer and a gRPC server of their own over `registry`."""
    rest = start_rest(registry)
    server = create_server(registry, ServeConfig(port=0, host="localhost"))
    server.start()
    try:
        with grpc.insecure_channel(f"localhost:{server.port}") as channel:
            yield Endpoint(rest, channel)
    finally:
        server.stop(grace=1.0).wait()
        rest.stop()


@pytest.fixture(scope="module")
def typed(typed_registry):
    with rest_and_grpc(typed_registry) as endpoint:
        yield endpoint


def grpc_predict(stub, model, inputs, signature=""):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    response = stub.Predict(request, timeout=10)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def grpc_error(call, request):
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    return info.value


def json_leaf(value):
    """A JSON output value as numpy would hold it: strings and {"b64": ...} as bytes."""
    if isinstance(value, list):
        return [json_leaf(v) for v in value]
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    return value.encode() if isinstance(value, str) else value


def rows_to_columns(predictions):
    return {name: [json_leaf(row[name]) for row in predictions] for name in predictions[0]}


def assert_outputs_equal(json_columns, grpc_outputs):
    assert set(json_columns) == set(grpc_outputs)
    for name, expected in grpc_outputs.items():
        actual = np.array(json_columns[name], dtype=expected.dtype)
        np.testing.assert_array_equal(actual, expected, err_msg=name)


def assert_still_serving(endpoint):
    status, _, body = endpoint.call("POST", f"{RETRIEVAL}:predict", {"instances": ["carol"]})
    assert status == 200
    assert body["predictions"][0]["item_ids"] == expected_recommendations("carol", 2)[0]


def status_request(model, version=None, label=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    return request


def metadata_request(model, version=None, label=None):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.CopyFrom(status_request(model, version, label).model_spec)
    return request


def metadata_as_tf_serving_json(response):
    """GetModelMetadataResponse as TF Serving's REST handler prints it (http_rest_api_util.cc)."""
    options = {"preserving_proto_field_name": True, "always_print_fields_with_no_presence": True}
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    return {
        "model_spec": json_format.MessageToDict(response.model_spec, **options),
        "metadata": {"signature_def": json_format.MessageToDict(signature_map, **options)},
    }


def test_status_matches_grpc_and_tf_serving_json(api):
    for path, version in ((RETRIEVAL, None), (f"{RETRIEVAL}/versions/2", 2)):
        status, _, body = api.call("GET", path)
        assert status == 200
        assert body == {
            "model_version_status": [
                {
                    "version": "2",
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }
        response = api.model_stub.GetModelStatus(
            status_request(features.MODEL_RETRIEVAL, version), timeout=10
        )
        assert body == json_format.MessageToDict(
            response, always_print_fields_with_no_presence=True
        )


def test_metadata_matches_grpc_and_tf_serving_json(api):
    for path, version in ((RETRIEVAL, None), (f"{RETRIEVAL}/versions/2", 2)):
        status, _, body = api.call("GET", f"{path}/metadata")
        assert status == 200
        assert body["model_spec"] == {
            "name": features.MODEL_RETRIEVAL,
            "signature_name": "",
            "version": "2",
        }
        serving = body["metadata"]["signature_def"]["signature_def"][features.SERVING_SIGNATURE]
        assert serving["method_name"] == "tensorflow/serving/predict"
        assert serving["inputs"][features.INPUT_USER_ID]["dtype"] == "DT_STRING"
        assert serving["inputs"][features.INPUT_USER_ID]["tensor_shape"] == {
            "dim": [{"size": "-1", "name": ""}],
            "unknown_rank": False,
        }
        assert serving["outputs"][features.OUTPUT_SCORES]["dtype"] == "DT_FLOAT"
        response = api.predict_stub.GetModelMetadata(
            metadata_request(features.MODEL_RETRIEVAL, version), timeout=10
        )
        assert body == metadata_as_tf_serving_json(response)


def test_versions_and_labels_resolve_exactly_as_grpc(api):
    """The path's version or label reaches the core methods: same answer or error as gRPC."""
    for version, label in ((99, None), (None, "stable"), (2, None)):
        suffix = f"/versions/{version}" if version is not None else f"/labels/{label}"
        cases = [
            ("", api.model_stub.GetModelStatus, status_request),
            ("/metadata", api.predict_stub.GetModelMetadata, metadata_request),
        ]
        for tail, call, build in cases:
            status, _, body = api.call("GET", f"{RETRIEVAL}{suffix}{tail}")
            request = build(features.MODEL_RETRIEVAL, version, label)
            try:
                response = call(request, timeout=10)
            except grpc.RpcError as e:
                assert (status, body) == (TF_SERVING_HTTP[e.code()], {"error": e.details()})
            else:
                assert status == 200
                if tail:
                    assert body == metadata_as_tf_serving_json(response)
                else:
                    assert body == json_format.MessageToDict(
                        response, always_print_fields_with_no_presence=True
                    )


@pytest.fixture(scope="module")
def labelled(model_base):
    """REST and gRPC over a model config serving retrieval versions 1 and 2, 1 labelled "stable"."""
    model = ModelConfig(
        features.MODEL_RETRIEVAL,
        os.path.join(model_base, features.MODEL_RETRIEVAL),
        AllVersions(),
        {"stable": 1},
    )
    with rest_and_grpc(ModelRegistry(config=ModelConfigList((model,)))) as endpoint:
        yield endpoint


def test_unknown_version_label_is_400_and_unknown_version_404_as_in_tf_serving(labelled):
    """TF Serving answers an unrecognized label INVALID_ARGUMENT (HTTP 400), not NOT_FOUND."""
    for method, tail, body in [
        ("GET", "", None),
        ("GET", "/metadata", None),
        ("POST", ":predict", {"instances": ["alice"]}),
    ]:
        status, _, answer = labelled.call(method, f"{RETRIEVAL}/labels/canary{tail}", body)
        assert status == 400, (method, tail, answer)
        assert answer["error"].startswith("Unrecognized servable version label: canary")
        assert "its labels: ['stable']" in answer["error"]
        status, _, answer = labelled.call(method, f"{RETRIEVAL}/versions/99{tail}", body)
        assert status == 404, (method, tail, answer)
    error = grpc_error(
        labelled.model_stub.GetModelStatus,
        status_request(features.MODEL_RETRIEVAL, label="canary"),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A known label resolves to its version, on every route.
    status, _, answer = labelled.call("GET", f"{RETRIEVAL}/labels/stable/metadata")
    assert (status, answer["model_spec"]["version"]) == (200, "1")
    status, _, answer = labelled.call(
        "POST", f"{RETRIEVAL}/labels/stable:predict", {"instances": ["alice"]}
    )
    assert status == 200
    assert answer["predictions"][0]["item_ids"] == expected_recommendations("alice", 1)[0]


def test_row_predict_matches_grpc_and_independent_values(api):
    users = ["alice", "bob", "someone-new"]
    status, _, body = api.call("POST", f"{RETRIEVAL}:predict", {"instances": users})

    assert status == 200
    predictions = body["predictions"]
    assert len(predictions) == len(users)
    for row, user in zip(predictions, users, strict=True):
        items, titles, scores = expected_recommendations(user, version=2)
        assert row[features.OUTPUT_ITEM_IDS] == items
        assert row[features.OUTPUT_TITLES] == titles
        assert len(row[features.OUTPUT_SCORES]) == MODEL_K
        np.testing.assert_array_equal(np.float32(row[features.OUTPUT_SCORES]), scores)
    expected = grpc_predict(api.predict_stub, features.MODEL_RETRIEVAL, {"user_id": users})
    assert_outputs_equal(rows_to_columns(predictions), expected)
    # Rows as objects of named inputs answer the same.
    named = {"signature_name": "serving_default", "instances": [{"user_id": u} for u in users]}
    assert api.call("POST", f"{RETRIEVAL}/versions/2:predict", named)[2] == body


def test_columnar_predict_matches_grpc(api):
    users = ["carol", "alice"]
    expected = grpc_predict(api.predict_stub, features.MODEL_RETRIEVAL, {"user_id": users})
    for inputs in ({features.INPUT_USER_ID: users}, users):
        status, _, body = api.call("POST", f"{RETRIEVAL}:predict", {"inputs": inputs})
        assert status == 200
        outputs = {name: json_leaf(value) for name, value in body["outputs"].items()}
        assert_outputs_equal(outputs, expected)


def test_b64_strings_decode_to_the_same_bytes(api):
    encoded = [{"b64": base64.b64encode(u.encode()).decode()} for u in ("alice", "bob")]
    plain = api.call("POST", f"{RETRIEVAL}:predict", {"instances": ["alice", "bob"]})[2]
    assert api.call("POST", f"{RETRIEVAL}:predict", {"instances": encoded})[2] == plain
    unpadded = {"inputs": [{"b64": "Ym9i"}, {"b64": "YWxpY2U"}]}  # "bob", "alice" sans padding
    body = api.call("POST", f"{RETRIEVAL}:predict", unpadded)[2]
    assert body["outputs"]["item_ids"][1] == expected_recommendations("alice", 2)[0]


def test_every_json_dtype_in_and_out_matches_grpc_and_numpy(typed):
    x, n, flag, d = [[0.5, 0.25], [1e6, -3.0]], [7, -(2**40)], [True, False], [0.1, 1 / 3]
    raw = [BINARY, "héllo".encode()]
    raw_json = [{"b64": base64.b64encode(BINARY).decode()}, "héllo"]
    expected = expected_typed(x, n, flag, raw, d)
    inputs = {
        "x": np.array(x, np.float32),
        "n": np.array(n, np.int64),
        "flag": np.array(flag),
        "raw": np.array(raw, object),
        "d": np.array(d, np.float64),
    }
    assert_outputs_equal(expected, grpc_predict(typed.predict_stub, TYPED, inputs))

    rows = [dict(x=x[i], n=n[i], flag=flag[i], raw=raw_json[i], d=d[i]) for i in range(2)]
    status, _, body = typed.call("POST", f"/v1/models/{TYPED}:predict", {"instances": rows})
    assert status == 200
    assert_outputs_equal(rows_to_columns(body["predictions"]), expected)
    # `*_bytes` outputs are always base64; other strings only when they are not UTF-8.
    assert body["predictions"][1]["raw_bytes"] == {"b64": base64.b64encode(raw[1]).decode()}
    assert body["predictions"][1]["echo"] == "héllo"
    assert body["predictions"][0]["echo"] == raw_json[0]

    columns = {"x": x, "n": n, "flag": flag, "raw": raw_json, "d": d, "ignored": 1}
    status, _, body = typed.call("POST", f"/v1/models/{TYPED}:predict", {"inputs": columns})
    assert status == 200
    assert_outputs_equal({k: json_leaf(v) for k, v in body["outputs"].items()}, expected)


def test_single_output_is_unnamed_and_floats_are_written_like_tf_serving(typed):
    x = [[0.1, 0.2], [1 / 3, 0.0], [1e6, 0.0], [2.0, 1.0]]
    for key, answer in (("instances", "predictions"), ("inputs", "outputs")):
        request = {"signature_name": "single", key: x}
        connection = http.client.HTTPConnection("localhost", typed.rest.port, timeout=30)
        connection.request("POST", f"/v1/models/{TYPED}:predict", body=json.dumps(request))
        text = connection.getresponse().read().decode()
        connection.close()
        # float32 sums: %g when it round-trips, else 9 significant digits; ".0" on whole numbers.
        assert re.sub(r"\s", "", text) == (f'{{"{answer}":[0.3,0.333333343,1e+06,3.0]}}')


def test_scalar_input_and_output_in_columnar_format(typed):
    request = {"signature_name": "scalar", "inputs": 1.25}
    status, _, body = typed.call("POST", f"/v1/models/{TYPED}:predict", request)
    assert (status, body) == (200, {"outputs": 2.5})
    status, _, body = typed.call("POST", f"/v1/models/{TYPED}:predict", {**request, "inputs": [1]})
    assert status == 400 and "expects shape []" in body["error"]


@pytest.mark.parametrize(
    ("value", "single", "text"),
    [
        (1.0, True, "1.0"),
        (float(np.float32(0.1)), True, "0.1"),
        (float(np.float32(1 / 3)), True, "0.333333343"),
        (1 / 3, False, "0.33333333333333331"),
        (1e6, True, "1e+06"),
        (123456.0, True, "123456.0"),
        (1e-5, False, "1e-05"),
        (-0.0, False, "-0.0"),
        (float("nan"), True, "NaN"),
        (float("inf"), False, "Infinity"),
        (float("-inf"), True, "-Infinity"),
    ],
)
def test_format_float_matches_tf_serving_write_decimal(value, single, text):
    assert format_float(value, single) == text


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("", 400, "The document is empty"),
        ('{"instances": [', 400, "JSON Parse error"),
        ('["alice"]', 400, "Is not object"),
        ({"instances": ["a"], "inputs": ["a"]}, 400, "only one of 'inputs' or 'instances'"),
        ({"signature_name": "serving_default"}, 400, "Missing 'inputs' or 'instances' key"),
        ({"instances": []}, 400, "No values in 'instances' array"),
        ({"instances": "alice"}, 400, "Expecting 'instances' to be an list/array"),
        ({"signature_name": 3, "instances": ["a"]}, 400, "'signature_name' key must be a string"),
        ({"signature_name": "nope", "instances": ["a"]}, 400, 'signature name: "nope" not found'),
        ({"instances": [5]}, 400, "Type: Number is not of expected type: string"),
        ({"instances": [{"b64": "!!"}]}, 400, "Unable to base64 decode"),
        ({"inputs": {"user_id": [{"b64": 5}]}}, 400, "not formatted correctly for base64 data"),
        # {"b64": <not a string>} is no binary value, so it names an input (as in TF Serving).
        ({"instances": [{"b64": 5}]}, 400, "does not have named input: b64"),
        ({"instances": [["a"], ["b", "c"]]}, 400, "Expecting tensor size: 1 but got: 2"),
        ({"instances": [["a"], "b"]}, 400, "Expecting shape [1] but got: []"),
        ({"instances": [{"user_id": "a", "x": 1}]}, 400, "does not have named input: x"),
        ({"instances": [{"user_id": "a"}, "b"]}, 400, "Expecting object but got list at item 1"),
        ({"inputs": {"x": ["a"]}}, 400, "Missing named input: user_id in 'inputs' object."),
        ({"inputs": [["a", "b"], ["c"]]}, 400, "unexpected size: 1 at level: 1"),
        ({"inputs": [["a"], "b"]}, 400, "found at incorrect level"),
        ({"inputs": "alice"}, 400, "expects shape [-1]"),
    ],
)
def test_malformed_predict_requests_get_400_with_the_problem_named(api, body, status, message):
    got_status, _, got = api.call("POST", f"{RETRIEVAL}:predict", body)
    assert (got_status, list(got)) == (status, ["error"])
    assert message in got["error"]
    assert_still_serving(api)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": [{"x": [1, 2], "n": 1, "flag": True, "raw": "r", "d": 1}, {}]}, "keys"),
        ({"instances": [[1.0, 2.0]]}, "expecting list of objects as multiple input tensors"),
        ({"inputs": [1.0]}, "expecting an object as multiple input tensors"),
        ({"signature_name": "single", "instances": [[1.0, 2.0], [1.0]]}, "tensor size: 2"),
        ({"signature_name": "single", "instances": [[True, 1.0]]}, "Type: True"),
        ({"signature_name": "single", "instances": [[1.0, "2"]]}, "expected type: float"),
        ({"inputs": dict(x=[[1, 2]], n=[1.5], flag=[True], raw=["r"], d=[1])}, "type: int64"),
        ({"inputs": dict(x=[[1, 2]], n=[2**63], flag=[True], raw=["r"], d=[1])}, "[-9223372"),
        ({"inputs": dict(x=[[1, 2]], n=[1], flag=[1], raw=["r"], d=[1])}, "send true or false"),
    ],
)
def test_typed_input_errors_name_the_value_and_the_fix(typed, body, message):
    status, _, got = typed.call("POST", f"/v1/models/{TYPED}:predict", body)
    assert status == 400
    assert message in got["error"]


def test_unsupported_dtypes_and_methods_are_501_as_in_grpc(api, typed):
    request = {"signature_name": "half", "instances": [1.0]}
    status, _, body = typed.call("POST", f"/v1/models/{TYPED}:predict", request)
    assert status == 501 and "Conversion of JSON Value: 1.0 to type: half" in body["error"]
    rpcs = {
        "classify": (api.predict_stub.Classify, classification_pb2.ClassificationRequest()),
        "regress": (api.predict_stub.Regress, regression_pb2.RegressionRequest()),
    }
    for verb, (call, request) in rpcs.items():
        request.model_spec.name = features.MODEL_RETRIEVAL
        error = grpc_error(call, request)
        status, _, body = api.call("POST", f"{RETRIEVAL}:{verb}", {"examples": [{"x": 1}]})
        assert (status, body) == (TF_SERVING_HTTP[error.code()], {"error": error.details()})
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED
        assert api.call("POST", f"{RETRIEVAL}:{verb}", "{")[0] == 400  # Body parsed first.


def test_model_errors_are_the_grpc_errors(api):
    cases = [("no-such-model", ["alice"]), (features.MODEL_RETRIEVAL, [""])]  # 404; model's 400
    for model, users in cases:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.inputs["user_id"].CopyFrom(tf.make_tensor_proto(users))
        error = grpc_error(api.predict_stub.Predict, request)
        status, _, body = api.call("POST", f"/v1/models/{model}:predict", {"instances": users})
        assert (status, body) == (TF_SERVING_HTTP[error.code()], {"error": error.details()})
    status, _, body = api.call("GET", "/v1/models/no-such-model/metadata")
    assert (
        status == 404 and "Servable not found for request: Latest(no-such-model)" in body["error"]
    )
    assert api.call("GET", "/v1/models/no-such-model")[2] == {
        "error": "Could not find any versions of model no-such-model"
    }
    status, _, body = api.call("GET", "/v1/models")
    assert status == 400 and "Missing model name" in body["error"]
    status, _, body = api.call("GET", f"{RETRIEVAL}/versions/99999999999999999999")
    assert status == 400 and "Failed to convert version: 99999999999999999999" in body["error"]
    assert_still_serving(api)


def test_unknown_paths_404_wrong_methods_405_unknown_methods_501(api):
    for path in ("/", "/v2/models/retrieval", f"{RETRIEVAL}/extra", f"{RETRIEVAL}:explain"):
        status, _, body = api.call("GET", path)
        assert status == 404 and f"GET {path} is no REST API route" in body["error"]
    for method, path, allowed in [
        ("GET", f"{RETRIEVAL}:predict", "POST"),
        ("PUT", f"{RETRIEVAL}:predict", "POST"),
        ("POST", RETRIEVAL, "GET, HEAD"),
        ("DELETE", f"{RETRIEVAL}/metadata", "GET, HEAD"),
    ]:
        status, headers, body = api.call(method, path, "{}")
        assert (status, headers["Allow"]) == (405, allowed)
        assert f"Method {method} is not allowed on {path}; use {allowed}" in body["error"]
    # HEAD is GET without the body.
    connection = http.client.HTTPConnection("localhost", api.rest.port, timeout=30)
    connection.request("HEAD", RETRIEVAL)
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b"")
    assert int(response.headers["Content-Length"]) > 0  # The length GET's body would have.
    connection.close()
    status, _, body = api.call("BREW", RETRIEVAL)
    assert status == 501 and "Unsupported method ('BREW')" in body["error"]
    # Paths match case-insensitively, as TF Serving's route regexes do; query strings are ignored.
    assert api.call("GET", "/V1/Models/retrieval?x=1")[0] == 200
    assert_still_serving(api)


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
    ],
)
def test_core_status_codes_map_to_tf_serving_http_statuses(registry, code):
    class Failing(PredictionServicer):
        def predict(self, request, labels=None):
            raise RpcAbort(code, f"failing with {code.name}")

    rest = start_rest(registry, Failing(registry))
    try:
        status, _, body = Endpoint(rest).call("POST", f"{RETRIEVAL}:predict", {"instances": ["a"]})
    finally:
        rest.stop()
    assert (status, body) == (TF_SERVING_HTTP[code], {"error": f"failing with {code.name}"})


def test_unexpected_exception_is_500_and_the_server_keeps_serving(registry):
    def broken(**inputs):
        raise ValueError("model exploded")

    rest = start_rest(registry, PredictionServicer(RegistryWith(registry, broken)))
    endpoint = Endpoint(rest)
    try:
        for _ in range(2):
            status, _, body = endpoint.call("POST", f"{RETRIEVAL}:predict", {"instances": ["a"]})
            assert status == 500
            assert "ValueError: model exploded" in body["error"]
        assert endpoint.call("GET", RETRIEVAL)[0] == 200
    finally:
        rest.stop()


def test_bodies_over_max_body_bytes_get_413_and_the_connection_closes(registry):
    rest = start_rest(registry, max_body_bytes=64)
    endpoint = Endpoint(rest)
    big = json.dumps({"instances": ["alice"] * 20})
    try:
        status, headers, body = endpoint.call("POST", f"{RETRIEVAL}:predict", big)
        assert status == 413 and headers["Connection"] == "close"
        assert f"request body of {len(big)} bytes exceeds the server's limit of 64" in body["error"]
        connection = http.client.HTTPConnection("localhost", rest.port, timeout=30)
        connection.request("POST", f"{RETRIEVAL}:predict", body=iter([big.encode()]),
                           encode_chunked=True)  # fmt: skip
        assert connection.getresponse().status == 413
        connection.close()
        small = {"instances": ["alice"]}
        assert endpoint.call("POST", f"{RETRIEVAL}:predict", small)[0] == 200
    finally:
        rest.stop()


def test_chunked_bodies_and_keep_alive_connections(api):
    connection = http.client.HTTPConnection("localhost", api.rest.port, timeout=30)
    try:
        chunks = [b'{"instances": ', b'["alice",', b' "bob"]}']
        connection.request("POST", f"{RETRIEVAL}:predict", body=iter(chunks), encode_chunked=True)
        chunked = json.loads(connection.getresponse().read())
        # The same connection survives an error answer and serves the next request.
        connection.request("POST", f"{RETRIEVAL}:predict", body="{")
        error = connection.getresponse()
        assert (error.status, "JSON Parse error" in json.loads(error.read())["error"]) == (
            400,
            True,
        )
        connection.request("POST", f"{RETRIEVAL}:predict", body=b"".join(chunks))
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read()) == chunked
    finally:
        connection.close()


def test_concurrent_requests_each_get_their_own_answer(api):
    users = ["alice", "bob", "carol", "dave"] * 4

    def recommend(user):
        return api.call("POST", f"{RETRIEVAL}:predict", {"instances": [user]})[2]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(recommend, users))
    for user, answer in zip(users, answers, strict=True):
        assert answer["predictions"][0]["item_ids"] == expected_recommendations(user, 2)[0]


def test_requests_are_counted_in_metrics(registry):
    metrics = ServingMetrics()
    rest = start_rest(registry, metrics=metrics)
    endpoint = Endpoint(rest)
    try:
        endpoint.call("POST", f"{RETRIEVAL}:predict", {"instances": ["alice"]})
        endpoint.call("POST", f"{RETRIEVAL}:predict", {"inputs": [5]})
        endpoint.call("POST", "/v1/models/secret-name:predict", {"instances": ["a"]})
        endpoint.call("GET", RETRIEVAL)
        endpoint.call("GET", f"{RETRIEVAL}/metadata")
        endpoint.call("GET", "/nowhere")
    finally:
        rest.stop()

    def count(rpc, model, version, signature, code):
        labels = dict(rpc=rpc, model=model, version=version, signature=signature, code=code)
        return metrics.registry.get_sample_value("recstack_serving_requests_total", labels)

    ok = (features.MODEL_RETRIEVAL, "2")
    assert count("RestPredict", *ok, features.SERVING_SIGNATURE, "OK") == 1
    assert count("RestPredict", *ok, features.SERVING_SIGNATURE, "INVALID_ARGUMENT") == 1
    assert count("RestPredict", UNRESOLVED, UNRESOLVED, UNRESOLVED, "NOT_FOUND") == 1
    # Status labels the version only when the path names one (ModelServicer.status decides).
    assert count("RestGetModelStatus", ok[0], UNRESOLVED, UNRESOLVED, "OK") == 1
    assert count("RestGetModelMetadata", *ok, UNRESOLVED, "OK") == 1
    assert count("RestUnrouted", UNRESOLVED, UNRESOLVED, UNRESOLVED, "NOT_FOUND") == 1
    latency = {"rpc": "RestPredict", "model": ok[0], "version": ok[1]}
    latency["signature"] = features.SERVING_SIGNATURE
    sample = "recstack_serving_request_latency_seconds_count"
    assert metrics.registry.get_sample_value(sample, latency) == 2  # OK and INVALID_ARGUMENT


def test_start_picks_a_free_port_and_stop_releases_it(registry):
    rest = RestServer(PredictionServicer(registry), ModelServicer(registry), "localhost", 0)
    with rest:
        assert rest.port > 0
        assert Endpoint(rest).call("GET", RETRIEVAL)[0] == 200
        with pytest.raises(RuntimeError, match="already running"):
            rest.start()
        busy = RestServer(
            PredictionServicer(registry), ModelServicer(registry), "localhost", rest.port
        )
        with pytest.raises(OSError, match=f"cannot listen for REST on localhost:{rest.port}"):
            busy.start()
    with pytest.raises(ConnectionRefusedError):
        Endpoint(rest).call("GET", RETRIEVAL)
    rest.stop()  # Stopping twice is harmless.
    with pytest.raises(ValueError, match="max_body_bytes=0 must be positive"):
        RestServer(PredictionServicer(registry), ModelServicer(registry), "localhost", 0,
                   max_body_bytes=0)  # fmt: skip


def test_stop_lets_running_requests_finish(registry):
    started = threading.Event()
    model = registry.get(features.MODEL_RETRIEVAL).signatures[features.SERVING_SIGNATURE]

    def slow(**inputs):
        started.set()
        time.sleep(0.5)
        return model(**inputs)

    rest = start_rest(registry, PredictionServicer(RegistryWith(registry, slow)))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        request = {"instances": ["alice"]}
        future = pool.submit(Endpoint(rest).call, "POST", f"{RETRIEVAL}:predict", request)
        assert started.wait(timeout=30)
        stop_started = time.perf_counter()
        rest.stop(grace=30)
        assert time.perf_counter() - stop_started > 0.3  # stop() waited for the 0.5 s request.
        status, headers, body = future.result(timeout=30)
    assert (status, headers["Connection"]) == (200, "close")
    assert body["predictions"][0]["item_ids"] == expected_recommendations("alice", 2)[0]
