"""TensorFlow Serving's `PredictionService`: Predict and GetModelMetadata over loaded SavedModels.

Requests are validated against the `SignatureDef` in `saved_model.pb`, in TF Serving's order
and with its status codes: missing/empty model spec -> INVALID_ARGUMENT; unknown model or
version -> NOT_FOUND; unknown signature -> FAILED_PRECONDITION; missing or unexpected inputs,
unparsable tensors and unknown `output_filter` aliases -> INVALID_ARGUMENT. Unlike TF Serving,
which only finds a wrong dtype or shape when the session runs, this server checks both before
calling the model, so the message names the input and the expected and actual values.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from recstack import features
from serving._rpc import RpcAbort, answer, resolve_model, status_code_for
from serving.metrics import RequestLabels, ServingMetrics
from serving.registry import LoadedModel, ModelRegistry

logger = logging.getLogger(__name__)

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
#: The only `metadata_field` TensorFlow Serving (and this server) answers.
SIGNATURE_DEF_FIELD = "signature_def"
#: TF2 SavedModels carry this signature for their initializers; it is not a serving signature.
_INIT_OP_SIGNATURE = "__saved_model_init_op"
_SUPPORTED = "this server answers Predict and GetModelMetadata"


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers `tensorflow.serving.PredictionService` RPCs from a `ModelRegistry`.

    Args:
      registry: The loaded models; read-only, shared by all server threads.
      metrics: Where Predict counts its requests and latencies; None: nowhere.
    """

    def __init__(self, registry: ModelRegistry, metrics: ServingMetrics | None = None) -> None:
        self._registry = registry
        self._metrics = metrics

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        """Runs one signature of one model on the request's input tensors.

        `request.model_spec.name` picks the model, the optional `version` must equal the loaded
        version, and `signature_name` defaults to `serving_default`. Inputs are TensorProtos
        keyed by signature input name, e.g. `user_id`: DT_STRING `[batch]`. The response holds
        every signature output (or only those in `output_filter`), e.g. `item_ids`: DT_STRING
        `[batch, k]` and `scores`: DT_FLOAT `[batch, k]`, and a model_spec with the model name,
        the version that answered and the signature name.
        """
        labels, start = RequestLabels(), time.perf_counter()

        def done(code: grpc.StatusCode) -> None:
            if self._metrics is not None:
                seconds = time.perf_counter() - start
                self._metrics.observe("Predict", labels, code.name, seconds)

        return answer("Predict", lambda: self.predict(request, labels), context, done)

    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """Returns the model's SignatureDefs (`metadata_field` must be `["signature_def"]`).

        `response.metadata["signature_def"]` is an `Any` packing a `SignatureDefMap` with every
        signature of the SavedModel; `response.model_spec` has the model name and the version
        that answered, as TF Serving fills them.
        """
        labels, start = RequestLabels(), time.perf_counter()

        def handle() -> get_model_metadata_pb2.GetModelMetadataResponse:
            response = self.metadata(request)
            labels.model = response.model_spec.name
            labels.version = str(response.model_spec.version.value)
            return response

        def done(code: grpc.StatusCode) -> None:
            if self._metrics is not None:
                seconds = time.perf_counter() - start
                self._metrics.observe("GetModelMetadata", labels, code.name, seconds)

        return answer("GetModelMetadata", handle, context, done)

    def Classify(
        self, request: classification_pb2.ClassificationRequest, context: grpc.ServicerContext
    ) -> classification_pb2.ClassificationResponse:
        """Not supported: aborts with UNIMPLEMENTED (use Predict)."""
        context.abort(grpc.StatusCode.UNIMPLEMENTED, _unsupported("Classify"))

    def Regress(
        self, request: regression_pb2.RegressionRequest, context: grpc.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        """Not supported: aborts with UNIMPLEMENTED (use Predict)."""
        context.abort(grpc.StatusCode.UNIMPLEMENTED, _unsupported("Regress"))

    def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        """Not supported: aborts with UNIMPLEMENTED (use Predict)."""
        context.abort(grpc.StatusCode.UNIMPLEMENTED, _unsupported("MultiInference"))

    def predict(
        self, request: predict_pb2.PredictRequest, labels: RequestLabels | None = None
    ) -> predict_pb2.PredictResponse:
        """Predict without a gRPC context (shared by the gRPC and REST front ends).

        Fills `labels` (when given) with what the request resolved to.

        Raises:
          RpcAbort: The request is invalid or the model failed (with the status code).
          ModelNotFoundError: No such model or version is loaded.
        """
        labels = labels if labels is not None else RequestLabels()
        model = resolve_model(self._registry, request)
        labels.model, labels.version = model.name, str(model.version)
        signature_name = request.model_spec.signature_name or features.SERVING_SIGNATURE
        signature_def = model.signature_defs.get(signature_name)
        function = model.signatures.get(signature_name)
        if signature_def is None or function is None:
            raise RpcAbort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature_name}" not found. Model '
                f"{model.name!r} has signatures {_serving_signatures(model)}.",
            )
        labels.signature = signature_name
        where = f"signature {signature_name!r} of model {model.name!r}"
        inputs = input_tensors(signature_def, request, where)
        aliases = _output_aliases(signature_def, request.output_filter, where)
        try:
            outputs = function(**inputs)
        except tf.errors.OpError as e:
            raise RpcAbort(status_code_for(e.error_code), e.message) from e

        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = signature_name
        for alias in aliases:
            if alias not in outputs:
                raise RpcAbort(
                    grpc.StatusCode.INTERNAL,
                    f"{where} declares output {alias!r} but returned only {sorted(outputs)}; "
                    "re-export the model",
                )
            response.outputs[alias].CopyFrom(as_proto_field(outputs[alias].numpy()))
        return response

    def metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """GetModelMetadata without a gRPC context; raises `RpcAbort` or
        `ModelNotFoundError` as `predict` does."""
        if not request.HasField("model_spec"):
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        if not request.metadata_field:
            raise RpcAbort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "GetModelMetadataRequest must specify at least one metadata_field; use "
                f"metadata_field: [{SIGNATURE_DEF_FIELD!r}]",
            )
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise RpcAbort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Metadata field {field} is not supported; the only field is "
                    f"{SIGNATURE_DEF_FIELD!r}",
                )
        model = resolve_model(self._registry, request)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = model.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in model.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
        return response


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
                f"input {alias!r} of {where} expects dtype {_dtype_name(info.dtype)} but got "
                f"{_dtype_name(proto.dtype)}; send it as {_dtype_name(info.dtype)}",
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


