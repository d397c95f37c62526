"""ServingClient against the live server (and against a server without a health service)."""

import contextlib
import json
import socket
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from serving_toy_models import MODEL_K, MODEL_NO_TITLES, expected_recommendations
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from recstack import features
from serving.client import (
    Recommendation,
    ServingClient,
    recommender_inputs,
    retry_service_config,
)
from serving.model_service import ModelServicer
from serving.prediction_service import PredictionServicer


@pytest.fixture
def client(target):
    with ServingClient(target, timeout_s=10) as c:
        yield c


def test_predict_returns_numpy_outputs_equal_to_the_model(client, registry):
    users = np.array(["carol", "alice"])
    outputs = client.predict(features.MODEL_RETRIEVAL, {features.INPUT_USER_ID: users})
    local = registry.get(features.MODEL_RETRIEVAL).signatures[features.SERVING_SIGNATURE](
        user_id=tf.constant(users)
    )
    assert set(outputs) == set(local)
    for name, tensor in local.items():
        np.testing.assert_array_equal(outputs[name], tensor.numpy())


def test_predict_output_filter_and_version(client):
    outputs = client.predict(
        features.MODEL_RETRIEVAL,
        {features.INPUT_USER_ID: ["bob"]},
        version=2,
        output_filter=[features.OUTPUT_SCORES],
    )
    assert list(outputs) == [features.OUTPUT_SCORES]
    np.testing.assert_allclose(
        outputs[features.OUTPUT_SCORES][0], expected_recommendations("bob", 2)[2]
    )


def test_predict_errors_are_grpc_errors_with_tf_serving_codes(client):
    with pytest.raises(grpc.RpcError) as info:
        client.predict("nope", {features.INPUT_USER_ID: ["bob"]})
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        client.predict(features.MODEL_RETRIEVAL, {features.INPUT_USER_ID: [1, 2]})
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_recommend_returns_top_k_with_titles_as_text(client):
    users = ["alice", "bob", "stranger"]
    recommendations = client.recommend(users, k=3, model=features.MODEL_RETRIEVAL)
    assert len(recommendations) == len(users)
    for user, recs in zip(users, recommendations, strict=True):
        items, titles, scores = expected_recommendations(user, version=2)
        assert recs == [
            Recommendation(item_id=i, title=t, score=pytest.approx(float(s)))
            for i, t, s in zip(items[:3], titles[:3], scores[:3], strict=True)
        ]
        assert all(isinstance(r.item_id, str) and isinstance(r.title, str) for r in recs)


def test_recommend_without_titles_output_gives_empty_titles(client):
    recs = client.recommend(["bob"], k=MODEL_K, model=MODEL_NO_TITLES)[0]
    assert [r.item_id for r in recs] == expected_recommendations("bob", version=1)[0]
    assert {r.title for r in recs} == {""}


@pytest.mark.parametrize("k", [0, -3])
def test_recommend_rejects_k_below_one(client, k):
    with pytest.raises(ValueError, match=f"k={k}"):
        client.recommend(["alice"], k=k)


def test_recommend_rejects_k_above_what_the_model_returns(client):
    with pytest.raises(ValueError, match=f"k={MODEL_K + 1} exceeds the {MODEL_K} items"):
        client.recommend(["alice"], k=MODEL_K + 1, model=features.MODEL_RETRIEVAL)


def test_recommender_options_need_the_recommender(client):
    with pytest.raises(ValueError, match="exclude and mmr_lambda need the 'recommender'"):
        client.recommend(["alice"], k=1, model=features.MODEL_RETRIEVAL, mmr_lambda=0.5)
    with pytest.raises(ValueError, match="exclude has 2 lists for 1 user"):
        client.recommend(["alice"], k=1, exclude=[["a"], ["b"]])


def test_recommender_inputs_pad_exclusions():
    inputs = recommender_inputs(3, 7, 0.25, [["a", "b"], [], ["c"]])
    assert inputs[features.INPUT_K].tolist() == [7, 7, 7]
    assert inputs[features.INPUT_K].dtype == np.int32
    assert inputs[features.INPUT_MMR_LAMBDA].dtype == np.float32
    assert inputs[features.INPUT_EXCLUDE_ITEM_IDS].tolist() == [["a", "b"], ["", ""], ["c", ""]]
    assert recommender_inputs(2, 1)[features.INPUT_EXCLUDE_ITEM_IDS].tolist() == [[""], [""]]


