import logging
import os
import shutil
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from serving_toy_models import MODEL_NO_TITLES, MODEL_NO_VERSIONS, save_toy_model
from tensorflow.core.framework import types_pb2

from recstack import features
from serving.model_config import (
    AllVersions,
    LatestVersions,
    ModelConfig,
    ModelConfigList,
    SpecificVersions,
)
from serving.registry import ModelNotFoundError, ModelRegistry, ReloadError, check_model_name


def test_loads_newest_numeric_version_of_each_model(registry):
    assert registry.names == (MODEL_NO_TITLES, features.MODEL_RETRIEVAL)
    model = registry.get(features.MODEL_RETRIEVAL)
    assert (model.name, model.version) == (features.MODEL_RETRIEVAL, 2)
    assert model.path.endswith(os.path.join(features.MODEL_RETRIEVAL, "2"))
    assert registry.get(MODEL_NO_TITLES).version == 1


def test_keeps_signature_defs_from_saved_model_pb(registry):
    model = registry.get(features.MODEL_RETRIEVAL)
    signature = model.signature_defs[features.SERVING_SIGNATURE]
    user_id = signature.inputs[features.INPUT_USER_ID]
    assert user_id.dtype == types_pb2.DT_STRING
    assert [d.size for d in user_id.tensor_shape.dim] == [-1]
    assert set(signature.outputs) == {
        features.OUTPUT_ITEM_IDS,
        features.OUTPUT_SCORES,
        features.OUTPUT_TITLES,
    }
    assert signature.outputs[features.OUTPUT_SCORES].dtype == types_pb2.DT_FLOAT
    assert features.SERVING_SIGNATURE in model.signatures


def test_signature_callable_runs_the_newest_version(registry):
    model = registry.get(features.MODEL_RETRIEVAL)
    outputs = model.signatures[features.SERVING_SIGNATURE](user_id=tf.constant(["alice"]))
    # Version 2 offsets items by 2: alice (row 0) gets items 2..5.
    assert outputs[features.OUTPUT_ITEM_IDS].numpy()[0, 0] == b"item-2"


def test_model_dir_without_versions_is_logged_not_loaded(model_base, caplog):
    with caplog.at_level(logging.WARNING, logger="serving.registry"):
        registry = ModelRegistry(model_base)
    assert MODEL_NO_VERSIONS not in registry.names
    assert any(MODEL_NO_VERSIONS in r.getMessage() for r in caplog.records)


def test_unknown_model_or_version_raises_tf_serving_message(registry):
    with pytest.raises(ModelNotFoundError) as info:
        registry.get("nope")
    assert str(info.value) == "Servable not found for request: Latest(nope)"
    assert info.value.available == registry.names
    with pytest.raises(
        ModelNotFoundError, match=r"^Servable not found .*Specific\(retrieval, 1\)$"
    ):
        registry.get(features.MODEL_RETRIEVAL, version=1)
    assert registry.get(features.MODEL_RETRIEVAL, version=2).version == 2


@pytest.mark.parametrize("name", ["../retrieval", "..", "a/b", "a\\b", "", ".", "x\0y"])
def test_path_escaping_names_are_rejected(registry, name):
    with pytest.raises(ValueError, match="not a plain directory name"):
        check_model_name(name)
    with pytest.raises(ModelNotFoundError, match="not a plain directory name"):
        registry.get(name)


def test_plain_names_are_accepted():
    for name in ("retrieval", "my-model_2", "v1.5"):
        check_model_name(name)


def test_missing_base_path_names_it(tmp_path):
    missing = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="missing"):
        ModelRegistry(missing)


def test_base_path_without_models_is_an_error(tmp_path):
    os.makedirs(tmp_path / "model" / "latest")
    with pytest.raises(ValueError, match="no model under"):
        ModelRegistry(str(tmp_path))


def test_version_without_saved_model_pb_is_an_error(tmp_path):
    os.makedirs(tmp_path / "model" / "3" / "variables")
    with pytest.raises(FileNotFoundError, match=r"version 3: .*saved_model\.pb does not exist"):
        ModelRegistry(str(tmp_path))


def test_numeric_versions_compare_as_numbers(tmp_path):
    save_toy_model(str(tmp_path / "m" / "9"), version=9)
    save_toy_model(str(tmp_path / "m" / "0010"), version=10)  # Zero-padded, as some exporters do.
    model = ModelRegistry(str(tmp_path)).get("m")
    assert model.version == 10
    assert model.path.endswith("0010")
    outputs = model.signatures[features.SERVING_SIGNATURE](user_id=tf.constant(["alice"]))
    np.testing.assert_array_equal(outputs[features.OUTPUT_ITEM_IDS].numpy()[0, 0], b"item-3")