def _output_aliases(
    signature_def: meta_graph_pb2.SignatureDef, output_filter: Sequence[str], where: str
) -> list[str]:
    """The outputs to return: `output_filter` (validated) or all outputs of the signature."""
    if not output_filter:
        return sorted(signature_def.outputs)
    aliases: list[str] = []
    for alias in output_filter:
        if alias not in signature_def.outputs:
            raise RpcAbort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output tensor alias not found in signature: {alias}. Outputs of {where} are "
                f"{sorted(signature_def.outputs)}",
            )
        if alias in aliases:
            raise RpcAbort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"duplicate output tensor alias: {alias}; list each output once in output_filter",
            )
        aliases.append(alias)
    return aliases


def _shape_matches(shape: tuple[int, ...], expected: tensor_shape_pb2.TensorShapeProto) -> bool:
    if expected.unknown_rank:
        return True
    if len(shape) != len(expected.dim):
        return False
    return all(dim.size in (-1, size) for dim, size in zip(expected.dim, shape, strict=True))


def _shape_name(shape: tensor_shape_pb2.TensorShapeProto) -> str:
    return "<any>" if shape.unknown_rank else str([dim.size for dim in shape.dim])


def _dtype_name(dtype: int) -> str:
    if dtype in types_pb2.DataType.values():
        return types_pb2.DataType.Name(dtype)
    return f"<unknown dtype enum {dtype}>"


def _describe(tensor_info: meta_graph_pb2.TensorInfo) -> str:
    return f"{_dtype_name(tensor_info.dtype)} {_shape_name(tensor_info.tensor_shape)}"


def _serving_signatures(model: LoadedModel) -> list[str]:
    return sorted(name for name in model.signatures if name != _INIT_OP_SIGNATURE)


def _unsupported(rpc: str) -> str:
    return (
        f"{rpc} is not supported: {_SUPPORTED}; call Predict with the model's "
        f"{features.SERVING_SIGNATURE!r} signature instead"
    )
