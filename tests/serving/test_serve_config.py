import dataclasses

import pytest

from recstack.cli import build_parser, main
from serving import server
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
        ({"file_system_poll_wait_seconds": -0.5}, ValueError, "file_system_poll_wait_seconds=-0.5"),
        ({"file_system_poll_wait_seconds": float("inf")}, ValueError, "wait_seconds=inf"),
        ({"file_system_poll_wait_seconds": "1"}, TypeError, "file_system_poll_wait_seconds='1'"),
        ({"file_system_poll_wait_seconds": True}, TypeError, "file_system_poll_wait_seconds=True"),
        ({"model_config_file": None}, TypeError, "model_config_file=None"),
    ],
)
def test_rejects_bad_values_naming_them(kwargs, error, names):
    with pytest.raises(error, match=names.replace("(", r"\(").replace(".", r"\.")):
        ServeConfig(**kwargs)


def test_accepts_edge_values():
    config = ServeConfig(port=0, grace_seconds=0, max_message_mb=2047, max_workers=1)
    assert config.port == 0
    assert ServeConfig(file_system_poll_wait_seconds=0).file_system_poll_wait_seconds == 0


def test_model_defaults_poll_every_second_like_tf_serving():
    config = ServeConfig()
    assert (config.model_config_file, config.file_system_poll_wait_seconds) == ("", 1.0)


@pytest.mark.parametrize(
    ("argv", "base_path", "config_file", "poll"),
    [
        (["--model-base-path", "/m"], "/m", None, None),
        (["--model_base_path", "/m", "--file-system-poll-wait-seconds", "0"], "/m", None, 0.0),
        (["--model_config_file", "/c.txt"], None, "/c.txt", None),
        (["--model-config-file", "/c.txt", "--file_system_poll_wait_seconds", "2.5"], None,
         "/c.txt", 2.5),
    ],
)  # fmt: skip
def test_serve_command_takes_a_base_path_or_a_config_file(argv, base_path, config_file, poll):
    args = build_parser().parse_args(["serve", *argv])
    assert (args.model_base_path, args.model_config_file) == (base_path, config_file)
    assert args.file_system_poll_wait_seconds == poll


@pytest.mark.parametrize("argv", [[], ["--model-base-path", "/m", "--model_config_file", "/c.txt"]])
def test_serve_command_needs_exactly_one_model_source(argv, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", *argv])
    assert "--model_config_file" in capsys.readouterr().err


def test_ipv6_addresses_are_bracketed():
    assert ServeConfig(host="::", port=9000).address == "[::]:9000"
    assert format_address("[::1]", 1) == "[::1]:1"
    assert format_address("localhost", 0) == "localhost:0"


def test_serve_command_passes_the_model_source_and_poll_period(monkeypatch):
    calls = []
    monkeypatch.setattr(server, "serve", lambda *args: calls.append(args))
    main(["serve", "--model_config_file", "/c.txt", "--file-system-poll-wait-seconds", "0.5"])
    main(["serve", "--model-base-path", "/models"])
    (base_a, config_a), (base_b, config_b) = calls
    assert (base_a, config_a.model_config_file) == ("", "/c.txt")
    assert config_a.file_system_poll_wait_seconds == 0.5
    assert (base_b, config_b.model_config_file) == ("/models", "")
