"""Responses as TF Serving's REST API writes them, for the REST front end (`serving.rest`).

Mirrors `tensorflow_serving/util/json_tensor.cc`, `http_rest_api_util.cc` and
`g3doc/api_rest.md`: Predict responses are `{"predictions": [...]}` (row format) or
`{"outputs": ...}` (columnar format), answering a request in the same format; a single output
drops its name. Elements are written by `serving.rest_json_values.value_writer`: floats as TF
Serving writes them (`%g`, or 9/17 significant digits when `%g` does not round-trip, `.0` on
whole numbers, `NaN`/`Infinity`); DT_STRING outputs named `*_bytes` as `{"b64": ...}`. Unlike
TF Serving, which writes invalid UTF-8 into the JSON as raw bytes, other strings that are not
UTF-8 are `{"b64": ...}` too. GetModelStatus and GetModelMetadata are proto3 JSON, and errors
`{"error": "<message>"}`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving._rpc import RpcAbort
from serving.rest_json_values import invalid, json_object, value_writer
from serving.rest_request_json import RequestFormat

__all__ = ["error_json", "metadata_json", "predict_response", "status_json"]


def predict_response(outputs: Mapping[str, tensor_pb2.TensorProto], fmt: RequestFormat) -> str:
    """The JSON text of a Predict response: `{"predictions": [...]}` or `{"outputs": ...}`.

    Raises:
      RpcAbort: INVALID_ARGUMENT when there are no outputs, an output has a dtype JSON cannot
        carry, or (row format) an output is a scalar or the outputs differ in batch size.
    """
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    arrays = {name: tf.make_ndarray(proto) for name, proto in sorted(outputs.items())}
    leaves = {name: value_writer(name, outputs[name].dtype) for name in arrays}
    named = len(arrays) > 1
    if fmt is RequestFormat.COLUMNAR:
        values = {name: _nest(array, leaves[name], 0)[0] for name, array in arrays.items()}
        body = json_object(values) if named else next(iter(values.values()))
        return '{"outputs": ' + body + "}"
    batch = None
    for name, array in arrays.items():
        if array.ndim == 0:
            raise invalid(
                f"Tensor name: {name} has no shape information; request scalar outputs in "
                "columnar format ('inputs')"
            )
        if batch is not None and array.shape[0] != batch:
            raise invalid(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: "
                f"{batch}; request outputs of different batch sizes in columnar format ('inputs')"
            )
        batch = array.shape[0]
    rows = {name: _nest(array, leaves[name], 1) for name, array in arrays.items()}
    if named:
        items = [json_object({name: rows[name][i] for name in rows}) for i in range(batch)]
    else:
        items = next(iter(rows.values()))
    return '{"predictions": [' + ", ".join(items) + "]}"


def status_json(response: get_model_status_pb2.GetModelStatusResponse) -> str:
    """GetModelStatus as TF Serving's REST API prints it (`ToJsonString` in
    `http_rest_api_util.cc`): proto3 JSON with fields that have no presence always printed."""
    return json_format.MessageToJson(response, indent=1, always_print_fields_with_no_presence=True)


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> str:
    """GetModelMetadata as TF Serving's REST API prints it: `{"model_spec": ..., "metadata":
    {"signature_def": <SignatureDefMap>}}`, proto field names preserved, no-presence fields
    always printed.

    Raises:
      RpcAbort: INTERNAL when the response has no packed `signature_def` map.
    """
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    packed = response.metadata.get("signature_def")
    if packed is None or not packed.Unpack(signature_map):
        raise RpcAbort(
            grpc.StatusCode.INTERNAL,
            "Failed to unpack 'Any' object to 'SignatureDefMap' from the 'signature_def' key of "
            "the GetModelMetadataResponse",
        )
    document = {
        "model_spec": _message_dict(response.model_spec),
        "metadata": {"signature_def": _message_dict(signature_map)},
    }
    return json.dumps(document, indent=1)


def error_json(message: str) -> str:
    """`{"error": message}`, TF Serving's error body."""
    return json.dumps({"error": message})


def _message_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _nest(array: np.ndarray, leaf: Any, keep: int) -> list[str]:
    """JSON texts of `array` as nested lists, one per index of its first `keep` dimensions."""
    texts = [leaf(value) for value in array.ravel().tolist()]
    shape = array.shape
    for axis in range(len(shape) - 1, keep - 1, -1):
        size, count = shape[axis], math.prod(shape[:axis])
        texts = ["[" + ", ".join(texts[i * size : (i + 1) * size]) + "]" for i in range(count)]
    return texts
