"""TF Serving's text-format ModelServerConfig: parsing, policies, labels and rejected configs."""

import dataclasses

import pytest

from serving.model_config import (
    AllVersions,
    LatestVersions,
    ModelConfig,
    ModelConfigList,
    SpecificVersions,
    base_path_model,
    parse_model_config,
    read_model_config_file,
)


def config_text(*entries: str) -> str:
    return "model_config_list {\n" + "".join(f"config {{ {e} }}\n" for e in entries) + "}"


def entry(name="m", base_path="/models/m", platform='model_platform: "tensorflow"', extra=""):
    return f'name: "{name}" base_path: "{base_path}" {platform} {extra}'


def test_parses_every_policy_with_labels():
    config = parse_model_config(
        config_text(
            entry(
                "a",
                "/models/a",
                extra="model_version_policy { latest { num_versions: 2 } } "
                'version_labels { key: "stable" value: 4 }',
            ),
            entry(
                "b",
                "gs://bucket/b",
                extra='model_version_policy { all {} } version_labels { key: "canary" value: 7 }',
            ),
            entry(
                "c",
                "/models/c",
                extra="model_version_policy { specific { versions: 3 "
                'versions: 1 } } version_labels { key: "stable" value: 1 } '
                'version_labels { key: "canary" value: 3 }',
            ),
        )  # fmt: skip
    )
    assert config.names == ("a", "b", "c")
    a, b, c = config.models
    assert a == ModelConfig("a", "/models/a", LatestVersions(2), {"stable": 4})
    assert b == ModelConfig("b", "gs://bucket/b", AllVersions(), {"canary": 7})
    assert c.version_policy == SpecificVersions((1, 3))
    assert dict(c.version_labels) == {"stable": 1, "canary": 3}
    assert config.get("b") is b
    assert config.get("nope") is None


@pytest.mark.parametrize(
    "policy", ["", "model_version_policy { latest {} }", "model_version_policy {}"]
)
def test_unset_policy_and_zero_num_versions_serve_the_newest_version(policy):
    (model,) = parse_model_config(config_text(entry(extra=policy))).models
    assert model.version_policy == LatestVersions(1)
    assert dict(model.version_labels) == {}


def test_deprecated_model_type_tensorflow_is_accepted():
    (model,) = parse_model_config(config_text(entry(platform="model_type: TENSORFLOW"))).models
    assert model.name == "m"


def test_policies_select_versions_newest_first():
    found = [3, 10, 1, 7]
    assert LatestVersions(1).select(found) == (10,)
    assert LatestVersions(2).select(found) == (10, 7)
    assert LatestVersions(9).select(found) == (10, 7, 3, 1)
    assert AllVersions().select(found) == (10, 7, 3, 1)
    assert SpecificVersions((1, 7, 8)).select(found) == (7, 1)
    assert LatestVersions(2).select([]) == ()


def test_base_path_mode_model_serves_the_newest_version_without_labels():
    model = base_path_model("/srv/models", "retrieval")
    assert model == ModelConfig("retrieval", "/srv/models/retrieval", LatestVersions(1), {})


def test_configs_are_frozen_and_labels_read_only():
    model = ModelConfig("m", "/models/m", AllVersions(), {"stable": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        model.version_labels["stable"] = 2  # type: ignore[index]


def test_empty_model_list_is_valid():
    assert parse_model_config("model_config_list {}").models == ()


LABEL = 'version_labels { key: "stable" value: 3 }'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (config_text(entry("a"), entry("a")), r"Illegal to list model a multiple times"),
        (config_text(entry("../etc")), r"'\.\./etc' is not a plain directory name"),
        (config_text(entry("")), r"config\[0\] \(no name\): model name '' is not a plain"),
        (config_text(entry(platform='model_platform: "pytorch"')),
         r"Model m requests unsupported platform pytorch; .*model_platform: 'tensorflow'"),
        (config_text(entry(platform="")), r"Illegal setting neither .*add model_platform"),
        (config_text(entry(platform='model_type: TENSORFLOW model_platform: "tensorflow"')),
         r"Illegal setting both"),
        (config_text(entry(platform="model_type: OTHER")), r"model_type OTHER is not supported"),
        (config_text(entry(base_path="models/m")),
         r"Expected model m to have an absolute path or URI; got base_path\(\)=models/m"),
        (config_text(entry(base_path="")), r"model 'm' has base_path=''"),
        (config_text(entry(extra="model_version_policy { specific {} }")),
         r"specific \{\} lists no versions"),
        (config_text(entry(extra="model_version_policy { specific { versions: 2 versions: 2 } }")),
         r"list \[2\] twice"),
        (config_text(entry(extra="model_version_policy { specific { versions: 1 } } " + LABEL)),
         r"label 'stable' of model 'm' points at version 3, which its policy specific "
         r"\{versions: \[1\]\} does not serve"),
        (config_text(entry(extra='version_labels { key: "" value: 1 }')),
         r"version label ''; labels are non-empty"),
        (config_text(entry(extra='logging_config { log_collector_config { type: "x" } }')),
         r"logging_config \(request logging\) is not supported"),
        ('custom_model_config { type_url: "x" }', r"custom_model_config, which this server does"),
        ("", r"has no model_config_list"),
        ("model_config_list { config { nme: 'm' } }", r"is not a text-format .*ModelServerConfig"),
    ],
)  # fmt: skip
def test_invalid_configs_are_rejected_with_their_reason(text, message):
    with pytest.raises(ValueError, match=message):
        parse_model_config(text, source="models.config")


def test_errors_name_the_source_and_the_entry():
    with pytest.raises(ValueError, match=r"^models\.config: model_config_list\.config\[1\] \(b\)"):
        parse_model_config(config_text(entry("a"), entry("b", platform="")), source="models.config")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_versions": 0}, "num_versions=0 must be at least 1"),
        ({"num_versions": True}, "num_versions=True must be an integer"),
    ],
)
def test_latest_policy_rejects_bad_counts(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        LatestVersions(**kwargs)


def test_specific_policy_rejects_negative_versions():
    with pytest.raises(ValueError, match="specific version -1 must be an integer >= 0"):
        SpecificVersions((-1,))


def test_model_config_list_rejects_duplicates_built_in_python():
    model = base_path_model("/m", "a")
    with pytest.raises(ValueError, match="Illegal to list model a multiple times"):
        ModelConfigList((model, model))


def test_reads_a_config_file(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(config_text(entry(extra="model_version_policy { all {} }")))
    (model,) = read_model_config_file(str(path)).models
    assert (model.name, model.version_policy) == ("m", AllVersions())


def test_missing_config_file_names_it(tmp_path):
    missing = str(tmp_path / "nope.config")
    with pytest.raises(FileNotFoundError, match="nope.config' does not exist"):
        read_model_config_file(missing)
