"""TensorFlow Serving's REST API (`/v1/models/...`) as a second front end of the model server.

The routes, JSON formats, error bodies and HTTP status codes are TF Serving's
(`model_servers/http_rest_api_handler.cc`, `http_rest_api_util.cc`, `http_server.cc`,
`g3doc/api_rest.md`), so REST clients of TF Serving work unchanged:

    GET  /v1/models/{name}[/versions/{v}|/labels/{label}]             -> GetModelStatus
    GET  /v1/models/{name}[/versions/{v}|/labels/{label}]/metadata    -> GetModelMetadata
    POST /v1/models/{name}[/versions/{v}|/labels/{label}]:predict     -> Predict
    POST /v1/models/{name}[/versions/{v}|/labels/{label}]:classify|:regress -> UNIMPLEMENTED

Every answer comes from the same context-free core methods as the gRPC servicers
(`PredictionServicer.predict` / `.metadata`, `ModelServicer.status`), so both front ends give the
same results and errors. Errors are `{"error": "<message>"}` with the HTTP status TF Serving maps
the gRPC code to (`HTTP_STATUS`). Where TF Serving answers 400 "Malformed request", this server
is more specific: 404 for a path that is no route, 405 (with `Allow`) for a route called with the
wrong method; a body over `max_body_bytes` gets 413.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import logging
import re
import socket
import socketserver
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import grpc
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from recstack import features
from serving import rest_json
from serving._rpc import RpcAbort, not_found_code
from serving.metrics import RequestLabels, ServingMetrics
from serving.model_service import ModelServicer
from serving.prediction_service import SIGNATURE_DEF_FIELD, PredictionServicer, _unsupported
from serving.registry import ModelNotFoundError

logger = logging.getLogger(__name__)

#: Default bound on a request body: 64 MiB.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
#: HTTP status of each gRPC code, as TF Serving's `ToHTTPStatusCode` (`http_server.cc`).
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
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
_MAX_LINE_BYTES = 65536
_LINGER_BYTES = 16 * 1024 * 1024
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
class _Route:
    """What a request path asks for: `action` of model `name` at `version` or `label`."""

    action: str
    name: str
    version: int | None = None
    label: str | None = None

    def fill(self, spec: Any) -> None:
        """Sets a ModelSpec's name and version or version label from the path."""
        spec.name = self.name
        if self.version is not None:
            spec.version.value = self.version
        if self.label is not None:
            spec.version_label = self.label


