"""Field values as RabbitMQ sees them: type names, exact equality and how errors print them.

RabbitMQ decodes a field table into ``{Name, Type, Value}`` Erlang terms and its error texts
show the type by name (``signedint``, ``longstr``...) and the value as Erlang prints it
(``~p``, or ``~s`` for binaries). The codec (``wire.fields``) decodes the AMQP types plain
Python cannot tell apart into marker subclasses; this module maps them back to RabbitMQ's
names.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from .base import typed_key

__all__ = ["as_binary", "as_text", "erlang_repr", "exactly_equal", "field_type", "printed"]

# wire.fields' marker types by class name (importing wire here would tie the pure routers to
# the codec) and the name RabbitMQ gives each field type (rabbit_binary_parser).
_MARKER_TYPES = {
    "Int8": "byte", "UInt8": "unsignedbyte", "Int16": "short", "UInt16": "unsignedshort",
    "Int32": "signedint", "UInt32": "unsignedint", "Int64": "long", "Float32": "float",
    "Timestamp": "timestamp", "ByteArray": "binary",
}  # fmt: skip


def as_binary(value: str | bytes | bytearray) -> bytes:
    """The bytes of a string value, as Erlang holds every AMQP string (a binary)."""
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)


def as_text(value: str | bytes | bytearray) -> str:
    """A longstr value as text: a str, or bytes that were not UTF-8 (kept, escaped)."""
    return value if isinstance(value, str) else bytes(value).decode("utf-8", "surrogateescape")


def field_type(value: Any) -> str:
    """The field type RabbitMQ names for a decoded value (``signedint``, ``longstr``...)."""
    marker = _MARKER_TYPES.get(type(value).__name__)
    if marker is not None:
        return marker
    if value is None:
        return "void"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, (str, bytes)):
        return "longstr"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, datetime):
        return "timestamp"
    return type(value).__name__


def _erlang_float(value: float) -> str:
    """A float as Erlang's ``~p`` prints it: shortest round-trip digits, ``1.0e20`` style."""
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}e{int(exponent)}"


def erlang_repr(value: Any) -> str:
    """Roughly how Erlang's ``~tp`` prints a decoded value (binaries as ``<<"...">>``)."""
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (bytes, str)):
        raw = as_binary(value)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "<<" + ",".join(str(b) for b in raw) + ">>"
        if not text.isprintable():
            return "<<" + ",".join(str(b) for b in raw) + ">>"
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return f'<<"{escaped}">>' if text.isascii() else f'<<"{escaped}"/utf8>>'
    if isinstance(value, float):
        return _erlang_float(value)
    if isinstance(value, Decimal):
        scale = max(0, -int(value.as_tuple().exponent))
        return f"{{{scale},{int(value.scaleb(scale))}}}"
    return repr(value)


def printed(value: Any) -> str:
    """A value as RabbitMQ's equivalence errors print it: binaries with ``~s``, else ``~p``."""
    if isinstance(value, (str, bytes, bytearray)):
        return as_binary(value).decode("utf-8", "replace")
    return erlang_repr(value)


def exactly_equal(a: Any, b: Any) -> bool:
    """Erlang's ``=:=`` on two decoded values, ignoring their field types.

    Integers of any width are equal when their values are; an integer never equals a float;
    every string type is a binary, so ``str`` and ``bytes`` with the same UTF-8 bytes are
    equal; booleans equal only booleans. Tables and arrays compare with their element types
    (see :func:`~actors.routing.base.typed_key`).
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int) and isinstance(b, int):
        return int(a) == int(b)
    if isinstance(a, float) and isinstance(b, float):
        return float(a) == float(b)
    if isinstance(a, (str, bytes, bytearray)) and isinstance(b, (str, bytes, bytearray)):
        return as_binary(a) == as_binary(b)
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a.as_tuple() == b.as_tuple()
    return typed_key(a) == typed_key(b)
