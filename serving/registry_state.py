"""What a `serving.registry.ModelRegistry` serves at one moment, and how the next is built.

A `RegistryState` is the model config plus, per model, a `ModelVersions`: the versions loaded
(AVAILABLE), those that failed (END with an error) and the config's labels. States are never
mutated; the registry replaces its state in one assignment, so a request sees either the old or
the new versions, never a half-loaded set.

`StateBuilder.build(config, strict, previous)` computes the next state from the disk: it lists
each model's version directories, keeps the versions of `previous` that are still wanted and
unchanged, and loads (`serving.version_loader`) what the model's version policy newly asks
for, before anything is offered. A version that failed stays failed, and is not retried, until
the contents of its directory change. Problems met while polling are logged once, not at every
poll.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from serving import version_loader
from serving.model_config import ModelConfig, ModelConfigList, base_path_model
from serving.version_loader import LoadedModel, LoadFailure

__all__ = [
    "EMPTY_VERSIONS",
    "ModelVersions",
    "RegistryState",
    "StateBuilder",
    "dangling_labels",
    "summary",
]

# Logged as the registry's messages, under the name operators already filter on.
logger = logging.getLogger("serving.registry")


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


#: A model with no versions and no labels.
EMPTY_VERSIONS = ModelVersions("", {}, {}, {})


@dataclasses.dataclass(frozen=True)
class RegistryState:
    """Everything requests read, replaced as a whole (never mutated) on every change.

    Attributes:
      config: The model config served.
      models: Each configured model's versions, by model name.
    """

    config: ModelConfigList
    models: Mapping[str, ModelVersions]

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the models with at least one available version, sorted."""
        return tuple(sorted(name for name, model in self.models.items() if model.available))


class StateBuilder:
    """Builds registry states from model configs and the disk, logging each problem once.

    Not thread-safe: the registry calls it under its update lock.
    """

    def __init__(self) -> None:
        self._reported: set[tuple] = set()

    def build(
        self, config: ModelConfigList, strict: bool, previous: RegistryState | None = None
    ) -> RegistryState:
        """The state serving `config`: the versions each model's policy asks for.

        Args:
          config: The models to serve.
          strict: Start-up: raise on the first base path or version that does not load
            (otherwise log it, report the version as failed and go on).
          previous: The current state; its versions are kept where the model's base path and
            the version directory are unchanged, so they are not loaded again.

        Raises:
          FileNotFoundError, ValueError: Only with `strict`; see `version_loader.load_version`.
        """
        models = {}
        for model in config.models:
            before = None
            if previous is not None:
                old_config = previous.config.get(model.name)
                if old_config is not None and old_config.base_path == model.base_path:
                    before = previous.models.get(model.name)
            models[model.name] = self._update_model(model, before, strict)
        return RegistryState(config, models)

    def discover(self, base_path: str, current: ModelConfigList) -> ModelConfigList:
        """Base path mode: one model per sub-directory of `base_path` (`current` if it cannot
        be listed; sub-directories that are not model names are skipped)."""
        try:
            names = sorted(version_loader.list_dirs(base_path))
        except OSError as e:
            self.report_once(("list", base_path), "Cannot list %s: %s", base_path, e)
            return current
        models = []
        for name in names:
            try:
                models.append(base_path_model(base_path, name))
            except ValueError as e:
                self.report_once(("name", name), "Skipping %s/%r: %s", base_path, name, e)
        return ModelConfigList(tuple(models))

    def report_once(
        self, key: tuple, message: str, *args: Any, level: int = logging.WARNING
    ) -> None:
        """Logs `message` the first time `key` is seen, so polling does not repeat it."""
        if key not in self._reported:
            self._reported.add(key)
            logger.log(level, message, *args)

    def _update_model(
        self, model: ModelConfig, before: ModelVersions | None, strict: bool
    ) -> ModelVersions:
        on_disk = self._version_dirs(model, strict)
        if on_disk is None:  # Cannot list: keep serving what was there (as TF Serving does).
            if before is None:
                return ModelVersions(model.name, {}, {}, model.version_labels)
            return dataclasses.replace(before, labels=model.version_labels)
        before = before or EMPTY_VERSIONS
        loaded = {v: m for v, m in before.available.items() if on_disk.get(v) == m.path}
        failed = {
            v: f
            for v, f in before.failed.items()
            if on_disk.get(v) == f.path and version_loader.fingerprint(f.path) == f.fingerprint
        }
        wanted = _load_wanted(model, on_disk, loaded, failed, strict)
        # A failure stays reported while the policy would serve that version if it loaded.
        relevant = set(model.version_policy.select(on_disk))
        failed = {v: f for v, f in failed.items() if v in relevant}
        available = {v: loaded[v] for v in wanted}
        return ModelVersions(model.name, available, failed, model.version_labels)

    def _version_dirs(self, model: ModelConfig, strict: bool) -> dict[int, str] | None:
        """Numeric version -> directory under the model's base path; None if unreadable."""
        if strict:
            version_loader.require_dir(
                model.base_path, f"model {model.name!r}", "<version>/saved_model.pb"
            )
        try:
            entries = version_loader.list_dirs(model.base_path)
        except OSError as e:
            self.report_once(
                ("list", model.base_path),
                "Cannot list model %r base path %s (keeping its versions): %s",
                model.name,
                model.base_path,
                e,
            )
            return None
        self._reported.discard(("list", model.base_path))
        versions, skipped = version_loader.numeric_versions(model.base_path, entries)
        for entry in skipped:
            key = ("skip", model.base_path, entry)
            self.report_once(key, "Skipping %s/%s: version directories are integers",
                             model.base_path, entry, level=logging.INFO)  # fmt: skip
        if not versions:
            self.report_once(
                ("empty", model.base_path),
                "Not loading model %r: %s has no numeric version directory (expected %s/1/...); "
                "No versions of servable %s found under base path %s",
                model.name, model.base_path, model.base_path, model.name, model.base_path,
            )  # fmt: skip
        else:
            self._reported.discard(("empty", model.base_path))
        return versions


def dangling_labels(model: ModelConfig, versions: ModelVersions) -> list[tuple[str, int]]:
    """(label, version) of `model`'s labels that point at a version that is not available."""
    return [(k, v) for k, v in sorted(model.version_labels.items()) if v not in versions.available]


def summary(state: RegistryState) -> tuple:
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


def _load_wanted(
    model: ModelConfig,
    on_disk: Mapping[int, str],
    loaded: dict[int, LoadedModel],
    failed: dict[int, LoadFailure],
    strict: bool,
) -> tuple[int, ...]:
    """Loads the versions `model`'s policy wants into `loaded` (failures into `failed`) until
    every wanted version is loaded; returns the wanted versions."""
    while True:
        # Failed versions do not count: `latest` then serves the newest versions that load.
        wanted = model.version_policy.select(v for v in on_disk if v not in failed)
        missing = [v for v in wanted if v not in loaded]
        if not missing:
            return wanted
        for version in missing:
            outcome = version_loader.load_version(model.name, version, on_disk[version], strict)
            if isinstance(outcome, LoadFailure):
                failed[version] = outcome
            else:
                loaded[version] = outcome
