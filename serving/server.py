"""The model server: TensorFlow Serving's gRPC API over the SavedModels of a model config.

`create_server` assembles a gRPC server with TF Serving's `PredictionService` and
`ModelService` plus the standard gRPC health service (`grpc.health.v1.Health`: SERVING for
the server, "", and for each model name), which Kubernetes gRPC probes and load balancers use,
and, when configured, TF Serving's REST API on `rest_api_port` (`serving.rest`, same answers)
and server-side batching (`serving.batching`).
While it runs, a background thread polls the model base paths every
`file_system_poll_wait_seconds` (`ModelRegistry.poll`: new versions are loaded, then swapped
in), and the health statuses follow the models: one that appears becomes SERVING, one that is
removed NOT_SERVING. `serve` is the blocking entry point behind `recstack serve`: load, start
(with a Prometheus endpoint when `metrics_port` is set), wait for SIGTERM/SIGINT, then drain
(health NOT_SERVING first, in-flight requests finish within the grace period).
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from serving.batching import Batcher, BatchingConfig, load_batching_parameters
from serving.config import ServeConfig, format_address
from serving.metrics import ServingMetrics
from serving.model_config import read_model_config_file
from serving.model_service import ModelServicer
from serving.poller import Poller
from serving.prediction_service import PredictionServicer
from serving.registry import ModelRegistry
from serving.rest import RestServer

logger = logging.getLogger(__name__)

#: How long `ModelServer.stop` waits for a poll in progress (a model load) before leaving it
#: to finish in its daemon thread.
_POLLER_STOP_SECONDS = 5.0


class ModelServer(grpc.Server):
    """A `grpc.Server` answering TF Serving's API, which knows its port and drains gracefully.

    Built by `create_server`. It behaves like the wrapped `grpc.Server`, except that `start`
    also starts polling the registry (when it is a `ModelRegistry` and the poll period is
    positive) and keeps the health statuses in step with its models, and `stop` first marks
    every health status NOT_SERVING (so probes and load balancers stop sending traffic), stops
    polling, and then stops with the given grace period.

    Attributes:
      port: The TCP port the server is bound to (the chosen one when configured with port 0).
      health: The `grpc.health.v1` servicer; "" and each served model name are SERVING until
        `stop`; a model that is unloaded becomes NOT_SERVING.
    """

    def __init__(
        self,
        server: grpc.Server,
        port: int,
        health_servicer: health.HealthServicer,
        registry: ModelRegistry,
        poll_seconds: float = 0.0,
        rest: RestServer | None = None,
        batcher: Batcher | None = None,
    ) -> None:
        self._server = server
        self.health = health_servicer
        self.port = port
        self._rest = rest
        self._batcher = batcher
        self._registry = registry
        self._poll_seconds = poll_seconds
        self._poller: Poller | None = None
        self._health_lock = threading.Lock()
        self._healthy: set[str] = set()
        self._sync_health(registry.names)

    @property
    def rest_port(self) -> int | None:
        """The REST API's port once started (the chosen one when configured with 0), or None
        without a REST API."""
        return None if self._rest is None else self._rest.port

    @property
    def model_names(self) -> tuple[str, ...]:
        """The models it serves now, sorted."""
        return self._registry.names

    def start(self) -> None:
        """Starts answering RPCs (and REST requests, with a REST API) and polling for model
        versions (returns immediately).

        Raises:
          OSError: The REST port cannot be bound.
        """
        self._server.start()
        if self._rest is not None:
            self._rest.start()
        if isinstance(self._registry, ModelRegistry):
            self._registry.subscribe(self._sync_health)  # Also syncs the current names.
            if self._poll_seconds > 0:
                self._poller = Poller(self._registry, self._poll_seconds)
                self._poller.start()

    def stop(self, grace: float | None) -> threading.Event:
        """Marks health NOT_SERVING, stops polling, rejects new RPCs and cancels those still
        running after `grace` seconds (None: at once). Returns an event set when the server
        has stopped."""
        self.health.enter_graceful_shutdown()
        if self._poller is not None:
            self._poller.stop(timeout=_POLLER_STOP_SECONDS)
            self._poller = None
        if isinstance(self._registry, ModelRegistry):
            self._registry.unsubscribe(self._sync_health)
        if self._rest is not None:
            self._rest.stop(grace or 0.0)
        stopped = self._server.stop(grace)
        if self._batcher is not None:
            self._batcher.close()  # Runs what is queued at once, then refuses new requests.
        return stopped

    def _sync_health(self, names: tuple[str, ...]) -> None:
        """Models in `names` SERVING, models served before but not now NOT_SERVING."""
        with self._health_lock:
            for name in sorted(self._healthy - set(names)):
                logger.info("Health of model %r: NOT_SERVING (unloaded)", name)
                self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
            for name in names:
                self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
            self._healthy = set(names)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Blocks until the server stops or `timeout` seconds pass; True on timeout."""
        return self._server.wait_for_termination(timeout)

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Any) -> None:
        """Registers more services (see `grpc.Server`); call before `start`."""
        self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        """Registers more methods (see `grpc.Server`); call before `start`."""
        self._server.add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address: str) -> int:
        """Binds one more plaintext address; returns its port."""
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        """Binds one more TLS address; returns its port."""
        return self._server.add_secure_port(address, server_credentials)


