"""TensorFlow Serving's JSON encoding of tensors, for the REST front end (`serving.rest`).

Mirrors `tensorflow_serving/util/json_tensor.cc` and `g3doc/api_rest.md`:

* Predict requests carry tensors in row format (`"instances": [...]`, one entry per batch row,
  each a dict of named inputs or, for single-input signatures, a bare value) or columnar format
  (`"inputs": {...}` or a bare value). Nested lists give the shape; every list at one depth must
  have the same length. Values are typed by the signature's input dtypes: numbers for floats
  and ints, `true`/`false` for bools, strings or `{"b64": "..."}` for DT_STRING.
* Responses are `{"predictions": [...]}` (row) or `{"outputs": ...}` (columnar); a single output
  drops its name. Floats are written as TF Serving writes them (`%g`, or 9/17 significant
  digits when `%g` does not round-trip, `.0` on whole numbers, `NaN`/`Infinity`); DT_STRING
  outputs named `*_bytes` are `{"b64": ...}`. Unlike TF Serving, which writes invalid UTF-8 into
  the JSON as raw bytes, other strings that are not UTF-8 are `{"b64": ...}` too.

Every malformed document raises `RpcAbort` (INVALID_ARGUMENT, or UNIMPLEMENTED for dtypes
JSON cannot carry) with TF Serving's message plus the fix.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import math
from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving._rpc import RpcAbort

#: The key of a binary string: `{"b64": "<base64>"}`.
B64_KEY = "b64"
#: DT_STRING outputs whose name ends with this are always written as `{"b64": ...}`.
BYTES_SUFFIX = "_bytes"
#: TensorFlow's limit on the rank of a tensor.
MAX_RANK = 254
_MAX_PREVIEW_CHARS = 256
_INT_RANGES = {
    types_pb2.DT_INT8: (-(2**7), 2**7 - 1),
    types_pb2.DT_UINT8: (0, 2**8 - 1),
    types_pb2.DT_INT16: (-(2**15), 2**15 - 1),
    types_pb2.DT_INT32: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    types_pb2.DT_UINT32: (0, 2**32 - 1),
    types_pb2.DT_UINT64: (0, 2**64 - 1),
}
_INT_FIELDS = {
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
}  # Smaller ints go to int_val.
_FLOAT_FIELDS = {types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val"}
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
        raise _invalid(
            'JSON Parse error: The document is empty; send a JSON object such as {"instances": '
            "[...]}"
        )
    try:
        document, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as e:
        raise _invalid(f"JSON Parse error: {e.msg} at offset: {e.pos}; send valid JSON") from e
    except RecursionError as e:
        raise _invalid("JSON Parse error: the document is nested too deeply") from e
    if not isinstance(document, dict):
        raise _invalid(f'JSON Value: {_preview(document)} Is not object; send {{"instances": ...}}')
    return document


def signature_name(document: Mapping[str, Any]) -> str:
    """The request's `signature_name` ("" when absent: the server's default signature)."""
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise _invalid(
            f"JSON Value: {_preview(name)} not formatted correctly. 'signature_name' key must be "
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
        raise _invalid(
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to "
            "exist; send rows as 'instances' or columns as 'inputs', not both"
        )
    if instances is not _MISSING:
        if not isinstance(instances, list):
            raise _invalid(f"Expecting 'instances' to be an list/array, got {_preview(instances)}")
        if not instances:
            raise _invalid("No values in 'instances' array; send at least one instance")
        return RequestFormat.ROW, _rows_to_tensors(instances, inputs)
    if columns is not _MISSING:
        return RequestFormat.COLUMNAR, _columns_to_tensors(columns, inputs)
    raise _invalid(
        "Missing 'inputs' or 'instances' key; send {\"instances\": [...]} (rows) or "
        '{"inputs": {...}} (columns)'
    )


def predict_response(outputs: Mapping[str, tensor_pb2.TensorProto], fmt: RequestFormat) -> str:
    """The JSON text of a Predict response: `{"predictions": [...]}` or `{"outputs": ...}`.

    Raises:
      RpcAbort: INVALID_ARGUMENT when there are no outputs, an output has a dtype JSON cannot
        carry, or (row format) an output is a scalar or the outputs differ in batch size.
    """
    if not outputs:
        raise _invalid("Cannot convert empty tensor map to JSON")
    arrays = {name: tf.make_ndarray(proto) for name, proto in sorted(outputs.items())}
    leaves = {name: _leaf_writer(name, outputs[name].dtype) for name in arrays}
    named = len(arrays) > 1
    if fmt is RequestFormat.COLUMNAR:
        values = {name: _nest(array, leaves[name], 0)[0] for name, array in arrays.items()}
        body = _object(values) if named else next(iter(values.values()))
        return '{"outputs": ' + body + "}"
    batch = None
    for name, array in arrays.items():
        if array.ndim == 0:
            raise _invalid(
                f"Tensor name: {name} has no shape information; request scalar outputs in "
                "columnar format ('inputs')"
            )
        if batch is not None and array.shape[0] != batch:
            raise _invalid(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: "
                f"{batch}; request outputs of different batch sizes in columnar format ('inputs')"
            )
        batch = array.shape[0]
    rows = {name: _nest(array, leaves[name], 1) for name, array in arrays.items()}
    if named:
        items = [_object({name: rows[name][i] for name in rows}) for i in range(batch)]
    else:
        items = next(iter(rows.values()))
    return '{"predictions": [' + ", ".join(items) + "]}"


def format_float(value: float, single: bool) -> str:
    """A float as TF Serving writes it: `%g` if that round-trips, else 9 (float32, `single`) or
    17 (float64) significant digits; `.0` appended to whole numbers; `NaN`, `Infinity`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:g}"
    parsed = float(np.float32(text)) if single else float(text)
    if parsed != value:
        text = f"{value:.9g}" if single else f"{value:.17g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


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


