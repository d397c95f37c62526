"""Prometheus metrics: Predict requests counted by model, version, signature and status code,
latencies recorded, unknown model names never become labels, `/metrics` served over HTTP."""

import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from recstack import features
from serving.config import ServeConfig
from serving.metrics import UNRESOLVED, ServingMetrics
from serving.server import create_server


@pytest.fixture
def served(registry):
    metrics = ServingMetrics()
    server = create_server(registry, ServeConfig(port=0, host="localhost"), metrics)
    server.start()
    port = metrics.start_http(0, "localhost")
    with grpc.insecure_channel(f"localhost:{server.port}") as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel), metrics, port
    metrics.stop_http()
    server.stop(grace=1.0).wait()


def _request(model, users=("alice",)):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if users is not None:
        request.inputs[features.INPUT_USER_ID].CopyFrom(
            tf.make_tensor_proto(np.array(users, dtype=object))
        )
    return request


def _count(metrics, model, version, signature, code):
    labels = {"rpc": "Predict", "model": model, "version": version, "signature": signature,
              "code": code}  # fmt: skip
    return metrics.registry.get_sample_value("recstack_serving_requests_total", labels) or 0.0


def test_predict_outcomes_are_counted_and_timed(served):
    stub, metrics, port = served
    stub.Predict(_request(features.MODEL_RETRIEVAL))
    stub.Predict(_request(features.MODEL_RETRIEVAL, ("bob", "carol")))
    for request in (_request(features.MODEL_RETRIEVAL, None), _request("no-such-model-123")):
        with pytest.raises(grpc.RpcError):
            stub.Predict(request)

    ok = (features.MODEL_RETRIEVAL, "2", features.SERVING_SIGNATURE)
    assert _count(metrics, *ok, "OK") == 2
    assert _count(metrics, *ok, "INVALID_ARGUMENT") == 1
    # The unknown name is not a label value: the request is counted as unresolved.
    assert _count(metrics, UNRESOLVED, UNRESOLVED, UNRESOLVED, "NOT_FOUND") == 1
    latency = {"rpc": "Predict", "model": ok[0], "version": ok[1], "signature": ok[2]}
    count = metrics.registry.get_sample_value(
        "recstack_serving_request_latency_seconds_count", latency
    )
    assert count == 3
    assert (
        metrics.registry.get_sample_value("recstack_serving_request_latency_seconds_sum", latency)
        > 0
    )

    with urllib.request.urlopen(f"http://localhost:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert 'code="NOT_FOUND"' in text and "no-such-model-123" not in text
    assert "recstack_serving_request_latency_seconds_bucket" in text


def test_metrics_port_must_differ_from_the_grpc_port():
    with pytest.raises(ValueError, match="metrics_port=8500 .* differ from port=8500"):
        ServeConfig(port=8500, metrics_port=8500)
    assert ServeConfig().metrics_port == 0  # Off unless asked for.
