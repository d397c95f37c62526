"""Hypothesis-generated malformed PredictRequests over real gRPC: the server never crashes and
every answer is a typed error (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION) or OK."""

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_toy_models import MODEL_NO_TITLES
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from recstack import features

#: What a malformed request may get back; INTERNAL or UNKNOWN would mean an unhandled path.
TYPED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
}
DTYPES = [*types_pb2.DataType.values(), 77, 1000]

dims = st.lists(st.integers(min_value=-2, max_value=4), max_size=3)


@st.composite
def tensors(draw) -> tensor_pb2.TensorProto:
    """A TensorProto whose dtype, shape and values may disagree with each other."""
    proto = tensor_pb2.TensorProto(dtype=draw(st.sampled_from(DTYPES)))
    shape = draw(st.none() | dims)
    if shape is None:
        proto.tensor_shape.unknown_rank = draw(st.booleans())
    for size in shape or ():
        proto.tensor_shape.dim.add(size=size)
    filler = draw(st.sampled_from(["string", "float", "int", "int64", "bool", "bytes", "none"]))
    values = {
        "string": st.lists(st.binary(max_size=8), max_size=6),
        "float": st.lists(st.floats(allow_nan=True), max_size=6),
        "int": st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6),
        "int64": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6),
        "bool": st.lists(st.booleans(), max_size=6),
        "bytes": st.binary(max_size=40),
        "none": st.none(),
    }
    drawn = draw(values[filler])
    field = {"string": "string_val", "float": "float_val", "int": "int_val",
             "int64": "int64_val", "bool": "bool_val"}.get(filler)  # fmt: skip
    if field:
        getattr(proto, field).extend(drawn)
    elif filler == "bytes":
        proto.tensor_content = drawn
    return proto


@st.composite
def requests(draw) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    if draw(st.integers(0, 9)):  # Mostly with a model spec.
        spec = request.model_spec
        spec.name = draw(st.sampled_from(
            [features.MODEL_RETRIEVAL, MODEL_NO_TITLES, "nope", "", "../retrieval", "a/b", "."]
        ))  # fmt: skip
        version = draw(st.none() | st.integers(-3, 4))
        if version is not None:
            spec.version.value = version
        spec.signature_name = draw(st.sampled_from(["", features.SERVING_SIGNATURE, "bogus"]))
    names = st.sampled_from([features.INPUT_USER_ID, "x", ""])
    for name, tensor in draw(st.dictionaries(names, tensors(), max_size=3)).items():
        request.inputs[name].CopyFrom(tensor)
    request.output_filter.extend(draw(st.lists(
        st.sampled_from([features.OUTPUT_ITEM_IDS, features.OUTPUT_SCORES, "nope"]), max_size=3
    )))  # fmt: skip
    return request


@pytest.mark.slow
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=requests())
def test_malformed_requests_get_typed_errors_and_the_server_keeps_serving(target, request):
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            stub.Predict(request, timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            code = e.code()
            assert e.details(), "every error carries a message"
        assert code in TYPED, (code, request)
        # The server still answers a well-formed request.
        good = predict_pb2.PredictRequest()
        good.model_spec.name = features.MODEL_RETRIEVAL
        good.inputs[features.INPUT_USER_ID].dtype = types_pb2.DT_STRING
        good.inputs[features.INPUT_USER_ID].tensor_shape.dim.add(size=1)
        good.inputs[features.INPUT_USER_ID].string_val.append(b"alice")
        assert stub.Predict(good, timeout=10).outputs[features.OUTPUT_ITEM_IDS].string_val
