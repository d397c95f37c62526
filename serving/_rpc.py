"""Shared plumbing of the servicers: turning failures into gRPC status codes as TF Serving does.

TensorFlow Serving returns each `tensorflow::Status` as the gRPC status with the same code
(TensorFlow's error codes are gRPC's), so a model error such as `InvalidArgumentError` reaches
the client as INVALID_ARGUMENT with its message. Anything unexpected becomes INTERNAL and is
logged with its traceback; the server keeps answering other requests. RPCs this server does
not implement answer UNIMPLEMENTED with `unsupported_rpc_message`, on gRPC and REST alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from recstack import features
from serving.registry import LoadedModel, ModelNotFoundError, ModelRegistry

logger = logging.getLogger(__name__)

Response = TypeVar("Response")

_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
_SUPPORTED_RPCS = "this server answers Predict and GetModelMetadata"


class RpcAbort(Exception):
    """Ends the current RPC with `code` and `details` (raised inside a servicer method)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def status_code_for(tf_error_code: int) -> grpc.StatusCode:
    """The gRPC status code with TensorFlow error code `tf_error_code` (UNKNOWN if none)."""
    return _CODES_BY_NUMBER.get(tf_error_code, grpc.StatusCode.UNKNOWN)


def answer(
    rpc: str,
    handler: Callable[[], Response],
    context: grpc.ServicerContext,
    on_done: Callable[[grpc.StatusCode], None] | None = None,
) -> Response:
    """Runs `handler` and returns its response, or aborts the RPC with the matching status.

    `RpcAbort` gives its own code, `ModelNotFoundError` NOT_FOUND (INVALID_ARGUMENT for an
    unrecognized version label, as TF Serving answers), and any other exception INTERNAL
    (logged with its traceback, never re-raised, so one bad request cannot take the server
    down). `on_done`, if given, gets the final status code (OK on success) first.
    """
    try:
        response = handler()
    except RpcAbort as e:
        code, details = e.code, e.details
    except ModelNotFoundError as e:
        code, details = not_found_code(e), str(e)
    except Exception as e:
        logger.exception("%s failed with an unexpected error", rpc)
        code = grpc.StatusCode.INTERNAL
        details = f"{rpc} failed: {type(e).__name__}: {e} (the server log has the traceback)"
    else:
        if on_done is not None:
            on_done(grpc.StatusCode.OK)
        return response
    logger.debug("%s failed: %s: %s", rpc, code.name, details)
    if on_done is not None:
        on_done(code)
    context.abort(code, details)
    raise AssertionError("context.abort returned")  # abort always raises; for type checkers.


def not_found_code(error: ModelNotFoundError) -> grpc.StatusCode:
    """TF Serving's status code for `error`: INVALID_ARGUMENT for an unrecognized version
    label, NOT_FOUND for an unknown model or version."""
    return grpc.StatusCode.NOT_FOUND if error.label is None else grpc.StatusCode.INVALID_ARGUMENT


def resolve_model(registry: ModelRegistry, request: Any) -> LoadedModel:
    """Returns the model `request.model_spec` names, checking the spec as TF Serving does.

    `model_spec.version` asks for that version, `model_spec.version_label` for the version the
    model's config labels so (e.g. "stable"), neither for the newest available version.

    Raises:
      RpcAbort: INVALID_ARGUMENT when the request has no model_spec or no model name.
      ModelNotFoundError: No such model, version or label (see `not_found_code`).
    """
    if not request.HasField("model_spec"):
        raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    spec = request.model_spec
    if not spec.name:
        raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
    choice = spec.WhichOneof("version_choice")
    if choice == "version_label":
        return registry.get(spec.name, label=spec.version_label)
    return registry.get(spec.name, spec.version.value if choice == "version" else None)


def unsupported_rpc_message(rpc: str) -> str:
    """The UNIMPLEMENTED details for `rpc` (e.g. "Classify", "Regress", "MultiInference"), the
    same on gRPC and REST: what this server answers instead."""
    return (
        f"{rpc} is not supported: {_SUPPORTED_RPCS}; call Predict with the model's "
        f"{features.SERVING_SIGNATURE!r} signature instead"
    )
