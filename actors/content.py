"""The AMQP message as it travels through the broker: routing data, raw properties, body.

Properties stay as the raw bytes the publisher sent and are parsed lazily, only when routing
needs one of them (delivery-mode, priority, expiration, headers). A fanout shares one Message
object between every queue: nothing downstream copies or mutates it.
"""

from __future__ import annotations

from typing import Any

from dispatchd.wire import spec
from dispatchd.wire.spec import FIRST_BYTE_DELIVERY_MODE, FIRST_BYTE_HEADERS


class Message:
    """A published message (immutable once built; ``properties`` is a lazy cache)."""

    __slots__ = (
        "exchange",
        "routing_key",
        "raw_properties",
        "body",
        "mandatory",
        "store_id",
        "_props",
    )

    def __init__(
        self,
        exchange: str,
        routing_key: str,
        raw_properties: bytes,
        body: bytes,
        mandatory: bool = False,
        properties: spec.BasicProperties | None = None,  # ``raw_properties`` decoded, if known
    ) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.raw_properties = raw_properties
        self.body = body
        self.mandatory = mandatory
        self.store_id = 0  # given by StoreIds (on the loop thread) when first stored
        self._props = properties

    @property
    def properties(self) -> spec.BasicProperties:
        """The decoded content properties (parsed on first use)."""
        props = self._props
        if props is None:
            props = self._props = spec.BasicProperties.decode(self.raw_properties, 0)
        return props

    @property
    def headers(self) -> dict[str, Any] | None:
        """The headers table, or None (no parse when the headers flag is clear)."""
        if len(self.raw_properties) < 2 or not self.raw_properties[0] & FIRST_BYTE_HEADERS:
            return None
        return self.properties.headers

    @property
    def persistent(self) -> bool:
        """delivery-mode 2."""
        if len(self.raw_properties) < 2 or not self.raw_properties[0] & FIRST_BYTE_DELIVERY_MODE:
            return False
        return self.properties.delivery_mode == 2

    def __repr__(self) -> str:
        return (
            f"Message(exchange={self.exchange!r}, routing_key={self.routing_key!r}, "
            f"body={len(self.body)} bytes)"
        )


class Entry:
    """A message's place in one queue: its position (``id``), redelivery flag, and when it
    expires (wall-clock milliseconds; 0: never)."""

    __slots__ = ("id", "message", "redelivered", "expires")

    def __init__(
        self, id: int, message: Message, redelivered: bool = False, expires: int = 0
    ) -> None:
        self.id = id
        self.message = message
        self.redelivered = redelivered
        self.expires = expires

    def __lt__(self, other: Entry) -> bool:
        return self.id < other.id

    def __repr__(self) -> str:
        return f"Entry({self.id}, {self.message!r}, redelivered={self.redelivered})"
