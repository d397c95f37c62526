"""Warmup requests in TF Serving's format: written into a version, replayed at load time
before the version is offered, and a version whose warmup does not fit is refused."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from recstack import features
from serving.registry import ModelRegistry
from serving.warmup import (
    MAX_WARMUP_RECORDS,
    read_warmup_requests,
    warmup_path,
    write_warmup_requests,
)


class _Counter(tf.Module):
    """`serving_default`: user_id `[batch]` -> `seen` (users served so far, this call included)."""

    def __init__(self):
        super().__init__()
        self.users = tf.Variable(0, dtype=tf.int64)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.INPUT_USER_ID)])
    def serve(self, user_id):
        self.users.assign_add(tf.size(user_id, out_type=tf.int64))
        return {"seen": tf.identity(self.users)}


def _save(base, version=1):
    module = _Counter()
    path = str(base / "counter" / str(version))
    tf.saved_model.save(module, path, signatures={features.SERVING_SIGNATURE: module.serve})
    return path


def _request(*users, signature=""):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "counter"
    request.model_spec.signature_name = signature
    request.inputs[features.INPUT_USER_ID].CopyFrom(
        tf.make_tensor_proto(np.array(users, dtype=object))
    )
    return request


def test_warmup_requests_run_before_the_version_is_offered(tmp_path):
    path = _save(tmp_path)
    write_warmup_requests(path, [_request("a"), _request("b", "c", signature="serving_default")])
    assert [list(r.inputs) for r in read_warmup_requests(path)] == [["user_id"]] * 2

    loaded = ModelRegistry(str(tmp_path)).get("counter")
    assert loaded.warmup_requests == 2
    # The three warmup users were served before any client request.
    first = loaded.signatures[features.SERVING_SIGNATURE](user_id=tf.constant(["d"]))
    assert int(first["seen"]) == 4


def test_a_version_without_warmup_file_loads_without_replay(tmp_path):
    _save(tmp_path)
    assert ModelRegistry(str(tmp_path)).get("counter").warmup_requests == 0


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_request("a", signature="nope"), "has no signature 'nope'"),
        (predict_pb2.PredictRequest(), r"missing \['user_id'\]"),
    ],
    ids=["unknown-signature", "missing-input"],
)
def test_warmup_that_does_not_fit_refuses_the_version(tmp_path, request_, message):
    path = _save(tmp_path)
    write_warmup_requests(path, [_request("a"), request_])
    with pytest.raises(ValueError, match=rf"tf_serving_warmup_requests record 2.*{message}"):
        ModelRegistry(str(tmp_path))


def test_only_predict_logs_are_replayed_and_the_record_count_is_bounded(tmp_path):
    path = _save(tmp_path)
    tf.io.gfile.makedirs(str(tmp_path / "counter" / "1" / "assets.extra"))
    with tf.io.TFRecordWriter(warmup_path(path)) as writer:
        log = prediction_log_pb2.PredictionLog()
        log.classify_log.request.model_spec.name = "counter"
        writer.write(log.SerializeToString())
    with pytest.raises(ValueError, match="record 1: holds 'classify_log'"):
        read_warmup_requests(path)
    with pytest.raises(ValueError, match="write 1 to 1000"):
        write_warmup_requests(path, [_request("a")] * (MAX_WARMUP_RECORDS + 1))
