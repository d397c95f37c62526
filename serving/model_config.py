"""Which models the server serves, and which of their versions: TF Serving's model config.

There are two ways to say it:

- `--model_config_file`: TensorFlow Serving's text-format `ModelServerConfig`, so one file
  configures this server and the real `tensorflow_model_server` alike:

      model_config_list {
        config {
          name: "retrieval"
          base_path: "/models/retrieval"
          model_platform: "tensorflow"
          model_version_policy { latest { num_versions: 2 } }  # or all {}, or
                                                              # specific { versions: 3 }
          version_labels { key: "stable" value: 3 }
        }
      }

  `parse_model_config` and `read_model_config_file` turn it into a `ModelConfigList`,
  rejecting what TF Serving rejects (with its wording where it has one) and what this server
  does not support (`custom_model_config`, `logging_config`, platforms other than
  "tensorflow").
- `--model_base_path` (this server's extension): every sub-directory of the base path is a
  model, served with `latest { num_versions: 1 }` and no labels (`base_path_model`).

Version policies follow TF Serving's `ServableVersionPolicy` (`serving.version_policy`, whose
`LatestVersions`, `AllVersions` and `SpecificVersions` this module re-exports). Labels name
versions (`stable` -> 3) so clients can ask for a label instead of a number; a label must point
at a version its policy serves.
"""

from __future__ import annotations

import dataclasses
import posixpath
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING

from serving.version_policy import AllVersions, LatestVersions, SpecificVersions, VersionPolicy

if TYPE_CHECKING:
    from tensorflow_serving.config import model_server_config_pb2

__all__ = [
    "TENSORFLOW_PLATFORM",
    "AllVersions",
    "LatestVersions",
    "ModelConfig",
    "ModelConfigList",
    "SpecificVersions",
    "VersionPolicy",
    "base_path_model",
    "check_model_name",
    "from_proto",
    "parse_model_config",
    "read_model_config_file",
]

