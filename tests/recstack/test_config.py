"""YAML -> frozen dataclass loading."""

import dataclasses

import pytest

from recstack.config import DEFAULT_CONFIG, load_section


@dataclasses.dataclass(frozen=True)
class Example:
    size: int = 1
    name: str = "x"
    ks: tuple[int, ...] = (1,)


def test_section_values_overrides_and_lists(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("part:\n  size: 5\n  ks: [3, 4]\n")
    loaded = load_section(str(path), "part", Example, name="y", size=None)
    assert loaded == Example(size=5, name="y", ks=(3, 4))
    assert load_section(str(path), "absent", Example) == Example()


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("part:\n  sise: 5\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['sise'\].*'size'"):
        load_section(str(path), "part", Example)


def test_default_config_loads_every_stage():
    from beam_jobs.config import IngestConfig
    from recstack.synthetic import SyntheticConfig
    from serving.config import ServeConfig
    from trainer.config import TrainConfig
    from trainer.export import ExportConfig

    for section, cls in (("generate", SyntheticConfig), ("ingest", IngestConfig),
                         ("train", TrainConfig), ("export", ExportConfig),
                         ("serve", ServeConfig)):  # fmt: skip
        assert isinstance(load_section(DEFAULT_CONFIG, section, cls), cls)


def test_assignments_address_nested_sections_and_parse_values_as_yaml(tmp_path):
    from trainer.config import TrainConfig

    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\n  text:\n    mode: frozen\n    max_length: 32\n")
    sets = ["text.max_length=16", "ranking.weight=0.5", "eval_ks=[5, 20]", "logq_correction=no"]
    config = load_section(str(path), "train", TrainConfig, sets, epochs=7)
    assert config.epochs == 7  # Explicit overrides win over assignments and the file.
    assert (config.text.mode, config.text.max_length) == ("frozen", 16)  # Merged, not replaced.
    assert config.ranking.weight == 0.5 and config.eval_ks == (5, 20)
    assert config.logq_correction is False
    with pytest.raises(ValueError, match=r"KEY=VALUE"):
        load_section(str(path), "train", TrainConfig, ["text.mode"])
    with pytest.raises(ValueError, match=r"text: unknown key\(s\) \['mdoe'\]"):
        load_section(str(path), "train", TrainConfig, ["text.mdoe=full"])
    with pytest.raises(ValueError, match="text.mode='fancy'"):
        load_section(str(path), "train", TrainConfig, ["text.mode=fancy"])


def test_parse_assignments_and_merge_leave_their_inputs_alone():
    from recstack.config import merge, parse_assignments

    base = {"a": {"b": 1, "c": 2}, "d": 3}
    updates = parse_assignments(["a.b=10", "e=x"])
    assert updates == {"a": {"b": 10}, "e": "x"}
    assert merge(base, updates) == {"a": {"b": 10, "c": 2}, "d": 3, "e": "x"}
    assert base == {"a": {"b": 1, "c": 2}, "d": 3}
    with pytest.raises(ValueError, match="set to a value before"):
        parse_assignments(["a=1", "a.b=2"])