def test_retry_policy_retries_only_unavailable():
    config = json.loads(retry_service_config(3))
    policy = config["methodConfig"][0]["retryPolicy"]
    assert policy["maxAttempts"] == 4 and policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    with pytest.raises(ValueError, match="retries=5"):
        ServingClient("localhost:1", retries=5)


class _FlakyStatus(model_service_pb2_grpc.ModelServiceServicer):
    """Answers UNAVAILABLE (or `code`) `failures` times, then a status with version 1."""

    def __init__(self, failures, code=grpc.StatusCode.UNAVAILABLE):
        self.failures, self.code, self.calls = failures, code, 0

    def GetModelStatus(self, request, context):
        self.calls += 1
        if self.calls <= self.failures:
            context.abort(self.code, f"attempt {self.calls} refused")
        response = get_model_status_pb2.GetModelStatusResponse()
        response.model_version_status.add(version=1, state=30)  # AVAILABLE
        return response


@contextlib.contextmanager
def _serving(servicer):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    try:
        yield f"localhost:{port}"
    finally:
        server.stop(grace=None).wait()


def test_client_retries_unavailable_answers_but_not_other_errors():
    flaky = _FlakyStatus(failures=2)
    with _serving(flaky) as target, ServingClient(target, retries=3) as client:
        assert client.status("m") == {1: "AVAILABLE"}
    assert flaky.calls == 3

    flaky = _FlakyStatus(failures=2)
    with _serving(flaky) as target, ServingClient(target, retries=0) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.status("m")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and flaky.calls == 1

    wrong = _FlakyStatus(failures=1, code=grpc.StatusCode.INVALID_ARGUMENT)
    with _serving(wrong) as target, ServingClient(target, retries=3) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.status("m")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and wrong.calls == 1


def test_recommend_rejects_a_bare_string_and_empty_users(client):
    with pytest.raises(TypeError, match="one string"):
        client.recommend("alice", k=1)
    with pytest.raises(ValueError, match="empty"):
        client.recommend([], k=1)


def test_metadata_and_status(client):
    signatures = client.metadata(features.MODEL_RETRIEVAL)
    signature = signatures[features.SERVING_SIGNATURE]
    assert signature.inputs[features.INPUT_USER_ID].dtype == types_pb2.DT_STRING
    assert features.OUTPUT_TITLES in signature.outputs
    assert client.status(features.MODEL_RETRIEVAL) == {2: "AVAILABLE"}
    with pytest.raises(grpc.RpcError) as info:
        client.status("nope")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_wait_until_ready_uses_health_overall_and_per_model(client):
    client.wait_until_ready(timeout_s=5)
    client.wait_until_ready(timeout_s=5, model=features.MODEL_RETRIEVAL)
    with pytest.raises(TimeoutError, match="NOT_FOUND"):
        client.wait_until_ready(timeout_s=0.5, model="nope")


def test_wait_until_ready_times_out_without_a_server():
    with unused_port() as port, ServingClient(f"localhost:{port}", timeout_s=1) as client:
        with pytest.raises(TimeoutError, match=f"localhost:{port} not ready"):
            client.wait_until_ready(timeout_s=0.5)


def test_wait_until_ready_without_health_service_checks_model_status(registry):
    """Real tensorflow_model_server has no gRPC health service: readiness is model status."""
    bare = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(registry), bare
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(registry), bare)
    port = bare.add_insecure_port("localhost:0")
    bare.start()
    try:
        with ServingClient(f"localhost:{port}") as client:
            client.wait_until_ready(timeout_s=5, model=features.MODEL_RETRIEVAL)
            with pytest.raises(ValueError, match="pass model="):
                client.wait_until_ready(timeout_s=5)
            with pytest.raises(TimeoutError, match="Could not find any versions of model nope"):
                client.wait_until_ready(timeout_s=0.5, model="nope")
    finally:
        bare.stop(grace=None).wait()


def test_context_manager_closes_the_channel(target):
    with ServingClient(target) as client:
        assert client.status(features.MODEL_RETRIEVAL) == {2: "AVAILABLE"}
    with pytest.raises(ValueError, match="closed channel"):
        client.status(features.MODEL_RETRIEVAL)


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="timeout_s=0"):
        ServingClient("localhost:1", timeout_s=0)


@contextlib.contextmanager
def unused_port():
    """A localhost port that is bound but never listened on, so connections are refused."""
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        yield sock.getsockname()[1]
