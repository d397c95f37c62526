"""PredictionService over real gRPC sockets, with TensorFlow Serving's official stubs."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from serving_toy_models import MODEL_K, RegistryWith, expected_recommendations
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from recstack import features
from serving.config import ServeConfig
from serving.server import create_server
from serving.tensor_protos import as_proto_field


@pytest.fixture
def stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def predict_request(model=features.MODEL_RETRIEVAL, users=("alice", "bob"), **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if users is not None:
        request.inputs[features.INPUT_USER_ID].CopyFrom(
            tf.make_tensor_proto(list(users), dtype=tf.string)
        )
    for name, proto in inputs.items():
        request.inputs[name].CopyFrom(proto)
    return request


def rpc_error(call, request):
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    return info.value


def assert_still_serving(stub):
    response = stub.Predict(predict_request(users=["carol"]), timeout=10)
    items = tf.make_ndarray(response.outputs[features.OUTPUT_ITEM_IDS])
    assert [i.decode() for i in items[0]] == expected_recommendations("carol", 2)[0]


def test_predict_matches_independent_values_and_in_process_model(stub, registry):
    users = ["alice", "bob", "someone-new"]
    response = stub.Predict(predict_request(users=users), timeout=10)

    assert response.model_spec.name == features.MODEL_RETRIEVAL
    assert response.model_spec.version.value == 2
    assert response.model_spec.signature_name == features.SERVING_SIGNATURE
    outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
    assert outputs[features.OUTPUT_SCORES].dtype == np.float32
    assert outputs[features.OUTPUT_SCORES].shape == (3, MODEL_K)
    for row, user in enumerate(users):
        items, titles, scores = expected_recommendations(user, version=2)
        assert [i.decode() for i in outputs[features.OUTPUT_ITEM_IDS][row]] == items
        assert [t.decode() for t in outputs[features.OUTPUT_TITLES][row]] == titles
        np.testing.assert_allclose(outputs[features.OUTPUT_SCORES][row], scores, rtol=1e-6)

    model = registry.get(features.MODEL_RETRIEVAL)
    local = model.signatures[features.SERVING_SIGNATURE](user_id=tf.constant(users))
    assert set(local) == set(outputs)
    for name, tensor in local.items():
        np.testing.assert_array_equal(outputs[name], tensor.numpy())


def test_predict_with_explicit_version_and_signature(stub):
    request = predict_request(users=["bob"])
    request.model_spec.version.value = 2
    request.model_spec.signature_name = features.SERVING_SIGNATURE
    response = stub.Predict(request, timeout=10)
    assert response.model_spec.version.value == 2
    items = tf.make_ndarray(response.outputs[features.OUTPUT_ITEM_IDS])
    assert [i.decode() for i in items[0]] == expected_recommendations("bob", 2)[0]


def test_output_filter_returns_only_the_listed_outputs(stub):
    request = predict_request()
    request.output_filter.append(features.OUTPUT_SCORES)
    response = stub.Predict(request, timeout=10)
    assert list(response.outputs) == [features.OUTPUT_SCORES]

    request.output_filter.append("nope")
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "output tensor alias not found in signature: nope" in error.details()

    request = predict_request()
    request.output_filter.extend([features.OUTPUT_SCORES, features.OUTPUT_SCORES])
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "duplicate output tensor alias" in error.details()


def test_unknown_model_is_not_found_then_valid_request_succeeds(stub):
    error = rpc_error(stub.Predict, predict_request(model="nope"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Servable not found for request: Latest(nope)"
    assert_still_serving(stub)


def test_unloaded_version_is_not_found(stub):
    request = predict_request()
    request.model_spec.version.value = 1
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Servable not found for request: Specific(retrieval, 1)"


def test_path_escaping_model_name_is_rejected(stub):
    error = rpc_error(stub.Predict, predict_request(model=f"../{features.MODEL_RETRIEVAL}"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "not a plain directory name" in error.details()
    assert_still_serving(stub)


def test_missing_model_spec_or_name_is_invalid(stub):
    error = rpc_error(stub.Predict, predict_pb2.PredictRequest())
    assert (error.code(), error.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Missing ModelSpec",
    )
    error = rpc_error(stub.Predict, predict_request(model=""))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "ModelSpec has no name specified."


def test_version_label_is_invalid(stub):
    request = predict_request()
    request.model_spec.version_label = "stable"
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'stable'" in error.details()


def test_unknown_signature_is_failed_precondition(stub):
    request = predict_request()
    request.model_spec.signature_name = "nope"
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert 'Serving signature key "nope" not found.' in error.details()
    assert features.SERVING_SIGNATURE in error.details()


def test_missing_input_is_invalid_and_names_it(stub):
    error = rpc_error(stub.Predict, predict_request(users=None))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"missing ['{features.INPUT_USER_ID}']" in error.details()
    assert_still_serving(stub)


def test_unexpected_input_is_invalid_and_names_it(stub):
    extra = tf.make_tensor_proto([1.0], dtype=tf.float32)
    error = rpc_error(stub.Predict, predict_request(age=extra))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unexpected ['age']" in error.details()
    assert_still_serving(stub)


def test_wrong_dtype_is_invalid_and_names_input_and_dtypes(stub):
    request = predict_request(users=None)
    request.inputs[features.INPUT_USER_ID].CopyFrom(tf.make_tensor_proto([7], dtype=tf.int64))
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error.details()
    assert f"input '{features.INPUT_USER_ID}'" in details
    assert "expects dtype DT_STRING but got DT_INT64" in details
    assert_still_serving(stub)


def test_wrong_shape_is_invalid_and_names_input_and_shapes(stub):
    request = predict_request(users=None)
    request.inputs[features.INPUT_USER_ID].CopyFrom(tf.make_tensor_proto([["alice"]]))
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"input '{features.INPUT_USER_ID}'" in error.details()
    assert "expects shape [-1]" in error.details() and "got [1, 1]" in error.details()


def test_model_runtime_error_is_invalid_argument_with_its_message(stub):
    error = rpc_error(stub.Predict, predict_request(users=["alice", ""]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "user_id must be non-empty" in error.details()
    assert_still_serving(stub)


def test_unexpected_model_failure_is_internal_and_server_keeps_serving(registry):
    calls = []

    def flaky(**inputs):
        calls.append(inputs)
        if len(calls) == 1:
            raise RuntimeError("disk on fire")
        return registry.get(features.MODEL_RETRIEVAL).signatures[features.SERVING_SIGNATURE](
            **inputs
        )

    server = create_server(RegistryWith(registry, flaky), ServeConfig(port=0, host="localhost"))
    server.start()
    try:
        with grpc.insecure_channel(f"localhost:{server.port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            error = rpc_error(stub.Predict, predict_request())
            assert error.code() == grpc.StatusCode.INTERNAL
            assert "RuntimeError: disk on fire" in error.details()
            assert_still_serving(stub)
    finally:
        server.stop(grace=None).wait()


def test_get_model_metadata_returns_signature_defs(stub, registry):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = features.MODEL_RETRIEVAL
    request.metadata_field.append("signature_def")
    response = stub.GetModelMetadata(request, timeout=10)

    assert response.model_spec.name == features.MODEL_RETRIEVAL
    assert response.model_spec.version.value == 2
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    signature = signature_map.signature_def[features.SERVING_SIGNATURE]
    assert list(signature.inputs) == [features.INPUT_USER_ID]
    assert signature.inputs[features.INPUT_USER_ID].dtype == types_pb2.DT_STRING
    assert sorted(signature.outputs) == sorted(
        [features.OUTPUT_ITEM_IDS, features.OUTPUT_SCORES, features.OUTPUT_TITLES]
    )
    assert signature.outputs[features.OUTPUT_SCORES].dtype == types_pb2.DT_FLOAT
    expected = registry.get(features.MODEL_RETRIEVAL).signature_defs[features.SERVING_SIGNATURE]
    assert signature == expected


@pytest.mark.parametrize(
    ("fields", "model", "code", "details"),
    [
        ([], features.MODEL_RETRIEVAL, grpc.StatusCode.INVALID_ARGUMENT, "at least one"),
        (
            ["size"],
            features.MODEL_RETRIEVAL,
            grpc.StatusCode.INVALID_ARGUMENT,
            "Metadata field size",
        ),
        (["signature_def"], "nope", grpc.StatusCode.NOT_FOUND, "Latest(nope)"),
    ],
)
def test_get_model_metadata_errors(stub, fields, model, code, details):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model
    request.metadata_field.extend(fields)
    error = rpc_error(stub.GetModelMetadata, request)
    assert error.code() == code
    assert details in error.details()


@pytest.mark.parametrize(
    ("rpc", "request_type"),
    [
        ("Classify", classification_pb2.ClassificationRequest),
        ("Regress", regression_pb2.RegressionRequest),
        ("MultiInference", inference_pb2.MultiInferenceRequest),
    ],
)
def test_classify_regress_multi_inference_are_unimplemented(stub, rpc, request_type):
    error = rpc_error(getattr(stub, rpc), request_type())
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert f"{rpc} is not supported" in error.details()
    assert "Predict" in error.details()


def test_numeric_outputs_use_typed_fields_like_tf_serving(stub):
    response = stub.Predict(predict_request(users=["bob"]), timeout=10)
    scores = response.outputs[features.OUTPUT_SCORES]
    assert scores.tensor_content == b""
    np.testing.assert_allclose(scores.float_val, expected_recommendations("bob", 2)[2], rtol=1e-6)
    assert [d.size for d in scores.tensor_shape.dim] == [1, MODEL_K]
    items = response.outputs[features.OUTPUT_ITEM_IDS]
    assert [i.decode() for i in items.string_val] == expected_recommendations("bob", 2)[0]


@pytest.mark.parametrize(
    "dtype",
    [tf.float32, tf.float64, tf.int8, tf.uint8, tf.int16, tf.uint16, tf.int32, tf.int64,
     tf.uint32, tf.uint64, tf.bool, tf.float16, tf.bfloat16, tf.complex64, tf.complex128],
)  # fmt: skip
def test_typed_field_encoding_round_trips(dtype):
    array = tf.cast(tf.reshape(tf.range(6), [2, 3]), dtype).numpy()
    proto = as_proto_field(array)
    assert proto.tensor_content == b""
    decoded = tf.make_ndarray(proto)
    assert decoded.dtype == array.dtype
    np.testing.assert_array_equal(decoded, array)


def test_failed_in_graph_assertions_are_reported_without_boilerplate():
    from serving.prediction_service import concise_error

    raw = (
        "Graph execution error:\n\nDetected at node assert_less_equal/Assert/Assert defined at "
        "(most recent call last):\n<stack traces unavailable>\nassertion failed: [input k must "
        "be between 1 and 100] [Condition x <= y did not hold element-wise:] [x (k:0) = ] "
        "[500 3] [y (assert_less_equal/y:0) = ] [100]\n\t [[{{node assert_less_equal/Assert}}]]"
    )
    assert concise_error(raw) == "input k must be between 1 and 100; got [500 3]"
    assert concise_error("indices[0] = 7 is not in [0, 5)") == "indices[0] = 7 is not in [0, 5)"
