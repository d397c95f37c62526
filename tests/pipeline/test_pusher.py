"""Tests of the Pusher on fake exported models: next version, metadata, lineage, atomicity."""

import json
import os

import pytest

from pipeline import pusher
from recstack import features as F

MODELS = ("retrieval", "ranking", "recommender")


def make_version(directory, name, version, metadata=True):
    """A fake SavedModel version directory: a few small files, one nested."""
    os.makedirs(os.path.join(directory, "variables"))
    os.makedirs(os.path.join(directory, "assets"))  # empty directories are copied too
    with open(os.path.join(directory, "saved_model.pb"), "wb") as f:
        f.write(f"graph of {name} v{version}".encode())
    with open(os.path.join(directory, "variables", "variables.index"), "wb") as f:
        f.write(bytes(range(7)))
    if metadata:
        with open(os.path.join(directory, F.EXPORT_METADATA_FILE), "w") as f:
            json.dump({"model": name, "version": version, "k": 10}, f)


def make_artifact(root, versions=(1, 2), models=MODELS, metadata=True):
    """A Trainer artifact exporting `versions` of each of `models`."""
    for name in models:
        for version in versions:
            make_version(os.path.join(root, "serving", name, str(version)), name, version,
                         metadata)  # fmt: skip
    return str(root)


def tree(directory):
    """`{relative path: bytes}` of the files under `directory`, plus its empty directories."""
    found = {}
    for current, dirs, names in os.walk(directory):
        relative = os.path.relpath(current, directory)
        if not dirs and not names:
            found[relative + "/"] = None
        for name in names:
            with open(os.path.join(current, name), "rb") as f:
                found[os.path.normpath(os.path.join(relative, name))] = f.read()
    return found


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# exported_versions


def test_exported_versions_are_the_newest_numerically(tmp_path):
    model_uri = make_artifact(tmp_path / "model", versions=(2, 9, 10))
    os.makedirs(tmp_path / "model" / "serving" / "retrieval" / "11-partial")
    found = pusher.exported_versions(model_uri)
    assert found == {name: os.path.join(model_uri, "serving", name, "10") for name in MODELS}


def test_exported_versions_lists_only_the_models_exported(tmp_path):
    model_uri = make_artifact(tmp_path / "model", models=("retrieval",))
    assert list(pusher.exported_versions(model_uri)) == ["retrieval"]


@pytest.mark.parametrize("layout", ["nothing", "no_versions"])
def test_exported_versions_fails_without_an_exported_model(tmp_path, layout):
    model_uri = tmp_path / "model"
    os.makedirs(model_uri / "run")
    if layout == "no_versions":
        os.makedirs(model_uri / "serving" / "retrieval" / "tmp")
    with pytest.raises(FileNotFoundError, match="holds no exported model under serving/"):
        pusher.exported_versions(str(model_uri))


# push


@pytest.fixture
def served(tmp_path):
    """A serving base path already holding retrieval 1 and 3 and ranking 7, plus junk."""
    base = tmp_path / "models"
    for name, version in (("retrieval", 1), ("retrieval", 3), ("ranking", 7)):
        make_version(str(base / name / str(version)), name, version)
    os.makedirs(base / "retrieval" / "backup")
    os.makedirs(base / "other-model" / "99")  # not a model this artifact pushes
    return str(base)


LINEAGE = {"run_id": "run-1", "code_version": "c0de", "data_fingerprint": "f00d"}


def test_push_copies_every_model_as_one_above_the_highest_version(tmp_path, served):
    model_uri = make_artifact(tmp_path / "model")
    result = pusher.push(model_uri, served, LINEAGE)
    assert result == {
        "version": 8,  # ranking's 7 is the highest of the pushed models
        "models": {name: os.path.join(served, name, "8") for name in MODELS},
    }
    assert sorted(os.listdir(os.path.join(served, "retrieval"))) == ["1", "3", "8", "backup"]
    assert sorted(os.listdir(os.path.join(served, "recommender"))) == ["8"]


def test_pushed_version_is_the_newest_export_with_rewritten_metadata(tmp_path, served):
    model_uri = make_artifact(tmp_path / "model")
    pusher.push(model_uri, served, LINEAGE)
    for name in MODELS:
        source = os.path.join(model_uri, "serving", name, "2")
        pushed = tree(os.path.join(served, name, "8"))
        expected = tree(source)
        assert pushed.pop(F.EXPORT_METADATA_FILE) != expected.pop(F.EXPORT_METADATA_FILE)
        pushed.pop(pusher.LINEAGE_FILE)
        assert pushed == expected  # every other file byte for byte, empty dirs included
        metadata = read_json(os.path.join(served, name, "8", F.EXPORT_METADATA_FILE))
        assert metadata == {"model": name, "version": 8, "k": 10, "pushed_from": source}


def test_push_leaves_the_trainer_artifact_untouched(tmp_path, served):
    model_uri = make_artifact(tmp_path / "model")
    before = tree(model_uri)
    pusher.push(model_uri, served, LINEAGE)
    assert tree(model_uri) == before


def test_push_writes_the_lineage_into_every_version(tmp_path, served):
    model_uri = make_artifact(tmp_path / "model")
    pusher.push(model_uri, served, LINEAGE)
    for name in MODELS:
        lineage = read_json(os.path.join(served, name, "8", pusher.LINEAGE_FILE))
        assert lineage == {**LINEAGE, "version": 8, "model": name}


def test_push_leaves_no_staging_directories(tmp_path, served):
    pusher.push(make_artifact(tmp_path / "model"), served, LINEAGE)
    leftovers = [d for _, dirs, _ in os.walk(served) for d in dirs if d.startswith(".tmp")]
    assert leftovers == []


def test_first_push_is_version_1_and_the_next_version_2(tmp_path):
    base = str(tmp_path / "models")  # does not exist yet
    first = pusher.push(make_artifact(tmp_path / "m1"), base, LINEAGE)
    second = pusher.push(make_artifact(tmp_path / "m2", versions=(1,)), base, LINEAGE)
    assert (first["version"], second["version"]) == (1, 2)
    for name in MODELS:
        assert sorted(os.listdir(os.path.join(base, name))) == ["1", "2"]
        with open(os.path.join(base, name, "2", "saved_model.pb"), "rb") as f:
            assert f.read() == f"graph of {name} v1".encode()  # m2's only version


def test_push_of_some_models_numbers_them_among_themselves(tmp_path, served):
    model_uri = make_artifact(tmp_path / "model", models=("retrieval", "recommender"))
    result = pusher.push(model_uri, served, LINEAGE)
    assert result["version"] == 4  # retrieval's 3; ranking is not pushed
    assert set(result["models"]) == {"retrieval", "recommender"}
    assert sorted(os.listdir(os.path.join(served, "ranking"))) == ["7"]


def test_push_without_export_metadata_adds_none(tmp_path):
    model_uri = make_artifact(tmp_path / "model", models=("ranking",), metadata=False)
    result = pusher.push(model_uri, str(tmp_path / "models"), LINEAGE)
    pushed = result["models"]["ranking"]
    assert sorted(os.listdir(pushed)) == sorted(
        ["assets", "saved_model.pb", "variables", pusher.LINEAGE_FILE]
    )


def test_push_without_an_exported_model_fails_and_writes_nothing(tmp_path):
    os.makedirs(tmp_path / "model" / "serving")
    with pytest.raises(FileNotFoundError, match="holds no exported model"):
        pusher.push(str(tmp_path / "model"), str(tmp_path / "models"), LINEAGE)
    assert not os.path.exists(tmp_path / "models")
