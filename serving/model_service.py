"""TensorFlow Serving's `ModelService`: which model versions are loaded, and their state.

This server loads its models once at start, so every version it reports is AVAILABLE. Reloading
a new model configuration at run time (`HandleReloadConfigRequest`) is not supported yet:
restart the server to pick up new versions.
"""

from __future__ import annotations

import grpc
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
)

from serving._rpc import RpcAbort, answer
from serving.registry import ModelNotFoundError, ModelRegistry


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """Answers `tensorflow.serving.ModelService` RPCs from a `ModelRegistry`.

    Args:
      registry: The loaded models; read-only, shared by all server threads.
    """

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """Reports the loaded version of `request.model_spec.name` as AVAILABLE.

        With `model_spec.version` set, reports that version only. Like TF Serving, each
        `model_version_status` entry has the version, `state` AVAILABLE and `status.error_code`
        OK; an unknown model or version aborts with NOT_FOUND ("Could not find any versions of
        model <name>" / "Could not find version <v> of model <name>").
        """
        return answer("GetModelStatus", lambda: self.status(request), context)

    def HandleReloadConfigRequest(
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        """Not supported yet: aborts with UNIMPLEMENTED (restart the server instead)."""
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "HandleReloadConfigRequest is not supported yet: this server loads the newest "
            "version of each model at start; restart it to serve new versions",
        )

    def status(
        self, request: get_model_status_pb2.GetModelStatusRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """GetModelStatus without a gRPC context (shared with the REST front end).

        Raises:
          RpcAbort: INVALID_ARGUMENT or NOT_FOUND, with TF Serving's messages.
        """
        if not request.HasField("model_spec"):
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        spec = request.model_spec
        requested = spec.version.value if spec.HasField("version") else None
        try:
            model = self._registry.get(spec.name, requested)
        except ModelNotFoundError as e:
            if requested is None:
                details = f"Could not find any versions of model {spec.name}"
            else:
                details = f"Could not find version {requested} of model {spec.name}"
            raise RpcAbort(grpc.StatusCode.NOT_FOUND, details) from e

        response = get_model_status_pb2.GetModelStatusResponse()
        version_status = response.model_version_status.add()
        version_status.version = model.version
        version_status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        version_status.status.error_code = error_codes_pb2.OK
        version_status.status.error_message = ""
        return response
