"""The models a server answers for, loaded from a TensorFlow Serving model base path.

The layout is TensorFlow Serving's: `<base_path>/<model_name>/<version>/saved_model.pb` (plus
`variables/` and `assets/`), where `<version>` is a non-negative integer. Like TF Serving's
default version policy, only the newest version of each model is served.

For each model the registry keeps two views of the SavedModel: the callable signatures of
`tf.saved_model.load`, which run the model, and the `SignatureDef` protos of `saved_model.pb`,
which describe inputs and outputs exactly as TensorFlow Serving reports them (metadata) and
validates requests against them.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tensorflow.core.protobuf.meta_graph_pb2 import SignatureDef

logger = logging.getLogger(__name__)

#: The MetaGraph tag TensorFlow Serving loads.
SERVE_TAG = "serve"
_SAVED_MODEL_PB = "saved_model.pb"
_FORBIDDEN_NAME_PARTS = ("/", "\\", "\0", "..")


class ModelNotFoundError(LookupError):
    """No loaded model answers to a (name, version) request.

    The message starts with TensorFlow Serving's own (`Servable not found for request:
    Latest(name)` or `Specific(name, version)`) and is exactly that for a well-formed name,
    because clients of TF Serving compare against it (e.g. in readiness probes).

    Attributes:
      name: The requested model name.
      version: The requested version, or None for the newest.
      available: Names of the models this registry serves, for error reporting.
    """

    def __init__(
        self, name: str, version: int | None, available: tuple[str, ...], reason: str = ""
    ) -> None:
        request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        super().__init__(f"Servable not found for request: {request}{reason}")
        self.name = name
        self.version = version
        self.available = available


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """One loaded version of one model.

    Attributes:
      name: Model name (the directory under the base path), e.g. `retrieval`.
      version: Version number (the numeric directory under the model directory).
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


def check_model_name(name: str) -> None:
    """Raises ValueError unless `name` is a single directory name inside a base path.

    Model names become path components, so a name with a path separator or `..` could reach
    files outside the model base path.
    """
    if not name or name == "." or any(part in name for part in _FORBIDDEN_NAME_PARTS):
        raise ValueError(
            f"model name {name!r} is not a plain directory name; model names may not be empty "
            "or contain '/', '\\', '..' or NUL (e.g. 'retrieval')"
        )


class ModelRegistry:
    """Loads the newest version of every model under a base path and hands them out.

    Loading happens once, in the constructor; afterwards the registry is read-only and safe to
    share between server threads.

    Args:
      base_path: Directory holding one sub-directory per model (local path or any file system
        `tf.io.gfile` reads, e.g. `gs://bucket/models`).

    Raises:
      FileNotFoundError: `base_path` does not exist, or a version directory has no
        `saved_model.pb`.
      ValueError: No model under `base_path` has a numeric version directory, a SavedModel
        has no `serve` MetaGraph, or a version's warmup requests do not fit its signatures.
    """

    def __init__(self, base_path: str) -> None:
        # Lazy: importing serving.registry must not load TensorFlow (the CLI's --help).
        import tensorflow as tf

        if not tf.io.gfile.isdir(base_path):
            raise FileNotFoundError(
                f"model base path {base_path!r} is not a directory; point it at the folder "
                "holding <model_name>/<version>/saved_model.pb (the export step's output)"
            )
        self._base_path = base_path
        self._models: dict[str, LoadedModel] = {}
        for name in sorted(_list_dirs(base_path)):
            newest = self._newest_version(name)
            if newest is not None:
                version, version_dir = newest
                self._models[name] = _load(name, version, version_dir)
        if not self._models:
            raise ValueError(
                f"no model under {base_path!r} has a numeric version directory; expected "
                "<model_name>/<version>/saved_model.pb, e.g. retrieval/1/saved_model.pb"
            )

    @property
    def base_path(self) -> str:
        """The model base path this registry was loaded from."""
        return self._base_path

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the loaded models, sorted."""
        return tuple(self._models)

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        """Returns the loaded model `name`, checking `version` when given.

        Args:
          name: Model name, e.g. `features.MODEL_RETRIEVAL`.
          version: Required version; None takes whichever version is loaded (the newest).

        Raises:
          ModelNotFoundError: No model `name` is loaded, `name` is not a valid model name (see
            `check_model_name`), or the loaded version is not `version`.
        """
        try:
            check_model_name(name)
        except ValueError as e:
            raise ModelNotFoundError(name, version, self.names, reason=f" ({e})") from e
        model = self._models.get(name)
        if model is None or (version is not None and model.version != version):
            raise ModelNotFoundError(name, version, self.names)
        return model

    def _newest_version(self, name: str) -> tuple[int, str] | None:
        """(version, its directory) of the newest numeric version of `name`, or None."""
        check_model_name(name)
        model_dir = posixpath.join(self._base_path, name)
        versions = []
        for entry in _list_dirs(model_dir):
            if entry.isascii() and entry.isdigit():
                versions.append((int(entry), posixpath.join(model_dir, entry)))
            else:
                logger.info("Skipping %s/%s: version directories are integers", model_dir, entry)
        if not versions:
            logger.warning(
                "Not loading model %r: %s has no numeric version directory (expected %s/1/...)",
                name,
                model_dir,
                model_dir,
            )
            return None
        return max(versions)


def _list_dirs(path: str) -> list[str]:
    import tensorflow as tf

    # gfile lists GCS "directories" with a trailing slash.
    entries = (entry.rstrip("/") for entry in tf.io.gfile.listdir(path))
    return [e for e in entries if tf.io.gfile.isdir(posixpath.join(path, e))]


def _load(name: str, version: int, path: str) -> LoadedModel:
    # `import scann` registers the ScaNN ops; a SavedModel holding a ScaNN index cannot load
    # without them.
    import scann  # noqa: F401
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    pb_path = posixpath.join(path, _SAVED_MODEL_PB)
    if not tf.io.gfile.exists(pb_path):
        raise FileNotFoundError(
            f"model {name!r} version {version}: {pb_path} does not exist; re-export the model "
            "or remove the incomplete version directory"
        )
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(pb_path, "rb") as f:
        saved_model.ParseFromString(f.read())
    meta_graphs = [m for m in saved_model.meta_graphs if SERVE_TAG in m.meta_info_def.tags]
    if not meta_graphs:
        tags = [list(m.meta_info_def.tags) for m in saved_model.meta_graphs]
        raise ValueError(
            f"model {name!r} version {version}: {pb_path} has no MetaGraph tagged "
            f"{SERVE_TAG!r} (found {tags}); save it with tf.saved_model.save"
        )
    logger.info("Loading model %r version %d from %s", name, version, path)
    module = tf.saved_model.load(path, tags=[SERVE_TAG])
    loaded = LoadedModel(
        name=name,
        version=version,
        path=path,
        module=module,
        signatures=dict(module.signatures),
        signature_defs=dict(meta_graphs[0].signature_def),
    )
    # As TF Serving does, a version is offered only after its warmup requests ran.
    from recstack.features import SERVING_SIGNATURE
    from serving import warmup

    replayed = warmup.replay(loaded, SERVING_SIGNATURE)
    if replayed:
        logger.info("Model %r version %d: replayed %d warmup requests", name, version, replayed)
    return dataclasses.replace(loaded, warmup_requests=replayed)
