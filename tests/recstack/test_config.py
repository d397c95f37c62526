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
