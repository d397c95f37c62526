"""The errors of `serving.registry.ModelRegistry`: a request no model answers, a bad reload.

Both are re-exported by `serving.registry`. The servicers turn them into TF Serving's status
codes: `ModelNotFoundError` into NOT_FOUND, or INVALID_ARGUMENT for an unknown version label
(`serving._rpc.not_found_code`); `ReloadError` into its `code`.
"""

from __future__ import annotations

__all__ = ["ModelNotFoundError", "ReloadError"]


class ModelNotFoundError(LookupError):
    """No loaded model answers to a (name, version) or (name, label) request.

    The message starts with TensorFlow Serving's own (`Servable not found for request:
    Latest(name)` or `Specific(name, version)`, exactly that for a well-formed name, because
    clients of TF Serving compare against it, e.g. in readiness probes; `Unrecognized servable
    version label: label`, plus the labels the model has, for a label its config does not
    define). TF Serving answers an unknown label with INVALID_ARGUMENT, everything else with
    NOT_FOUND (`serving._rpc.not_found_code`).

    Attributes:
      name: The requested model name.
      version: The requested version, or None for the newest.
      available: Names of the models this registry serves, for error reporting.
      label: The unrecognized version label, or None.
    """

    def __init__(
        self,
        name: str,
        version: int | None,
        available: tuple[str, ...],
        reason: str = "",
        label: str | None = None,
    ) -> None:
        if label is not None:
            message = f"Unrecognized servable version label: {label}{reason}"
        else:
            request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            message = f"Servable not found for request: {request}{reason}"
        super().__init__(message)
        self.name = name
        self.version = version
        self.available = available
        self.label = label


class ReloadError(RuntimeError):
    """A new model config could not be served; the previous one keeps serving.

    Attributes:
      code: TF Serving's status code name for it: "UNKNOWN" (a model has no version that
        loaded) or "FAILED_PRECONDITION" (a label points at a version that is not available).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
