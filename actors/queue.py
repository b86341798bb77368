"""QueueActor: one actor owns one queue (as RabbitMQ's rabbit_amqqueue_process).

It keeps ready messages in position order, hands them round-robin to consumers within their
prefetch and flow credit, tracks what is delivered but unacknowledged, and puts requeued
messages back in their original position with redelivered set.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from typing import Any

from pykka import ActorRef

from actors.content import Entry
from actors.messages import (
    Accepted,
    AddConsumer,
    CancelConsumer,
    ConsumerAdded,
    ConsumerRemoved,
    Credit,
    DeleteOutcome,
    Deliver,
    Enqueue,
    GetResult,
    Reply,
    Request,
    Settle,
)
from actors.runtime import LoopActor, post
from wire import spec
from wire.errors import AMQPError

log = logging.getLogger("dispatchd.queue")

FLOW_CREDIT = 500  # deliveries a consumer may have between two Credit grants from its channel


class ConsumerRecord:
    """A consumer as its queue sees it: where to deliver and how much it may take."""

    __slots__ = ("ref", "channel", "tag", "no_ack", "prefetch", "in_flight", "credit", "exclusive")

    def __init__(self, add: AddConsumer) -> None:
        self.ref = add.consumer
        self.channel = add.channel
        self.tag = add.consumer_tag
        self.no_ack = add.no_ack
        self.prefetch = 0 if add.no_ack else add.prefetch
        self.in_flight = 0
        self.credit = FLOW_CREDIT
        self.exclusive = add.exclusive

    def can_take(self) -> bool:
        """Whether one more delivery fits its flow credit and prefetch window."""
        return self.credit > 0 and (not self.prefetch or self.in_flight < self.prefetch)


class QueueActor(LoopActor):
    """One AMQP queue."""

    kind = "queue"

    def __init__(
        self,
        vhost: ActorRef[Any],
        vhost_name: str,
        name: str,
        durable: bool,
        exclusive_owner: int | None,
        auto_delete: bool,
        arguments: dict[str, Any],
    ) -> None:
        super().__init__(name=name, owner=vhost_name, supervisor=vhost)
        self.vhost = vhost
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = arguments
        self.ready: deque[Entry] = deque()
        self.requeued: list[Entry] = []  # heap by position, merged ahead of `ready`
        self.unacked: dict[int, tuple[Entry, ConsumerRecord | None]] = {}
        self.consumers: dict[ActorRef[Any], ConsumerRecord] = {}
        self.rotation: deque[ConsumerRecord] = deque()
        self.next_id = 1
        self.had_consumer = False
        self.deleted = False
        self._handlers = {
            Enqueue: self._enqueue,
            Settle: self._settle,
            Credit: self._credit,
            AddConsumer: self._add_consumer,
            CancelConsumer: self._cancel_consumer,
            Request: self._request,
        }

    def on_receive(self, message: Any) -> None:  # noqa: D102
        self._handlers[type(message)](message)

    # ----- counts

    @property
    def message_count(self) -> int:
        """Messages ready for delivery (not counting unacknowledged ones)."""
        return len(self.ready) + len(self.requeued)

    # ----- publishing and delivery

    def _enqueue(self, msg: Enqueue) -> None:
        next_id = self.next_id
        append = self.ready.append
        for message in msg.messages:
            append(Entry(next_id, message))
            next_id += 1
        self.next_id = next_id
        if msg.seqs and msg.reply_to is not None:
            post(msg.reply_to, Accepted(msg.seqs))
        if self.rotation:
            self._deliver_ready()

    def _next_entry(self) -> Entry:
        requeued = self.requeued
        if requeued and (not self.ready or requeued[0].id < self.ready[0].id):
            return heapq.heappop(requeued)
        return self.ready.popleft()

    def _deliver_ready(self) -> None:
        rotation = self.rotation
        ready, requeued = self.ready, self.requeued
        unacked = self.unacked
        batches: dict[ConsumerRecord, list[Entry]] = {}
        stalled = 0
        while (ready or requeued) and stalled < len(rotation):
            record = rotation[0]
            rotation.rotate(-1)
            if not record.can_take():
                stalled += 1
                continue
            stalled = 0
            entry = self._next_entry()
            record.credit -= 1
            if not record.no_ack:
                record.in_flight += 1
                unacked[entry.id] = (entry, record)
            batch = batches.get(record)
            if batch is None:
                batches[record] = [entry]
            else:
                batch.append(entry)
        for record, entries in batches.items():
            post(record.ref, Deliver(entries))

    def _settle(self, msg: Settle) -> None:
        unacked = self.unacked
        requeue = msg.requeue
        for entry_id in msg.entry_ids:
            held = unacked.pop(entry_id, None)
            if held is None:
                continue
            entry, record = held
            if record is not None:
                record.in_flight -= 1
            if requeue:
                heapq.heappush(self.requeued, Entry(entry.id, entry.message, True))
        if self.rotation:
            self._deliver_ready()

    def _credit(self, msg: Credit) -> None:
        record = self.consumers.get(msg.consumer)
        if record is not None:
            record.credit += msg.count
            self._deliver_ready()

    # ----- consumers

    def _add_consumer(self, add: AddConsumer) -> None:
        text = f"queue '{self.name}' in vhost '{self.owner_vhost}' in exclusive use"
        if any(r.exclusive for r in self.consumers.values()) or (add.exclusive and self.consumers):
            post(add.channel, Reply(error=AMQPError(403, text, 60, 20)))
            return
        record = ConsumerRecord(add)
        self.consumers[add.consumer] = record
        self.rotation.append(record)
        self.had_consumer = True
        post(add.consumer, ConsumerAdded(add.consumer_tag, self.actor_ref, add.nowait))
        self._deliver_ready()

    def _cancel_consumer(self, msg: CancelConsumer) -> None:
        record = self.consumers.pop(msg.consumer, None)
        if record is None:
            return
        self.rotation.remove(record)
        if msg.channel_closed:
            held = [i for i, (_, owner) in self.unacked.items() if owner is record]
            if held:
                self._settle(Settle(held, True))
        else:
            post(record.ref, ConsumerRemoved(record.tag, notify=False, nowait=msg.nowait))
        if self.auto_delete and not self.consumers and self.had_consumer:
            post(
                self.vhost,
                Request(spec.QueueDelete(queue=self.name, if_unused=True), None, 0),
            )

    # ----- management requests forwarded by the vhost

    @property
    def owner_vhost(self) -> str:
        """The vhost name, for RabbitMQ-style error texts."""
        return self.owner or "/"

    def _request(self, req: Request) -> None:
        method = req.method
        if isinstance(method, spec.QueueDeclare):
            reply: spec.Method = spec.QueueDeclareOk(
                queue=self.name,
                message_count=self.message_count,
                consumer_count=len(self.consumers),
            )
            post(req.reply_to, Reply(None if method.no_wait else reply))
        elif isinstance(method, spec.BasicGet):
            self._get(method, req.reply_to)
        elif isinstance(method, spec.QueuePurge):
            count = len(self.ready) + len(self.requeued)
            self.ready.clear()
            self.requeued.clear()
            post(
                req.reply_to,
                Reply(None if method.no_wait else spec.QueuePurgeOk(message_count=count)),
            )
        elif isinstance(method, spec.QueueDelete):
            self._delete(method, req)
        else:
            raise TypeError(f"queue cannot handle {method.NAME}")

    def _get(self, method: spec.BasicGet, reply_to: ActorRef[Any]) -> None:
        if not (self.ready or self.requeued):
            post(reply_to, GetResult(None, 0, self.actor_ref, method.no_ack))
            return
        entry = self._next_entry()
        if not method.no_ack:
            self.unacked[entry.id] = (entry, None)
        post(reply_to, GetResult(entry, self.message_count, self.actor_ref, method.no_ack))

    def _delete(self, method: spec.QueueDelete, req: Request) -> None:
        where = f"queue '{self.name}' in vhost '{self.owner_vhost}'"
        error = None
        if method.if_unused and self.consumers:
            error = AMQPError(406, f"{where} in use", 50, 40)
        elif method.if_empty and self.message_count:
            error = AMQPError(406, f"{where} not empty", 50, 40)
        if error is not None:
            post(self.vhost, DeleteOutcome(self.name, False, Reply(error=error), req.reply_to))
            return
        count = self.message_count
        for record in self.consumers.values():
            post(record.ref, ConsumerRemoved(record.tag, notify=True))
        self.consumers.clear()
        self.rotation.clear()
        reply = None if method.no_wait else spec.QueueDeleteOk(message_count=count)
        post(self.vhost, DeleteOutcome(self.name, True, Reply(reply), req.reply_to))
        self.deleted = True
        self.stop()
