"""Hot swap under load: a running server picks up new versions by polling, without failing a
single request, and a broken version never reaches clients."""

import threading
import time

import grpc
import pytest
import tensorflow as tf
from serving_toy_models import expected_recommendations
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from recstack import features
from serving.config import ServeConfig
from serving.registry import ModelNotFoundError, ModelRegistry
from serving.server import create_server

POLL_SECONDS = 0.1
DEADLINE_SECONDS = 60


class Client(threading.Thread):
    """Sends Predict requests for model `m` back to back until stopped; records every answer
    as (version, item_ids) and every failure."""

    def __init__(self, target: str) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.answers: list[tuple[int, list[str]]] = []
        self.failures: list[grpc.RpcError] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "m"
        request.inputs[features.INPUT_USER_ID].CopyFrom(tf.make_tensor_proto(["carol"]))
        with grpc.insecure_channel(self.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not self.stopped.is_set():
                try:
                    response = stub.Predict(request, timeout=10)
                except grpc.RpcError as e:
                    self.failures.append(e)
                    continue
                items = tf.make_ndarray(response.outputs[features.OUTPUT_ITEM_IDS])[0]
                self.answers.append(
                    (response.model_spec.version.value, [i.decode() for i in items])
                )

    def wait_for(self, condition, what: str) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)

    def answers_after(self, count: int) -> None:
        """Waits for `count` more answers."""
        target = len(self.answers) + count
        self.wait_for(lambda: len(self.answers) >= target, f"{count} more answers")


@pytest.fixture
def running(tmp_path, install_version):
    """A server polling tmp_path (model `m`, version 1) and a client hammering it."""
    install_version(str(tmp_path / "m"), 1)
    registry = ModelRegistry(str(tmp_path))
    config = ServeConfig(port=0, host="localhost", file_system_poll_wait_seconds=POLL_SECONDS)
    server = create_server(registry, config)
    server.start()
    client = Client(f"localhost:{server.port}")
    client.start()
    try:
        client.answers_after(5)
        yield registry, server, client, tmp_path / "m"
    finally:
        client.stopped.set()
        client.join(timeout=30)
        server.stop(grace=1.0).wait()


def status(server, version=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "m"
    with grpc.insecure_channel(f"localhost:{server.port}") as channel:
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            request, timeout=10
        )
    return [(s.version, s.state, s.status.error_code) for s in response.model_version_status]


def test_new_version_is_swapped_in_without_failing_a_request(running, install_version):
    registry, server, client, model_dir = running

    install_version(str(model_dir), 2)
    client.wait_for(lambda: client.answers[-1][0] == 2, "answers from version 2")
    client.answers_after(5)
    client.stopped.set()
    client.join(timeout=30)

    assert client.failures == []
    versions = [version for version, _ in client.answers]
    assert versions == sorted(versions), "an answer went back to the old version"
    assert versions[0] == 1 and versions[-1] == 2
    for version, items in client.answers:
        assert items == expected_recommendations("carol", version)[0]
    # The old version is unloaded.
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status(server) == [(2, available, error_codes_pb2.OK)]
    with pytest.raises(ModelNotFoundError, match=r"Specific\(m, 1\)"):
        registry.get("m", 1)


def test_broken_version_does_not_fail_requests_and_is_reported(running, install_version):
    registry, server, client, model_dir = running

    install_version(str(model_dir), 2, broken=True)
    client.wait_for(lambda: 2 in registry.versions("m").failed, "the failed load of version 2")
    client.answers_after(5)

    assert client.failures == []
    assert {version for version, _ in client.answers} == {1}
    end = get_model_status_pb2.ModelVersionStatus.END
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status(server) == [
        (2, end, error_codes_pb2.INVALID_ARGUMENT),
        (1, available, error_codes_pb2.OK),
    ]
