"""Prometheus metrics of the model server: requests, errors and latency per model, version,
signature and status code.

Each `ServingMetrics` has its own `CollectorRegistry`, so several servers in one process (as in
the tests) keep separate counts. `start_http` exposes them in Prometheus's text format at
`http://host:port/metrics` (TensorFlow Serving exposes its own at
`/monitoring/prometheus/metrics` on its REST port; point the scrape config at either).
"""

from __future__ import annotations

import dataclasses
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

#: Latency buckets in seconds: sub-millisecond to 10 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
#: Label value for a model, version or signature the request did not resolve to (an unknown
#: model name is never used as a label, so clients cannot grow the label set).
UNRESOLVED = "unresolved"


@dataclasses.dataclass
class RequestLabels:
    """What a request resolved to, filled in while it runs; `UNRESOLVED` until known."""

    model: str = UNRESOLVED
    version: str = UNRESOLVED
    signature: str = UNRESOLVED


class ServingMetrics:
    """`recstack_serving_requests_total` (counter) and
    `recstack_serving_request_latency_seconds` (histogram), labelled by RPC, model, version and
    signature; the counter also by gRPC status code (`OK`, `INVALID_ARGUMENT`, ...)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("rpc", "model", "version", "signature")
        self.requests = Counter(
            "recstack_serving_requests",
            "RPCs answered, by outcome",
            (*labels, "code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "recstack_serving_request_latency_seconds",
            "Wall time of each RPC in the server",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._http: tuple | None = None
        self._lock = threading.Lock()

    def observe(self, rpc: str, labels: RequestLabels, code: str, seconds: float) -> None:
        """Counts one finished RPC and records its latency."""
        values = (rpc, labels.model, labels.version, labels.signature)
        self.requests.labels(*values, code).inc()
        self.latency.labels(*values).observe(seconds)

    def start_http(self, port: int, host: str = "0.0.0.0") -> int:
        """Serves `/metrics` on `host:port` (0: a free port) in a daemon thread; returns the
        bound port."""
        with self._lock:
            server, thread = start_http_server(port, host, registry=self.registry)
            self._http = (server, thread)
            return server.server_port

    def stop_http(self) -> None:
        """Stops the `/metrics` endpoint, if started."""
        with self._lock:
            if self._http is not None:
                server, thread = self._http
                server.shutdown()
                server.server_close()
                thread.join(timeout=5)
                self._http = None
