"""`recstack tensorboard --run-dir DIR`: one TensorBoard over every log folder of a pipeline run.

The local runner writes `manifest.json` into each run folder. Its `"tensorboard"` mapping names
the TensorBoard log folders of the stages (`{"statistics": "/abs/dir", "training": ...}`);
a stage that was cached points into the run folder that produced it. `logdir_spec` turns the
mapping into TensorBoard's `--logdir_spec` (`name:path,name:path`), so the runs show up as
`training/train`, `evaluation/...`, and `start_tensorboard` serves them in this process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any

MANIFEST = "manifest.json"

logger = logging.getLogger(__name__)


def _has_event_files(path: str) -> bool:
    return any("tfevents" in name for _, _, files in os.walk(path) for name in files)


def _check_entry(manifest: str, name: Any, path: Any) -> None:
    """TensorBoard splits the spec at ',' and each entry at its first ':'."""
    if not isinstance(name, str) or not name or name[0] == "/" or set(name) & {",", ":"}:
        raise ValueError(
            f"{manifest}: TensorBoard run name {name!r} must be a non-empty string without "
            "',' or ':' that does not start with '/'; rename it in the manifest"
        )
    if not isinstance(path, str) or "," in path:
        raise ValueError(
            f"{manifest}: TensorBoard folder {path!r} of {name!r} must be a path without ','; "
            "move the run to a folder whose path has no comma"
        )


def logdir_spec(run_dir: str) -> str:
    """TensorBoard's `--logdir_spec` for the log folders listed in `run_dir`/manifest.json.

    Folders that do not exist (a cached stage whose source run was deleted, a stage that has
    not run yet) are skipped with a warning. A `run_dir` without a manifest that holds event
    files itself is used as a plain log folder.

    Args:
      run_dir: A pipeline run folder (or a TensorBoard log folder). Relative paths in the
        manifest are relative to it.

    Returns:
      `"name:/abs/path,name:/abs/path"` in manifest order, or `run_dir`'s absolute path.

    Raises:
      FileNotFoundError: no manifest and no event files, or none of the listed folders exist.
      ValueError: the manifest's `"tensorboard"` entry is not a mapping of names to paths
        TensorBoard can parse.
    """
    run_dir = os.path.abspath(run_dir)
    manifest = os.path.join(run_dir, MANIFEST)
    if not os.path.isfile(manifest):
        if os.path.isdir(run_dir) and _has_event_files(run_dir):
            _check_entry(manifest, "logdir", run_dir)
            return run_dir
        raise FileNotFoundError(
            f"{manifest} does not exist and {run_dir} holds no TensorBoard event files; pass "
            "the folder of a pipeline run (the one holding manifest.json) or a log folder"
        )
    with open(manifest, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{manifest}: expected a JSON object, got {type(data).__name__}")
    logdirs = data.get("tensorboard") or {}
    if not isinstance(logdirs, dict):
        raise ValueError(f"{manifest}: 'tensorboard' must map names to folders, got {logdirs!r}")
    specs = []
    for name, path in logdirs.items():
        _check_entry(manifest, name, path)
        path = os.path.join(run_dir, path)
        if os.path.isdir(path):
            specs.append(f"{name}:{path}")
        else:
            logger.warning("TensorBoard: skipping %s, %s does not exist", name, path)
    if not specs:
        raise FileNotFoundError(
            f"none of the TensorBoard folders in {manifest} exist ({sorted(logdirs) or 'none'} "
            "listed); run the pipeline again, or keep the runs its cached stages point to"
        )
    return ",".join(specs)


@dataclasses.dataclass(frozen=True)
class RunningTensorBoard:
    """A TensorBoard serving from a daemon thread of this process.

    Attributes:
      url: Where it serves, e.g. "http://localhost:6006/".
      logdir_spec: The `--logdir_spec` it reads.
    """

    url: str
    logdir_spec: str
    _server: Any = dataclasses.field(repr=False)

    def stop(self) -> None:
        """Stops serving and closes the port (waits for the serving loop to end)."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> RunningTensorBoard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_tensorboard(
    run_dir: str, port: int = 6006, host: str = "localhost", reload_interval: float = 5.0
) -> RunningTensorBoard:
    """Starts TensorBoard over `logdir_spec(run_dir)` in a daemon thread.

    Args:
      run_dir: A pipeline run folder or a TensorBoard log folder.
      port: TCP port; 0 picks a free one (read it from `.url`).
      host: Interface to bind ("0.0.0.0" for every one).
      reload_interval: Seconds between re-reads of the logs, so a running training shows up;
        0 reads them once, before this returns.

    Returns:
      The running TensorBoard; call `.stop()` (or use it as a context manager) to end it.

    Raises:
      FileNotFoundError, ValueError: from `logdir_spec`.
      OSError: the port is taken or the host cannot be bound.
    """
    from tensorboard import program

    spec = logdir_spec(run_dir)
    servers = []

    def make_server(app: Any, flags: Any) -> Any:
        servers.append(program.create_port_scanning_werkzeug_server(app, flags))
        return servers[-1]

    board = program.TensorBoard(server_class=make_server)
    argv = ["tensorboard", "--logdir_spec", spec, "--port", str(port), "--host", host]
    # The pure-Python loader: "auto" would start the Rust data server as a child process.
    argv += ["--load_fast", "false", "--reload_interval", str(reload_interval)]
    if reload_interval == 0:
        argv += ["--reload_task", "blocking"]
    board.configure(argv)
    try:
        url = board.launch()
    except program.TensorBoardServerException as e:
        raise OSError(f"{e.msg}; pass another port (0 picks a free one)") from e
    return RunningTensorBoard(url, spec, servers[-1])


def serve_forever(
    run_dir: str, port: int = 6006, host: str = "localhost", reload_interval: float = 5.0
) -> None:
    """Serves TensorBoard for `run_dir` (see `start_tensorboard`) until Ctrl-C."""
    with start_tensorboard(run_dir, port, host, reload_interval) as board:
        print(f"TensorBoard for {board.logdir_spec.replace(',', ', ')}")
        print(f"serving at {board.url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("TensorBoard stopped")
