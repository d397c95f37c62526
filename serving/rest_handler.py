"""The HTTP side of the REST front end: one threaded server, one handler per connection.

`RestHandler` reads each request's body (Content-Length or chunked, at most `max_body_bytes`),
routes it (`serving.rest_routes`), has `serving.rest_api.RestApi` answer it, and writes the
JSON with the HTTP status TF Serving maps the gRPC code to (`HTTP_STATUS`; an unknown version
label is INVALID_ARGUMENT, 400, as in TF Serving). Errors are `{"error": "<message>"}`; a body
over `max_body_bytes` gets 413, and a request whose body could not be read closes its
connection. `HttpServer` counts running requests so `stop()` can let them finish.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import socket
import socketserver
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import grpc

from serving import rest_response_json
from serving._rpc import RpcAbort, not_found_code
from serving.metrics import RequestLabels
from serving.registry import ModelNotFoundError
from serving.rest_api import RestApi
from serving.rest_routes import UNROUTED_RPC, HttpError, Route, match_route

__all__ = ["HTTP_STATUS", "HttpServer", "RestHandler", "failure"]

# Logged under the name of the REST front end, which operators already filter on.
logger = logging.getLogger("serving.rest")

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
_MAX_LINE_BYTES = 65536
_LINGER_BYTES = 16 * 1024 * 1024


def failure(
    error: HttpError | RpcAbort | ModelNotFoundError,
) -> tuple[int, grpc.StatusCode, str, dict[str, str]]:
    """(HTTP status, gRPC code, message, extra headers) of an expected failure: TF Serving's
    HTTP status of the gRPC code, INVALID_ARGUMENT (400) for an unknown version label."""
    if isinstance(error, HttpError):
        return error.status, error.code, error.message, error.headers
    if isinstance(error, RpcAbort):
        return HTTP_STATUS.get(error.code, 500), error.code, error.details, {}
    code = not_found_code(error)
    return HTTP_STATUS[code], code, str(error), {}


class RestHandler(http.server.BaseHTTPRequestHandler):
    """One HTTP/1.1 connection; every request goes through `_serve`."""

    protocol_version = "HTTP/1.1"
    server_version = "recstack-rest"
    timeout = 120  # Seconds a connection may sit idle (or stall mid-body) before it is closed.
    server: HttpServer

    def do_GET(self) -> None:
        with self.server.in_flight():
            self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _serve(self) -> None:
        start, labels, headers = time.perf_counter(), RequestLabels(), {}
        try:
            route: Route | Exception = match_route(self.command, self._path())
        except (HttpError, RpcAbort) as e:
            route = e
        rpc = route.rpc if isinstance(route, Route) else UNROUTED_RPC
        body_read = False
        try:
            body = self._read_body()  # Even for a bad route: the connection then stays usable.
            body_read = True
            if isinstance(route, Exception):
                raise route
            text = self.server.api.answer(route, body, labels)
            status, code = 200, grpc.StatusCode.OK
        except (HttpError, RpcAbort, ModelNotFoundError) as e:
            status, code, message, headers = failure(e)
            text = rest_response_json.error_json(message)
        except Exception as e:
            logger.exception("%s %s failed with an unexpected error", self.command, self.path)
            status, code = 500, grpc.StatusCode.INTERNAL
            text = rest_response_json.error_json(
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
            raise HttpError(
                501,
                grpc.StatusCode.UNIMPLEMENTED,
                f"Transfer-Encoding {encoding!r} is not supported; send Content-Length or chunked",
            )
        text = self.headers.get("Content-Length", "0").strip()
        if not text.isascii() or not text.isdigit():
            raise HttpError(
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
                raise HttpError(
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
            raise HttpError(
                400,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request body ended after {len(data)} of {length} bytes; resend the request",
            )
        return data

    @staticmethod
    def _too_big(length: int, limit: int) -> HttpError:
        return HttpError(
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
        self._send(code, rest_response_json.error_json(text), close=True, headers={})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        logger.debug("%s - " + format, self.address_string(), *args)


class HttpServer(http.server.ThreadingHTTPServer):
    """A ThreadingHTTPServer carrying the API, limits and metrics its handlers use.

    Args:
      address: (host, port) to bind; an IPv6 host (with ":") listens on IPv6.
      api: Answers routed requests.
      max_body: Largest request body accepted, in bytes.
      metrics: A `ServingMetrics` to count requests in, or None.
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: RestApi, max_body: int, metrics: Any) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.api, self.max_body_bytes, self.metrics = api, max_body, metrics
        self.stopping = False
        self._requests = 0
        self._idle = threading.Condition()
        super().__init__(address, RestHandler)

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
