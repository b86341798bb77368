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

from dispatchd.alarms import DiskLimit, MemoryWatermark
from dispatchd.store.batching import BATCH_BYTES, BATCH_ROWS
from dispatchd.wire.errors import MAX_MESSAGE_SIZE

DEFAULT_BIND = "127.0.0.1,::1"
"""Both loopback addresses: clients that resolve ``localhost`` to ::1 first find the broker."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The broker's effective configuration."""

    bind: str = field(
        default=DEFAULT_BIND,
        metadata={
            "help": "addresses every listener binds, comma-separated, IPv4 or IPv6 "
            "(0.0.0.0 and :: = all interfaces)"
        },
    )
    port: int = field(default=5672, metadata={"help": "AMQP port (0 = no plain listener)"})
    tls_port: int = field(
        default=5671, metadata={"help": "AMQPS port, listening when --tls-cert is given (0 = off)"}
    )
    tls_cert: str = field(
        default="", metadata={"help": "server certificate chain (PEM); turns AMQPS on"}
    )
    tls_key: str = field(
        default="", metadata={"help": "the certificate's private key (PEM; '' = in --tls-cert)"}
    )
    tls_ca: str = field(
        default="", metadata={"help": "CA certificates (PEM) client certificates are checked with"}
    )
    tls_verify: str = field(
        default="none",
        metadata={"help": "none | peer: ask clients for a certificate and verify it"},
    )
    tls_fail_if_no_peer_cert: bool = field(
        default=False,
        metadata={"help": "with --tls-verify peer, refuse a client that sends no certificate"},
    )
    tls_versions: str = field(
        default="tlsv1.2,tlsv1.3",
        metadata={"help": "TLS versions accepted, comma-separated (tlsv1, tlsv1.1, tlsv1.2, ...)"},
    )
    tls_ciphers: str = field(
        default="", metadata={"help": "OpenSSL cipher list for TLS 1.2 and older ('' = default)"}
    )
    tls_handshake_timeout: float = field(
        default=5.0, metadata={"help": "seconds a client has for the TLS handshake"}
    )
    auth_mechanisms: str = field(
        default="PLAIN,AMQPLAIN",
        metadata={"help": "SASL mechanisms offered, comma-separated (PLAIN, AMQPLAIN, EXTERNAL)"},
    )
    tls_cert_login_from: str = field(
        default="distinguished_name",
        metadata={
            "help": "EXTERNAL's user name from the client certificate: distinguished_name | "
            "common_name | subject_alternative_name"
        },
    )
    tls_cert_login_san_type: str = field(
        default="dns",
        metadata={"help": "with subject_alternative_name: dns | ip | email | uri | other_name"},
    )
    tls_cert_login_san_index: int = field(
        default=0, metadata={"help": "with subject_alternative_name: which entry of that type"}
    )
    data_dir: str = field(default="./dispatchd-data", metadata={"help": "data directory"})
    admin_port: int = field(default=15672, metadata={"help": "admin HTTP port (0 = off)"})
    admin_tls_cert: str = field(
        default="", metadata={"help": "admin certificate chain (PEM): HTTPS instead of HTTP"}
    )
    admin_tls_key: str = field(
        default="", metadata={"help": "its private key (PEM; '' = in --admin-tls-cert)"}
    )
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
    max_connections: int = field(
        default=0,
        metadata={
            "help": "connections each listener serves before it stops accepting, as RabbitMQ "
            "3.10's connection_max (a soft limit: a burst may reach it plus 9; 0 = no limit)"
        },
    )
    max_message_size: int = field(
        default=134217728,
        metadata={"help": "largest message body accepted, bytes (RabbitMQ's max_message_size)"},
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
    memory_high_watermark: str = field(
        default="0.4",
        metadata={
            "help": "memory alarm above this RSS: a fraction of the machine's memory (or the "
            "cgroup limit, if lower), or a size (2GiB, 150MiB, 2GB, bytes)"
        },
    )
    disk_free_limit: str = field(
        default="50000000",
        metadata={
            "help": "disk alarm below this free space on the data dir's filesystem: a size "
            "(50MB, 1GB, bytes) or a multiple of the memory (1.0)"
        },
    )
    store_batch_rows: int = field(
        default=BATCH_ROWS,
        metadata={"help": "most message rows in one group commit (the rest wait for the next)"},
    )
    store_batch_bytes: int = field(
        default=BATCH_BYTES,
        metadata={"help": "most body and property bytes in one group commit"},
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
        switch = {"nargs": "?", "const": "true"} if isinstance(f.default, bool) else {}
        parser.add_argument(
            flag_name(f.name),
            dest=f.name,
            default=None,
            help=f"{f.metadata['help']} (env {env_name(f.name)}, default {f.default!r})",
            **switch,  # a bool flag alone means true: --tls-fail-if-no-peer-cert
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
    "max_message_size": (1, MAX_MESSAGE_SIZE),
}


def _check_limits(settings: Settings) -> None:
    for name, (low, high) in LIMITS.items():
        value = getattr(settings, name)
        if not (low <= value <= high or (name == "frame_max" and value == 0)):
            raise SystemExit(
                f"dispatchd: {flag_name(name)} must be between {low} and {high}, not {value}"
            )
    if settings.max_connections < 0:
        raise SystemExit("dispatchd: --max-connections must be 0 (no limit) or more")
    for name in ("store_batch_rows", "store_batch_bytes"):
        if getattr(settings, name) <= 0:
            raise SystemExit(f"dispatchd: {flag_name(name)} must be more than 0")
    if settings.handshake_timeout <= 0:
        raise SystemExit("dispatchd: --handshake-timeout must be more than 0 seconds")
    for name, kind in (("memory_high_watermark", MemoryWatermark), ("disk_free_limit", DiskLimit)):
        try:
            kind.parse(getattr(settings, name))
        except ValueError as exc:
            raise SystemExit(f"dispatchd: {flag_name(name)}: {exc}") from None
    if settings.login_session_timeout <= 0:
        raise SystemExit("dispatchd: --login-session-timeout must be more than 0 minutes")
    if settings.tls_handshake_timeout <= 0:
        raise SystemExit("dispatchd: --tls-handshake-timeout must be more than 0 seconds")
    for name, allowed in CHOICES.items():
        values = value_list(getattr(settings, name)) if name in LISTS else [getattr(settings, name)]
        wrong = [v for v in values if v not in allowed] or ([] if values else [""])
        if wrong:
            raise SystemExit(
                f"dispatchd: {flag_name(name)} {wrong[0]!r} is not one of {', '.join(allowed)}"
            )
    if not addresses(settings.bind):
        raise SystemExit("dispatchd: --bind needs at least one address")
    if settings.admin_tls_key and not settings.admin_tls_cert:
        raise SystemExit("dispatchd: --admin-tls-key needs --admin-tls-cert")
    if settings.tls_key and not settings.tls_cert:
        raise SystemExit("dispatchd: --tls-key needs --tls-cert")


#: Settings that take one of a few names (a comma-separated list of them for LISTS).
CHOICES: dict[str, tuple[str, ...]] = {
    "tls_verify": ("none", "peer"),
    "tls_versions": ("tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3"),
    "auth_mechanisms": ("PLAIN", "AMQPLAIN", "EXTERNAL"),
    "tls_cert_login_from": ("distinguished_name", "common_name", "subject_alternative_name"),
    "tls_cert_login_san_type": ("dns", "ip", "email", "uri", "other_name"),
}
LISTS = frozenset({"tls_versions", "auth_mechanisms"})


def value_list(value: str) -> list[str]:
    """A comma-separated setting as a list, blanks dropped, order kept."""
    return [item.strip() for item in value.split(",") if item.strip()]


def addresses(bind: str) -> list[str]:
    """``--bind``'s addresses (``[::1]`` may be written with brackets)."""
    return [item.strip("[]") for item in value_list(bind)]


def user_list(value: str) -> frozenset[str]:
    """A comma-separated list of user names (``loopback_users``) as a set; blanks ignored."""
    return frozenset(value_list(value))
