"""Reading the store back at start-up: durable entities first, then each queue's messages."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from dispatchd.actors.content import Message
from dispatchd.store.models import BindingRow, ExchangeRow, MessageRow, QueueMessageRow, QueueRow
from dispatchd.wire.fields import decode_table

log = logging.getLogger("dispatchd.store")
_CHUNK = 500  # ids per SELECT ... IN (...)


@dataclass(frozen=True, slots=True)
class RecoveredExchange:
    """A durable exchange to re-create."""

    vhost: str
    name: str
    type: str
    auto_delete: bool
    internal: bool
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecoveredQueue:
    """A durable queue to re-create, with its messages as (position, message, delivered,
    expires): the message is a Message, or its store id when its body stays paged out."""

    queue_id: int
    vhost: str
    name: str
    auto_delete: bool
    arguments: dict[str, Any]
    messages: list[tuple[int, Any, bool, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RecoveredBinding:
    """A binding between durable ends."""

    vhost: str
    source: str
    dest_kind: str
    dest: str
    routing_key: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Recovered:
    """Everything read back, and the id counters to continue from."""

    exchanges: list[RecoveredExchange]
    queues: list[RecoveredQueue]
    bindings: list[RecoveredBinding]
    max_message_id: int
    max_queue_id: int


def _table(blob: bytes | memoryview) -> dict[str, Any]:
    return decode_table(bytes(blob), 0)[0]


def load(
    db: pw.Database,
    memory_limit: int | None = None,
    unpaged: Callable[[dict[str, Any]], Any] = lambda _arguments: False,
) -> Recovered:
    """Read every durable entity and persistent message, logging counts and time taken.

    Each queue gets at most ``memory_limit`` bodies (the queues' in-memory limit; None: all);
    its later messages come as store ids, for the queue to page in when consumers catch up.
    A queue whose arguments ``unpaged`` holds true (the broker passes priority queues) is
    never paged: it gets every body. Nor is a message with an expiry (queues keep expiries
    in memory only).
    """
    started = time.perf_counter()
    with db.atomic():
        exchanges = [
            RecoveredExchange(
                r.vhost, r.name, r.type, r.auto_delete, r.internal, _table(r.arguments)
            )
            for r in ExchangeRow.select().order_by(ExchangeRow.id)
        ]
        queues = {
            r.id: RecoveredQueue(r.id, r.vhost, r.name, r.auto_delete, _table(r.arguments))
            for r in QueueRow.select().order_by(QueueRow.id)
        }
        bindings = [
            RecoveredBinding(
                r.vhost, r.source, r.dest_kind, r.dest, r.routing_key, _table(r.arguments)
            )
            for r in BindingRow.select().order_by(BindingRow.id)
        ]
        qm, m = QueueMessageRow, MessageRow
        limit = float("inf") if memory_limit is None else max(memory_limit, 1)
        whole = {i for i, q in queues.items() if unpaged(q.arguments)}
        placements = (
            qm.select(qm.queue_id, qm.position, qm.delivered, qm.message_id, qm.expires)
            .order_by(qm.queue_id, qm.position)
            .tuples()
            .iterator()
        )
        # Past a queue's in-memory limit a message stays in the store: its "message" is its
        # store id (the queue pages it); before it, the body is read (once per message).
        wanted: dict[int, list[tuple[list[Any], int]]] = {}
        count = 0
        for queue_id, position, delivered, message_id, expires in placements:
            queue = queues.get(queue_id)
            if queue is None:
                continue
            count += 1
            if len(queue.messages) >= limit and queue_id not in whole and not expires:
                queue.messages.append((position, message_id, bool(delivered), 0))
                continue
            queue.messages.append((position, None, bool(delivered), expires or 0))
            wanted.setdefault(message_id, []).append((queue.messages, len(queue.messages) - 1))
        ids = list(wanted)
        for i in range(0, len(ids), _CHUNK):
            query = m.select(m.id, m.exchange, m.routing_key, m.properties, m.body)
            for message_id, exchange, key, props, body in (
                query.where(m.id.in_(ids[i : i + _CHUNK])).tuples().iterator()
            ):
                message = Message(exchange, key, bytes(props), bytes(body))
                message.store_id = message_id
                for messages, index in wanted[message_id]:
                    position, _, delivered, expires = messages[index]
                    messages[index] = (position, message, delivered, expires)
        max_message_id = m.select(pw.fn.MAX(m.id)).scalar() or 0
        max_queue_id = QueueRow.select(pw.fn.MAX(QueueRow.id)).scalar() or 0
    log.info(
        "recovered %d exchanges, %d queues, %d bindings, %d messages in %.3fs",
        len(exchanges),
        len(queues),
        len(bindings),
        count,
        time.perf_counter() - started,
    )
    return Recovered(exchanges, list(queues.values()), bindings, max_message_id, max_queue_id)