def _rows_to_tensors(
    instances: list[Any], inputs: Mapping[str, meta_graph_pb2.TensorInfo]
) -> dict[str, tensor_pb2.TensorProto]:
    """Batches row-format instances into one tensor per input (`[len(instances), ...]`)."""
    named = _is_named(instances[0])
    if not named and len(inputs) > 1:
        raise _invalid(
            "instances is a plain list, but expecting list of objects as multiple input "
            f"tensors required as per tensorinfo_map; send each instance as {_keys_hint(inputs)}"
        )
    tensors: dict[str, tensor_pb2.TensorProto] = {}
    shapes: dict[str, list[int]] = {}
    for index, instance in enumerate(instances):
        if named != _is_named(instance):
            kind = ("object", "list") if named else ("value/list", "object")
            raise _invalid(f"Expecting {kind[0]} but got {kind[1]} at item {index} of input list")
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
            raise _invalid(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{_preview(instance)} keys must be equal to: {','.join(sorted(inputs))}"
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
        raise _invalid(
            f"JSON object: does not have named input: {name}; the signature's inputs are "
            f"{sorted(inputs)}"
        )
    tensor = tensors.setdefault(name, tensor_pb2.TensorProto(dtype=inputs[name].dtype))
    shape = _dense_shape(value)
    _fill(value, 0, shape, tensor)
    if name not in shapes:
        shapes[name] = shape
    elif math.prod(shape) != math.prod(shapes[name]):
        raise _invalid(
            f"Expecting tensor size: {math.prod(shapes[name])} but got: {math.prod(shape)}; "
            f"every instance's {name!r} must have the same shape"
        )
    elif shape != shapes[name]:
        raise _invalid(
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
            raise _invalid(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                f"required as per tensorinfo_map; send 'inputs' as {_keys_hint(inputs)}"
            )
        columns = {next(iter(inputs)): columns}
    tensors = {}
    for name, info in inputs.items():
        if name not in columns:
            raise _invalid(f"Missing named input: {name} in 'inputs' object.")
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
            raise _invalid(f"lists nested deeper than {MAX_RANK} levels; tensors have rank <= 254")
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: list[int], tensor: tensor_pb2.TensorProto) -> None:
    """Appends the leaves of `value` to `tensor`, checking they form a dense `shape`."""
    if not isinstance(value, list):
        if level != len(shape):
            raise _invalid(
                f"JSON Value: {_preview(value)} found at incorrect level: {level + 1} in the "
                f"JSON DOM. Expected at level: {len(shape)}; nest every value equally deep "
                "(ragged lists are not supported)"
            )
        _append(value, tensor)
        return
    if level >= len(shape):
        raise _invalid(
            f"Encountered list at unexpected level: {level} expected < {len(shape)}; nest every "
            "value equally deep (ragged lists are not supported)"
        )
    if len(value) != shape[level]:
        raise _invalid(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: "
            f"{shape[level]}; lists at the same depth must have the same length (pad ragged "
            "lists)"
        )
    for item in value:
        _fill(item, level + 1, shape, tensor)


def _append(value: Any, tensor: tensor_pb2.TensorProto) -> None:
    """Appends one JSON leaf to the typed field of `tensor.dtype`."""
    dtype = tensor.dtype
    if dtype == types_pb2.DT_STRING:
        if isinstance(value, str):
            tensor.string_val.append(_utf8(value))
        elif isinstance(value, dict):
            tensor.string_val.append(_b64decode(value))
        else:
            raise _type_error(value, dtype)
    elif dtype in _FLOAT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(value, dtype)
        try:
            getattr(tensor, _FLOAT_FIELDS[dtype]).append(float(value))
        except OverflowError as e:
            raise _invalid(f"JSON Value: {_preview(value)} is too big for {_dtype(dtype)}") from e
    elif dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _type_error(value, dtype, f"an integer in [{low}, {high}]")
        getattr(tensor, _INT_FIELDS.get(dtype, "int_val")).append(value)
    elif dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype, "true or false")
        tensor.bool_val.append(value)
    else:
        raise RpcAbort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"Conversion of JSON Value: {_preview(value)} to type: {_dtype(dtype)} is not "
            "supported; use the gRPC API or give the signature a float, int, bool or string input",
        )


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as e:
        raise _invalid(
            f"JSON string {_preview(text)} has an unpaired surrogate escape; send binary data "
            'as {"b64": "<base64>"}'
        ) from e


