"""Tests of the pipeline's config: `PipelineConfig`, `EvaluatorConfig` and the settings file
every stage reads its section from."""

import json
import os

import pytest
import yaml

from beam_jobs.config import IngestConfig
from pipeline.config import EvaluatorConfig, PipelineConfig, load_pipeline_settings
from pipeline.schema import SchemaConfig

CONFIG = {
    "pipeline": {
        "name": "tiny-stack",
        "root": "out/root",
        "interactions": "raw/interactions.jsonl",
        "items": "gs://bucket/raw/items.jsonl",
        "serving_model_dir": "models",
        "beam_args": ["--direct_num_workers=2"],
    },
    "schema": {"max_domain_size": 20},
    "evaluator": {"ks": [5, 10], "metric": "recall@10", "thresholds": {"recall@5": 0.01}},
    "ingest": {"eval_days": 3},
    "train": {"epochs": 2, "text": {"mode": "none"}},
}


def write_config(tmp_path, config=None, name="pipeline.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config if config is not None else CONFIG))
    return str(path)


# PipelineConfig


@pytest.mark.parametrize("name", ["recstack", "rec-stack-2", "a", "2024-retrain"])
def test_pipeline_name_accepts_lower_case_digits_and_hyphens(name):
    assert PipelineConfig(name=name).name == name


@pytest.mark.parametrize("name", ["RecStack", "rec_stack", "rec stack", "rec.stack", "", "---"])
def test_pipeline_name_rejects_what_kfp_would(name):
    with pytest.raises(ValueError, match=r"pipeline\.name=.*ASCII letters, digits and '-'"):
        PipelineConfig(name=name)


@pytest.mark.parametrize("name", ["-recstack", "café", "a" * 129])
def test_pipeline_name_follows_the_kfp_rule_exactly(name):
    with pytest.raises(ValueError, match=r"pipeline\.name="):
        PipelineConfig(name=name)


def test_check_inputs_names_every_missing_setting():
    with pytest.raises(ValueError) as raised:
        PipelineConfig(interactions="logs/*.jsonl").check_inputs()
    message = str(raised.value)
    assert "pipeline.items, pipeline.serving_model_dir" in message
    assert "interactions" not in message
    assert "--set pipeline.KEY=VALUE" in message


def test_check_inputs_passes_without_the_optional_users_table():
    config = PipelineConfig(interactions="i.jsonl", items="c.jsonl", serving_model_dir="models")
    config.check_inputs()  # users is optional


def test_directories_live_under_the_root():
    config = PipelineConfig(root="/data/root")
    assert config.runs_dir == "/data/root/runs"
    assert config.cache_dir == "/data/root/cache"
    assert config.state_dir == "/data/root/state"
    assert config.stored_schema == "/data/root/state/schema.json"
    assert PipelineConfig(root="gs://bucket/root").runs_dir == "gs://bucket/root/runs"


def test_curated_schema_file_replaces_the_stored_one():
    config = PipelineConfig(root="/data/root", schema_file="/curated/schema.json")
    assert config.stored_schema == "/curated/schema.json"


# EvaluatorConfig


@pytest.mark.parametrize(
    ("ks", "metric"),
    [
        ((10, 50), "recall@10"),
        ((10, 50), "ndcg@50"),
        ((20,), "recall@20"),
        ((5,), "mrr"),
    ],  # fmt: skip
)
def test_evaluator_accepts_the_metrics_its_ks_define(ks, metric):
    assert EvaluatorConfig(ks=ks, metric=metric).metric == metric


def test_evaluator_rejects_a_metric_its_ks_do_not_define():
    with pytest.raises(ValueError) as raised:
        EvaluatorConfig(ks=(10, 50), metric="recall@20")
    message = str(raised.value)
    assert "unknown metric 'recall@20'" in message and "ks=[10, 50]" in message
    assert "'ndcg@10'" in message and "'mrr'" in message  # lists the valid names


def test_evaluator_rejects_an_unknown_threshold_metric():
    with pytest.raises(ValueError, match="unknown metric 'precision@10'"):
        EvaluatorConfig(thresholds={"recall@10": 0.1, "precision@10": 0.1})


@pytest.mark.parametrize("drop", [1.0, 1.5, -0.1])
def test_evaluator_rejects_a_relative_drop_outside_0_1(drop):
    with pytest.raises(ValueError, match=rf"max_relative_drop={drop}: use \[0, 1\)"):
        EvaluatorConfig(max_relative_drop=drop)


@pytest.mark.parametrize("drop", [0.0, 0.5, 0.99])
def test_evaluator_accepts_a_relative_drop_in_0_1(drop):
    assert EvaluatorConfig(max_relative_drop=drop).max_relative_drop == drop


# load_pipeline_settings


def test_sections_are_read_into_their_dataclasses(tmp_path):
    settings = load_pipeline_settings(write_config(tmp_path))
    evaluator = settings.section("evaluator")
    assert evaluator == EvaluatorConfig(ks=(5, 10), thresholds={"recall@5": 0.01})
    assert settings.section("schema") == SchemaConfig(max_domain_size=20)
    assert settings.section("ingest").eval_days == 3
    train = settings.section("train")
    assert train.epochs == 2 and train.text.mode == "none"
    assert settings.pipeline.name == "tiny-stack"
    assert settings.pipeline.beam_args == ("--direct_num_workers=2",)


def test_absent_sections_get_their_defaults(tmp_path):
    settings = load_pipeline_settings(write_config(tmp_path, {"pipeline": {"name": "x"}}))
    assert settings.section("ingest") == IngestConfig()
    assert settings.section("evaluator") == EvaluatorConfig()
    assert settings.pipeline.warm_start and settings.pipeline.enable_cache


def test_empty_file_gives_defaults_everywhere(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    settings = load_pipeline_settings(str(path), absolute=False)
    assert settings.pipeline == PipelineConfig()


def test_assignments_win_over_the_file(tmp_path):
    settings = load_pipeline_settings(
        write_config(tmp_path),
        ["train.epochs=7", "pipeline.warm_start=false", "evaluator.ks=[5, 20]",
         "evaluator.metric=ndcg@20", "pipeline.beam_args=[--a=1, --b=2]"],
    )  # fmt: skip
    assert settings.section("train").epochs == 7
    assert settings.section("train").text.mode == "none"  # the rest of the section is kept
    assert settings.pipeline.warm_start is False
    evaluator = settings.section("evaluator")
    assert evaluator.ks == (5, 20) and evaluator.metric == "ndcg@20"
    assert evaluator.thresholds == {"recall@5": 0.01}
    assert settings.pipeline.beam_args == ("--a=1", "--b=2")


def test_local_paths_become_absolute_and_gcs_paths_stay(tmp_path, monkeypatch):
    path = write_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    cwd = os.getcwd()
    config = load_pipeline_settings(path).pipeline
    assert config.root == os.path.join(cwd, "out", "root")
    assert config.interactions == os.path.join(cwd, "raw", "interactions.jsonl")
    assert config.serving_model_dir == os.path.join(cwd, "models")
    assert config.items == "gs://bucket/raw/items.jsonl"
    assert config.users == "" and config.schema_file == ""  # unset stays unset
    assert config.state_dir == os.path.join(cwd, "out", "root", "state")


def test_absolute_false_keeps_paths_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_pipeline_settings(write_config(tmp_path), absolute=False).pipeline
    assert config.root == "out/root"
    assert config.interactions == "raw/interactions.jsonl"


def test_unknown_pipeline_key_is_an_error_listing_the_valid_ones(tmp_path):
    config = {"pipeline": {**CONFIG["pipeline"], "interaction": "typo.jsonl"}}
    with pytest.raises(ValueError) as raised:
        load_pipeline_settings(write_config(tmp_path, config))
    message = str(raised.value)
    assert "pipeline: unknown key(s) ['interaction']" in message
    assert "'interactions'" in message


def test_unknown_stage_key_from_an_assignment_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"train: unknown key\(s\) \['epoch'\]"):
        load_pipeline_settings(write_config(tmp_path), ["train.epoch=3"])


def test_a_value_the_stage_rejects_fails_while_loading(tmp_path):
    with pytest.raises(ValueError, match="unknown metric 'recall@7'"):
        load_pipeline_settings(write_config(tmp_path), ["evaluator.metric=recall@7"])


def test_a_bad_pipeline_name_fails_while_loading(tmp_path):
    with pytest.raises(ValueError, match=r"pipeline\.name='Tiny_Stack'"):
        load_pipeline_settings(write_config(tmp_path), ["pipeline.name=Tiny_Stack"])


@pytest.mark.parametrize(
    ("config", "assignments"),
    [({**CONFIG, "trian": {"epochs": 1}}, []), (CONFIG, ["evaluater.metric=mrr"])],
)
def test_unknown_section_is_an_error(tmp_path, config, assignments):
    with pytest.raises(ValueError, match="trian|evaluater"):
        load_pipeline_settings(write_config(tmp_path, config), assignments)


# PipelineSettings


def test_section_json_is_canonical_whatever_the_key_order(tmp_path):
    reordered = {
        section: dict(reversed(list(values.items()))) for section, values in CONFIG.items()
    }
    first = load_pipeline_settings(write_config(tmp_path, CONFIG, "a.yaml"))
    second = load_pipeline_settings(write_config(tmp_path, reordered, "b.yaml"))
    for name in ("ingest", "schema", "validation", "train", "export", "evaluator", "vertex"):
        assert first.section_json(name) == second.section_json(name)
    assert json.loads(first.section_json("evaluator"))["ks"] == [5, 10]


def test_digest_is_stable_for_the_same_config(tmp_path):
    path = write_config(tmp_path)
    first, second = load_pipeline_settings(path), load_pipeline_settings(path)
    assert first.digest() == second.digest()
    assert first.digest("train") == second.digest("train")
    assert len(first.digest()) == 64 and int(first.digest(), 16) >= 0


def test_digest_follows_the_sections_it_covers(tmp_path):
    path = write_config(tmp_path)
    base = load_pipeline_settings(path)
    more_epochs = load_pipeline_settings(path, ["train.epochs=3"])
    assert more_epochs.digest() != base.digest()
    assert more_epochs.digest("train") != base.digest("train")
    assert more_epochs.digest("ingest") == base.digest("ingest")
    assert more_epochs.digest("ingest", "evaluator") == base.digest("ingest", "evaluator")


def test_pipeline_section_counts_only_in_the_full_digest(tmp_path):
    path = write_config(tmp_path)
    base = load_pipeline_settings(path)
    no_warm_start = load_pipeline_settings(path, ["pipeline.warm_start=false"])
    assert no_warm_start.digest() != base.digest()
    assert no_warm_start.digest(*base.sections) == base.digest(*base.sections)


def test_digests_of_different_sections_differ(tmp_path):
    settings = load_pipeline_settings(write_config(tmp_path))
    digests = {settings.digest(name) for name in settings.sections}
    assert len(digests) == len(settings.sections)
