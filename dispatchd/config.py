"""Broker settings: every knob has a flag, a DISPATCHD_* environment variable and a default.

Precedence, lowest first: built-in default, TOML config file (``--config``), environment,
command-line flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Settings:
    """The broker's effective configuration."""

    bind: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=5672, metadata={"help": "AMQP port"})
    data_dir: str = field(default="./dispatchd-data", metadata={"help": "data directory"})
    admin_port: int = field(default=15672, metadata={"help": "admin HTTP port (0 = off)"})
    login_session_timeout: int = field(
        default=480,
        metadata={"help": "minutes an unused admin page login lasts (RabbitMQ's default)"},
    )
    log_level: str = field(default="info", metadata={"help": "debug, info, warning, error"})
    frame_max: int = field(default=131072, metadata={"help": "largest frame offered in tune"})
    channel_max: int = field(default=2047, metadata={"help": "most channels per connection"})
    heartbeat: int = field(default=60, metadata={"help": "heartbeat offered in tune, seconds"})
    handshake_timeout: float = field(
        default=10.0, metadata={"help": "seconds a client has to finish the handshake"}
    )
    loopback_users: str = field(
        default="guest",
        metadata={"help": "users who may only connect from loopback (comma-separated; '' = none)"},
    )
    default_user: str = field(
        default="guest", metadata={"help": "user the first start creates, with full permissions"}
    )
    default_pass: str = field(default="guest", metadata={"help": "that user's password"})
    default_vhost: str = field(default="/", metadata={"help": "vhost the first start creates"})
    load_definitions: str = field(
        default="",
        metadata={
            "help": "definitions file (JSON, RabbitMQ's format) imported at every start; "
            "with it the first start creates no default user or vhost"
        },
    )
    queue_memory_limit: int = field(
        default=10_000,
        metadata={
            "help": "ready persistent messages a durable queue keeps in memory; "
            "the rest wait in the store"
        },
    )
    store: str = field(
        default="",
        metadata={"help": "database: '' = SQLite in the data dir, or a postgresql:// URL"},
    )
    config: str = field(default="", metadata={"help": "TOML file with any of these settings"})


def env_name(name: str) -> str:
    """The environment variable for a setting: ``data_dir`` -> ``DISPATCHD_DATA_DIR``."""
    return "DISPATCHD_" + name.upper()


def flag_name(name: str) -> str:
    """The command-line flag for a setting: ``data_dir`` -> ``--data-dir``."""
    return "--" + name.replace("_", "-")


def _coerce(f: dataclasses.Field[Any], value: Any, origin: str) -> Any:
    kind = type(f.default)
    try:
        if kind is bool:
            return str(value).lower() in ("1", "true", "yes", "on")
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"dispatchd: invalid value {value!r} for {origin}") from exc


def build_parser(prog: str = "dispatchd", add_help: bool = True) -> argparse.ArgumentParser:
    """The command-line parser, one flag per setting (no defaults: unset means 'not given')."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="AMQP 0-9-1 message broker built from Pykka actors.",
        add_help=add_help,
    )
    for f in dataclasses.fields(Settings):
        parser.add_argument(
            flag_name(f.name),
            dest=f.name,
            default=None,
            help=f"{f.metadata['help']} (env {env_name(f.name)}, default {f.default!r})",
        )
    return parser


def load_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Merge defaults, the config file, the environment and the flags into Settings."""
    return merge_settings(vars(build_parser().parse_args(argv)), environ)


def merge_settings(args: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from parsed flags (None: not given) over the environment, the config file
    and the defaults."""
    environ = os.environ if environ is None else environ
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    config_path = args.get("config") or environ.get(env_name("config"), "")
    if config_path:
        try:
            table = tomllib.loads(Path(config_path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SystemExit(f"dispatchd: cannot read config file {config_path}: {exc}") from exc
        for key, value in table.items():
            name = key.replace("-", "_")
            if name not in fields:
                raise SystemExit(f"dispatchd: unknown setting {key!r} in {config_path}")
            values[name] = _coerce(fields[name], value, f"{key} in {config_path}")
        values["config"] = config_path
    for name, f in fields.items():
        if env_name(name) in environ:
            values[name] = _coerce(f, environ[env_name(name)], env_name(name))
        if args.get(name) is not None:
            values[name] = _coerce(f, args[name], flag_name(name))
    settings = Settings(**values)
    _check_limits(settings)
    return settings


#: The negotiated limits' legal ranges (frame_max 0 means 'no limit', as in connection.tune).
LIMITS: dict[str, tuple[int, int]] = {
    "frame_max": (4096, 0xFFFFFFFF),
    "channel_max": (0, 0xFFFF),
    "heartbeat": (0, 0xFFFF),
}


def _check_limits(settings: Settings) -> None:
    for name, (low, high) in LIMITS.items():
        value = getattr(settings, name)
        if not (low <= value <= high or (name == "frame_max" and value == 0)):
            raise SystemExit(
                f"dispatchd: {flag_name(name)} must be between {low} and {high}, not {value}"
            )
    if settings.handshake_timeout <= 0:
        raise SystemExit("dispatchd: --handshake-timeout must be more than 0 seconds")
    if settings.login_session_timeout <= 0:
        raise SystemExit("dispatchd: --login-session-timeout must be more than 0 minutes")


def user_list(value: str) -> frozenset[str]:
    """A comma-separated list of user names (``loopback_users``) as a set; blanks ignored."""
    return frozenset(name.strip() for name in value.split(",") if name.strip())