def _b64decode(value: dict[str, Any]) -> bytes:
    if not _is_b64(value):
        raise _invalid(
            f"JSON Value: {_preview(value)} not formatted correctly for base64 data; send "
            'binary strings as {"b64": "<base64>"}'
        )
    encoded = value[B64_KEY]
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise _invalid(
            f"Unable to base64 decode {_preview(encoded)}: {e}; encode with the standard "
            "base64 alphabet (A-Z, a-z, 0-9, +, /)"
        ) from e


def _leaf_writer(name: str, dtype: int) -> Any:
    """A function writing one element of an output of `dtype` as JSON text."""
    if dtype in _FLOAT_FIELDS:
        single = dtype == types_pb2.DT_FLOAT
        return lambda value: format_float(value, single)
    if dtype in _INT_RANGES:
        return lambda value: str(int(value))
    if dtype == types_pb2.DT_BOOL:
        return lambda value: "true" if value else "false"
    if dtype == types_pb2.DT_STRING:
        as_bytes = name.endswith(BYTES_SUFFIX)
        return lambda value: _string_text(value, as_bytes)
    raise _invalid(
        f"Failed to write JSON value for tensor type: {_dtype(dtype)} (output {name!r}); cast "
        "the output to a float, int, bool or string dtype in the signature, or use the gRPC API"
    )


def _string_text(value: bytes, as_bytes: bool) -> str:
    if not as_bytes:
        try:
            return json.dumps(value.decode("utf-8"), ensure_ascii=False)
        except UnicodeDecodeError:
            pass  # Not text: written as base64 below, like a `*_bytes` output.
    return _object({B64_KEY: json.dumps(base64.b64encode(value).decode("ascii"))})


def _nest(array: np.ndarray, leaf: Any, keep: int) -> list[str]:
    """JSON texts of `array` as nested lists, one per index of its first `keep` dimensions."""
    texts = [leaf(value) for value in array.ravel().tolist()]
    shape = array.shape
    for axis in range(len(shape) - 1, keep - 1, -1):
        size, count = shape[axis], math.prod(shape[:axis])
        texts = ["[" + ", ".join(texts[i * size : (i + 1) * size]) + "]" for i in range(count)]
    return texts


def _object(members: Mapping[str, str]) -> str:
    """A JSON object of already-encoded member values."""
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in members.items()) + "}"


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(B64_KEY), str)


def _is_named(value: Any) -> bool:
    """A dict of named tensors (a `{"b64": ...}` object is a value, not names)."""
    return isinstance(value, dict) and not _is_b64(value)


def _keys_hint(inputs: Mapping[str, meta_graph_pb2.TensorInfo]) -> str:
    return "{" + ", ".join(f'"{name}": ...' for name in sorted(inputs)) + "}"


def _shape_text(shape: list[int]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


def _dtype(dtype: int) -> str:
    """TensorFlow's `DataTypeString` ("float", "int64", "half"), as TF Serving's messages."""
    if dtype not in types_pb2.DataType.values():
        return f"<unknown dtype enum {dtype}>"
    return types_pb2.DataType.Name(dtype).removeprefix("DT_").lower()


def _preview(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, default=repr)
    return text if len(text) <= _MAX_PREVIEW_CHARS else text[:_MAX_PREVIEW_CHARS] + "..."


def _type_error(value: Any, dtype: int, expected: str = "") -> RpcAbort:
    hint = f"; send {expected}" if expected else ""
    return _invalid(
        f"JSON Value: {_preview(value)} Type: {_json_type(value)} is not of expected type: "
        f"{_dtype(dtype)}{hint}"
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float):
        return "Number"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), type(value).__name__)


def _invalid(message: str) -> RpcAbort:
    return RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, message)
