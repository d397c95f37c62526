"""Configuration of the model server: what it serves, where it listens, how it handles load,
model updates and shutdown."""

from __future__ import annotations

import dataclasses
import math

#: gRPC message sizes are signed 32-bit byte counts, so 2047 MiB is the most one can express.
_MAX_MESSAGE_MB = 2047


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """How `serving.server` listens, finds models and shuts down (the `serve` section of
    `tfx_config/`).

    Attributes:
      port: TCP port of the gRPC API; 8500 is TensorFlow Serving's gRPC port. 0 asks the
        operating system for a free port (the bound port is reported at start).
      host: Interface to bind; "0.0.0.0" listens on all IPv4 interfaces, "localhost" only
        locally, "::" on all IPv6 interfaces.
      max_workers: Threads answering RPCs concurrently (each runs one model call at a time).
      grace_seconds: On SIGTERM/SIGINT, how long in-flight requests may still run before the
        server cancels them.
      max_message_mb: Largest request or response message, in MiB, the server accepts or sends
        (gRPC's own default of 4 MiB is too small for large candidate batches).
      metrics_port: TCP port of the Prometheus endpoint (`http://host:port/metrics`,
        `serving.metrics`); 0 serves no metrics endpoint.
      model_config_file: TF Serving's text-format `ModelServerConfig` listing the models,
        their base paths, version policies and labels (`serving.model_config`); "" serves a
        model base path instead (given to `serve` separately).
      file_system_poll_wait_seconds: Period, in seconds, of the poll for new and removed
        model versions (TF Serving's flag of the same name; fractions allowed here); 0 loads
        the models once, at start.
      rest_api_port: TCP port of TF Serving's REST API (`/v1/models/...`, `serving.rest`);
        8501 is TF Serving's usual choice; 0 serves no REST API (TF Serving's default).
      enable_batching: Merge concurrent Predict requests for the same model version and
        signature into one call (`serving.batching`), as TF Serving's `--enable_batching`.
      batching_parameters_file: TF Serving's text-format `BatchingParameters` (max batch size,
        timeout, threads, queue); "" uses TF Serving's defaults. Needs `enable_batching`.
    """

    port: int = 8500
    host: str = "0.0.0.0"
    max_workers: int = 8
    grace_seconds: float = 5.0
    max_message_mb: int = 64
    metrics_port: int = 0
    model_config_file: str = ""
    file_system_poll_wait_seconds: float = 1.0
    rest_api_port: int = 0
    enable_batching: bool = False
    batching_parameters_file: str = ""

    def __post_init__(self) -> None:
        _check_int("port", self.port)
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port={self.port} is outside 0..65535; use 8500, or 0 for any port")
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError(
                f"host={self.host!r} is not a host name; use '0.0.0.0' (all interfaces) or "
                "'localhost'"
            )
        _check_int("max_workers", self.max_workers)
        if self.max_workers < 1:
            raise ValueError(f"max_workers={self.max_workers} must be at least 1")
        if isinstance(self.grace_seconds, bool) or not isinstance(self.grace_seconds, int | float):
            raise TypeError(f"grace_seconds={self.grace_seconds!r} must be a number of seconds")
        if not math.isfinite(self.grace_seconds) or self.grace_seconds < 0:
            raise ValueError(
                f"grace_seconds={self.grace_seconds} must be a finite number >= 0 (e.g. 5.0)"
            )
        _check_int("max_message_mb", self.max_message_mb)
        if not 1 <= self.max_message_mb <= _MAX_MESSAGE_MB:
            raise ValueError(
                f"max_message_mb={self.max_message_mb} is outside 1..{_MAX_MESSAGE_MB} "
                "(gRPC limits messages to 2 GiB); e.g. use 64"
            )

        _check_int("metrics_port", self.metrics_port)
        if not 0 <= self.metrics_port <= 65535 or (
            self.metrics_port and self.metrics_port == self.port
        ):
            raise ValueError(
                f"metrics_port={self.metrics_port} must be in 0..65535 (0: no metrics) and "
                f"differ from port={self.port}; e.g. 8502"
            )
        if not isinstance(self.model_config_file, str):
            raise TypeError(
                f"model_config_file={self.model_config_file!r} must be a path (a string; '' "
                "for none)"
            )
        poll = self.file_system_poll_wait_seconds
        if isinstance(poll, bool) or not isinstance(poll, int | float):
            raise TypeError(f"file_system_poll_wait_seconds={poll!r} must be a number of seconds")
        if not math.isfinite(poll) or poll < 0:
            raise ValueError(
                f"file_system_poll_wait_seconds={poll} must be a finite number >= 0 (e.g. 1; 0 "
                "turns polling off)"
            )
        self._check_ports()
        if not isinstance(self.enable_batching, bool):
            raise TypeError(f"enable_batching={self.enable_batching!r} must be true or false")
        if self.batching_parameters_file and not self.enable_batching:
            raise ValueError(
                f"batching_parameters_file={self.batching_parameters_file!r} is set but "
                "enable_batching is false; set enable_batching: true (--enable_batching)"
            )

    def _check_ports(self) -> None:
        _check_int("rest_api_port", self.rest_api_port)
        if not 0 <= self.rest_api_port <= 65535:
            raise ValueError(
                f"rest_api_port={self.rest_api_port} is outside 0..65535 (0: no REST API); "
                "e.g. 8501"
            )
        ports = {"port": self.port, "metrics_port": self.metrics_port,
                 "rest_api_port": self.rest_api_port}  # fmt: skip
        fixed = [(name, value) for name, value in ports.items() if value]
        if len({value for _, value in fixed}) < len(fixed):
            raise ValueError(f"ports {dict(fixed)} must differ from each other (0: any/none)")

    @property
    def max_message_bytes(self) -> int:
        """`max_message_mb` in bytes, as gRPC's channel options take it."""
        return self.max_message_mb * 1024 * 1024

    @property
    def address(self) -> str:
        """`host:port` as gRPC binds it (IPv6 literals in brackets, e.g. `[::]:8500`)."""
        return format_address(self.host, self.port)


def format_address(host: str, port: int) -> str:
    """Returns `host:port`, bracketing an IPv6 literal host (`[::1]:8500`)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def _check_int(name: str, value: object) -> None:
    # bool is an int subclass; `port: true` in YAML is a mistake, not port 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}={value!r} must be an integer")