# --- Version policies, labels, polling and reloads -------------------------------------------


def served(registry, name="m"):
    """The available versions of `name`, newest first."""
    return sorted(registry.versions(name).available, reverse=True)


def first_item(model):
    """The toy model's first item for alice: item-<its baked-in version>."""
    outputs = model.signatures[features.SERVING_SIGNATURE](user_id=tf.constant(["alice"]))
    return outputs[features.OUTPUT_ITEM_IDS].numpy()[0, 0].decode()


def one_model(base_path, policy=None, labels=None, name="m"):
    return ModelConfigList(
        (ModelConfig(name, str(base_path), policy or LatestVersions(), labels or {}),)
    )


@pytest.fixture
def three_versions(tmp_path, install_version):
    """Model `m` with versions 1, 2 and 3 under tmp_path/m."""
    for version in (1, 2, 3):
        install_version(str(tmp_path / "m"), version)
    return tmp_path / "m"


@pytest.mark.parametrize(
    ("policy", "versions"),
    [
        (LatestVersions(1), [3]),
        (LatestVersions(2), [3, 2]),
        (AllVersions(), [3, 2, 1]),
        (SpecificVersions((1, 3)), [3, 1]),
    ],
)
def test_policy_decides_the_served_versions(three_versions, policy, versions):
    registry = ModelRegistry(config=one_model(three_versions, policy))
    assert registry.names == ("m",)
    assert served(registry) == versions
    assert registry.get("m").version == versions[0]
    for version in versions:
        # Each version runs its own SavedModel: the toy model offsets items by its version.
        assert first_item(registry.get("m", version)) == f"item-{version}"
    for version in {1, 2, 3} - set(versions):
        with pytest.raises(ModelNotFoundError, match=rf"^.*Specific\(m, {version}\)$"):
            registry.get("m", version)


def test_labels_resolve_to_their_versions(three_versions):
    labels = {"stable": 1, "canary": 3}
    registry = ModelRegistry(config=one_model(three_versions, AllVersions(), labels))
    assert registry.get("m", label="stable").version == 1
    assert first_item(registry.get("m", label="canary")) == "item-3"
    assert registry.version_for_label("m", "stable") == 1
    with pytest.raises(ModelNotFoundError) as info:
        registry.get("m", label="beta")
    assert str(info.value).startswith("Unrecognized servable version label: beta (")
    assert "['canary', 'stable']" in str(info.value)
    assert info.value.label == "beta"
    with pytest.raises(ModelNotFoundError, match="^Unrecognized servable version label: stable"):
        registry.get("other", label="stable")
    with pytest.raises(ValueError, match="not both"):
        registry.get("m", version=1, label="stable")


def test_label_on_a_version_that_did_not_load_fails_at_start(three_versions):
    with pytest.raises(ValueError, match=r"label 'old' of model 'm' points at version 1, which"):
        ModelRegistry(config=one_model(three_versions, LatestVersions(2), {"old": 1}))


def test_configured_model_without_versions_fails_at_start(tmp_path, three_versions):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"model 'empty' has no version under .* policy latest"):
        ModelRegistry(config=one_model(tmp_path / "empty", name="empty"))
    with pytest.raises(FileNotFoundError, match=r"model 'missing' base path .*missing"):
        ModelRegistry(config=one_model(tmp_path / "missing", name="missing"))


def test_registry_needs_exactly_one_source(tmp_path):
    with pytest.raises(ValueError, match="exactly one of base_path"):
        ModelRegistry()
    with pytest.raises(ValueError, match="exactly one of base_path"):
        ModelRegistry(str(tmp_path), config=ModelConfigList())


def test_poll_swaps_in_a_new_version_and_unloads_the_old_one(three_versions, install_version):
    registry = ModelRegistry(config=one_model(three_versions))
    names_seen = []
    registry.subscribe(names_seen.append)
    held = registry.get("m")  # As an in-flight request would hold it.
    assert registry.poll() is False

    install_version(str(three_versions), 4)
    assert registry.poll() is True
    assert served(registry) == [4]
    assert first_item(registry.get("m")) == "item-4"
    with pytest.raises(ModelNotFoundError, match=r"Specific\(m, 3\)"):
        registry.get("m", 3)
    assert first_item(held) == "item-3"  # The unloaded version still answers its holder.
    assert names_seen == [("m",), ("m",)]  # On subscribing, then after the swap.
    assert registry.poll() is False
    assert len(names_seen) == 2


def test_removed_version_directory_is_unloaded(three_versions):
    registry = ModelRegistry(config=one_model(three_versions, LatestVersions(2)))
    shutil.rmtree(three_versions / "3")
    assert registry.poll() is True
    assert served(registry) == [2, 1]


