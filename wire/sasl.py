"""SASL mechanisms offered in connection.start: PLAIN and AMQPLAIN."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from wire import fields

if TYPE_CHECKING:
    from dispatchd.broker import Broker


def parse_plain(response: bytes) -> tuple[str, str] | None:
    """``[authzid] NUL authcid NUL passwd`` -> (user, password)."""
    parts = response.split(b"\x00")
    if len(parts) != 3:
        return None
    try:
        return parts[1].decode(), parts[2].decode()
    except UnicodeDecodeError:
        return None


def parse_amqplain(response: bytes) -> tuple[str, str] | None:
    """A field table without its length prefix holding LOGIN and PASSWORD."""
    try:
        table, _ = fields.decode_table(struct.pack(">I", len(response)) + response, 0)
    except fields.FieldDecodeError:
        return None
    login, password = table.get("LOGIN"), table.get("PASSWORD")
    if isinstance(login, bytes):
        login = login.decode(errors="replace")
    if isinstance(password, bytes):
        password = password.decode(errors="replace")
    if not isinstance(login, str) or not isinstance(password, str):
        return None
    return login, password


PARSERS = {"PLAIN": parse_plain, "AMQPLAIN": parse_amqplain}


def authenticate(broker: Broker, mechanism: str, response: bytes) -> str | None:
    """The authenticated user name, or None when the login is refused."""
    parser = PARSERS.get(mechanism)
    credentials = parser(response) if parser else None
    if credentials is None:
        return None
    user, password = credentials
    return user if broker.check_password(user, password) else None
