"""The routes of TensorFlow Serving's REST API: what a request's method and path ask for.

TF Serving's `kPredictionApiGegex` and `kModelStatusApiRegex` (`http_rest_api_handler.cc`):

    GET  /v1/models/{name}[/versions/{v}|/labels/{label}]             -> status
    GET  /v1/models/{name}[/versions/{v}|/labels/{label}]/metadata    -> metadata
    POST /v1/models/{name}[/versions/{v}|/labels/{label}]:predict     -> predict
    POST /v1/models/{name}[/versions/{v}|/labels/{label}]:classify|:regress

`match_route` turns a method and path into a `Route`, or an `HttpError` (404 no route, 405
wrong method) where TF Serving would answer 400 "Malformed request". Each route's `rpc` names
it in the metrics; requests that match no route count as `UNROUTED_RPC`.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from typing import Any

import grpc

from serving._rpc import RpcAbort

__all__ = ["UNROUTED_RPC", "HttpError", "Route", "match_route"]

#: The `rpc` metrics label of requests that matched no route (404, 405).
UNROUTED_RPC = "RestUnrouted"
_RPC_NAMES = {
    "status": "RestGetModelStatus",
    "metadata": "RestGetModelMetadata",
    "predict": "RestPredict",
    "classify": "RestClassify",
    "regress": "RestRegress",
}
_MAX_INT64 = 2**63 - 1
# TF Serving's kPredictionApiGegex and kModelStatusApiRegex (case-insensitive), except that the
# verbs and "metadata" must be lower case (TF Serving would answer 400 or the status instead).
_VERSION = r"(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
_POST_PATH = re.compile(
    r"/v1/models/(?P<name>[^/:]+)" + _VERSION + r":(?P<verb>(?-i:classify|regress|predict))",
    re.I | re.A,
)
_GET_PATH = re.compile(
    r"/v1/models(?:/(?P<name>[^/:]+))?" + _VERSION + r"(?P<metadata>/(?-i:metadata))?",
    re.I | re.A,
)
_ROUTES_HELP = (
    "GET /v1/models/<name>[/versions/<version>|/labels/<label>][/metadata] or POST "
    "/v1/models/<name>[/versions/<version>|/labels/<label>]:predict"
)


@dataclasses.dataclass(frozen=True)
class Route:
    """What a request path asks for: `action` of model `name` at `version` or `label`."""

    action: str
    name: str
    version: int | None = None
    label: str | None = None

    @property
    def rpc(self) -> str:
        """The `rpc` metrics label of the route, e.g. "RestPredict"."""
        return _RPC_NAMES[self.action]

    def fill(self, spec: Any) -> None:
        """Sets a ModelSpec's name and version or version label from the path."""
        spec.name = self.name
        if self.version is not None:
            spec.version.value = self.version
        if self.label is not None:
            spec.version_label = self.label


class HttpError(Exception):
    """An HTTP-level failure with no gRPC equivalent (no route, wrong method, body too big).

    Attributes:
      status: The HTTP status, e.g. 404.
      code: The gRPC code it counts as in metrics, e.g. NOT_FOUND.
      message: The error body's message.
      headers: Extra response headers, e.g. `Allow` for 405.
    """

    def __init__(self, status: int, code: grpc.StatusCode, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def match_route(method: str, path: str) -> Route:
    """The route of `method path` (the path without its query string).

    Raises:
      HttpError: 404 for a path that is no route, 405 for a route called with the wrong method.
      RpcAbort: INVALID_ARGUMENT for a version number beyond int64.
    """
    post, get = _POST_PATH.fullmatch(path), _GET_PATH.fullmatch(path)
    match = post if method == "POST" else get if method in ("GET", "HEAD") else None
    if match is None:
        if post or get:
            allowed = "POST" if post else "GET, HEAD"
            raise HttpError(
                405,
                grpc.StatusCode.UNIMPLEMENTED,
                f"Method {method} is not allowed on {path}; use {allowed} ({_ROUTES_HELP})",
                Allow=allowed,
            )
        raise HttpError(
            404,
            grpc.StatusCode.NOT_FOUND,
            f"Malformed request: {method} {path} is no REST API route; use {_ROUTES_HELP}",
        )
    version = match["version"]
    if version is not None and int(version) > _MAX_INT64:
        raise RpcAbort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Failed to convert version: {version} to numeric; versions are int64 numbers",
        )
    action = match["verb"] if post else "metadata" if match["metadata"] else "status"
    return Route(
        action=action,
        name=urllib.parse.unquote(match["name"] or ""),
        version=None if version is None else int(version),
        label=None if match["label"] is None else urllib.parse.unquote(match["label"]),
    )
