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

This module holds `RestServer` (listening, threads, start and stop); the routes are
`serving.rest_routes`, what each does `serving.rest_api`, the HTTP handling `serving.rest_handler`
and the JSON `serving.rest_request_json` / `serving.rest_response_json`.
"""

from __future__ import annotations

import logging
import threading

from serving.metrics import ServingMetrics
from serving.model_service import ModelServicer
from serving.prediction_service import PredictionServicer
from serving.rest_api import RestApi
from serving.rest_handler import HTTP_STATUS, HttpServer
from serving.rest_routes import UNROUTED_RPC

__all__ = ["DEFAULT_MAX_BODY_BYTES", "HTTP_STATUS", "UNROUTED_RPC", "RestServer"]

logger = logging.getLogger(__name__)

#: Default bound on a request body: 64 MiB.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


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
        self._api = RestApi(prediction, models)
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes
        self.host = host
        self.port = port
        self._httpd: HttpServer | None = None
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
            httpd = HttpServer(
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
