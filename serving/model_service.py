"""TensorFlow Serving's `ModelService`: the state of each model version, and config reloads.

`GetModelStatus` reports the versions the registry knows of a model, newest first, as TF
Serving's servable state monitor does: AVAILABLE (status OK) for loaded versions, END with the
load error (code and message) for versions that failed to load. Unlike TF Serving, versions
that were unloaded are not reported (TF Serving keeps them as END with OK until it restarts).

`HandleReloadConfigRequest` serves a new `model_config_list` (`ModelRegistry.reload`): new
models and versions are loaded first, models missing from the new list are unloaded, and a
config that is invalid or cannot be served leaves the old one serving. As in TF Serving, a
failure is the RPC's status (INVALID_ARGUMENT for an invalid config, FAILED_PRECONDITION for a
label on a version that is not available, UNKNOWN when a model has no version that loads).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
)

from serving import model_config
from serving._rpc import RpcAbort, answer, not_found_code, status_code_for
from serving.metrics import RequestLabels, ServingMetrics
from serving.registry import LoadFailure, ModelNotFoundError, ModelRegistry, ReloadError

logger = logging.getLogger(__name__)

_State = get_model_status_pb2.ModelVersionStatus.State
_RELOAD_WHAT = "ReloadConfigRequest.config"


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """Answers `tensorflow.serving.ModelService` RPCs from a `ModelRegistry`.

    Args:
      registry: The models; shared by all server threads (it is thread-safe).
      metrics: Where the RPCs are counted and timed (rpc labels `GetModelStatus` and
        `HandleReloadConfigRequest`); None: nowhere.
    """

    def __init__(self, registry: ModelRegistry, metrics: ServingMetrics | None = None) -> None:
        self._registry = registry
        self._metrics = metrics

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """Reports the state of each version of `request.model_spec.name`, newest first.

        With `model_spec.version` (or `version_label`) set, reports that version only. Each
        `model_version_status` entry has the version, its `state` (AVAILABLE, or END for a
        version that failed to load) and `status` (`error_code` OK, or the load error). An
        unknown model or version aborts with NOT_FOUND ("Could not find any versions of model
        <name>" / "Could not find version <v> of model <name>"), an unknown label with
        INVALID_ARGUMENT ("Unrecognized servable version label: <label>").
        """
        labels = RequestLabels()
        done = self._observer("GetModelStatus", labels)
        return answer("GetModelStatus", lambda: self.status(request, labels), context, done)

    def HandleReloadConfigRequest(
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        """Serves `request.config.model_config_list` instead of the current models.

        Returns a response with `status.error_code` OK once the new config serves; otherwise
        the RPC fails with the status `reload_config` reports (the old config keeps serving).
        """

        def handle() -> model_management_pb2.ReloadConfigResponse:
            response = self.reload_config(request)
            if response.status.error_code != error_codes_pb2.OK:
                code = status_code_for(response.status.error_code)
                raise RpcAbort(code, response.status.error_message)
            return response

        done = self._observer("HandleReloadConfigRequest", RequestLabels())
        return answer("HandleReloadConfigRequest", handle, context, done)

    def status(
        self,
        request: get_model_status_pb2.GetModelStatusRequest,
        labels: RequestLabels | None = None,
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """GetModelStatus without a gRPC context (shared with the REST front end).

        Fills `labels` (when given) with the model, and the version when one was asked for.

        Raises:
          RpcAbort: INVALID_ARGUMENT or NOT_FOUND, with TF Serving's messages.
        """
        labels = labels if labels is not None else RequestLabels()
        if not request.HasField("model_spec"):
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        spec = request.model_spec
        requested = self._requested_version(spec)
        try:
            model = self._registry.versions(spec.name)
        except ModelNotFoundError as e:
            if requested is None:
                details = f"Could not find any versions of model {spec.name}"
            else:
                details = f"Could not find version {requested} of model {spec.name}"
            raise RpcAbort(grpc.StatusCode.NOT_FOUND, details) from e
        labels.model = model.name  # Only now: an unknown name never becomes a label.
        known = set(model.available) | set(model.failed)
        if requested is not None and requested not in known:
            raise RpcAbort(
                grpc.StatusCode.NOT_FOUND,
                f"Could not find version {requested} of model {spec.name}",
            )
        if requested is not None:
            labels.version = str(requested)

        response = get_model_status_pb2.GetModelStatusResponse()
        for version in sorted(known, reverse=True) if requested is None else [requested]:
            entry = response.model_version_status.add()
            entry.version = version
            if version in model.available:
                entry.state = _State.AVAILABLE
                entry.status.error_code = error_codes_pb2.OK
                entry.status.error_message = ""
            else:
                failure = model.failed[version]
                entry.state = _State.END
                entry.status.error_code = _error_code(failure)
                entry.status.error_message = failure.error_message
        return response

    def reload_config(
        self, request: model_management_pb2.ReloadConfigRequest
    ) -> model_management_pb2.ReloadConfigResponse:
        """HandleReloadConfigRequest without a gRPC context: applies `request.config`.

        Returns:
          A response whose `status` is OK, or the error (TF Serving's code and a message
          naming the problem) with the previous config still serving.
        """
        response = model_management_pb2.ReloadConfigResponse()
        code, message = error_codes_pb2.OK, ""
        if request.config.WhichOneof("config") != "model_config_list":
            code = error_codes_pb2.INVALID_ARGUMENT
            message = (
                "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                "ModelConfigList is currently supported; send config { model_config_list { "
                "config { name: ... base_path: ... model_platform: 'tensorflow' } } }"
            )
        else:
            try:
                config = model_config.from_proto(request.config, _RELOAD_WHAT)
                logger.info("Reloading the model config: models %s", list(config.names))
                self._registry.reload(config)
            except ValueError as e:
                code, message = error_codes_pb2.INVALID_ARGUMENT, str(e)
            except ReloadError as e:
                code, message = error_codes_pb2.Code.Value(e.code), str(e)
        if code != error_codes_pb2.OK:
            logger.error("ReloadConfig failed: %s", message)
        response.status.error_code = code
        response.status.error_message = message
        return response

    def _requested_version(self, spec: model_pb2.ModelSpec) -> int | None:
        """The version `spec` asks for (a label resolved through the config), or None."""
        choice = spec.WhichOneof("version_choice")
        if choice == "version":
            return spec.version.value
        if choice != "version_label":
            return None
        try:
            return self._registry.version_for_label(spec.name, spec.version_label)
        except ModelNotFoundError as e:
            raise RpcAbort(not_found_code(e), str(e)) from e

    def _observer(
        self, rpc: str, labels: RequestLabels
    ) -> Callable[[grpc.StatusCode], None] | None:
        """An `answer(..., on_done)` callback recording `rpc` in the metrics, if any."""
        if self._metrics is None:
            return None
        metrics, start = self._metrics, time.perf_counter()

        def done(code: grpc.StatusCode) -> None:
            metrics.observe(rpc, labels, code.name, time.perf_counter() - start)

        return done


def _error_code(failure: LoadFailure) -> int:
    if failure.error_code in error_codes_pb2.Code.keys():
        return error_codes_pb2.Code.Value(failure.error_code)
    return error_codes_pb2.UNKNOWN
