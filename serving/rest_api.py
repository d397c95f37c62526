"""What each REST route does: the gRPC servicers' core methods, with JSON in and out.

Every answer comes from the same context-free core methods as the gRPC servicers
(`PredictionServicer.predict` / `.metadata`, `ModelServicer.status`), so both front ends give the
same results and errors. A Predict body is typed by the signature the request resolves to (TF
Serving's `GetInfoMap`); `:classify` and `:regress` are UNIMPLEMENTED, as on gRPC.
"""

from __future__ import annotations

from typing import Any

import grpc
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from recstack import features
from serving import rest_request_json, rest_response_json
from serving._rpc import RpcAbort, unsupported_rpc_message
from serving.metrics import RequestLabels
from serving.model_service import ModelServicer
from serving.prediction_service import SIGNATURE_DEF_FIELD, PredictionServicer
from serving.rest_routes import Route

__all__ = ["RestApi"]


class RestApi:
    """Answers a routed request with JSON text, from the servicers' core methods.

    Args:
      prediction: Answers Predict and GetModelMetadata.
      models: Answers GetModelStatus.
    """

    def __init__(self, prediction: PredictionServicer, models: ModelServicer) -> None:
        self._prediction = prediction
        self._models = models

    def answer(self, route: Route, body: bytes, labels: RequestLabels) -> str:
        """The JSON response of `route` with request body `body`; fills in `labels`.

        Raises:
          RpcAbort: The request is malformed or the servicer failed (the status TF Serving
            answers with).
          ModelNotFoundError: No such model, version or label (`serving._rpc.not_found_code`).
        """
        if route.action == "predict":
            return self._predict(route, body, labels)
        if route.action in ("classify", "regress"):
            # As TF Serving, a malformed body is reported first.
            rest_request_json.parse_document(body)
            message = unsupported_rpc_message(route.action.title())
            raise RpcAbort(grpc.StatusCode.UNIMPLEMENTED, message)
        if not route.name:
            raise RpcAbort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Missing model name in request; use GET /v1/models/<name>[/metadata]",
            )
        if route.action == "metadata":
            response = self._metadata(route, labels)
            return rest_response_json.metadata_json(response)
        request = get_model_status_pb2.GetModelStatusRequest()
        route.fill(request.model_spec)
        status = self._models.status(request, labels)
        return rest_response_json.status_json(status)

    def _metadata(
        self, route: Route, labels: RequestLabels
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        route.fill(request.model_spec)
        request.metadata_field.append(SIGNATURE_DEF_FIELD)
        response = self._prediction.metadata(request)
        labels.model = response.model_spec.name
        labels.version = str(response.model_spec.version.value)
        return response

    def _predict(self, route: Route, body: bytes, labels: RequestLabels) -> str:
        document = rest_request_json.parse_document(body)
        request = predict_pb2.PredictRequest()
        route.fill(request.model_spec)
        request.model_spec.signature_name = rest_request_json.signature_name(document)
        inputs = self._signature_inputs(route, request.model_spec.signature_name, labels)
        fmt, tensors = rest_request_json.predict_inputs(document, inputs)
        for name, tensor in tensors.items():
            request.inputs[name].CopyFrom(tensor)
        response = self._prediction.predict(request, labels)
        return rest_response_json.predict_response(response.outputs, fmt)

    def _signature_inputs(self, route: Route, signature: str, labels: RequestLabels) -> Any:
        """The inputs of `signature` of the model `route` resolves to (TF Serving's
        `GetInfoMap`): they type the JSON values."""
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        self._metadata(route, labels).metadata[SIGNATURE_DEF_FIELD].Unpack(signature_map)
        name = signature or features.SERVING_SIGNATURE
        if name not in signature_map.signature_def:
            known = sorted(s for s in signature_map.signature_def if not s.startswith("__"))
            raise RpcAbort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f'Serving signature name: "{name}" not found in signature def; model '
                f"{route.name!r} has signatures {known}",
            )
        labels.signature = name  # A signature of a loaded model: a safe label value.
        inputs = signature_map.signature_def[name].inputs
        if not inputs:
            raise RpcAbort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Failed to get input map for signature: {signature or 'DEFAULT'}; the REST API "
                "needs a signature with inputs",
            )
        return inputs
