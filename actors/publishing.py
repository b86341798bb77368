"""What a channel knows about the exchanges it publishes to, and its publishes in flight.

The channel resolves an exchange's name to its actor once (asking the vhost) and remembers it
in ``exchanges`` (the channel looks there first, on every publish, and asks again once the
actor is gone). Publishes that arrive in one input batch are collected per exchange
actor and leave as one ``Publish`` each when the batch ends or before any method that must
come after them (:meth:`Publishing.flush`).
"""

from __future__ import annotations

import re
from typing import Any

from pykka import ActorRef

from dispatchd.access import topic_refusal
from dispatchd.actors.content import Message
from dispatchd.actors.distribution import sender_selected
from dispatchd.actors.expiry import check_expiration
from dispatchd.wire.errors import access_refused, precondition_failed
from dispatchd.wire.spec import FIRST_BYTE_EXPIRATION, FIRST_BYTE_HEADERS, SECOND_BYTE_USER_ID

__all__ = ["Publishing", "check_destination", "checked"]


def check_destination(
    message: Message, internal: bool, topic_write: re.Pattern[str] | None, vhost: str, user: str
) -> None:
    """Refuse (403) a publish to an internal exchange, or with a routing key the user's topic
    permission on the exchange does not allow."""
    if internal:
        raise access_refused(
            f"cannot publish to internal exchange '{message.exchange}' in vhost '{vhost}'"
        )
    if topic_write is not None and topic_write.search(message.routing_key) is None:
        raise access_refused(topic_refusal(message.routing_key, message.exchange, vhost, user))


def checked(message: Message, user: str) -> Message:
    """A publish with headers, an expiration or a user-id, checked as RabbitMQ does (user-id,
    expiration, then the CC/BCC headers): the message to route (BCC gone)."""
    raw = message.raw_properties
    if len(raw) < 2:
        return message
    if raw[1] & SECOND_BYTE_USER_ID:
        user_id = message.properties.user_id
        if user_id != user:
            text = f"user_id property set to '{user_id}' but authenticated user was '{user}'"
            raise precondition_failed(text)
    if raw[0] & FIRST_BYTE_EXPIRATION:
        check_expiration(message)
    if raw[0] & FIRST_BYTE_HEADERS:
        message = sender_selected(message)
    return message


class Publishing:
    """Resolved exchanges by name, and the publishes collected per exchange actor."""

    __slots__ = ("batches", "exchanges")

    def __init__(self) -> None:
        # name -> (actor, internal, the user's topic write permission on it)
        self.exchanges: dict[str, tuple[ActorRef[Any], bool, re.Pattern[str] | None]] = {}
        self.batches: dict[ActorRef[Any], tuple[list[Message], list[int]]] = {}

    def remember(
        self, name: str, ref: ActorRef[Any], internal: bool, topic_write: re.Pattern[str] | None
    ) -> None:
        """The vhost resolved ``name``."""
        self.exchanges[name] = (ref, internal, topic_write)

    def add(self, exchange: ActorRef[Any], message: Message, seq: int = 0) -> None:
        """Collect a publish (with its confirm number, if any) for ``exchange``."""
        batch = self.batches.get(exchange)
        if batch is None:
            self.batches[exchange] = batch = ([], [])
        batch[0].append(message)
        if seq:
            batch[1].append(seq)

    def take(self) -> dict[ActorRef[Any], tuple[list[Message], list[int]]]:
        """The collected publishes, per exchange actor; collecting starts afresh."""
        batches, self.batches = self.batches, {}
        return batches