#: The only `model_platform` this server loads (SavedModels).
TENSORFLOW_PLATFORM = "tensorflow"
_FORBIDDEN_NAME_PARTS = ("/", "\\", "\0", "..")
_DOCS = "https://www.tensorflow.org/tfx/serving/serving_config"


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


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One model: its name, where its versions are, which of them to serve, and their labels.

    Attributes:
      name: Model name clients ask for (`model_spec.name`); a plain directory name.
      base_path: Directory holding `<version>/saved_model.pb` (local or any file system
        `tf.io.gfile` reads, e.g. `gs://bucket/models/retrieval`).
      version_policy: Which versions to serve; default: the newest one.
      version_labels: Label -> version, e.g. {"stable": 3, "canary": 4} (read-only copy).
    """

    name: str
    base_path: str
    version_policy: VersionPolicy = LatestVersions()
    version_labels: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_model_name(self.name)
        if not isinstance(self.base_path, str) or not self.base_path:
            raise ValueError(
                f"model {self.name!r} has base_path={self.base_path!r}; set it to the directory "
                f'holding <version>/saved_model.pb, e.g. base_path: "/models/{self.name}"'
            )
        if not isinstance(self.version_policy, LatestVersions | AllVersions | SpecificVersions):
            raise TypeError(
                f"model {self.name!r}: version_policy={self.version_policy!r} must be "
                "LatestVersions, AllVersions or SpecificVersions"
            )
        for label, version in self.version_labels.items():
            self._check_label(label, version)
        labels = types.MappingProxyType(dict(self.version_labels))
        object.__setattr__(self, "version_labels", labels)

    def _check_label(self, label: str, version: int) -> None:
        if not isinstance(label, str) or not label:
            raise ValueError(
                f"model {self.name!r} has version label {label!r}; labels are non-empty "
                'strings, e.g. version_labels { key: "stable" value: 1 }'
            )
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValueError(
                f"version label {label!r} of model {self.name!r} points at {version!r}; "
                "point it at a version number >= 0"
            )
        policy = self.version_policy
        if isinstance(policy, SpecificVersions) and version not in policy.versions:
            raise ValueError(
                f"version label {label!r} of model {self.name!r} points at version {version}, "
                f"which its policy {policy} does not serve; add `versions: {version}` to the "
                "policy or point the label at a listed version"
            )


@dataclasses.dataclass(frozen=True)
class ModelConfigList:
    """The models a server serves (TF Serving's `model_config_list`).

    Attributes:
      models: One config per model, names unique; may be empty (a server serving nothing
        until a new config arrives).
    """

    models: tuple[ModelConfig, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        seen: set[str] = set()
        for model in self.models:
            if model.name in seen:
                raise ValueError(
                    f"Illegal to list model {model.name} multiple times in config list; "
                    "keep one config entry per model name"
                )
            seen.add(model.name)

    @property
    def names(self) -> tuple[str, ...]:
        """The model names, in config order."""
        return tuple(model.name for model in self.models)

    def get(self, name: str) -> ModelConfig | None:
        """The config of model `name`, or None."""
        return next((model for model in self.models if model.name == name), None)


def base_path_model(base_path: str, name: str) -> ModelConfig:
    """The config of sub-directory `name` of a `--model_base_path`: newest version, no labels."""
    return ModelConfig(name=name, base_path=posixpath.join(base_path, name))


def parse_model_config(text: str, source: str = "model config") -> ModelConfigList:
    """Parses a text-format `tensorflow.serving.ModelServerConfig` (see the module docstring).

    Args:
      text: The file's contents.
      source: What to call it in error messages (e.g. the file's path).

    Raises:
      ValueError: The text does not parse, or the config is invalid (the message names the
        model and the field, and how to fix it).
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    proto = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as e:
        raise ValueError(
            f"{source} is not a text-format tensorflow.serving.ModelServerConfig: {e}; see {_DOCS}"
        ) from None
    return from_proto(proto, source)


def read_model_config_file(path: str) -> ModelConfigList:
    """Reads and parses the `--model_config_file` at `path` (local or e.g. `gs://`).

    Raises:
      FileNotFoundError: No file at `path`.
      ValueError: As `parse_model_config`.
    """
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"model config file {path!r} does not exist; pass the path of a text-format "
            f"ModelServerConfig (see {_DOCS})"
        )
    with tf.io.gfile.GFile(path, "r") as f:
        return parse_model_config(f.read(), source=path)


def from_proto(
    proto: model_server_config_pb2.ModelServerConfig, source: str = "model config"
) -> ModelConfigList:
    """Validates a `ModelServerConfig` proto and returns it as a `ModelConfigList`.

    Raises:
      ValueError: See `parse_model_config`.
    """
    which = proto.WhichOneof("config")
    if which == "custom_model_config":
        raise ValueError(
            f"{source} sets custom_model_config, which this server does not support; list the "
            "models in model_config_list { config { ... } }"
        )
    if which != "model_config_list":
        raise ValueError(
            f"{source} has no model_config_list; add model_config_list {{ config {{ name: ... "
            f"base_path: ... model_platform: {TENSORFLOW_PLATFORM!r} }} }}"
        )
    models = []
    for index, entry in enumerate(proto.model_config_list.config):
        where = f"{source}: model_config_list.config[{index}] ({entry.name or 'no name'})"
        try:
            models.append(_model_from_proto(entry))
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    return ModelConfigList(tuple(models))


def _model_from_proto(entry: model_server_config_pb2.ModelConfig) -> ModelConfig:
    check_model_name(entry.name)
    _check_platform(entry)
    if entry.HasField("logging_config"):
        raise ValueError(
            "logging_config (request logging) is not supported by this server; remove it"
        )
    base_path = entry.base_path
    if base_path and not (posixpath.isabs(base_path) or "://" in base_path):
        raise ValueError(
            f"Expected model {entry.name} to have an absolute path or URI; got "
            f"base_path()={base_path}; use e.g. /models/{entry.name} or gs://bucket/{entry.name}"
        )
    return ModelConfig(
        name=entry.name,
        base_path=base_path,
        version_policy=_policy_from_proto(entry),
        version_labels=dict(entry.version_labels),
    )


def _check_platform(entry: model_server_config_pb2.ModelConfig) -> None:
    from tensorflow_serving.config import model_server_config_pb2

    if entry.model_type != model_server_config_pb2.MODEL_TYPE_UNSPECIFIED:
        if entry.model_platform:
            raise ValueError(
                "Illegal setting both ModelServerConfig::model_type (deprecated) and "
                "ModelServerConfig::model_platform; keep only model_platform"
            )
        if entry.model_type != model_server_config_pb2.TENSORFLOW:
            raise ValueError(
                f"model_type {model_server_config_pb2.ModelType.Name(entry.model_type)} is not "
                f"supported; use model_platform: {TENSORFLOW_PLATFORM!r}"
            )
        return
    if not entry.model_platform:
        raise ValueError(
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            f"ModelServerConfig::model_platform; add model_platform: {TENSORFLOW_PLATFORM!r}"
        )
    if entry.model_platform != TENSORFLOW_PLATFORM:
        raise ValueError(
            f"Model {entry.name} requests unsupported platform {entry.model_platform}; this "
            f"server loads SavedModels only: use model_platform: {TENSORFLOW_PLATFORM!r}"
        )


def _policy_from_proto(entry: model_server_config_pb2.ModelConfig) -> VersionPolicy:
    policy = entry.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return AllVersions()
    if choice == "specific":
        return SpecificVersions(tuple(policy.specific.versions))
    # As in TF Serving, an unset policy and num_versions 0 both mean the newest version.
    return LatestVersions(max(policy.latest.num_versions, 1))
