"""How a durable queue uses the store: the messages it writes, reads back, forgets and marks.

A durable queue with a store holds one :class:`QueueStorage`. Its persistent messages are
written at their positions (``StoreMessages``) and confirmed only once committed; acks,
drops and purges remove them (``UnstoreMessages``); a first delivery is recorded
(``MarkDelivered``) so a crash brings it back redelivered; paged-out bodies are read back
(``LoadMessages``). A message routed to several durable queues is stored once, under the id
the first of them gives it (the broker's :class:`~dispatchd.store.ids.StoreIds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pykka import ActorRef

from dispatchd.actors.content import Entry, Message
from dispatchd.actors.ready import LoadRequest
from dispatchd.actors.runtime import post
from dispatchd.store.actor import (
    DeleteQueue,
    LoadMessages,
    MarkDelivered,
    Notify,
    StoreMessages,
    UnstoreMessages,
)
from dispatchd.store.ids import StoreIds

__all__ = ["QueueStorage"]


@dataclass(frozen=True, slots=True)
class QueueStorage:
    """A durable queue's side of the store: the store actor, its id there, the broker's ids."""

    store: ActorRef[Any]
    queue_id: int
    ids: StoreIds

    def write(
        self, rows: list[tuple[int, Message, int]], then: Notify, paged: ActorRef[Any] | None
    ) -> None:
        """Store messages at positions, ``(position, message, expires)``; ``paged`` hears
        when they are committed (it pages them out)."""
        post(self.store, StoreMessages(self.queue_id, rows, then, paged))

    def forget(self, entries: list[Entry]) -> None:
        """Entries are done with (acked, dropped, purged): remove those in the store."""
        self.forget_rows([(e.id, e.message.store_id) for e in entries if e.message.store_id])

    def forget_rows(self, rows: list[tuple[int, int]]) -> None:
        """Remove stored messages by (position, store id)."""
        if rows:
            post(self.store, UnstoreMessages(self.queue_id, rows))

    def delivered(self, entries: list[Entry], no_ack: bool) -> None:
        """No-ack deliveries are done with; others are recorded as delivered once."""
        if no_ack:
            self.forget(entries)
            return
        positions = [e.id for e in entries if not e.redelivered and e.message.store_id]
        if positions:
            post(self.store, MarkDelivered(self.queue_id, positions))

    def load(self, request: LoadRequest, reply_to: ActorRef[Any]) -> None:
        """Read paged-out bodies back (answered with Loaded, or StoreFailed)."""
        post(self.store, LoadMessages(self.queue_id, request.store_ids, reply_to, request.token))

    def delete(self, vhost: str, name: str, then: Notify) -> None:
        """The queue is deleted: its row, its messages and its bindings go."""
        post(self.store, DeleteQueue(self.queue_id, vhost, name, then=then))
