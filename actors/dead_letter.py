"""Dead-lettering: a queue republishes rejected, expired and overflowed messages to its DLX.

As RabbitMQ 3.10 (``rabbit_dead_letter:make_msg/5``): the message goes to the queue's
``x-dead-letter-exchange`` with the queue's ``x-dead-letter-routing-key`` (and its ``CC``
header dropped), or else with the routing keys it was published with (its own, then CC and
BCC). Its ``expiration`` property is removed, and its ``x-death`` header records the death:

- a first death adds ``x-death`` = [{count 1, reason, queue, time, exchange, routing-keys,
  original-expiration (if it had one)}] and the ``x-first-death-reason/-queue/-exchange``
  headers;
- a later death increments the count of the entry with the same queue and reason (or adds a
  new one) and moves it to the front, its fields in sorted order.

A message that would come back to a queue it already died in, with no rejection on the way,
is dropped there (a cycle), and logged once; a rejected message is never a cycle. The queue
receiving a dead letter checks this (:func:`is_cycle`), since only it knows its own name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dispatchd.actors.content import Message
from dispatchd.actors.distribution import Distributed
from dispatchd.actors.messages import DeadLetters
from dispatchd.actors.routing.terms import as_text, field_type
from dispatchd.wire import spec
from dispatchd.wire.fields import Int64, Timestamp

__all__ = ["DeadLettered", "DeadLetterTarget", "DeadLettering", "dead_letter_target", "is_cycle"]

log = logging.getLogger("dispatchd.queue")


class DeadLettered(Distributed):
    """A message a queue dead-lettered, on its way to the dead-letter exchange."""

    __slots__ = ("cycle_check",)

    def __init__(self, exchange: str, keys: list[str], raw: bytes, body: bytes, reason: str):
        Message.__init__(self, exchange, keys[0], raw, body)
        self.keys = keys
        self.cycle_check = reason != "rejected"  # rejected messages are never cycles


@dataclass(frozen=True, slots=True)
class DeadLetterTarget:
    """Where a queue dead-letters to: its DLX, and the routing key (None: the message's)."""

    exchange: str
    routing_key: str | None
    queue: str

    def letter(self, message: Message, reason: str) -> DeadLettered:
        """The dead-lettered copy of ``message`` (``reason``: rejected, expired or maxlen)."""
        props = spec.BasicProperties.decode(message.raw_properties, 0)  # a copy to change
        headers = dict(props.headers or {})
        keys = message.keys if isinstance(message, Distributed) else [message.routing_key]
        routes = [key for key in headers.get("CC", ()) if field_type(key) == "longstr"]
        info: dict[str, Any] = {
            "reason": reason,
            "queue": self.queue,
            "time": Timestamp(int(time.time())),
            "exchange": message.exchange,
            "routing-keys": [message.routing_key, *map(as_text, routes)],
        }
        if props.expiration is not None:
            info["original-expiration"] = props.expiration
        _record_death(headers, info)
        if self.routing_key is not None:
            keys = [self.routing_key]
            headers.pop("CC", None)
        props.headers = {key: headers[key] for key in sorted(headers)}
        props.expiration = None
        return DeadLettered(self.exchange, list(keys), props.encode(), message.body, reason)


def _record_death(headers: dict[str, Any], info: dict[str, Any]) -> None:
    """Add one death to the ``x-death`` header, as ``update_x_death_header`` does."""
    deaths = headers.get("x-death")
    if deaths is None:
        headers["x-first-death-reason"] = info["reason"]
        headers["x-first-death-queue"] = info["queue"]
        headers["x-first-death-exchange"] = info["exchange"]
        headers["x-death"] = [{"count": Int64(1), **info}]
        return
    if field_type(deaths) != "array":  # a client mangled it: start again
        headers["x-death"] = [{"count": Int64(1), **info}]
        return
    same, others = None, []
    for death in deaths:
        if same is None and _matches(death, info["queue"], info["reason"]):
            same = death
        else:
            others.append(death)
    if same is None:
        entry = {"count": Int64(1), **info}
    else:
        entry = {**same, "count": Int64(int(same.get("count", 0)) + 1)}
    headers["x-death"] = [{key: entry[key] for key in sorted(entry)}, *others]


def _matches(death: Any, queue: str, reason: str) -> bool:
    return (
        isinstance(death, Mapping)
        and as_text(death.get("queue", b"")) == queue
        and as_text(death.get("reason", b"")) == reason
    )


def is_cycle(message: DeadLettered, queue: str) -> bool:
    """Whether a dead letter arriving at ``queue`` went round a cycle with no rejection."""
    if not message.cycle_check:
        return False
    deaths = (message.headers or {}).get("x-death")
    if field_type(deaths) != "array":
        return False
    for death in deaths:
        if not isinstance(death, Mapping):
            return False  # something a client put there: not a fully automatic cycle
        if as_text(death.get("reason", b"")) == "rejected":
            return False
        if as_text(death.get("queue", b"")) == queue:
            return True
    return False


def dead_letter_target(arguments: Mapping[str, Any], queue: str) -> DeadLetterTarget | None:
    """The queue's dead-letter target from its arguments, or None (no DLX)."""
    exchange = arguments.get("x-dead-letter-exchange")
    if exchange is None:
        return None
    key = arguments.get("x-dead-letter-routing-key")
    return DeadLetterTarget(as_text(exchange), None if key is None else as_text(key), queue)


class DeadLettering:
    """A queue's dead-lettering: where its own dead letters go, and the cycle check of the
    dead letters that arrive at it (a dropped cycle is logged once)."""

    __slots__ = ("cycle_logged", "queue", "target", "vhost")

    def __init__(self, arguments: Mapping[str, Any], queue: str, vhost: str) -> None:
        self.target = dead_letter_target(arguments, queue)
        self.queue = queue
        self.vhost = vhost
        self.cycle_logged = False

    def letters(self, messages: list[Message], reason: str) -> DeadLetters | None:
        """The dead letters of ``messages`` for the vhost to publish (None: no DLX)."""
        target = self.target
        if target is None or not messages:
            return None
        return DeadLetters(target.exchange, [target.letter(m, reason) for m in messages])

    def without_cycles(self, messages: list[Message]) -> list[Message]:
        """Dead letters that went round a cycle back here are dropped (and logged once)."""
        queue = self.queue
        kept = [m for m in messages if not (type(m) is DeadLettered and is_cycle(m, queue))]
        if len(kept) < len(messages) and not self.cycle_logged:
            self.cycle_logged = True
            log.warning(
                "queue %s in vhost %s: dead-lettered messages dropped, a dead-letter cycle "
                "came back here (reported once)",
                queue,
                self.vhost,
            )
        return kept
