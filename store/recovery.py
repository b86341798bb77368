"""Reading the store back at start-up: durable entities first, then each queue's messages."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from actors.content import Message
from store.models import BindingRow, ExchangeRow, MessageRow, QueueMessageRow, QueueRow
from wire.fields import decode_table

log = logging.getLogger("dispatchd.store")


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
    """A durable queue to re-create, with its messages as (position, message, delivered)."""

    queue_id: int
    vhost: str
    name: str
    auto_delete: bool
    arguments: dict[str, Any]
    messages: list[tuple[int, Message, bool]] = field(default_factory=list)


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


def load(db: pw.Database) -> Recovered:
    """Read every durable entity and persistent message, logging counts and time taken."""
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
        rows = (
            qm.select(
                qm.queue_id,
                qm.position,
                qm.delivered,
                m.id,
                m.exchange,
                m.routing_key,
                m.properties,
                m.body,
            )
            .join(m, on=(qm.message_id == m.id))
            .order_by(qm.queue_id, qm.position)
            .tuples()
        )
        shared: dict[int, Message] = {}
        count = 0
        for queue_id, position, delivered, message_id, exchange, key, props, body in rows:
            queue = queues.get(queue_id)
            if queue is None:
                continue
            message = shared.get(message_id)
            if message is None:
                message = Message(exchange, key, bytes(props), bytes(body))
                message.store_id = message_id
                shared[message_id] = message
            queue.messages.append((position, message, bool(delivered)))
            count += 1
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
