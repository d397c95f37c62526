"""The models a server answers for: TF Serving's model manager, over a model config.

The layout is TensorFlow Serving's: `<base_path>/<version>/saved_model.pb` per model (plus
`variables/` and `assets/`), where `<version>` is a non-negative integer; other directories
(e.g. the exporter's `.tmp-*` ones, renamed into place when complete) are ignored. Which models
and versions are served comes from a `model_config.ModelConfigList` (`--model_config_file`) or,
in this server's `--model_base_path` mode, from the sub-directories of one base path (each a
model served with `latest {num_versions: 1}`, discovered again at every poll).

Life cycle of a version, as in TF Serving: `poll()` lists the version directories, applies each
model's version policy, loads the versions that are new (SavedModel plus warmup replay)
*before* offering any of them, and then swaps the registry's state in one assignment, so a
request sees either the old or the new set of versions, never a half-loaded one; requests that
already hold a `LoadedModel` keep it until they finish. Versions that leave the policy (or whose
directory disappears) are unloaded. A version that fails to load is reported (`versions(name)`,
state END with the error in GetModelStatus) and skipped by the policy, so older versions keep
serving; it is tried again only when the contents of its directory change. `reload(config)`
replaces the whole config the same way, keeping the old one if the new one cannot be served.

For each loaded version the registry keeps two views of the SavedModel: the callable signatures
of `tf.saved_model.load`, which run the model, and the `SignatureDef` protos of
`saved_model.pb`, which describe inputs and outputs exactly as TensorFlow Serving reports them.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from serving.model_config import (
    ModelConfig,
    ModelConfigList,
    base_path_model,
    check_model_name,
)

if TYPE_CHECKING:
    from tensorflow.core.protobuf.meta_graph_pb2 import SignatureDef

__all__ = [
    "SERVE_TAG",
    "LoadFailure",
    "LoadedModel",
    "ModelNotFoundError",
    "ModelRegistry",
    "ModelVersions",
    "ReloadError",
    "check_model_name",
]

logger = logging.getLogger(__name__)

#: The MetaGraph tag TensorFlow Serving loads.
SERVE_TAG = "serve"
_SAVED_MODEL_PB = "saved_model.pb"


class ModelNotFoundError(LookupError):
    """No loaded model answers to a (name, version) or (name, label) request.

    The message starts with TensorFlow Serving's own (`Servable not found for request:
    Latest(name)` or `Specific(name, version)`, exactly that for a well-formed name, because
    clients of TF Serving compare against it, e.g. in readiness probes; `Unrecognized servable
    version label: label`, plus the labels the model has, for a label its config does not
    define). TF Serving answers an unknown label with INVALID_ARGUMENT, everything else with
    NOT_FOUND (`serving._rpc.not_found_code`).

    Attributes:
      name: The requested model name.
      version: The requested version, or None for the newest.
      available: Names of the models this registry serves, for error reporting.
      label: The unrecognized version label, or None.
    """

    def __init__(
        self,
        name: str,
        version: int | None,
        available: tuple[str, ...],
        reason: str = "",
        label: str | None = None,
    ) -> None:
        if label is not None:
            message = f"Unrecognized servable version label: {label}{reason}"
        else:
            request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            message = f"Servable not found for request: {request}{reason}"
        super().__init__(message)
        self.name = name
        self.version = version
        self.available = available
        self.label = label


class ReloadError(RuntimeError):
    """A new model config could not be served; the previous one keeps serving.

    Attributes:
      code: TF Serving's status code name for it: "UNKNOWN" (a model has no version that
        loaded) or "FAILED_PRECONDITION" (a label points at a version that is not available).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


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


@dataclasses.dataclass(frozen=True)
class ModelVersions:
    """One consistent view of one model's versions.

    Attributes:
      name: The model name.
      available: Loaded versions by number (AVAILABLE).
      failed: Versions that failed to load, by number (END with an error).
      labels: Version labels of the model's config (a label may point at a version that is
        not available any more; asking for it then fails with NOT_FOUND).
    """

    name: str
    available: Mapping[int, LoadedModel]
    failed: Mapping[int, LoadFailure]
    labels: Mapping[str, int]


@dataclasses.dataclass(frozen=True)
class _State:
    """Everything requests read, replaced as a whole (never mutated) on every change."""

    config: ModelConfigList
    models: Mapping[str, ModelVersions]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(name for name, model in self.models.items() if model.available))


class ModelRegistry:
    """Loads the versions a model config asks for, hands them out, and keeps them current.

    Give exactly one of `base_path` and `config`. Construction loads every model and fails on
    the first version that does not load; afterwards `poll()` and `reload()` change the served
    versions without ever failing requests. All methods are safe to call from any thread.

    Args:
      base_path: `--model_base_path` mode: a directory holding one sub-directory per model
        (local path or any file system `tf.io.gfile` reads, e.g. `gs://bucket/models`).
      config: `--model_config_file` mode: the models, their base paths, policies and labels.

    Raises:
      FileNotFoundError: `base_path` does not exist, or a version directory has no
        `saved_model.pb`.
      ValueError: Neither or both of `base_path` and `config`; no model under `base_path` has a
        numeric version directory; a configured model has no version its policy serves; a
        label points at a version that did not load; a SavedModel has no `serve` MetaGraph,
        or a version's warmup requests do not fit its signatures.
    """

    def __init__(self, base_path: str = "", *, config: ModelConfigList | None = None) -> None:
        if bool(base_path) == (config is not None):
            raise ValueError(
                f"give exactly one of base_path ({base_path!r}) and config ({config!r}): "
                "--model_base_path or --model_config_file"
            )
        self._base_path = base_path
        self._update_lock = threading.Lock()
        self._listeners: list[Callable[[tuple[str, ...]], None]] = []
        self._reported: set[tuple] = set()
        self._state = _State(ModelConfigList(), {})
        with self._update_lock:
            if base_path:
                _require_dir(base_path, "model", "<model_name>/<version>/saved_model.pb")
                config = self._discover()
            self._state = self._build(config, strict=True)
            self._check_started()

    @property
    def base_path(self) -> str:
        """The model base path models are discovered under; "" when serving a model config."""
        return self._base_path

    @property
    def config(self) -> ModelConfigList:
        """The model config being served (in base path mode: the sub-directories found)."""
        return self._state.config

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the models with at least one available version, sorted."""
        return self._state.names

    def get(self, name: str, version: int | None = None, label: str | None = None) -> LoadedModel:
        """Returns one available version of model `name`.

        Args:
          name: Model name, e.g. `features.MODEL_RETRIEVAL`.
          version: Required version; None (and no label) takes the newest available version.
          label: Version label from the model's config, e.g. "stable"; not with `version`.

        Raises:
          ModelNotFoundError: No model `name` is available, `name` is not a valid model name
            (see `check_model_name`), `version` (or the labelled version) is not available, or
            the model's config defines no such label.
          ValueError: Both `version` and `label` given.
        """
        if version is not None and label is not None:
            raise ValueError(f"give version ({version}) or label ({label!r}), not both")
        state = self._state  # One read: the rest of the call sees one consistent state.
        try:
            check_model_name(name)
        except ValueError as e:
            raise ModelNotFoundError(name, version, state.names, reason=f" ({e})") from e
        model = state.models.get(name)
        if label is not None:
            version = _labelled_version(state, name, label)
        if model is None or not model.available:
            raise ModelNotFoundError(name, version, state.names)
        chosen = max(model.available) if version is None else version
        if chosen not in model.available:
            raise ModelNotFoundError(name, version, state.names)
        return model.available[chosen]

    def version_for_label(self, name: str, label: str) -> int:
        """The version that model `name`'s config labels `label` (it may not be available).

        Raises:
          ModelNotFoundError: The config of `name` defines no such label (or there is no model
            `name`); its `label` attribute is set.
        """
        return _labelled_version(self._state, name, label)

    def versions(self, name: str) -> ModelVersions:
        """The available and failed versions and the labels of model `name`, as one snapshot.

        Raises:
          ModelNotFoundError: The registry has no version of `name`, available or failed.
        """
        state = self._state
        model = state.models.get(name)
        if model is None or not (model.available or model.failed):
            raise ModelNotFoundError(name, None, state.names)
        return model

    def poll(self) -> bool:
        """Loads new versions, unloads those that left their policy, then swaps them in.

        Never raises for a version that fails to load or a base path that cannot be listed:
        both are logged, the version is reported as failed, and what served before keeps
        serving. Returns whether anything changed (versions, failures, labels or models).
        """
        with self._update_lock:
            old = self._state
            config = self._discover() if self._base_path else old.config
            new = self._build(config, strict=False, previous=old)
            for model in config.models:
                for label, version in _dangling_labels(model, new.models[model.name]):
                    self._report_once(
                        ("label", model.name, label, version),
                        "Version label %r of model %r points at version %d, which is not "
                        "available; requests for the label fail with NOT_FOUND",
                        label, model.name, version,
                    )  # fmt: skip
            if _summary(new) == _summary(old):
                return False
            self._swap(new)
            return True

    def reload(self, config: ModelConfigList) -> None:
        """Serves `config` instead of the current config (TF Serving's ReloadConfig).

        New models and versions are loaded before anything is swapped; versions that both
        configs serve are kept as they are; models missing from `config` are unloaded.
        Afterwards the registry polls `config` (base path mode ends).

        Raises:
          ReloadError: A model of `config` has no version that loaded ("UNKNOWN"), or a label
            points at a version that is not available ("FAILED_PRECONDITION"); the current
            config keeps serving.
        """
        with self._update_lock:
            new = self._build(config, strict=False, previous=self._state)
            unavailable = [m for m in config.models if not new.models[m.name].available]
            if unavailable:
                details = ", ".join(_why_unavailable(m, new.models[m.name]) for m in unavailable)
                raise ReloadError(
                    "UNKNOWN",
                    f"{len(unavailable)} model(s) did not become available: {{{details}}}; "
                    "the previous model config keeps serving",
                )
            for model in config.models:
                dangling = _dangling_labels(model, new.models[model.name])
                if dangling:
                    (label, version), *_ = dangling
                    raise ReloadError(
                        "FAILED_PRECONDITION",
                        f"Request to assign label to version {version} of model {model.name}, "
                        f"which is not currently available for inference (label {label!r}; "
                        f"available: {sorted(new.models[model.name].available)})",
                    )
            self._base_path = ""
            self._swap(new)

    def subscribe(self, listener: Callable[[tuple[str, ...]], None]) -> None:
        """Calls `listener(names)` now and after every change of the served versions (see
        `names`), one call at a time, in the order of the changes."""
        with self._update_lock:
            self._listeners.append(listener)
            listener(self._state.names)

    def unsubscribe(self, listener: Callable[[tuple[str, ...]], None]) -> None:
        """Stops calling `listener`; does nothing if it was not subscribed."""
        with self._update_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _swap(self, new: _State) -> None:
        old, self._state = self._state, new
        for name in sorted(old.models.keys() | new.models.keys()):
            before = set(old.models.get(name, _EMPTY).available)
            after = set(new.models.get(name, _EMPTY).available)
            for version in sorted(after - before):
                logger.info("Serving model %r version %d", name, version)
            for version in sorted(before - after):
                logger.info("Unloaded model %r version %d", name, version)
        for listener in list(self._listeners):
            try:
                listener(new.names)
            except Exception:
                logger.exception("Model listener %r failed", listener)

    def _check_started(self) -> None:
        state = self._state
        if self._base_path and not state.names:
            raise ValueError(
                f"no model under {self._base_path!r} has a numeric version directory; expected "
                "<model_name>/<version>/saved_model.pb, e.g. retrieval/1/saved_model.pb"
            )
        for model in state.config.models:
            if not self._base_path and not state.models[model.name].available:
                raise ValueError(
                    f"model {model.name!r} has no version under {model.base_path!r} that its "
                    f"policy {model.version_policy} serves; export one there "
                    "(<base_path>/<version>/saved_model.pb) or change the policy"
                )
            dangling = _dangling_labels(model, state.models[model.name])
            if dangling:
                (label, version), *_ = dangling
                raise ValueError(
                    f"version label {label!r} of model {model.name!r} points at version "
                    f"{version}, which did not load (available: "
                    f"{sorted(state.models[model.name].available)}); export that version or "
                    "point the label at an available one"
                )
        if not state.config.models:
            logger.warning("The model config lists no models; serving none until a reload")

    def _discover(self) -> ModelConfigList:
        """Base path mode: one model per sub-directory (current one if it cannot be listed)."""
        try:
            names = sorted(_list_dirs(self._base_path))
        except OSError as e:
            self._report_once(("list", self._base_path), "Cannot list %s: %s", self._base_path, e)
            return self._state.config
        models = []
        for name in names:
            try:
                models.append(base_path_model(self._base_path, name))
            except ValueError as e:
                self._report_once(("name", name), "Skipping %s/%r: %s", self._base_path, name, e)
        return ModelConfigList(tuple(models))

    def _build(
        self, config: ModelConfigList, strict: bool, previous: _State | None = None
    ) -> _State:
        models = {}
        for model in config.models:
            before = None
            if previous is not None:
                old_config = previous.config.get(model.name)
                if old_config is not None and old_config.base_path == model.base_path:
                    before = previous.models.get(model.name)
            models[model.name] = self._update_model(model, before, strict)
        return _State(config, models)

    def _update_model(
        self, model: ModelConfig, before: ModelVersions | None, strict: bool
    ) -> ModelVersions:
        on_disk = self._version_dirs(model, strict)
        if on_disk is None:  # Cannot list: keep serving what was there (as TF Serving does).
            if before is None:
                return ModelVersions(model.name, {}, {}, model.version_labels)
            return dataclasses.replace(before, labels=model.version_labels)
        before = before or _EMPTY
        loaded = {v: m for v, m in before.available.items() if on_disk.get(v) == m.path}
        failed = {
            v: f
            for v, f in before.failed.items()
            if on_disk.get(v) == f.path and _fingerprint(f.path) == f.fingerprint
        }
        while True:
            # Failed versions do not count: `latest` then serves the newest versions that load.
            wanted = model.version_policy.select(v for v in on_disk if v not in failed)
            missing = [v for v in wanted if v not in loaded]
            if not missing:
                break
            for version in missing:
                outcome = _try_load(model.name, version, on_disk[version], strict)
                if isinstance(outcome, LoadFailure):
                    failed[version] = outcome
                else:
                    loaded[version] = outcome
        # A failure stays reported while the policy would serve that version if it loaded.
        relevant = set(model.version_policy.select(on_disk))
        failed = {v: f for v, f in failed.items() if v in relevant}
        available = {v: loaded[v] for v in wanted}
        return ModelVersions(model.name, available, failed, model.version_labels)

    def _version_dirs(self, model: ModelConfig, strict: bool) -> dict[int, str] | None:
        """Numeric version -> directory under the model's base path; None if unreadable."""
        if strict:
            _require_dir(model.base_path, f"model {model.name!r}", "<version>/saved_model.pb")
        try:
            entries = _list_dirs(model.base_path)
        except OSError as e:
            self._report_once(
                ("list", model.base_path),
                "Cannot list model %r base path %s (keeping its versions): %s",
                model.name,
                model.base_path,
                e,
            )
            return None
        self._reported.discard(("list", model.base_path))
        versions: dict[int, str] = {}
        for entry in sorted(entries):
            if not (entry.isascii() and entry.isdigit()):
                key = ("skip", model.base_path, entry)
                self._report_once(key, "Skipping %s/%s: version directories are integers",
                                  model.base_path, entry, level=logging.INFO)  # fmt: skip
                continue
            # "010" and "10" are both version 10; as in TF Serving one of them wins.
            versions[int(entry)] = posixpath.join(model.base_path, entry)
        if not versions:
            self._report_once(
                ("empty", model.base_path),
                "Not loading model %r: %s has no numeric version directory (expected %s/1/...); "
                "No versions of servable %s found under base path %s",
                model.name, model.base_path, model.base_path, model.name, model.base_path,
            )  # fmt: skip
        else:
            self._reported.discard(("empty", model.base_path))
        return versions

    def _report_once(self, key: tuple, message: str, *args: Any, level: int = logging.WARNING):
        """Logs `message` the first time `key` is seen, so polling does not repeat it."""
        if key not in self._reported:
            self._reported.add(key)
            logger.log(level, message, *args)