def test_failed_version_is_reported_older_ones_keep_serving_and_it_is_retried_when_fixed(
    three_versions, install_version, caplog
):
    registry = ModelRegistry(config=one_model(three_versions, LatestVersions(2)))
    install_version(str(three_versions), 4, broken=True)
    with caplog.at_level(logging.ERROR, logger="serving.registry"):
        assert registry.poll() is True
    assert any("version 4" in r.getMessage() for r in caplog.records)

    # latest {num_versions: 2} skips the broken version: 3 and 2 keep serving.
    versions = registry.versions("m")
    assert sorted(versions.available, reverse=True) == [3, 2]
    failure = versions.failed[4]
    assert failure.error_code == "INVALID_ARGUMENT"
    assert "saved_model.pb is not a SavedModel" in failure.error_message
    assert registry.get("m").version == 3
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="serving.registry"):
        assert registry.poll() is False  # Unchanged directory: not tried again.
    assert not caplog.records

    shutil.rmtree(three_versions / "4")
    install_version(str(three_versions), 4)
    assert registry.poll() is True
    assert served(registry) == [4, 3]
    assert registry.versions("m").failed == {}


def test_base_path_mode_discovers_and_drops_models(tmp_path, install_version):
    install_version(str(tmp_path / "a"), 1)
    registry = ModelRegistry(str(tmp_path))
    assert registry.names == ("a",)
    install_version(str(tmp_path / "b"), 5)
    assert registry.poll() is True
    assert registry.names == ("a", "b")
    assert registry.get("b").version == 5
    shutil.rmtree(tmp_path / "a")
    assert registry.poll() is True
    assert registry.names == ("b",)
    with pytest.raises(ModelNotFoundError, match=r"Latest\(a\)"):
        registry.get("a")


def test_reload_adds_and_removes_models_and_keeps_loaded_versions(
    tmp_path, three_versions, install_version
):
    install_version(str(tmp_path / "other"), 7)
    registry = ModelRegistry(config=one_model(three_versions))
    kept = registry.get("m", 3)
    other = ModelConfig("other", str(tmp_path / "other"))
    m_all = ModelConfig("m", str(three_versions), AllVersions(), {"stable": 2})

    registry.reload(ModelConfigList((m_all, other)))
    assert registry.names == ("m", "other")
    assert served(registry) == [3, 2, 1]
    assert registry.get("m", 3) is kept  # Not loaded again.
    assert registry.get("m", label="stable").version == 2
    assert registry.get("other").version == 7

    registry.reload(ModelConfigList((other,)))
    assert registry.names == ("other",)
    with pytest.raises(ModelNotFoundError):
        registry.get("m")


@pytest.mark.parametrize(
    ("config", "code", "message"),
    [
        (
            lambda base: ModelConfigList((ModelConfig("m", base, LatestVersions(), {"x": 1}),)),
            "FAILED_PRECONDITION",
            r"^Request to assign label to version 1 of model m, which is not currently available",
        ),
        (
            lambda base: ModelConfigList((ModelConfig("ghost", base + "/nothing-here"),)),
            "UNKNOWN",
            r"^1 model\(s\) did not become available: \{\{name: ghost due to error",
        ),
    ],
)
def test_reload_that_cannot_serve_keeps_the_old_config(three_versions, config, code, message):
    registry = ModelRegistry(config=one_model(three_versions, SpecificVersions((2,))))
    before = registry.config
    with pytest.raises(ReloadError, match=message) as info:
        registry.reload(config(str(three_versions)))
    assert info.value.code == code
    assert registry.config == before
    assert served(registry) == [2]


def test_reload_that_fails_to_load_reports_the_load_error(tmp_path, install_version):
    install_version(str(tmp_path / "good"), 1)
    install_version(str(tmp_path / "bad"), 1, broken=True)
    registry = ModelRegistry(config=one_model(tmp_path / "good", name="good"))
    with pytest.raises(ReloadError, match=r"bad due to error: version 1: INVALID_ARGUMENT: "):
        registry.reload(one_model(tmp_path / "bad", name="bad"))
    assert registry.names == ("good",)


def test_gets_during_polls_always_see_a_complete_model(three_versions, install_version):
    registry = ModelRegistry(config=one_model(three_versions))
    stop, seen, errors = threading.Event(), set(), []

    def reader():
        while not stop.is_set():
            try:
                model = registry.get("m")
                assert first_item(model) == f"item-{model.version}"
                seen.add(model.version)
            except (AssertionError, LookupError, tf.errors.OpError) as e:
                errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for version in (4, 5):
            install_version(str(three_versions), version)
            registry.poll()
        deadline = time.monotonic() + 30
        while 5 not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert served(registry) == [5]
    assert 5 in seen
