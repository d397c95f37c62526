"""`Poller`: the background thread that keeps a server's models in step with its base paths,
TF Serving's `--file_system_poll_wait_seconds`."""

from __future__ import annotations

import logging
import threading

from serving.registry import ModelRegistry

logger = logging.getLogger("serving.server")


class Poller:
    """Calls `registry.poll()` every `period` seconds in a daemon thread until stopped.

    A failing poll is logged and retried at the next period; the thread never dies of it.
    """

    def __init__(self, registry: ModelRegistry, period: float) -> None:
        self._registry = registry
        self._period = period
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-poller", daemon=True)

    def start(self) -> None:
        """Starts polling (the first poll comes one period from now)."""
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stops polling, waiting up to `timeout` seconds for a poll in progress."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("A model poll is still running; it finishes in the background")

    def _run(self) -> None:
        while not self._stopped.wait(self._period):
            try:
                self._registry.poll()
            except Exception:
                # poll() reports load failures itself; this keeps the thread alive after a bug.
                logger.exception("Polling the model base paths failed; retrying")
