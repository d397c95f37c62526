import dataclasses

import pytest

from serving.config import ServeConfig, format_address


def test_defaults_match_tf_serving_grpc_port():
    config = ServeConfig()
    assert (config.port, config.host, config.max_workers) == (8500, "0.0.0.0", 8)
    assert config.address == "0.0.0.0:8500"
    assert config.max_message_bytes == 64 * 1024 * 1024


def test_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ServeConfig().port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"port": -1}, ValueError, "port=-1"),
        ({"port": 65536}, ValueError, "port=65536"),
        ({"port": True}, TypeError, "port=True"),
        ({"port": "8500"}, TypeError, "port='8500'"),
        ({"host": " "}, ValueError, "host=' '"),
        ({"max_workers": 0}, ValueError, "max_workers=0"),
        ({"grace_seconds": -1.0}, ValueError, "grace_seconds=-1.0"),
        ({"grace_seconds": float("nan")}, ValueError, "grace_seconds=nan"),
        ({"grace_seconds": "5"}, TypeError, "grace_seconds='5'"),
        ({"max_message_mb": 0}, ValueError, "max_message_mb=0"),
        ({"max_message_mb": 4096}, ValueError, "max_message_mb=4096"),
    ],
)
def test_rejects_bad_values_naming_them(kwargs, error, names):
    with pytest.raises(error, match=names.replace("(", r"\(").replace(".", r"\.")):
        ServeConfig(**kwargs)


def test_accepts_edge_values():
    config = ServeConfig(port=0, grace_seconds=0, max_message_mb=2047, max_workers=1)
    assert config.port == 0


def test_ipv6_addresses_are_bracketed():
    assert ServeConfig(host="::", port=9000).address == "[::]:9000"
    assert format_address("[::1]", 1) == "[::1]:1"
    assert format_address("localhost", 0) == "localhost:0"
