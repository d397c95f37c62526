"""Loading one version of one model from its directory, as TensorFlow Serving does.

`load_version` parses `<version_dir>/saved_model.pb`, loads its `serve` MetaGraph with
`tf.saved_model.load` and replays the version's warmup requests (`serving.warmup`) before
returning a `LoadedModel`; a version that does not load becomes a `LoadFailure` with TF
Serving's status code. `list_dirs` and `numeric_versions` find the version directories under a
model's base path, `fingerprint` tells whether a directory changed since a failed load (it is
then tried again), and `require_dir` checks a base path up front. `serving.registry` decides
which versions to load and when; this module only knows how.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tensorflow.core.protobuf.meta_graph_pb2 import SignatureDef

__all__ = [
    "SERVE_TAG",
    "LoadFailure",
    "LoadedModel",
    "fingerprint",
    "list_dirs",
    "load_version",
    "numeric_versions",
    "require_dir",
]

# Logged as the registry's messages, under the name operators already filter on.
logger = logging.getLogger("serving.registry")

#: The MetaGraph tag TensorFlow Serving loads.
SERVE_TAG = "serve"
_SAVED_MODEL_PB = "saved_model.pb"


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """One loaded version of one model.

    Attributes:
      name: Model name, e.g. `retrieval`.
      version: Version number (the numeric directory under the model's base path).
      path: Directory of this version's SavedModel.
      module: The object returned by `tf.saved_model.load`; keeps the model's variables,
        tables and ScaNN index alive.
      signatures: Callable signatures by name; each takes its inputs as keyword tensors and
        returns a dict of output tensors.
      signature_defs: `SignatureDef` protos by name, from the `serve` MetaGraph of
        `saved_model.pb` (includes TF2's `__saved_model_init_op`, as TF Serving reports it).
      warmup_requests: Requests replayed from the version's warmup file before it was offered
        (`serving.warmup`).
    """

    name: str
    version: int
    path: str
    module: Any
    signatures: Mapping[str, Callable[..., Mapping[str, Any]]]
    signature_defs: Mapping[str, SignatureDef]
    warmup_requests: int = 0


@dataclasses.dataclass(frozen=True)
class LoadFailure:
    """A version that failed to load while polling (TF Serving reports it as END, with error).

    Attributes:
      version: The version number.
      path: Its directory.
      error_code: TF Serving's status code name, e.g. "NOT_FOUND" (no saved_model.pb),
        "INVALID_ARGUMENT" (bad SavedModel or warmup file), "UNKNOWN".
      error_message: What went wrong.
      fingerprint: The directory's contents (files with sizes and times) when it was tried;
        the version is tried again when they change.
    """

    version: int
    path: str
    error_code: str
    error_message: str
    fingerprint: tuple = ()


def require_dir(path: str, what: str, layout: str) -> None:
    """Raises FileNotFoundError, naming `what` and the expected `layout`, unless `path` is a
    directory (e.g. `require_dir(p, "model 'retrieval'", "<version>/saved_model.pb")`)."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(path):
        raise FileNotFoundError(
            f"{what} base path {path!r} is not a directory; point it at the folder holding "
            f"{layout} (the export step's output)"
        )


def list_dirs(path: str) -> list[str]:
    """Sub-directory names of `path`; OSError when it cannot be listed."""
    import tensorflow as tf

    try:
        # gfile lists GCS "directories" with a trailing slash.
        entries = [entry.rstrip("/") for entry in tf.io.gfile.listdir(path)]
    except tf.errors.OpError as e:
        raise OSError(f"cannot list {path}: {e.message}") from e
    return [e for e in entries if tf.io.gfile.isdir(posixpath.join(path, e))]


def fingerprint(path: str) -> tuple:
    """(relative path, size, mtime) of every file under `path`; () if it cannot be read."""
    import tensorflow as tf

    files = []
    try:
        for root, _, names in tf.io.gfile.walk(path):
            for name in names:
                full = posixpath.join(root, name)
                stat = tf.io.gfile.stat(full)
                files.append((posixpath.relpath(full, path), stat.length, stat.mtime_nsec))
    except tf.errors.OpError:
        return ()
    return tuple(sorted(files))


def load_version(name: str, version: int, path: str, strict: bool) -> LoadedModel | LoadFailure:
    """Loads version `version` of model `name` from its directory `path`.

    Args:
      name: The model name, e.g. `retrieval`.
      version: The version number (the directory's name).
      path: The version directory, holding `saved_model.pb`.
      strict: Raise on failure (at start-up) instead of logging and returning it.

    Returns:
      The loaded version, its warmup requests replayed; without `strict`, a `LoadFailure`
      (with the directory's fingerprint taken before loading) when it did not load.

    Raises:
      FileNotFoundError, ValueError, tf.errors.OpError: Only with `strict`: no
        `saved_model.pb`, not a SavedModel or no `serve` MetaGraph, bad warmup requests, or a
        TensorFlow error while loading.
    """
    before = () if strict else fingerprint(path)  # Before loading: changes retry it.
    try:
        return _load(name, version, path)
    except Exception as e:
        if strict:
            raise
        logger.exception(
            "Loading model %r version %d from %s failed; older versions keep serving, and it "
            "is tried again when its directory changes",
            name,
            version,
            path,
        )
        code, message = _error_status(e)
        return LoadFailure(version, path, code, message, before)


def _error_status(error: Exception) -> tuple[str, str]:
    """(TF Serving status code name, message) for a load failure."""
    import tensorflow as tf
    from tensorflow.core.protobuf import error_codes_pb2

    if isinstance(error, tf.errors.OpError):
        return error_codes_pb2.Code.Name(error.error_code), error.message
    if isinstance(error, FileNotFoundError):
        return "NOT_FOUND", str(error)
    if isinstance(error, ValueError):
        return "INVALID_ARGUMENT", str(error)
    return "UNKNOWN", f"{type(error).__name__}: {error}"


def _load(name: str, version: int, path: str) -> LoadedModel:
    # `import scann` registers the ScaNN ops; a SavedModel holding a ScaNN index cannot load
    # without them.
    import scann  # noqa: F401
    import tensorflow as tf

    signature_defs = _serve_signature_defs(name, version, path)
    logger.info("Loading model %r version %d from %s", name, version, path)
    module = tf.saved_model.load(path, tags=[SERVE_TAG])
    loaded = LoadedModel(
        name=name,
        version=version,
        path=path,
        module=module,
        signatures=dict(module.signatures),
        signature_defs=signature_defs,
    )
    # As TF Serving does, a version is offered only after its warmup requests ran.
    from recstack.features import SERVING_SIGNATURE
    from serving import warmup

    replayed = warmup.replay(loaded, SERVING_SIGNATURE)
    if replayed:
        logger.info("Model %r version %d: replayed %d warmup requests", name, version, replayed)
    return dataclasses.replace(loaded, warmup_requests=replayed)


def _serve_signature_defs(name: str, version: int, path: str) -> dict[str, SignatureDef]:
    """The `SignatureDef`s of the `serve` MetaGraph of `<path>/saved_model.pb`."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    pb_path = posixpath.join(path, _SAVED_MODEL_PB)
    if not tf.io.gfile.exists(pb_path):
        raise FileNotFoundError(
            f"model {name!r} version {version}: {pb_path} does not exist; re-export the model "
            "or remove the incomplete version directory"
        )
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(pb_path, "rb") as f:
        try:
            saved_model.ParseFromString(f.read())
        except DecodeError as e:
            raise ValueError(
                f"model {name!r} version {version}: {pb_path} is not a SavedModel ({e}); "
                "re-export the model or remove the version directory"
            ) from None
    meta_graphs = [m for m in saved_model.meta_graphs if SERVE_TAG in m.meta_info_def.tags]
    if not meta_graphs:
        tags = [list(m.meta_info_def.tags) for m in saved_model.meta_graphs]
        raise ValueError(
            f"model {name!r} version {version}: {pb_path} has no MetaGraph tagged "
            f"{SERVE_TAG!r} (found {tags}); save it with tf.saved_model.save"
        )
    return dict(meta_graphs[0].signature_def)


def numeric_versions(base_path: str, entries: Iterable[str]) -> tuple[dict[int, str], list[str]]:
    """Splits the sub-directory names `entries` of `base_path` into versions and the rest.

    Returns:
      (version number -> directory, the skipped names in sorted order). Version directories
      are non-negative integers; others (e.g. the exporter's `.tmp-*`) are skipped.
    """
    versions: dict[int, str] = {}
    skipped = []
    for entry in sorted(entries):
        if not (entry.isascii() and entry.isdigit()):
            skipped.append(entry)
            continue
        # "010" and "10" are both version 10; as in TF Serving one of them wins.
        versions[int(entry)] = posixpath.join(base_path, entry)
    return versions, skipped
