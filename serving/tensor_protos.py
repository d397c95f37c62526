"""Request and response tensors as TensorFlow Serving handles them: Predict inputs validated
against a `SignatureDef` (names, dtypes, shapes, each error naming the input), and outputs
encoded in TF Serving's typed repeated fields."""

from __future__ import annotations

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import predict_pb2

from serving._rpc import RpcAbort

#: TensorProto fields TF Serving fills by default (`Tensor::AsProtoField`), by dtype.
_TYPED_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
    types_pb2.DT_COMPLEX64: "scomplex_val",
    types_pb2.DT_COMPLEX128: "dcomplex_val",
}


def as_proto_field(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Encodes `array` as TF Serving encodes Predict outputs: in the typed repeated field.

    `tf.make_tensor_proto` packs numeric arrays into `tensor_content` bytes; TF Serving's
    default (`Tensor::AsProtoField`) fills `float_val`, `int64_val`, ... instead, and clients
    that read e.g. `outputs["scores"].float_val` directly depend on it. Strings always go to
    `string_val`. Both encodings decode with `tf.make_ndarray`.
    """
    proto = tf.make_tensor_proto(array)
    field = _TYPED_FIELDS.get(proto.dtype)
    if field is None or not proto.tensor_content:
        return proto
    flat = np.ascontiguousarray(array).ravel()
    if proto.dtype in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        flat = flat.view(np.uint16)  # half_val holds the 16-bit patterns.
    elif proto.dtype in (types_pb2.DT_COMPLEX64, types_pb2.DT_COMPLEX128):
        flat = flat.view(flat.real.dtype)  # Interleaved (real, imaginary) pairs.
    proto.ClearField("tensor_content")
    getattr(proto, field).extend(flat.tolist())
    return proto


def input_tensors(
    signature_def: meta_graph_pb2.SignatureDef, request: predict_pb2.PredictRequest, where: str
) -> dict[str, tf.Tensor]:
    """Validates the request inputs against `signature_def`; returns them as tf.Tensors."""
    expected = signature_def.inputs
    sent = set(request.inputs)
    missing = sorted(set(expected) - sent - set(signature_def.defaults))
    extra = sorted(sent - set(expected))
    if missing or extra:
        wanted = ", ".join(
            f"{alias}: {_describe(info)}" for alias, info in sorted(expected.items())
        )
        raise RpcAbort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"inputs do not match {where}: missing {missing}, unexpected {extra}; send exactly "
            f"the inputs {{{wanted}}}",
        )
    tensors = {}
    for alias, info in expected.items():
        proto = request.inputs[alias] if alias in sent else signature_def.defaults[alias]
        if proto.dtype != info.dtype:
            raise RpcAbort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input {alias!r} of {where} expects dtype {dtype_name(info.dtype)} but got "
                f"{dtype_name(proto.dtype)}; send it as {dtype_name(info.dtype)}",
            )
        try:
            array = tf.make_ndarray(proto)
        except (TypeError, ValueError) as e:
            raise RpcAbort(
                grpc.StatusCode.INVALID_ARGUMENT, f"tensor parsing error: {alias}: {e}"
            ) from e
        if not _shape_matches(array.shape, info.tensor_shape):
            raise RpcAbort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input {alias!r} of {where} expects shape {_shape_name(info.tensor_shape)} "
                f"(-1: any size) but got {list(array.shape)}",
            )
        tensors[alias] = tf.convert_to_tensor(array, dtype=tf.dtypes.as_dtype(info.dtype))
    return tensors


def _shape_matches(shape: tuple[int, ...], expected: tensor_shape_pb2.TensorShapeProto) -> bool:
    if expected.unknown_rank:
        return True
    if len(shape) != len(expected.dim):
        return False
    return all(dim.size in (-1, size) for dim, size in zip(expected.dim, shape, strict=True))


def _shape_name(shape: tensor_shape_pb2.TensorShapeProto) -> str:
    return "<any>" if shape.unknown_rank else str([dim.size for dim in shape.dim])


def dtype_name(dtype: int) -> str:
    if dtype in types_pb2.DataType.values():
        return types_pb2.DataType.Name(dtype)
    return f"<unknown dtype enum {dtype}>"


def _describe(tensor_info: meta_graph_pb2.TensorInfo) -> str:
    return f"{dtype_name(tensor_info.dtype)} {_shape_name(tensor_info.tensor_shape)}"
