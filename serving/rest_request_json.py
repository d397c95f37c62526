"""TF Serving's JSON Predict requests into tensors, for the REST front end (`serving.rest`).

Mirrors `tensorflow_serving/util/json_tensor.cc` and `g3doc/api_rest.md`: Predict requests
carry tensors in row format (`"instances": [...]`, one entry per batch row, each a dict of named
inputs or, for single-input signatures, a bare value) or columnar format (`"inputs": {...}` or a
bare value). Nested lists give the shape; every list at one depth must have the same length.
Values are typed by the signature's input dtypes (`serving.rest_json_values.append_value`).

Every malformed document raises `RpcAbort` (INVALID_ARGUMENT, or UNIMPLEMENTED for dtypes
JSON cannot carry) with TF Serving's message plus the fix.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from typing import Any

from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from serving._rpc import RpcAbort
from serving.rest_json_values import append_value, invalid, is_b64, preview

__all__ = ["MAX_RANK", "RequestFormat", "parse_document", "predict_inputs", "signature_name"]

#: TensorFlow's limit on the rank of a tensor.
MAX_RANK = 254
_MISSING = object()


class RequestFormat(enum.Enum):
    """How a Predict request sent its tensors, which decides how the response is shaped."""

    ROW = "instances"
    COLUMNAR = "inputs"


def parse_document(body: bytes) -> dict[str, Any]:
    """Parses a request body into its top-level JSON object.

    Like TF Serving (rapidjson with `kParseNanAndInfFlag | kParseStopWhenDoneFlag`), accepts
    `NaN`/`Infinity` and ignores anything after the first complete JSON value. Bytes that are not
    UTF-8 pass through into strings unchanged (as rapidjson passes them).

    Raises:
      RpcAbort: INVALID_ARGUMENT when the body is empty, not JSON or not a JSON object.
    """
    text = body.decode("utf-8", "surrogateescape")
    start = len(text) - len(text.lstrip())
    if start == len(text):
        raise invalid(
            'JSON Parse error: The document is empty; send a JSON object such as {"instances": '
            "[...]}"
        )
    try:
        document, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as e:
        raise invalid(f"JSON Parse error: {e.msg} at offset: {e.pos}; send valid JSON") from e
    except RecursionError as e:
        raise invalid("JSON Parse error: the document is nested too deeply") from e
    if not isinstance(document, dict):
        raise invalid(f'JSON Value: {preview(document)} Is not object; send {{"instances": ...}}')
    return document


def signature_name(document: Mapping[str, Any]) -> str:
    """The request's `signature_name` ("" when absent: the server's default signature)."""
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid(
            f"JSON Value: {preview(name)} not formatted correctly. 'signature_name' key must be "
            "a string value."
        )
    return name


def predict_inputs(
    document: Mapping[str, Any], inputs: Mapping[str, meta_graph_pb2.TensorInfo]
) -> tuple[RequestFormat, dict[str, tensor_pb2.TensorProto]]:
    """Converts the `instances` or `inputs` of a Predict document into TensorProtos.

    Args:
      document: The parsed request (see `parse_document`).
      inputs: The signature's inputs by name; their dtypes type the JSON values.

    Returns:
      The request format and one TensorProto per input, e.g. `user_id`: DT_STRING `[batch]`.

    Raises:
      RpcAbort: INVALID_ARGUMENT for a malformed, ragged or mistyped document; UNIMPLEMENTED
        for an input dtype JSON cannot carry (e.g. DT_HALF).
    """
    instances = document.get(RequestFormat.ROW.value, _MISSING)
    columns = document.get(RequestFormat.COLUMNAR.value, _MISSING)
    if instances is not _MISSING and columns is not _MISSING:
        raise invalid(
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to "
            "exist; send rows as 'instances' or columns as 'inputs', not both"
        )
    if instances is not _MISSING:
        if not isinstance(instances, list):
            raise invalid(f"Expecting 'instances' to be an list/array, got {preview(instances)}")
        if not instances:
            raise invalid("No values in 'instances' array; send at least one instance")
        return RequestFormat.ROW, _rows_to_tensors(instances, inputs)
    if columns is not _MISSING:
        return RequestFormat.COLUMNAR, _columns_to_tensors(columns, inputs)
    raise invalid(
        "Missing 'inputs' or 'instances' key; send {\"instances\": [...]} (rows) or "
        '{"inputs": {...}} (columns)'
    )


def _rows_to_tensors(
    instances: list[Any], inputs: Mapping[str, meta_graph_pb2.TensorInfo]
) -> dict[str, tensor_pb2.TensorProto]:
    """Batches row-format instances into one tensor per input (`[len(instances), ...]`)."""
    named = _is_named(instances[0])
    if not named and len(inputs) > 1:
        raise invalid(
            "instances is a plain list, but expecting list of objects as multiple input "
            f"tensors required as per tensorinfo_map; send each instance as {_keys_hint(inputs)}"
        )
    tensors: dict[str, tensor_pb2.TensorProto] = {}
    shapes: dict[str, list[int]] = {}
    for index, instance in enumerate(instances):
        if named != _is_named(instance):
            kind = ("object", "list") if named else ("value/list", "object")
            raise invalid(f"Expecting {kind[0]} but got {kind[1]} at item {index} of input list")
        items = instance.items() if named else [(next(iter(inputs)), instance)]
        for name, value in items:
            where = f"element: {index} key: {name}" if named else f"element: {index}"
            try:
                _add_instance_item(name, value, inputs, tensors, shapes)
            except RpcAbort as e:
                raise RpcAbort(
                    e.code, f"Failed to process {where} of 'instances' list. Error: {e.details}"
                ) from e
        if named and set(instance) != set(inputs):
            raise invalid(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{preview(instance)} keys must be equal to: {','.join(sorted(inputs))}"
            )
    for name, tensor in tensors.items():
        tensor.tensor_shape.Clear()
        for size in (len(instances), *shapes[name]):
            tensor.tensor_shape.dim.add().size = size
    return tensors


def _add_instance_item(
    name: str,
    value: Any,
    inputs: Mapping[str, meta_graph_pb2.TensorInfo],
    tensors: dict[str, tensor_pb2.TensorProto],
    shapes: dict[str, list[int]],
) -> None:
    """Appends one instance's value of input `name`; its shape must match earlier instances'."""
    if name not in inputs:
        raise invalid(
            f"JSON object: does not have named input: {name}; the signature's inputs are "
            f"{sorted(inputs)}"
        )
    tensor = tensors.setdefault(name, tensor_pb2.TensorProto(dtype=inputs[name].dtype))
    shape = _dense_shape(value)
    _fill(value, 0, shape, tensor)
    if name not in shapes:
        shapes[name] = shape
    elif math.prod(shape) != math.prod(shapes[name]):
        raise invalid(
            f"Expecting tensor size: {math.prod(shapes[name])} but got: {math.prod(shape)}; "
            f"every instance's {name!r} must have the same shape"
        )
    elif shape != shapes[name]:
        raise invalid(
            f"Expecting shape {_shape_text(shapes[name])} but got: {_shape_text(shape)}; every "
            f"instance's {name!r} must have the same shape"
        )


def _columns_to_tensors(
    columns: Any, inputs: Mapping[str, meta_graph_pb2.TensorInfo]
) -> dict[str, tensor_pb2.TensorProto]:
    """One tensor per input from columnar `inputs` (names not in the signature are ignored,
    as TF Serving ignores them)."""
    if not _is_named(columns):
        if len(inputs) > 1:
            raise invalid(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                f"required as per tensorinfo_map; send 'inputs' as {_keys_hint(inputs)}"
            )
        columns = {next(iter(inputs)): columns}
    tensors = {}
    for name, info in inputs.items():
        if name not in columns:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
        tensor = tensor_pb2.TensorProto(dtype=info.dtype)
        shape = _dense_shape(columns[name])
        for size in shape:
            tensor.tensor_shape.dim.add().size = size
        _fill(columns[name], 0, shape, tensor)
        tensors[name] = tensor
    return tensors


def _dense_shape(value: Any) -> list[int]:
    """The shape nested lists imply, following the first element at each depth."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if len(shape) > MAX_RANK:
            raise invalid(f"lists nested deeper than {MAX_RANK} levels; tensors have rank <= 254")
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: list[int], tensor: tensor_pb2.TensorProto) -> None:
    """Appends the leaves of `value` to `tensor`, checking they form a dense `shape`."""
    if not isinstance(value, list):
        if level != len(shape):
            raise invalid(
                f"JSON Value: {preview(value)} found at incorrect level: {level + 1} in the "
                f"JSON DOM. Expected at level: {len(shape)}; nest every value equally deep "
                "(ragged lists are not supported)"
            )
        append_value(value, tensor)
        return
    if level >= len(shape):
        raise invalid(
            f"Encountered list at unexpected level: {level} expected < {len(shape)}; nest every "
            "value equally deep (ragged lists are not supported)"
        )
    if len(value) != shape[level]:
        raise invalid(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: "
            f"{shape[level]}; lists at the same depth must have the same length (pad ragged "
            "lists)"
        )
    for item in value:
        _fill(item, level + 1, shape, tensor)


def _is_named(value: Any) -> bool:
    """A dict of named tensors (a `{"b64": ...}` object is a value, not names)."""
    return isinstance(value, dict) and not is_b64(value)


def _keys_hint(inputs: Mapping[str, meta_graph_pb2.TensorInfo]) -> str:
    return "{" + ", ".join(f'"{name}": ...' for name in sorted(inputs)) + "}"


def _shape_text(shape: list[int]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"
