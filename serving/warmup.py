"""SavedModel warmup in TensorFlow Serving's format: `assets.extra/tf_serving_warmup_requests`.

The file is a TFRecord of `tensorflow.serving.PredictionLog` protos (this stack writes and
replays `predict_log` records). The exporter writes a few representative requests into each
version; when a version loads, every request is run through its signature before the version
is offered (AVAILABLE), so the first real requests do not pay for graph tracing, table
initialisation or ScaNN's lazy set-up. Real TensorFlow Serving replays the same file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tensorflow_serving.apis import predict_pb2

    from serving.registry import LoadedModel

#: Where TensorFlow Serving looks for warmup requests inside a version directory.
ASSETS_EXTRA_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
#: TensorFlow Serving refuses warmup files with more records than this.
MAX_WARMUP_RECORDS = 1000


def warmup_path(version_dir: str) -> str:
    """`<version_dir>/assets.extra/tf_serving_warmup_requests`."""
    return os.path.join(version_dir, ASSETS_EXTRA_DIR, WARMUP_FILE)


def write_warmup_requests(version_dir: str, requests: Sequence[predict_pb2.PredictRequest]) -> str:
    """Writes `requests` as PredictionLog records; returns the file's path.

    Raises:
      ValueError: no requests, or more than `MAX_WARMUP_RECORDS`.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    if not 0 < len(requests) <= MAX_WARMUP_RECORDS:
        raise ValueError(f"{len(requests)} warmup requests; write 1 to {MAX_WARMUP_RECORDS}")
    path = warmup_path(version_dir)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.CopyFrom(request)
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(version_dir: str) -> list[predict_pb2.PredictRequest]:
    """The Predict requests of a version's warmup file (none when it has no file).

    Raises:
      ValueError: a record is not a PredictionLog holding a `predict_log`, or the file has more
        than `MAX_WARMUP_RECORDS` records (the message names the file and record).
    """
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import prediction_log_pb2

    path = warmup_path(version_dir)
    if not tf.io.gfile.exists(path):
        return []
    requests = []
    for number, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator(), start=1):
        if number > MAX_WARMUP_RECORDS:
            raise ValueError(f"{path}: more than {MAX_WARMUP_RECORDS} warmup records")
        log = prediction_log_pb2.PredictionLog()
        try:
            log.ParseFromString(record)
        except DecodeError as e:
            raise ValueError(f"{path} record {number}: not a PredictionLog ({e})") from None
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(
                f"{path} record {number}: holds {log.WhichOneof('log_type')!r}; only "
                "predict_log warmup records are supported"
            )
        requests.append(log.predict_log.request)
    return requests


def replay(model: LoadedModel, default_signature: str) -> int:
    """Runs every warmup request of `model`'s version through its signature; returns how many.

    Requests are validated as Predict validates them (`prediction_service.input_tensors`).

    Raises:
      ValueError: a request names an unknown signature or its inputs do not fit (the message
        names the file and record); the version must not be offered.
    """
    from serving._rpc import RpcAbort
    from serving.tensor_protos import input_tensors

    requests = read_warmup_requests(model.path)
    for number, request in enumerate(requests, start=1):
        name = request.model_spec.signature_name or default_signature
        where = f"{warmup_path(model.path)} record {number}"
        if name not in model.signatures or name not in model.signature_defs:
            raise ValueError(f"{where}: model {model.name!r} has no signature {name!r}")
        try:
            inputs = input_tensors(model.signature_defs[name], request, where)
        except RpcAbort as e:
            raise ValueError(e.details) from None
        model.signatures[name](**inputs)
    return len(requests)
