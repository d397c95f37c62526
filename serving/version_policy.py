"""Which versions of a model to serve: TF Serving's `ServableVersionPolicy`.

A model's config (`serving.model_config.ModelConfig`) carries one policy; the registry asks it
which of the version numbers found under the model's base path to load:

- `LatestVersions(n)` (`latest { num_versions: n }`, TF Serving's default): the n highest
  version numbers (in a config file, 0 counts as 1, as in TF Serving).
- `AllVersions()` (`all {}`): every version.
- `SpecificVersions((3, 4))` (`specific { versions: 3 versions: 4 }`): the listed ones that
  exist.

`VersionPolicy` is the union of the three; `str(policy)` is its text-format spelling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True)
class LatestVersions:
    """Serve the `num_versions` highest version numbers (TF Serving's default policy).

    Attributes:
      num_versions: How many versions to serve; at least 1.
    """

    num_versions: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.num_versions, bool) or not isinstance(self.num_versions, int):
            raise TypeError(f"num_versions={self.num_versions!r} must be an integer")
        if self.num_versions < 1:
            raise ValueError(f"num_versions={self.num_versions} must be at least 1")

    def select(self, versions: Iterable[int]) -> tuple[int, ...]:
        """The versions to serve out of `versions`, newest first."""
        return tuple(sorted(set(versions), reverse=True)[: self.num_versions])

    def __str__(self) -> str:
        return f"latest {{num_versions: {self.num_versions}}}"


@dataclasses.dataclass(frozen=True)
class AllVersions:
    """Serve every version found under the model's base path."""

    def select(self, versions: Iterable[int]) -> tuple[int, ...]:
        """All of `versions`, newest first."""
        return tuple(sorted(set(versions), reverse=True))

    def __str__(self) -> str:
        return "all {}"


@dataclasses.dataclass(frozen=True)
class SpecificVersions:
    """Serve exactly the listed versions (those that exist).

    Attributes:
      versions: Version numbers to serve, each >= 0, no duplicates; kept sorted.
    """

    versions: tuple[int, ...]

    def __post_init__(self) -> None:
        versions = tuple(self.versions)
        if not versions:
            raise ValueError(
                "specific {} lists no versions; add e.g. `versions: 1`, or use latest {} or all {}"
            )
        for version in versions:
            if isinstance(version, bool) or not isinstance(version, int) or version < 0:
                raise ValueError(f"specific version {version!r} must be an integer >= 0")
        duplicates = sorted({v for v in versions if versions.count(v) > 1})
        if duplicates:
            raise ValueError(f"specific versions {list(versions)} list {duplicates} twice")
        object.__setattr__(self, "versions", tuple(sorted(versions)))

    def select(self, versions: Iterable[int]) -> tuple[int, ...]:
        """The listed versions found in `versions`, newest first."""
        return tuple(sorted(set(versions) & set(self.versions), reverse=True))

    def __str__(self) -> str:
        return f"specific {{versions: {list(self.versions)}}}"


VersionPolicy = LatestVersions | AllVersions | SpecificVersions