def create_server(
    registry: ModelRegistry, config: ServeConfig, metrics: ServingMetrics | None = None
) -> ModelServer:
    """Builds (but does not start) a gRPC server for `registry`, bound to `config.address`.

    Args:
      registry: The models. A `ModelRegistry` is polled every
        `config.file_system_poll_wait_seconds` while the server runs (0: never); any other
        object with `names` and `get(name, version)` is served as it is.
      config: Address, worker threads, message size limit (requests and responses), poll
        period, REST port (bound by `start`) and batching.
      metrics: Where RPCs and REST requests are counted and timed (None: nowhere).

    Returns:
      The bound, not yet started server; `server.port` is the bound port (the one the
      operating system chose when `config.port` is 0).

    Raises:
      OSError: The address cannot be bound (e.g. the port is in use).
      ValueError, FileNotFoundError: The batching parameters file is invalid or missing.
    """
    options = [
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        # gRPC's default SO_REUSEPORT would let a second server share a busy port silently.
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="serving"),
        options=options,
    )
    batcher = None
    if config.enable_batching:
        params = config.batching_parameters_file
        batcher = Batcher(load_batching_parameters(params) if params else BatchingConfig())
    prediction = PredictionServicer(registry, metrics, batcher)
    models = ModelServicer(registry, metrics)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(models, server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    try:
        port = server.add_insecure_port(config.address)
    except RuntimeError as e:  # grpc raises RuntimeError when it cannot bind.
        raise OSError(
            f"cannot listen on {config.address}: {e}; choose another port (or 0 for any free one)"
        ) from e
    if port == 0:  # Older grpc releases report a failed bind as port 0.
        raise OSError(f"cannot listen on {config.address}; choose another port")
    rest = None
    if config.rest_api_port:
        rest = RestServer(prediction, models, config.host, config.rest_api_port, metrics,
                          max_body_bytes=config.max_message_bytes)  # fmt: skip
    return ModelServer(server, port, health_servicer, registry,
                       config.file_system_poll_wait_seconds, rest, batcher)  # fmt: skip


def open_registry(base_path: str, config: ServeConfig) -> ModelRegistry:
    """Loads the models of `base_path` or of `config.model_config_file` (exactly one is set).

    Raises:
      ValueError: Both or neither are set, or the config file or a model is invalid.
      FileNotFoundError: The base path, config file or a version's `saved_model.pb` is missing.
    """
    if bool(base_path) == bool(config.model_config_file):
        raise ValueError(
            f"give exactly one of a model base path ({base_path!r}) and a model config file "
            f"({config.model_config_file!r}): --model_base_path or --model_config_file"
        )
    if base_path:
        return ModelRegistry(base_path)
    return ModelRegistry(config=read_model_config_file(config.model_config_file))


def serve(base_path: str, config: ServeConfig) -> None:
    """Serves the models of `base_path` or `config.model_config_file` until SIGTERM or SIGINT.

    With a base path, every sub-directory is a model served at its newest version; with a
    model config file, the models, version policies and labels are the file's (see
    `serving.model_config`). Either way the server polls for new versions every
    `config.file_system_poll_wait_seconds`. Prints `Serving models [...] on host:port` once
    the server answers. On the first signal it marks health NOT_SERVING, stops accepting
    RPCs, lets in-flight ones finish for up to `config.grace_seconds`, and returns. Must run
    in the main thread (Python delivers signals there only).

    Args:
      base_path: Model base path, `<base_path>/<model_name>/<version>/saved_model.pb`; ""
        when `config.model_config_file` is set.
      config: Server settings.

    Raises:
      FileNotFoundError, ValueError: From reading the config or loading the models (see
        `open_registry` and `ModelRegistry`).
      OSError: The address cannot be bound.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "serve() must run in the main thread to receive SIGTERM/SIGINT; from other "
            "threads use create_server(...) with start() and stop(grace)"
        )
    registry = open_registry(base_path, config)
    # Requests are counted only when there is an endpoint to read the counts from.
    metrics = ServingMetrics() if config.metrics_port else None
    server = create_server(registry, config, metrics)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("Received %s; stopping", signal.Signals(signum).name)
        stop_requested.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        address = format_address(config.host, server.port)
        if metrics is not None:
            bound = metrics.start_http(config.metrics_port, config.host)
            metrics_address = format_address(config.host, bound)
            print(f"Prometheus metrics on http://{metrics_address}/metrics", flush=True)
        if server.rest_port is not None:
            rest_address = format_address(config.host, server.rest_port)
            print(f"REST API on http://{rest_address}/v1/models/<name>", flush=True)
        print(f"Serving models {list(registry.names)} on {address}", flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop_requested.wait(timeout=0.5):
            pass
    finally:
        logger.info("Draining for up to %.1f s", config.grace_seconds)
        server.stop(config.grace_seconds).wait()
        if metrics is not None:
            metrics.stop_http()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("Server stopped")
