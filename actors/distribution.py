"""Sender-selected distribution: the ``CC`` and ``BCC`` headers add routing keys.

As RabbitMQ (``rabbit_basic:header_routes/1``): each header, when present, must be an array
(anything else refuses the publish with 406 ``invalid message``); its long-string elements
are routed as extra routing keys through the same exchange, other elements are ignored.
``BCC`` is removed from the message that queues receive (the headers table stays, possibly
empty), ``CC`` is kept. Only publishes whose headers flag is set ever come here.
"""

from __future__ import annotations

from dispatchd.actors.content import Message
from dispatchd.actors.routing.terms import as_text, field_type
from dispatchd.wire.errors import precondition_failed

__all__ = ["Distributed", "sender_selected"]

ROUTING_HEADERS = ("CC", "BCC")


class Distributed(Message):
    """A message routed with several keys: its routing key, then CC, then BCC."""

    __slots__ = ("keys",)

    def __init__(self, message: Message, raw_properties: bytes, keys: list[str]) -> None:
        super().__init__(
            message.exchange, message.routing_key, raw_properties, message.body, message.mandatory
        )
        self.keys = keys


def sender_selected(message: Message) -> Message:
    """The message to route: itself without CC/BCC, else a :class:`Distributed` (406 if a
    routing header is not an array)."""
    headers = message.headers
    if not headers or ("CC" not in headers and "BCC" not in headers):
        return message
    keys = [message.routing_key]
    for name in ROUTING_HEADERS:
        if name not in headers:
            continue
        routes = headers[name]
        kind = field_type(routes)
        if kind != "array":
            raise precondition_failed(
                f'invalid message: {{unacceptable_type_in_header,"{name}",{kind}}}'
            )
        keys += [as_text(route) for route in routes if field_type(route) == "longstr"]
    raw = message.raw_properties
    if "BCC" in headers:
        properties = message.properties
        stripped = {key: value for key, value in headers.items() if key != "BCC"}
        kept = properties.headers
        try:
            properties.headers = stripped
            raw = properties.encode()
        finally:
            properties.headers = kept
    return Distributed(message, raw, keys)
