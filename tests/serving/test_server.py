"""The server process: health service, port binding, graceful stop, and `serve` with signals."""

import os
import queue
import re
import shutil
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
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from recstack import features
from serving.client import ServingClient
from serving.config import ServeConfig
from serving.metrics import UNRESOLVED, ServingMetrics
from serving.model_config import ModelConfig, ModelConfigList
from serving.registry import ModelRegistry
from serving.server import create_server, open_registry

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
            recommendations = client.recommend(["alice"], k=2, model=features.MODEL_RETRIEVAL)
        assert [r.item_id for r in recommendations[0]] == expected_recommendations("alice", 2)[0][
            :2
        ]

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_until(condition, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _health(stub, service):
    try:
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
    except grpc.RpcError as e:
        return e.code()


def test_polling_keeps_health_in_step_with_the_models(tmp_path, install_version):
    install_version(str(tmp_path / "a"), 1)
    registry = ModelRegistry(str(tmp_path))
    config = ServeConfig(port=0, host="localhost", file_system_poll_wait_seconds=0.05)
    server = create_server(registry, config)
    server.start()
    try:
        with grpc.insecure_channel(f"localhost:{server.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            assert _health(stub, "a") == SERVING
            assert _health(stub, "b") == grpc.StatusCode.NOT_FOUND

            install_version(str(tmp_path / "b"), 1)
            _wait_until(lambda: _health(stub, "b") == SERVING, "model b SERVING")
            assert server.model_names == ("a", "b")

            shutil.rmtree(tmp_path / "a")
            _wait_until(lambda: _health(stub, "a") == NOT_SERVING, "model a NOT_SERVING")
            assert server.model_names == ("b",)
            assert _health(stub, "") == SERVING
    finally:
        server.stop(grace=1.0).wait()

    # Stopped servers poll no more.
    install_version(str(tmp_path / "c"), 1)
    time.sleep(0.3)
    assert registry.names == ("b",)


def test_poll_period_zero_loads_once_but_reloads_still_update_health(tmp_path, install_version):
    install_version(str(tmp_path / "a"), 1)
    registry = ModelRegistry(str(tmp_path))
    config = ServeConfig(port=0, host="localhost", file_system_poll_wait_seconds=0)
    server = create_server(registry, config)
    server.start()
    try:
        install_version(str(tmp_path / "a"), 2)
        time.sleep(0.3)
        assert registry.get("a").version == 1  # Nobody polled.
        registry.reload(ModelConfigList((ModelConfig("b", str(tmp_path / "a")),)))
        check = health_pb2.HealthCheckRequest
        assert server.health.Check(check(service="b"), context=None).status == SERVING
        assert server.health.Check(check(service="a"), context=None).status == NOT_SERVING
    finally:
        server.stop(grace=1.0).wait()


def test_get_model_metadata_is_counted(registry):
    metrics = ServingMetrics()
    server = create_server(registry, ServeConfig(port=0, host="localhost"), metrics)
    server.start()
    try:
        with grpc.insecure_channel(f"localhost:{server.port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = get_model_metadata_pb2.GetModelMetadataRequest(
                metadata_field=["signature_def"]
            )
            request.model_spec.name = features.MODEL_RETRIEVAL
            stub.GetModelMetadata(request, timeout=10)
            request.model_spec.name = "no-such-model-7"
            with pytest.raises(grpc.RpcError):
                stub.GetModelMetadata(request, timeout=10)
    finally:
        server.stop(grace=1.0).wait()

    def count(model, version, code):
        labels = {"rpc": "GetModelMetadata", "model": model, "version": version,
                  "signature": UNRESOLVED, "code": code}  # fmt: skip
        return metrics.registry.get_sample_value("recstack_serving_requests_total", labels)

    assert count(features.MODEL_RETRIEVAL, "2", "OK") == 1
    assert count(UNRESOLVED, UNRESOLVED, "NOT_FOUND") == 1


def test_open_registry_takes_a_base_path_or_a_config_file(tmp_path, model_base):
    config_file = tmp_path / "models.config"
    config_file.write_text(
        f'model_config_list {{ config {{ name: "r" base_path: "{model_base}/retrieval" '
        'model_platform: "tensorflow" model_version_policy { all {} } '
        'version_labels { key: "stable" value: 1 } } }'
    )
    registry = open_registry("", ServeConfig(model_config_file=str(config_file)))
    assert registry.names == ("r",)
    assert sorted(registry.versions("r").available) == [1, 2]
    assert registry.get("r", label="stable").version == 1
    assert open_registry(model_base, ServeConfig()).names == (
        MODEL_NO_TITLES,
        features.MODEL_RETRIEVAL,
    )

    with pytest.raises(ValueError, match="exactly one of a model base path"):
        open_registry(model_base, ServeConfig(model_config_file=str(config_file)))
    with pytest.raises(ValueError, match="exactly one of a model base path"):
        open_registry("", ServeConfig())