_EMPTY = ModelVersions("", {}, {}, {})


def _labelled_version(state: _State, name: str, label: str) -> int:
    model = state.models.get(name)
    if model is None or label not in model.labels:
        known = sorted(model.labels) if model is not None else []
        reason = f" (model {name!r} has no label {label!r}; its labels: {known})"
        raise ModelNotFoundError(name, None, state.names, reason, label=label)
    return model.labels[label]


def _dangling_labels(model: ModelConfig, versions: ModelVersions) -> list[tuple[str, int]]:
    """(label, version) of `model`'s labels that point at a version that is not available."""
    return [(k, v) for k, v in sorted(model.version_labels.items()) if v not in versions.available]


def _summary(state: _State) -> tuple:
    """What a poll can change, comparable between two states."""
    return (
        state.config,
        {
            name: (
                {v: id(m) for v, m in model.available.items()},
                dict(model.failed),
                dict(model.labels),
            )
            for name, model in state.models.items()
        },
    )


def _why_unavailable(model: ModelConfig, versions: ModelVersions) -> str:
    failed = sorted(versions.failed.items())
    errors = "; ".join(f"version {v}: {f.error_code}: {f.error_message}" for v, f in failed)
    reason = errors or f"no version under {model.base_path} that {model.version_policy} serves"
    return f"{{name: {model.name} due to error: {reason}}}"


def _require_dir(path: str, what: str, layout: str) -> None:
    import tensorflow as tf

    if not tf.io.gfile.isdir(path):
        raise FileNotFoundError(
            f"{what} base path {path!r} is not a directory; point it at the folder holding "
            f"{layout} (the export step's output)"
        )


def _list_dirs(path: str) -> list[str]:
    """Sub-directory names of `path`; OSError when it cannot be listed."""
    import tensorflow as tf

    try:
        # gfile lists GCS "directories" with a trailing slash.
        entries = [entry.rstrip("/") for entry in tf.io.gfile.listdir(path)]
    except tf.errors.OpError as e:
        raise OSError(f"cannot list {path}: {e.message}") from e
    return [e for e in entries if tf.io.gfile.isdir(posixpath.join(path, e))]


def _fingerprint(path: str) -> tuple:
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


def _try_load(name: str, version: int, path: str, strict: bool) -> LoadedModel | LoadFailure:
    """Loads one version; with `strict` a failure raises, else it is logged and returned."""
    fingerprint = () if strict else _fingerprint(path)  # Before loading: changes retry it.
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
        return LoadFailure(version, path, code, message, fingerprint)


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
