import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from serving_toy_models import MODEL_NO_TITLES, MODEL_NO_VERSIONS, save_toy_model
from tensorflow.core.framework import types_pb2

from recstack import features
from serving.registry import ModelNotFoundError, ModelRegistry, check_model_name


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
