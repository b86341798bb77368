"""A channel's transaction (``tx.select``): one tagged state, as ``rabbit_channel``'s ``tx``.

A channel has none (``None``) until tx.select; then one :class:`Transaction`: ``OPEN``,
holding the publishes (per exchange actor) and the acks, nacks and rejects it will apply at
commit; ``COMMITTING`` from tx.commit until every queue took the committed publishes (the
channel numbers them with its :class:`~dispatchd.actors.confirms.Confirms` and answers
commit-ok when none is left), then ``OPEN`` again with empty buffers. A rollback empties the
buffers and gives the held acks back to the channel's unacked deliveries.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pykka import ActorRef

from dispatchd.actors.content import Message
from dispatchd.actors.unacked import Unacked

__all__ = ["Transaction", "TxState"]

Publishes = dict[ActorRef[Any], list[Message]]
Settle = tuple[int, Unacked, bool | None]  # (delivery tag, delivery, requeue; None: ack)


class TxState(Enum):
    """Where a channel's transaction is."""

    OPEN = "open"  # collecting publishes and acks
    COMMITTING = "committing"  # tx.commit sent the publishes; commit-ok once queues took them


class Transaction:
    """The transaction of one channel: its state and, while open, what it holds."""

    __slots__ = ("publishes", "settles", "state")

    def __init__(self) -> None:
        self.state = TxState.OPEN
        self.publishes: Publishes = {}
        self.settles: list[Settle] = []

    def publish(self, exchange: ActorRef[Any], message: Message) -> None:
        """Hold a publish until commit."""
        held = self.publishes.get(exchange)
        if held is None:
            self.publishes[exchange] = [message]
        else:
            held.append(message)

    def settle(self, taken: list[tuple[int, Unacked]], requeue: bool | None) -> None:
        """Hold acks (``requeue`` None), nacks or rejects until commit."""
        self.settles.extend((tag, record, requeue) for tag, record in taken)

    def commit(self) -> tuple[Publishes, list[Settle]]:
        """tx.commit: hand over what was held; COMMITTING until :meth:`committed`."""
        publishes, settles = self.publishes, self.settles
        self.publishes, self.settles = {}, []
        self.state = TxState.COMMITTING
        return publishes, settles

    def committed(self) -> None:
        """Every committed publish was taken: commit-ok goes out, a new transaction opens."""
        self.state = TxState.OPEN

    def rollback(self) -> list[Settle]:
        """tx.rollback: drop the held publishes; the held acks, to be given back."""
        settles = self.settles
        self.publishes, self.settles = {}, []
        return settles

    def held_messages(self) -> int:
        """Publishes held for commit."""
        return sum(len(messages) for messages in self.publishes.values())
