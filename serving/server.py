"""The model server: TensorFlow Serving's gRPC API over the SavedModels of a model base path.

`create_server` assembles a gRPC server with TF Serving's `PredictionService` and
`ModelService` plus the standard gRPC health service (`grpc.health.v1.Health`: SERVING for
the server, "", and for each model name), which Kubernetes gRPC probes and load balancers use.
`serve` is the blocking entry point behind `recstack serve`: load, start (with a Prometheus
endpoint when `metrics_port` is set), wait for SIGTERM/SIGINT, then drain (health NOT_SERVING
first, in-flight requests finish within the grace period).
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

from serving.config import ServeConfig, format_address
from serving.metrics import ServingMetrics
from serving.model_service import ModelServicer
from serving.prediction_service import PredictionServicer
from serving.registry import ModelRegistry

logger = logging.getLogger(__name__)


class ModelServer(grpc.Server):
    """A `grpc.Server` answering TF Serving's API, which knows its port and drains gracefully.

    Built by `create_server`. It behaves like the wrapped `grpc.Server`, except that `stop`
    first marks every health status NOT_SERVING (so probes and load balancers stop sending
    traffic) and then stops with the given grace period.

    Attributes:
      port: The TCP port the server is bound to (the chosen one when configured with port 0).
      model_names: The models it serves.
      health: The `grpc.health.v1` servicer; "" and each model name are SERVING until `stop`.
    """

    def __init__(
        self,
        server: grpc.Server,
        port: int,
        health_servicer: health.HealthServicer,
        model_names: tuple[str, ...],
    ) -> None:
        self._server = server
        self.health = health_servicer
        self.port = port
        self.model_names = model_names

    def start(self) -> None:
        """Starts answering RPCs (returns immediately)."""
        self._server.start()

    def stop(self, grace: float | None) -> threading.Event:
        """Marks health NOT_SERVING, rejects new RPCs and cancels those still running after
        `grace` seconds (None: at once). Returns an event set when the server has stopped."""
        self.health.enter_graceful_shutdown()
        return self._server.stop(grace)

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
      registry: The loaded models.
      config: Address, worker threads and message size limit (requests and responses).
      metrics: Where Predict requests are counted and timed (None: nowhere).

    Returns:
      The bound, not yet started server; `server.port` is the bound port (the one the
      operating system chose when `config.port` is 0).

    Raises:
      OSError: The address cannot be bound (e.g. the port is in use).
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
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(registry, metrics), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(registry), server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    for name in registry.names:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    try:
        port = server.add_insecure_port(config.address)
    except RuntimeError as e:  # grpc raises RuntimeError when it cannot bind.
        raise OSError(
            f"cannot listen on {config.address}: {e}; choose another port (or 0 for any free one)"
        ) from e
    if port == 0:  # Older grpc releases report a failed bind as port 0.
        raise OSError(f"cannot listen on {config.address}; choose another port")
    return ModelServer(server, port, health_servicer, registry.names)


def serve(base_path: str, config: ServeConfig) -> None:
    """Serves the newest version of every model under `base_path` until SIGTERM or SIGINT.

    Prints `Serving models [...] on host:port` once the server answers. On the first signal
    it marks health NOT_SERVING, stops accepting RPCs, lets in-flight ones finish for up to
    `config.grace_seconds`, and returns. Must run in the main thread (Python delivers signals
    there only).

    Args:
      base_path: Model base path, `<base_path>/<model_name>/<version>/saved_model.pb`.
      config: Server settings.

    Raises:
      FileNotFoundError, ValueError: From loading the models (see `ModelRegistry`).
      OSError: The address cannot be bound.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "serve() must run in the main thread to receive SIGTERM/SIGINT; from other "
            "threads use create_server(...) with start() and stop(grace)"
        )
    registry = ModelRegistry(base_path)
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
