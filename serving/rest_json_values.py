"""TF Serving's JSON spelling of single tensor values, for the REST front end's two directions.

Mirrors the leaf functions of `tensorflow_serving/util/json_tensor.cc`: `append_value` types one
JSON leaf of a request by the signature input's dtype (numbers for floats and ints,
`true`/`false` for bools, strings or `{"b64": "..."}` for DT_STRING) and appends it to a
TensorProto; `value_writer` writes one element of a response tensor (floats as `format_float`
does, DT_STRING outputs named `*_bytes`, or not UTF-8, as `{"b64": ...}`). `invalid`,
`preview` and `dtype_name` spell the INVALID_ARGUMENT errors of both directions as TF Serving
does. `serving.rest_request_json` and `serving.rest_response_json` build whole documents from
these.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving._rpc import RpcAbort

__all__ = [
    "B64_KEY",
    "BYTES_SUFFIX",
    "append_value",
    "dtype_name",
    "format_float",
    "invalid",
    "is_b64",
    "json_object",
    "preview",
    "value_writer",
]

#: The key of a binary string: `{"b64": "<base64>"}`.
B64_KEY = "b64"
#: DT_STRING outputs whose name ends with this are always written as `{"b64": ...}`.
BYTES_SUFFIX = "_bytes"
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


def append_value(value: Any, tensor: tensor_pb2.TensorProto) -> None:
    """Appends one JSON leaf to the typed field of `tensor.dtype` (e.g. `float_val`).

    Raises:
      RpcAbort: INVALID_ARGUMENT when `value` does not fit the dtype (a string for DT_FLOAT, an
        int out of range, bad base64); UNIMPLEMENTED for a dtype JSON cannot carry (DT_HALF).
    """
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
            raise invalid(f"JSON Value: {preview(value)} is too big for {dtype_name(dtype)}") from e
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
            f"Conversion of JSON Value: {preview(value)} to type: {dtype_name(dtype)} is not "
            "supported; use the gRPC API or give the signature a float, int, bool or string input",
        )


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as e:
        raise invalid(
            f"JSON string {preview(text)} has an unpaired surrogate escape; send binary data "
            'as {"b64": "<base64>"}'
        ) from e


def _b64decode(value: dict[str, Any]) -> bytes:
    if not is_b64(value):
        raise invalid(
            f"JSON Value: {preview(value)} not formatted correctly for base64 data; send "
            'binary strings as {"b64": "<base64>"}'
        )
    encoded = value[B64_KEY]
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise invalid(
            f"Unable to base64 decode {preview(encoded)}: {e}; encode with the standard "
            "base64 alphabet (A-Z, a-z, 0-9, +, /)"
        ) from e


def value_writer(name: str, dtype: int) -> Callable[[Any], str]:
    """A function writing one element of output `name` of `dtype` as JSON text.

    Raises:
      RpcAbort: INVALID_ARGUMENT for a dtype JSON cannot carry (e.g. DT_HALF).
    """
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
    raise invalid(
        f"Failed to write JSON value for tensor type: {dtype_name(dtype)} (output {name!r}); cast "
        "the output to a float, int, bool or string dtype in the signature, or use the gRPC API"
    )


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


def _string_text(value: bytes, as_bytes: bool) -> str:
    if not as_bytes:
        try:
            return json.dumps(value.decode("utf-8"), ensure_ascii=False)
        except UnicodeDecodeError:
            pass  # Not text: written as base64 below, like a `*_bytes` output.
    return json_object({B64_KEY: json.dumps(base64.b64encode(value).decode("ascii"))})


def json_object(members: Mapping[str, str]) -> str:
    """A JSON object of already-encoded member values."""
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in members.items()) + "}"


def is_b64(value: Any) -> bool:
    """Whether `value` is a binary string, `{"b64": "<base64>"}`."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(B64_KEY), str)


def dtype_name(dtype: int) -> str:
    """TensorFlow's `DataTypeString` ("float", "int64", "half"), as TF Serving's messages."""
    if dtype not in types_pb2.DataType.values():
        return f"<unknown dtype enum {dtype}>"
    return types_pb2.DataType.Name(dtype).removeprefix("DT_").lower()


def preview(value: Any) -> str:
    """`value` as JSON for an error message, cut after 256 characters."""
    text = json.dumps(value, ensure_ascii=True, default=repr)
    return text if len(text) <= _MAX_PREVIEW_CHARS else text[:_MAX_PREVIEW_CHARS] + "..."


def _type_error(value: Any, dtype: int, expected: str = "") -> RpcAbort:
    hint = f"; send {expected}" if expected else ""
    return invalid(
        f"JSON Value: {preview(value)} Type: {_json_type(value)} is not of expected type: "
        f"{dtype_name(dtype)}{hint}"
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float):
        return "Number"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), type(value).__name__)


def invalid(message: str) -> RpcAbort:
    """The INVALID_ARGUMENT error of a malformed document, to raise."""
    return RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, message)
