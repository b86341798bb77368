"""Message TTL: the ``expiration`` property and ``x-message-ttl``, as RabbitMQ 3.10 has them.

A publish's ``expiration`` must be a decimal string of milliseconds (checked by the channel,
with ``rabbit_basic:parse_expiration``'s errors). A queue gives each message it takes an
absolute expiry: now plus the smaller of its own ``x-message-ttl`` and the message's
expiration. Expired messages are removed from the head of the queue (never delivered), and
the expiry of a message stays what it was when it first arrived, through requeues and
restarts. Times are wall-clock milliseconds, so a stored expiry means the same after a
restart. :class:`MessageExpiry` is a queue's TTL state; :class:`Lease` its own expiry
(``x-expires``).
"""

from __future__ import annotations

import re
import time

from dispatchd.actors.arguments import MAX_EXPIRY, erlang_string
from dispatchd.actors.content import Message
from dispatchd.wire.errors import precondition_failed
from dispatchd.wire.spec import (
    FIRST_BYTE_CONTENT_ENCODING,
    FIRST_BYTE_CONTENT_TYPE,
    FIRST_BYTE_CORRELATION_ID,
    FIRST_BYTE_DELIVERY_MODE,
    FIRST_BYTE_EXPIRATION,
    FIRST_BYTE_HEADERS,
    FIRST_BYTE_PRIORITY,
    FIRST_BYTE_REPLY_TO,
)

__all__ = [
    "Lease",
    "MessageExpiry",
    "check_expiration",
    "message_ttl",
    "now_ms",
]

_INTEGER = re.compile(r"[+-]?[0-9]+")
LINE_LENGTH = 80  # io_lib's ~p line width


def now_ms() -> int:
    """Wall-clock time in milliseconds."""
    return int(time.time() * 1000)


def _parse(text: str) -> int | str | tuple[str, str]:
    """Erlang's ``string:to_integer`` then ``check_expiry``: milliseconds, or the error term."""
    match = _INTEGER.match(text)
    if match is None:
        return "no_integer"
    if match.end() != len(text):
        return ("leftover_string", erlang_string(text[match.end() :]))
    value = int(match.group())
    if value < 0:
        return ("value_negative", str(value))
    if value > MAX_EXPIRY:
        return ("value_too_large", str(value))
    return value


def _printed(term: str | tuple[str, str], column: int) -> str:
    """An error term as ``~p`` prints it from ``column``: a pair that would pass column 80
    breaks after its comma, the second element under the first."""
    if isinstance(term, str):
        return term
    flat = f"{{{term[0]},{term[1]}}}"
    if column + len(flat) <= LINE_LENGTH:
        return flat
    return f"{{{term[0]},\n{' ' * (column + 1)}{term[1]}}}"


def _raw_expiration(raw: bytes) -> bytes | None:
    """The expiration property's bytes, read straight from the raw property list (the
    properties before it are skipped, not decoded), or None when it is absent."""
    flags = raw[0]
    if not flags & FIRST_BYTE_EXPIRATION:
        return None
    offset = 2
    if flags & FIRST_BYTE_CONTENT_TYPE:  # shortstr
        offset += 1 + raw[offset]
    if flags & FIRST_BYTE_CONTENT_ENCODING:  # shortstr
        offset += 1 + raw[offset]
    if flags & FIRST_BYTE_HEADERS:  # a table with a 32-bit length
        offset += 4 + int.from_bytes(raw[offset : offset + 4], "big")
    if flags & FIRST_BYTE_DELIVERY_MODE:  # octet
        offset += 1
    if flags & FIRST_BYTE_PRIORITY:  # octet
        offset += 1
    if flags & FIRST_BYTE_CORRELATION_ID:  # shortstr
        offset += 1 + raw[offset]
    if flags & FIRST_BYTE_REPLY_TO:  # shortstr
        offset += 1 + raw[offset]
    return raw[offset + 1 : offset + 1 + raw[offset]]


def _fast_ttl(raw: bytes) -> int | None:
    """The TTL of a plain decimal expiration within range, else None (absent or unusual:
    the full parse decides)."""
    try:
        value = _raw_expiration(raw)
    except IndexError:  # a malformed property list: the full decode reports it
        return None
    if value is not None and value.isdigit():  # ASCII digits only, for bytes
        ttl = int(value)
        if ttl <= MAX_EXPIRY:
            return ttl
    return None


def check_expiration(message: Message) -> None:
    """A publish's expiration property must parse (406 PRECONDITION_FAILED otherwise)."""
    raw = message.raw_properties
    if len(raw) < 2 or _fast_ttl(raw) is not None:
        return
    text = message.properties.expiration
    if text is None:
        return
    parsed = _parse(text)
    if not isinstance(parsed, int):
        prefix = f"invalid expiration '{text}': "
        raise precondition_failed(prefix + _printed(parsed, len(prefix)))


def message_ttl(message: Message) -> int | None:
    """The message's own TTL in milliseconds, or None (no parse when the flag is clear)."""
    raw = message.raw_properties
    if len(raw) < 2 or not raw[0] & FIRST_BYTE_EXPIRATION:
        return None
    ttl = _fast_ttl(raw)
    if ttl is not None:
        return ttl
    parsed = _parse(message.properties.expiration or "")
    return parsed if isinstance(parsed, int) else None


class MessageExpiry:
    """A queue's message TTL: when each arriving message expires, and whether any may."""

    __slots__ = ("expiring", "ttl")

    def __init__(self, ttl: int | None) -> None:
        self.ttl = ttl  # x-message-ttl, or None
        self.expiring = ttl is not None  # some entry may carry an expiry

    def deadline(self, now: int) -> int:
        """The expiry the queue's own TTL gives a message arriving ``now`` (0: none)."""
        return 0 if self.ttl is None else now + self.ttl

    def of(self, message: Message, now: int) -> int:
        """When a message with an ``expiration`` arriving ``now`` expires: the queue's TTL
        or its own, the smaller (0: never)."""
        ttl, own = self.ttl, message_ttl(message)
        if own is not None:
            ttl = own if ttl is None else min(ttl, own)
        if ttl is None:
            return 0
        self.expiring = True
        return now + ttl


class Lease:
    """A queue's own expiry (``x-expires``): it goes once unused for ``idle_ms``.

    Used means a consumer attached, or a declare or basic.get; while consumers are attached
    the countdown does not run.
    """

    __slots__ = ("deadline", "idle_ms")

    def __init__(self, idle_ms: int | None) -> None:
        self.idle_ms = idle_ms
        self.deadline = 0

    def renew(self, now: int) -> float:
        """Restart the countdown; seconds until it runs out."""
        assert self.idle_ms is not None
        self.deadline = now + self.idle_ms
        return self.idle_ms / 1000

    def expired(self, now: int, in_use: bool) -> bool:
        """Whether the lease has run out (a queue without one: always)."""
        if self.idle_ms is None:
            return True
        return not in_use and now >= self.deadline
