"""A live progress line for local Beam runs: elapsed time, bundles run, the current stage.

The local (FnApiRunner-based) DirectRunner drives every bundle from the launching process,
also in multi-processing mode, and names each bundle's stage in a debug log record. A logging
handler on that one logger turns the records into a tqdm line; nothing is printed by the
runner itself, and other runners (Dataflow has its own console) just show the elapsed time.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterator

from tqdm import tqdm

#: The logger on which the local runner names the stage of every bundle it runs.
BUNDLE_LOGGER = "apache_beam.runners.portability.fn_api_runner.fn_runner.run_bundle"
_STAGE_PREFIX = "ref_AppliedPTransform_"
_MAX_STAGE = 60


def stage_label(stage: str) -> str:
    """Returns a short readable stage name, e.g. `Ingest/ParseInteractions/ReadRecords...`."""
    name = stage.removeprefix(_STAGE_PREFIX).replace("-", "/")
    name = name.rsplit("_", 1)[0] if name.rsplit("_", 1)[-1].isdigit() else name
    return name if len(name) <= _MAX_STAGE else name[: _MAX_STAGE - 3] + "..."


class _BundleHandler(logging.Handler):
    """Advances the bar by one per bundle and shows the bundle's stage."""

    def __init__(self, bar: tqdm) -> None:
        super().__init__(level=logging.DEBUG)
        self._bar = bar

    def emit(self, record: logging.LogRecord) -> None:
        if not record.args or not isinstance(record.args, tuple):
            return
        stage = getattr(record.args[0], "name", record.args[0])
        if isinstance(stage, str):
            self._bar.set_postfix_str(stage_label(stage), refresh=False)
            self._bar.update(1)


@contextlib.contextmanager
def progress_line(description: str, enabled: bool | None = None) -> Iterator[tqdm]:
    """Shows `description`, the elapsed time, bundles run and the current stage while the
    context runs a pipeline.

    Args:
      description: Label of the line, e.g. "ingest".
      enabled: True or False forces the line on or off; None shows it when stderr is a
        terminal.

    Yields:
      The tqdm bar (its `n` is the number of bundles run).
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    bar = tqdm(
        desc=description,
        unit="bundle",
        disable=not enabled,
        bar_format="{desc}: {elapsed} elapsed, {n} bundles{postfix}",
    )
    logger = logging.getLogger(BUNDLE_LOGGER)
    saved = logger.level, logger.propagate
    handler = _BundleHandler(bar)
    stop = threading.Event()

    def tick() -> None:  # Keeps the elapsed time moving between bundles.
        while not stop.wait(1.0):
            bar.refresh()

    ticker = threading.Thread(target=tick, name="progress-line", daemon=True)
    if enabled:
        # Debug records of this logger only reach the handler, never the application's log.
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(handler)
        ticker.start()
    try:
        yield bar
    finally:
        stop.set()
        if enabled:
            ticker.join()
            logger.removeHandler(handler)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]
        bar.close()
