"""The server process: health service, port binding, graceful stop, and `serve` with signals."""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serving_toy_models import (
    MODEL_NO_TITLES,
    MODEL_NO_VERSIONS,
    RegistryWith,
    expected_recommendations,
)
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from recstack import features
from serving.client import ServingClient
from serving.config import ServeConfig
from serving.server import create_server

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_port_zero_binds_an_ephemeral_port(server):
    assert server.port > 0
    assert server.model_names == (MODEL_NO_TITLES, features.MODEL_RETRIEVAL)


@pytest.mark.parametrize("service", ["", features.MODEL_RETRIEVAL, MODEL_NO_TITLES])
def test_health_is_serving_overall_and_per_model(channel, service):
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert response.status == SERVING


def test_health_of_unloaded_model_is_not_found(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Check(health_pb2.HealthCheckRequest(service=MODEL_NO_VERSIONS), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_busy_port_is_an_error_naming_the_address(registry, server):
    with pytest.raises(OSError, match=f"localhost:{server.port}"):
        create_server(registry, ServeConfig(port=server.port, host="localhost"))


def test_stop_marks_not_serving_and_lets_in_flight_requests_finish(registry):
    started = threading.Event()
    model = registry.get(features.MODEL_RETRIEVAL).signatures[features.SERVING_SIGNATURE]

    def slow(**inputs):
        started.set()
        time.sleep(1.0)
        return model(**inputs)

    server = create_server(RegistryWith(registry, slow), ServeConfig(port=0, host="localhost"))
    server.start()
    with grpc.insecure_channel(f"localhost:{server.port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = features.MODEL_RETRIEVAL
        request.inputs[features.INPUT_USER_ID].CopyFrom(tf.make_tensor_proto(["bob"]))
        in_flight = stub.Predict.future(request, timeout=10)
        assert started.wait(timeout=10)

        stopped = server.stop(grace=5.0)
        check = health_pb2.HealthCheckRequest(service="")
        assert server.health.Check(check, context=None).status == NOT_SERVING

        response = in_flight.result(timeout=10)
        items = tf.make_ndarray(response.outputs[features.OUTPUT_ITEM_IDS])
        assert [i.decode() for i in items[0]] == expected_recommendations("bob", 2)[0]
        assert stopped.wait(timeout=10)
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(request, timeout=2)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.slow
def test_serve_answers_until_sigterm_then_exits_cleanly(model_base):
    code = (
        "import sys\n"
        "from serving.config import ServeConfig\n"
        "from serving.server import serve\n"
        "serve(sys.argv[1], ServeConfig(port=0, host='localhost', grace_seconds=2))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, model_base],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()
    try:
        line = lines.get(timeout=60)
        match = re.fullmatch(r"Serving models \[(.*)\] on localhost:(\d+)\n", line)
        assert match, line
        assert match.group(1) == f"'{MODEL_NO_TITLES}', '{features.MODEL_RETRIEVAL}'"
        with ServingClient(f"localhost:{match.group(2)}") as client:
            client.wait_until_ready(timeout_s=10)
            recommendations = client.recommend(["alice"], k=2)
        assert [r.item_id for r in recommendations[0]] == expected_recommendations("alice", 2)[0][
            :2
        ]

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
