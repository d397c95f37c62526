"""Tests of IngestConfig validation."""

import pytest

from beam_jobs.config import IngestConfig
from recstack import config as config_lib


def test_defaults_are_valid():
    config = IngestConfig()
    assert config.eval_days == 7.0
    assert config.split_timestamp is None
    assert config.strict_catalog is True
    assert config.direct_num_workers == 2
    assert config.num_shards == 0


def test_yaml_values_build_the_config():
    config = config_lib.from_dict(
        IngestConfig, {"eval_days": 3, "split_timestamp": 1700000000, "num_shards": 4}
    )
    assert config == IngestConfig(eval_days=3, split_timestamp=1700000000, num_shards=4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eval_days": 0}, "eval_days=0 must be a positive"),
        ({"eval_days": -2.5}, "eval_days=-2.5 must be a positive"),
        ({"eval_days": float("nan")}, "eval_days=nan"),
        ({"eval_days": "7"}, "eval_days='7' is not a number"),
        ({"eval_days": True}, "eval_days=True is not a number"),
        ({"split_timestamp": -1}, "split_timestamp=-1 must be a non-negative integer"),
        ({"split_timestamp": 1.5}, "split_timestamp=1.5"),
        ({"strict_catalog": "yes"}, "strict_catalog='yes' must be true or false"),
        ({"direct_num_workers": 0}, "direct_num_workers=0 must be an integer >= 1"),
        ({"num_shards": -1}, "num_shards=-1 must be an integer >= 0"),
    ],
)
def test_invalid_values_are_named_in_the_error(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        IngestConfig(**kwargs)


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        IngestConfig().eval_days = 1.0  # type: ignore[misc]
