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
import re
import time
from collections.abc import Callable, Mapping, Sequence

import grpc
import numpy as np
import tensorflow as tf
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
from serving._rpc import (
    RpcAbort,
    answer,
    resolve_model,
    status_code_for,
    unsupported_rpc_message,
)
from serving.batching import Batcher, BatchingError, BatchKey
from serving.metrics import RequestLabels, ServingMetrics
from serving.registry import LoadedModel, ModelRegistry
from serving.tensor_protos import as_proto_field, input_tensors

logger = logging.getLogger(__name__)

#: The only `metadata_field` TensorFlow Serving (and this server) answers.
SIGNATURE_DEF_FIELD = "signature_def"
#: TF2 SavedModels carry this signature for their initializers; it is not a serving signature.
_INIT_OP_SIGNATURE = "__saved_model_init_op"


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers `tensorflow.serving.PredictionService` RPCs from a `ModelRegistry`.

    Args:
      registry: The loaded models; shared by all server threads.
      metrics: Where Predict and GetModelMetadata count their requests and latencies; None:
        nowhere.
      batcher: Server-side batching (TF Serving's `--enable_batching`): concurrent Predict
        requests for the same model version and signature run as one call; None: each
        request runs alone.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        metrics: ServingMetrics | None = None,
        batcher: Batcher | None = None,
    ) -> None:
        self._registry = registry
        self._metrics = metrics
        self._batcher = batcher

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
        context.abort(grpc.StatusCode.UNIMPLEMENTED, unsupported_rpc_message("Classify"))

    def Regress(
        self, request: regression_pb2.RegressionRequest, context: grpc.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        """Not supported: aborts with UNIMPLEMENTED (use Predict)."""
        context.abort(grpc.StatusCode.UNIMPLEMENTED, unsupported_rpc_message("Regress"))

    def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        """Not supported: aborts with UNIMPLEMENTED (use Predict)."""
        context.abort(grpc.StatusCode.UNIMPLEMENTED, unsupported_rpc_message("MultiInference"))

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
            outputs = self._run(BatchKey(model.name, model.version, signature_name), function,
                                inputs)  # fmt: skip
        except tf.errors.OpError as e:
            raise RpcAbort(status_code_for(e.error_code), concise_error(e.message)) from e
        except BatchingError as e:
            raise RpcAbort(e.code, str(e)) from e

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
            response.outputs[alias].CopyFrom(as_proto_field(outputs[alias]))
        return response

    def _run(
        self,
        key: BatchKey,
        function: Callable[..., Mapping[str, tf.Tensor]],
        inputs: dict[str, tf.Tensor],
    ) -> dict[str, np.ndarray]:
        """Calls the signature on `inputs`, alone or batched with concurrent requests."""
        if self._batcher is None:
            return {name: value.numpy() for name, value in function(**inputs).items()}

        def run(batched: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            tensors = {name: tf.constant(value, dtype=inputs[name].dtype)
                       for name, value in batched.items()}  # fmt: skip
            return {name: value.numpy() for name, value in function(**tensors).items()}

        arrays = {name: value.numpy() for name, value in inputs.items()}
        return self._batcher.submit(key, arrays, run)

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


#: A failed `tf.debugging.assert_*` in a graph: its message and the offending values.
_ASSERTION = re.compile(
    r"assertion failed: \[(?P<message>[^\]]*)\].*?\[x \([^)]*\) = \] \[(?P<x>[^\]]*)\]", re.S
)


def concise_error(message: str) -> str:
    """A model's error message without TensorFlow's graph-execution boilerplate: a failed
    in-graph assertion (how exported models validate inputs) becomes its own message plus the
    offending values, e.g. "input k must be between 1 and 100; got [500]"; anything else is
    returned unchanged."""
    match = _ASSERTION.search(message)
    if match is None:
        return message
    return f"{match['message']}; got [{match['x']}]"


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


def _serving_signatures(model: LoadedModel) -> list[str]:
    return sorted(name for name in model.signatures if name != _INIT_OP_SIGNATURE)
