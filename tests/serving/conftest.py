"""Fixtures of the serving tests: a model base path of toy SavedModels and a live server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import grpc
import pytest
from serving_toy_models import MODEL_NO_TITLES, MODEL_NO_VERSIONS, save_toy_model

from recstack import features
from serving.config import ServeConfig
from serving.registry import ModelRegistry
from serving.server import ModelServer, create_server


@pytest.fixture(scope="session")
def model_base(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A model base path: retrieval v1 and v2 (+ a non-numeric dir), no_titles v1, and a model
    directory without versions."""
    base = tmp_path_factory.mktemp("models")
    save_toy_model(str(base / features.MODEL_RETRIEVAL / "1"), version=1)
    save_toy_model(str(base / features.MODEL_RETRIEVAL / "2"), version=2)
    os.makedirs(base / features.MODEL_RETRIEVAL / "not_a_version")
    save_toy_model(str(base / MODEL_NO_TITLES / "1"), version=1, with_titles=False)
    os.makedirs(base / MODEL_NO_VERSIONS / "latest")
    return str(base)


@pytest.fixture(scope="session")
def registry(model_base: str) -> ModelRegistry:
    return ModelRegistry(model_base)


@pytest.fixture(scope="session")
def server(registry: ModelRegistry) -> Iterator[ModelServer]:
    """The real server on a free localhost port, for the whole session."""
    running = create_server(registry, ServeConfig(port=0, host="localhost", max_workers=4))
    running.start()
    yield running
    running.stop(grace=1.0).wait()


@pytest.fixture(scope="session")
def target(server: ModelServer) -> str:
    return f"localhost:{server.port}"


@pytest.fixture
def channel(target: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(target) as ch:
        yield ch


def _install_version(model_dir: str, version: int, broken: bool = False) -> str:
    """Writes toy model `version` into `model_dir` as the exporter does: into a `.tmp-*`
    directory first, renamed into place when complete. `broken` writes a version directory
    whose `saved_model.pb` is not a SavedModel. Returns the version directory."""
    os.makedirs(model_dir, exist_ok=True)
    staging = os.path.join(model_dir, f".tmp-{version}")
    if broken:
        os.makedirs(os.path.join(staging, "variables"))
        with open(os.path.join(staging, "saved_model.pb"), "wb") as f:
            f.write(b"this is not a SavedModel")
    else:
        save_toy_model(staging, version=version)
    final = os.path.join(model_dir, str(version))
    os.rename(staging, final)
    return final


@pytest.fixture
def install_version():
    """`install_version(model_dir, version, broken=False)`: a version written as export does."""
    return _install_version
