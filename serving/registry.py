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

The pieces: `serving.registry_state` builds each new state (which versions to load or drop),
`serving.version_loader` loads one version, and `serving.registry_errors` holds the errors;
this module re-exports `LoadedModel`, `LoadFailure`, `ModelVersions`, `ModelNotFoundError`,
`ReloadError` and `check_model_name` from them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from serving import version_loader
from serving.model_config import ModelConfig, ModelConfigList, check_model_name
from serving.registry_errors import ModelNotFoundError, ReloadError
from serving.registry_state import (
    EMPTY_VERSIONS,
    ModelVersions,
    RegistryState,
    StateBuilder,
    dangling_labels,
    summary,
)
from serving.version_loader import SERVE_TAG, LoadedModel, LoadFailure

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
        self._states = StateBuilder()
        self._state = RegistryState(ModelConfigList(), {})
        with self._update_lock:
            if base_path:
                version_loader.require_dir(
                    base_path, "model", "<model_name>/<version>/saved_model.pb"
                )
                config = self._states.discover(base_path, self._state.config)
            self._state = self._states.build(config, strict=True)
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
            base = self._base_path
            config = self._states.discover(base, old.config) if base else old.config
            new = self._states.build(config, strict=False, previous=old)
            for model in config.models:
                for label, version in dangling_labels(model, new.models[model.name]):
                    self._states.report_once(
                        ("label", model.name, label, version),
                        "Version label %r of model %r points at version %d, which is not "
                        "available; requests for the label fail with NOT_FOUND",
                        label, model.name, version,
                    )  # fmt: skip
            if summary(new) == summary(old):
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
            new = self._states.build(config, strict=False, previous=self._state)
            unavailable = [m for m in config.models if not new.models[m.name].available]
            if unavailable:
                details = ", ".join(_why_unavailable(m, new.models[m.name]) for m in unavailable)
                raise ReloadError(
                    "UNKNOWN",
                    f"{len(unavailable)} model(s) did not become available: {{{details}}}; "
                    "the previous model config keeps serving",
                )
            for model in config.models:
                dangling = dangling_labels(model, new.models[model.name])
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

    def _swap(self, new: RegistryState) -> None:
        old, self._state = self._state, new
        for name in sorted(old.models.keys() | new.models.keys()):
            before = set(old.models.get(name, EMPTY_VERSIONS).available)
            after = set(new.models.get(name, EMPTY_VERSIONS).available)
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
            dangling = dangling_labels(model, state.models[model.name])
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


def _labelled_version(state: RegistryState, name: str, label: str) -> int:
    model = state.models.get(name)
    if model is None or label not in model.labels:
        known = sorted(model.labels) if model is not None else []
        reason = f" (model {name!r} has no label {label!r}; its labels: {known})"
        raise ModelNotFoundError(name, None, state.names, reason, label=label)
    return model.labels[label]


def _why_unavailable(model: ModelConfig, versions: ModelVersions) -> str:
    failed = sorted(versions.failed.items())
    errors = "; ".join(f"version {v}: {f.error_code}: {f.error_message}" for v, f in failed)
    reason = errors or f"no version under {model.base_path} that {model.version_policy} serves"
    return f"{{name: {model.name} due to error: {reason}}}"
