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

from dispatchd.actors.content import Message

__all__ = ["Publishing"]


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
