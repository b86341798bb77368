"""SASL mechanisms offered in connection.start (PLAIN, AMQPLAIN, EXTERNAL) and the loopback rule.

Parsing follows RabbitMQ: a response that does not fit its mechanism, or a mechanism the server
did not offer, is a protocol error (:class:`SaslError`), which RabbitMQ answers by dropping the
socket; wrong credentials are refused with 403 ACCESS_REFUSED instead.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Collection

from dispatchd.wire import fields

#: Every mechanism dispatchd knows; ``--auth-mechanisms`` chooses which are offered.
KNOWN = ("PLAIN", "AMQPLAIN", "EXTERNAL")
#: EXTERNAL names the user after the TLS client certificate (``wire/certnames.py``).
EXTERNAL = "EXTERNAL"


class SaslError(ValueError):
    """The start-ok mechanism is unknown or its response is malformed."""


def parse_plain(response: bytes) -> tuple[str, str]:
    """``NUL user NUL password`` -> (user, password).

    As in RabbitMQ, the authorisation identity must be empty and the password may not hold NUL.
    """
    parts = response.split(b"\x00")
    if len(parts) != 3 or parts[0]:
        raise SaslError(f"PLAIN response {response!r} invalid")
    try:
        return parts[1].decode(), parts[2].decode()
    except UnicodeDecodeError:
        raise SaslError(f"PLAIN response {response!r} is not UTF-8") from None


def parse_amqplain(response: bytes) -> tuple[str, str]:
    """A field table without its length prefix holding long strings LOGIN and PASSWORD."""
    try:
        table, _ = fields.decode_table(struct.pack(">I", len(response)) + response, 0)
    except fields.FieldDecodeError as exc:
        raise SaslError(f"AMQPLAIN response is not a field table: {exc}") from None
    login, password = table.get("LOGIN"), table.get("PASSWORD")
    values = []
    for value in (login, password):
        if isinstance(value, fields.ByteArray) or not isinstance(value, str | bytes):
            raise SaslError("AMQPLAIN auth info is missing LOGIN or PASSWORD field")
        values.append(value if isinstance(value, str) else value.decode(errors="replace"))
    return values[0], values[1]


PARSERS: dict[str, Callable[[bytes], tuple[str, str]]] = {
    "PLAIN": parse_plain,
    "AMQPLAIN": parse_amqplain,
}


def offered(configured: Collection[str], tls: bool) -> list[str]:
    """The mechanisms connection.start offers: the configured ones, EXTERNAL only over TLS
    (RabbitMQ's ``should_offer``)."""
    return [name for name in configured if tls or name != EXTERNAL]


def check_mechanism(mechanism: str, offered: Collection[str]) -> None:
    """RabbitMQ's ``auth_mechanism_to_module``: an unknown or not offered mechanism is a
    SaslError with its text."""
    if mechanism not in KNOWN:
        raise SaslError(f"unknown authentication mechanism '{mechanism}'")
    if mechanism not in offered:
        raise SaslError(f"invalid authentication mechanism '{mechanism}'")


def credentials(mechanism: str, response: bytes) -> tuple[str, str]:
    """The (user, password) in a PLAIN or AMQPLAIN start-ok; SaslError if it is unusable."""
    return PARSERS[mechanism](response)


def is_loopback(host: str) -> bool:
    """Whether a peer address is a loopback address (IPv4, IPv6, or IPv4-mapped IPv6)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def loopback_allowed(user: str, peer_host: str, loopback_users: Collection[str]) -> bool:
    """RabbitMQ's ``loopback_users``: the users listed may only connect from loopback."""
    return user not in loopback_users or is_loopback(peer_host)
