"""The server's optional parts wired end to end: the REST API beside gRPC on one server, and
server-side batching of concurrent Predict requests (TF Serving's --rest_api_port,
--enable_batching, --batching_parameters_file)."""

import json
import threading
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from serving_toy_models import expected_recommendations
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from pipeline.demo import free_port
from recstack import features
from recstack.cli import main
from serving import server as server_module
from serving.config import ServeConfig
from serving.registry import ModelRegistry
from serving.server import create_server


class _BatchSize(tf.Module):
    """`serving_default`: user_id `[batch]` -> `batch` `[batch]`, the size of the call each
    row ran in."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.INPUT_USER_ID)])
    def serve(self, user_id):
        return {"batch": tf.fill(tf.shape(user_id), tf.size(user_id))}


@pytest.fixture(scope="module")
def batch_model(tmp_path_factory):
    base = tmp_path_factory.mktemp("batched")
    module = _BatchSize()
    tf.saved_model.save(module, str(base / "sizes" / "1"),
                        signatures={features.SERVING_SIGNATURE: module.serve})  # fmt: skip
    return str(base)


def _predict(stub, *users):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sizes"
    request.inputs[features.INPUT_USER_ID].CopyFrom(
        tf.make_tensor_proto(np.array(users, dtype=object))
    )
    return tf.make_ndarray(stub.Predict(request, timeout=10).outputs["batch"])


def _concurrent_batch_sizes(config, base, requests=8):
    running = create_server(ModelRegistry(base), config)
    running.start()
    sizes, errors = [], []
    try:
        with grpc.insecure_channel(f"localhost:{running.port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            _predict(stub, "warm")
            start = threading.Barrier(requests)

            def call(i):
                start.wait()
                try:
                    sizes.append(_predict(stub, f"u{i}").tolist())
                except grpc.RpcError as e:
                    errors.append(e)

            threads = [threading.Thread(target=call, args=(i,)) for i in range(requests)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            with pytest.raises(grpc.RpcError) as too_big:
                _predict(stub, *[f"u{i}" for i in range(9)])
    finally:
        running.stop(grace=1.0).wait()
    assert not errors
    return sizes, too_big.value


def test_concurrent_requests_are_batched_and_each_gets_its_own_row(batch_model, tmp_path):
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 300000 }\n"
                      "num_batch_threads { value: 1 }\n")  # fmt: skip
    config = ServeConfig(port=0, host="localhost", max_workers=16, enable_batching=True,
                         batching_parameters_file=str(params))  # fmt: skip
    sizes, too_big = _concurrent_batch_sizes(config, batch_model)
    assert len(sizes) == 8 and all(len(rows) == 1 for rows in sizes)
    assert max(rows[0] for rows in sizes) > 1  # Several requests ran as one call.
    assert too_big.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_batch_size" in too_big.details()


def test_without_batching_every_request_runs_alone(batch_model):
    config = ServeConfig(port=0, host="localhost", max_workers=16)
    running = create_server(ModelRegistry(batch_model), config)
    running.start()
    try:
        with grpc.insecure_channel(f"localhost:{running.port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            assert _predict(stub, *[f"u{i}" for i in range(9)]).tolist() == [9] * 9
    finally:
        running.stop(grace=1.0).wait()


def test_rest_and_grpc_on_one_server_answer_alike(registry):
    config = ServeConfig(port=0, host="localhost", rest_api_port=free_port())
    running = create_server(registry, config)
    running.start()
    try:
        base = f"http://localhost:{running.rest_port}/v1/models/{features.MODEL_RETRIEVAL}"
        with urllib.request.urlopen(base, timeout=10) as answer:
            status = json.load(answer)
        body = json.dumps({"instances": [{features.INPUT_USER_ID: "alice"}]}).encode()
        request = urllib.request.Request(f"{base}:predict", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            predictions = json.load(answer)["predictions"]
    finally:
        running.stop(grace=1.0).wait()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    items, titles, _ = expected_recommendations("alice", version=2)
    assert predictions[0][features.OUTPUT_ITEM_IDS] == items
    assert predictions[0][features.OUTPUT_TITLES] == titles
    with pytest.raises(OSError):  # Stopped: the REST port no longer answers.
        urllib.request.urlopen(base, timeout=2)


def test_serve_command_passes_rest_and_batching_flags(monkeypatch):
    calls = []
    monkeypatch.setattr(server_module, "serve", lambda *args: calls.append(args))
    main(["serve", "--model-base-path", "/m", "--rest_api_port", "8601", "--enable_batching",
          "--batching_parameters_file", "/b.txt"])  # fmt: skip
    main(["serve", "--model-base-path", "/m"])
    (_, flagged), (_, plain) = calls
    assert (flagged.rest_api_port, flagged.enable_batching) == (8601, True)
    assert flagged.batching_parameters_file == "/b.txt"
    assert (plain.rest_api_port, plain.enable_batching) == (0, False)


def test_batching_file_without_batching_and_clashing_ports_are_rejected():
    with pytest.raises(ValueError, match="enable_batching is false"):
        ServeConfig(batching_parameters_file="/b.txt")
    with pytest.raises(ValueError, match="must differ"):
        ServeConfig(port=8500, rest_api_port=8500)
