"""Settings: defaults, config file, environment and flags, in that order of precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatchd.config import Settings, load_settings


def test_defaults_match_rabbitmq_negotiation() -> None:
    settings = load_settings([], environ={})
    assert settings == Settings()
    assert (settings.bind, settings.port) == ("127.0.0.1,::1", 5672)
    assert (settings.frame_max, settings.channel_max, settings.heartbeat) == (131072, 2047, 60)


def test_precedence_file_env_flag(tmp_path: Path) -> None:
    config = tmp_path / "d.toml"
    config.write_text('port = 1111\ndata-dir = "/from/file"\nheartbeat = 5\n')
    env = {"DISPATCHD_PORT": "2222", "DISPATCHD_CONFIG": str(config)}
    settings = load_settings(["--port", "3333", "--log-level", "debug"], environ=env)
    assert settings.port == 3333  # flag beats env beats file
    assert settings.data_dir == "/from/file"
    assert settings.heartbeat == 5
    assert settings.log_level == "debug"
    assert load_settings([], environ=env).port == 2222


def test_operator_flag_names_exist() -> None:
    settings = load_settings(
        [
            "--bind",
            "0.0.0.0",
            "--port",
            "1",
            "--data-dir",
            "x",
            "--admin-port",
            "2",
            "--log-level",
            "error",
        ],
        environ={},
    )
    assert (settings.bind, settings.port, settings.data_dir, settings.admin_port) == (
        "0.0.0.0",
        1,
        "x",
        2,
    )


def test_bad_values_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="invalid value 'abc' for --port"):
        load_settings(["--port", "abc"], environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("nonsense = 1\n")
    with pytest.raises(SystemExit, match="unknown setting 'nonsense'"):
        load_settings(["--config", str(bad)], environ={})
    with pytest.raises(SystemExit, match="--login-session-timeout must be more than 0"):
        load_settings([], environ={"DISPATCHD_LOGIN_SESSION_TIMEOUT": "0"})