class _HttpError(Exception):
    """An HTTP-level failure with no gRPC equivalent (no route, wrong method, body too big)."""

    def __init__(self, status: int, code: grpc.StatusCode, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _match_route(method: str, path: str) -> _Route:
    """The route of `method path`; raises `_HttpError` 404/405 or `RpcAbort` for a bad version."""
    post, get = _POST_PATH.fullmatch(path), _GET_PATH.fullmatch(path)
    match = post if method == "POST" else get if method in ("GET", "HEAD") else None
    if match is None:
        if post or get:
            allowed = "POST" if post else "GET, HEAD"
            raise _HttpError(
                405,
                grpc.StatusCode.UNIMPLEMENTED,
                f"Method {method} is not allowed on {path}; use {allowed} ({_ROUTES_HELP})",
                Allow=allowed,
            )
        raise _HttpError(
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
    return _Route(
        action=action,
        name=urllib.parse.unquote(match["name"] or ""),
        version=None if version is None else int(version),
        label=None if match["label"] is None else urllib.parse.unquote(match["label"]),
    )


def _failure(
    error: _HttpError | RpcAbort | ModelNotFoundError,
) -> tuple[int, grpc.StatusCode, str, dict[str, str]]:
    """(HTTP status, gRPC code, message, extra headers) of an expected failure."""
    if isinstance(error, _HttpError):
        return error.status, error.code, error.message, error.headers
    if isinstance(error, RpcAbort):
        return HTTP_STATUS.get(error.code, 500), error.code, error.details, {}
    code = not_found_code(error)
    return HTTP_STATUS[code], code, str(error), {}


class _RestApi:
    """Answers a routed request with JSON text, from the servicers' core methods."""

    def __init__(self, prediction: PredictionServicer, models: ModelServicer) -> None:
        self._prediction = prediction
        self._models = models

    def answer(self, route: _Route, body: bytes, labels: RequestLabels) -> str:
        """The JSON response of `route`; raises `RpcAbort` or `ModelNotFoundError`."""
        if route.action == "predict":
            return self._predict(route, body, labels)
        if route.action in ("classify", "regress"):
            rest_json.parse_document(body)  # As TF Serving, a malformed body is reported first.
            raise RpcAbort(grpc.StatusCode.UNIMPLEMENTED, _unsupported(route.action.title()))
        if not route.name:
            raise RpcAbort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Missing model name in request; use GET /v1/models/<name>[/metadata]",
            )
        if route.action == "metadata":
            response = self._metadata(route, labels)
            return rest_json.metadata_json(response)
        request = get_model_status_pb2.GetModelStatusRequest()
        route.fill(request.model_spec)
        status = self._models.status(request, labels)
        return rest_json.status_json(status)

    def _metadata(
        self, route: _Route, labels: RequestLabels
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        route.fill(request.model_spec)
        request.metadata_field.append(SIGNATURE_DEF_FIELD)
        response = self._prediction.metadata(request)
        labels.model = response.model_spec.name
        labels.version = str(response.model_spec.version.value)
        return response

    def _predict(self, route: _Route, body: bytes, labels: RequestLabels) -> str:
        document = rest_json.parse_document(body)
        request = predict_pb2.PredictRequest()
        route.fill(request.model_spec)
        request.model_spec.signature_name = rest_json.signature_name(document)
        inputs = self._signature_inputs(route, request.model_spec.signature_name, labels)
        fmt, tensors = rest_json.predict_inputs(document, inputs)
        for name, tensor in tensors.items():
            request.inputs[name].CopyFrom(tensor)
        response = self._prediction.predict(request, labels)
        return rest_json.predict_response(response.outputs, fmt)

    def _signature_inputs(self, route: _Route, signature: str, labels: RequestLabels) -> Any:
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


class _Handler(http.server.BaseHTTPRequestHandler):
    """One HTTP/1.1 connection; every request goes through `_serve`."""

    protocol_version = "HTTP/1.1"
    server_version = "recstack-rest"
    timeout = 120  # Seconds a connection may sit idle (or stall mid-body) before it is closed.
    server: _HttpServer

    def do_GET(self) -> None:
        with self.server.in_flight():
            self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _serve(self) -> None:
        start, labels, headers = time.perf_counter(), RequestLabels(), {}
        try:
            route: _Route | Exception = _match_route(self.command, self._path())
        except (_HttpError, RpcAbort) as e:
            route = e
        rpc = _RPC_NAMES[route.action] if isinstance(route, _Route) else UNROUTED_RPC
        body_read = False
        try:
            body = self._read_body()  # Even for a bad route: the connection then stays usable.
            body_read = True
            if isinstance(route, Exception):
                raise route
            text = self.server.api.answer(route, body, labels)
            status, code = 200, grpc.StatusCode.OK
        except (_HttpError, RpcAbort, ModelNotFoundError) as e:
            status, code, message, headers = _failure(e)
            text = rest_json.error_json(message)
        except Exception as e:
            logger.exception("%s %s failed with an unexpected error", self.command, self.path)
            status, code = 500, grpc.StatusCode.INTERNAL
            text = rest_json.error_json(
                f"{rpc} failed: {type(e).__name__}: {e} (the server log has the traceback)"
            )
        if self.server.metrics is not None:
            self.server.metrics.observe(rpc, labels, code.name, time.perf_counter() - start)
        self._send(status, text, close=not body_read, headers=headers)
        if not body_read:
            self._linger()

    def _path(self) -> str:
        return urllib.parse.urlsplit(self.path).path

    def _read_body(self) -> bytes:
        limit = self.server.max_body_bytes
        encoding = self.headers.get("Transfer-Encoding", "").strip().lower()
        if encoding == "chunked":
            return self._read_chunked(limit)
        if encoding:
            raise _HttpError(
                501,
                grpc.StatusCode.UNIMPLEMENTED,
                f"Transfer-Encoding {encoding!r} is not supported; send Content-Length or chunked",
            )
        text = self.headers.get("Content-Length", "0").strip()
        if not text.isascii() or not text.isdigit():
            raise _HttpError(
                400,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Content-Length {text!r} is not a byte count; send the body's length in bytes",
            )
        length = int(text)
        if length > limit:
            raise self._too_big(length, limit)
        return self._read_exactly(length)

    def _read_chunked(self, limit: int) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(_MAX_LINE_BYTES + 1)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _HttpError(
                    400,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"malformed chunk size line {line[:64]!r} in a chunked body; send a valid "
                    "chunked body or use Content-Length",
                ) from None
            if size == 0:
                while self.rfile.readline(_MAX_LINE_BYTES + 1) not in (b"\r\n", b"\n", b""):
                    pass  # Trailer fields are not used.
                return b"".join(chunks)
            total += size
            if total > limit:
                raise self._too_big(total, limit)
            chunks.append(self._read_exactly(size))
            self.rfile.readline(_MAX_LINE_BYTES + 1)  # The CRLF closing the chunk.

    def _read_exactly(self, length: int) -> bytes:
        data = self.rfile.read(length)
        if len(data) != length:
            raise _HttpError(
                400,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request body ended after {len(data)} of {length} bytes; resend the request",
            )
        return data

    @staticmethod
    def _too_big(length: int, limit: int) -> _HttpError:
        return _HttpError(
            413,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"request body of {length} bytes exceeds the server's limit of {limit} bytes "
            "(max_body_bytes); send fewer instances per request or raise the limit",
        )

    def _send(self, status: int, text: str, close: bool, headers: dict[str, str]) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        if close or self.server.stopping:  # Keep-alive connections end once stop() began.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _linger(self) -> None:
        """Reads and drops what the client still sends (for up to a second) before closing:
        closing a socket with unread data resets the connection, and the client could lose the
        error response it has not read yet."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            drained = 0
            while drained < _LINGER_BYTES and (data := self.connection.recv(65536)):
                drained += len(data)
        except OSError as e:  # The client went away or went quiet: nothing left to protect.
            logger.debug("REST connection closed while draining: %s", e)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors found by `http.server` itself (bad request line, unknown method), as JSON."""
        short, long = self.responses.get(code, ("HTTP error", "see RFC 9110"))
        text = f"{message or short}: {explain or long}"
        self._send(code, rest_json.error_json(text), close=True, headers={})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        logger.debug("%s - " + format, self.address_string(), *args)


class _HttpServer(http.server.ThreadingHTTPServer):
    """A ThreadingHTTPServer carrying the API, limits and metrics its handlers use."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], api: _RestApi, max_body: int, metrics: Any
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.api, self.max_body_bytes, self.metrics = api, max_body, metrics
        self.stopping = False
        self._requests = 0
        self._idle = threading.Condition()
        super().__init__(address, _Handler)

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Counts a request as running while the block runs (see `drain`)."""
        with self._idle:
            self._requests += 1
        try:
            yield
        finally:
            with self._idle:
                self._requests -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for running requests to finish; True if they did."""
        with self._idle:
            return self._idle.wait_for(lambda: self._requests == 0, timeout)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.warning("REST connection from %s failed", client_address, exc_info=True)


class RestServer:
    """TensorFlow Serving's REST API on `host:port`, answered by the gRPC servicers' cores.

    Args:
      prediction: Answers Predict and GetModelMetadata (`PredictionServicer.predict/.metadata`).
      models: Answers GetModelStatus (`ModelServicer.status`).
      host: Interface to listen on, e.g. "0.0.0.0", "localhost" or "::".
      port: TCP port; 0 picks a free one.
      metrics: Where each request is counted and timed, with rpc labels `RestPredict`,
        `RestGetModelStatus`, `RestGetModelMetadata`, `RestClassify`, `RestRegress` and
        `RestUnrouted` (no route); None: nowhere.
      max_body_bytes: Largest request body accepted; larger ones get HTTP 413 (default 64 MiB).

    Attributes:
      host: The interface it listens on.
      port: The bound port once started (a restart after `stop` binds the same one).

    Raises:
      ValueError: `max_body_bytes` is not positive or `port` is out of range.
    """

    def __init__(
        self,
        prediction: PredictionServicer,
        models: ModelServicer,
        host: str,
        port: int,
        metrics: ServingMetrics | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if max_body_bytes <= 0:
            raise ValueError(
                f"max_body_bytes={max_body_bytes} must be positive; the default is "
                f"{DEFAULT_MAX_BODY_BYTES} (64 MiB)"
            )
        if not 0 <= port <= 65535:
            raise ValueError(f"port={port} is not a TCP port; use 0-65535 (0: any free port)")
        self._api = _RestApi(prediction, models)
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes
        self.host = host
        self.port = port
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Binds `host:port` and answers requests in a daemon thread (returns at once).

        Raises:
          RuntimeError: The server is already running.
          OSError: The address cannot be bound (e.g. the port is in use).
        """
        if self._httpd is not None:
            raise RuntimeError("RestServer is already running; call stop() before start()")
        try:
            httpd = _HttpServer(
                (self.host, self.port), self._api, self._max_body_bytes, self._metrics
            )
        except OSError as e:
            raise OSError(
                e.errno,
                f"cannot listen for REST on {self.host}:{self.port}: {e.strerror}; choose "
                "another port (or 0 for any free one)",
            ) from e
        self._httpd, self.port = httpd, httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, name=f"rest-{self.port}", daemon=True
        )
        self._thread.start()
        logger.info("REST API on %s:%d", self.host, self.port)

    def stop(self, grace: float = 5.0) -> None:
        """Stops accepting connections, then lets running requests finish for up to `grace`
        seconds (their answers close the connection); requests still running after that go on
        in their daemon threads. Stopping a stopped server does nothing."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        httpd.stopping = True
        httpd.shutdown()
        httpd.server_close()
        thread.join(grace)
        if not httpd.drain(grace):
            logger.warning("REST requests still running %.1f s after stop()", grace)

    def __enter__(self) -> RestServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
