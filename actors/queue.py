"""QueueActor: one actor owns one queue (as RabbitMQ's rabbit_amqqueue_process).

A shell over its state objects: the ready messages in delivery order (``actors/ready/``:
FIFO, priority or paged), the consumers and the order they are served in
(``queue_consumers.py``), message TTL and the queue's own expiry (``expiry.py``), length
limits (``limits.py``) and dead-lettering (``dead_letter.py``). It hands ready messages
round-robin to consumers within their prefetch and flow credit, tracks what is delivered but
unacknowledged, and puts requeued messages back in their original position with
redelivered set.

A durable queue with a store writes its persistent messages and confirms them only once the
store has committed them (``durable.py``); acks, drops and purges remove them, and a first
delivery is recorded so a crash brings it back redelivered.

A consumer on a channel with a global prefetch (basic.qos global=true) is *windowed*: it may
only take deliveries its channel granted (WindowGrant). When it could take more but has no
window left, the queue asks once (WindowWanted, through the consumer actor so that it follows
the deliveries before it); window left over once the queue runs dry goes back to the channel
(WindowReturned), so an idle queue never sits on a share of the channel's limit.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pykka import ActorRef

from dispatchd.actors.arguments import integer_argument
from dispatchd.actors.content import Entry, Message
from dispatchd.actors.dead_letter import DeadLettering
from dispatchd.actors.durable import QueueStorage
from dispatchd.actors.expiry import Lease, MessageExpiry, now_ms
from dispatchd.actors.limits import Limits
from dispatchd.actors.messages import (
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
    Rejected,
    Reply,
    Request,
    Settle,
    WindowGrant,
    WindowLimit,
    WindowReturned,
    WindowWanted,
)
from dispatchd.actors.queue_consumers import ConsumerRecord, QueueConsumers
from dispatchd.actors.ready import DEFAULT_MEMORY_LIMIT, max_priority, ready_messages
from dispatchd.actors.runtime import LoopActor, Timer, handles, post
from dispatchd.actors.stats import MessageTotals
from dispatchd.store.actor import Loaded, LoadMessages, Stored, StoreFailed, StoreMessages
from dispatchd.wire import spec
from dispatchd.wire.errors import access_refused, precondition_failed
from dispatchd.wire.spec import FIRST_BYTE_EXPIRATION

log = logging.getLogger("dispatchd.queue")


@dataclass(frozen=True, slots=True)
class ExpiryDue:
    """Timer -> queue: the message at the head may have expired."""


@dataclass(frozen=True, slots=True)
class IdleDue:
    """Timer -> queue: the ``x-expires`` lease may have run out."""


@dataclass(frozen=True, slots=True)
class Declaration:
    """How the queue was declared."""

    durable: bool
    exclusive_owner: int | None  # the connection an exclusive queue belongs to
    auto_delete: bool
    arguments: dict[str, Any]


class QueueState(Enum):
    """Whether the queue still is."""

    LIVE = "live"
    DELETED = "deleted"  # delete-ok is on its way; the actor is stopping


class QueueActor(LoopActor):
    """One AMQP queue."""

    kind = "queue"

    def __init__(
        self,
        vhost: ActorRef[Any],
        vhost_name: str,
        name: str,
        declaration: Declaration,
        storage: QueueStorage | None = None,
        recovered: list[Entry] | None = None,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        super().__init__(name=name, owner=vhost_name, supervisor=vhost)
        arguments = declaration.arguments
        self.vhost = vhost
        self.declaration = declaration
        self.storage = storage if declaration.durable else None
        self.limits = Limits.of(arguments)
        self.ready = ready_messages(
            max_priority(arguments), self.storage is not None, bool(self.limits), memory_limit
        )
        self.expiry = MessageExpiry(integer_argument(arguments, "x-message-ttl"))
        self.lease = Lease(integer_argument(arguments, "x-expires"))
        self.dead_lettering = DeadLettering(arguments, name, self.owner_vhost)
        self.consumers = QueueConsumers(arguments.get("x-single-active-consumer") is True)
        self.unacked: dict[int, tuple[Entry, ConsumerRecord | None]] = {}
        self.waiting_gets: list[tuple[spec.BasicGet, ActorRef[Any]]] = []  # for a read
        self.state = QueueState.LIVE
        self.totals = MessageTotals()  # delivered (and got) and acked; published = next_id - 1
        entries = recovered or []
        self.ready.recover(entries)
        if any(entry.expires for entry in entries):
            self.expiry.expiring = True
        self.next_id = self.ready.last_position() + 1

    def on_start(self) -> None:  # noqa: D102
        self.ttl_timer = Timer(self.actor_ref, ExpiryDue())
        self.idle_timer = Timer(self.actor_ref, IdleDue())
        self._renew_lease()
        if self.expiry.expiring:  # recovered messages may have expired while we were down
            self._expire_head(now_ms())

    @property
    def owner_vhost(self) -> str:
        """The vhost name, for RabbitMQ-style error texts."""
        return self.owner or "/"

    # ----- publishing and delivery

    @handles(Enqueue)
    def on_enqueue(self, msg: Enqueue) -> None:
        """Messages routed here: stamped with their position and expiry, stored if
        persistent, confirmed (after the commit, if stored), then delivered."""
        messages, seqs = msg.messages, msg.seqs
        if msg.dead_letters:
            messages = self.dead_lettering.without_cycles(messages)
        refused: list[int] = []
        if self.limits is not None and self.limits.rejects:
            messages, seqs, refused = self._admit(messages, seqs)
        next_id = self.next_id
        entries: list[Entry] = []
        add = entries.append
        rows: list[tuple[int, Message, int]] = []
        storage = self.storage
        expiry = self.expiry
        now = 0 if expiry.ttl is None else now_ms()
        deadline = expiry.deadline(now)  # the queue's TTL, for messages without their own
        for message in messages:
            raw = message.raw_properties
            if len(raw) > 1 and raw[0] & FIRST_BYTE_EXPIRATION:  # its own expiration
                now = now or now_ms()
                entry = Entry(next_id, message, False, expiry.of(message, now))
            else:  # the usual case: no TTL at all (deadline 0), or the queue's
                entry = Entry(next_id, message, False, deadline)
            add(entry)
            if storage is not None and message.persistent:
                storage.ids.message_id(message)
                rows.append((next_id, message, entry.expires))
            next_id += 1
        self.next_id = next_id
        self.ready.extend(entries)
        confirm = seqs and msg.reply_to is not None
        if rows:
            assert storage is not None
            then = (msg.reply_to, Accepted(seqs)) if confirm else None
            storage.write(rows, then, self.actor_ref if self.ready.paging else None)
        elif confirm:
            post(msg.reply_to, Accepted(seqs))
        if refused and msg.reply_to is not None:  # after the acks, as RabbitMQ orders them
            post(msg.reply_to, Rejected(refused))
        if self.consumers.rotation:
            self._deliver_ready(now)
        if self.limits is not None:
            self._drop_over_limit()
        if expiry.expiring:  # a TTL of 0: what no consumer took at once expires now
            self._expire_head(max(now_ms(), now + 1))

    def _deliver_ready(self, now: int = 0) -> None:
        """Hand ready entries round the consumers, within their credit, window and prefetch
        (expired ones are dropped instead: as of ``now``, default the current time)."""
        groups = iter(self.consumers.rotation)  # round-robin groups, highest priority first
        rotation: deque[ConsumerRecord] = deque()
        ready = self.ready
        pop = ready.pop
        unacked = self.unacked
        batches: dict[ConsumerRecord, list[Entry]] = {}
        expiring = self.expiry.expiring
        if expiring and not now:
            now = now_ms()
        expired: list[Entry] = []
        stalled = 0
        while ready.count:
            if stalled >= len(rotation):  # all in this group are blocked: on to the next
                rotation = next(groups, None)
                if rotation is None:
                    break
                stalled = 0
            record = rotation[0]
            rotation.rotate(-1)
            # Does one more delivery fit its flow credit, channel window and prefetch?
            if (
                record.credit <= 0
                or record.window <= 0
                or (record.prefetch and record.in_flight >= record.prefetch)
            ):
                stalled += 1
                if record.window <= 0 and not record.asking:
                    self._want_window(record)
                continue
            stalled = 0
            entry = pop()
            if expiring and entry.expires and entry.expires < now:
                expired.append(entry)
                continue
            record.credit -= 1
            record.window -= 1
            if not record.no_ack:
                record.in_flight += 1
                unacked[entry.id] = (entry, record)
            batch = batches.get(record)
            if batch is None:
                batches[record] = [entry]
            else:
                batch.append(entry)
        for record, entries in batches.items():
            self.totals.delivered += len(entries)
            if self.storage is not None:
                self.storage.delivered(entries, record.no_ack)
            if not post(record.ref, Deliver(entries)):
                self._consumer_gone(record)
        if expired:
            self._discard(expired, "expired")
        if ready.wants_refill():
            self._refill()
            if ready and self.consumers.rotation:
                self._deliver_ready()
                return
        if self.consumers.windowed and not ready and not ready.paging:
            self._return_windows()

    @handles(Settle)
    def on_settle(self, msg: Settle) -> None:
        """Deliveries were acked (``requeue`` None), requeued, or rejected (dead-lettered)."""
        unacked = self.unacked
        requeue = msg.requeue
        ready = self.ready
        if requeue is None:
            self.totals.acked += len(msg.entry_ids)
        done: list[Entry] = []
        for entry_id in msg.entry_ids:
            held = unacked.pop(entry_id, None)
            if held is None:
                continue
            entry, record = held
            if record is not None:
                record.in_flight -= 1
            if requeue:
                ready.requeue(Entry(entry.id, entry.message, True, entry.expires))
            else:
                done.append(entry)
        if requeue is False:
            self._discard(done, "rejected")
        elif done and self.storage is not None:
            self.storage.forget(done)
        if self.consumers.rotation:
            self._deliver_ready()
        if requeue:
            if self.limits is not None:
                self._drop_over_limit()
            if self.expiry.expiring:
                self._expire_head(now_ms())

    @handles(Credit)
    def on_credit(self, msg: Credit) -> None:
        """A consumer's channel wrote its deliveries: it may take more."""
        record = self.consumers.get(msg.consumer)
        if record is not None:
            record.credit += msg.count
            self._deliver_ready()

    # ----- TTL, length limits and dead-lettering

    def _expire_head(self, now: int) -> None:
        """Remove expired entries from the head, then time the next head's expiry."""
        ready = self.ready
        expired: list[Entry] = []
        expires = 0
        while ready.count:
            expires = ready.peek().expires
            if not expires or expires >= now:
                break
            expired.append(ready.pop())
            expires = 0
        if expired:
            self._discard(expired, "expired")
        if not expires:
            return
        at = expires + 1
        timer = self.ttl_timer
        if timer.pending and timer.due <= at:
            return
        timer.start(max(at - now_ms(), 0) / 1000, at)

    @handles(ExpiryDue)
    def on_expiry_due(self, _msg: ExpiryDue) -> None:
        """The head's expiry time came."""
        self._expire_head(now_ms())

    def _drop_over_limit(self) -> None:
        """drop-head: remove from the head until within the length limits."""
        limits = self.limits
        assert limits is not None
        if limits.rejects:
            return
        ready = self.ready
        dropped: list[Entry] = []
        while ready and limits.over(len(ready), ready.bytes):
            dropped.append(ready.pop())
        if dropped:
            self._discard(dropped, "maxlen")

    def _admit(
        self, messages: list[Message], seqs: list[int]
    ) -> tuple[list[Message], list[int], list[int]]:
        """reject-publish: refuse what would take the queue past a limit; what consumers
        with room take at once never counts. The messages and seqs kept, the seqs refused."""
        limits = self.limits
        assert limits is not None
        count, size = self.ready.total, self.ready.bytes
        room = 0 if count else self.consumers.room()  # consumers with room take at once
        kept: list[Message] = []
        kept_seqs: list[int] = []
        refused: list[Message] = []
        refused_seqs: list[int] = []
        for i, message in enumerate(messages):
            length = len(message.body)
            if room > 0:
                room -= 1
            elif limits.over(count + 1, size + length):
                refused.append(message)
                if seqs:
                    refused_seqs.append(seqs[i])
                continue
            else:
                count += 1
                size += length
            kept.append(message)
            if seqs:
                kept_seqs.append(seqs[i])
        if refused and limits.overflow == "reject-publish-dlx":
            self._dead_letter(refused, "maxlen")
        return kept, kept_seqs, refused_seqs

    def _discard(self, entries: list[Entry], reason: str) -> None:
        """Entries leave the queue unconsumed: forget them in the store, dead-letter them."""
        if self.storage is not None:
            self.storage.forget(entries)
        self._dead_letter([e.message for e in entries], reason)

    def _dead_letter(self, messages: list[Message], reason: str) -> None:
        letters = self.dead_lettering.letters(messages, reason)
        if letters is not None:
            post(self.vhost, letters)

    # ----- the queue's own expiry (x-expires)

    def _renew_lease(self) -> None:
        """Restart the x-expires countdown (none while consumers are attached)."""
        if self.lease.idle_ms is None:
            return
        self.idle_timer.cancel()
        if self.consumers or self.state is QueueState.DELETED:
            return
        self.idle_timer.start(self.lease.renew(now_ms()))

    @handles(IdleDue)
    def on_idle_due(self, _msg: IdleDue) -> None:
        """The lease may have run out: ask the vhost to delete the queue."""
        if self.state is QueueState.DELETED or self.consumers:
            return
        now = now_ms()
        if not self.lease.expired(now, False):
            # Used since (a declare or get renewed it), or the loop's timer fired a moment
            # before the wall-clock deadline: wait for the rest of the lease.
            self.idle_timer.start((self.lease.deadline - now) / 1000)
            return
        log.info("queue %s in vhost %s expired (x-expires)", self.name, self.owner_vhost)
        post(self.vhost, Request(spec.QueueDelete(queue=self.name), None, 0))

    # ----- the store (durable queues only)

    @handles(Stored)
    def on_stored(self, msg: Stored) -> None:
        """Spilled entries up to a position are committed: they page out."""
        self.ready.stored(msg.last_position)

    @handles(StoreFailed)
    def on_store_failed(self, msg: StoreFailed) -> None:
        """A write or read of ours failed: keep the entries whole (a failed write is not on
        disk), or give a failed read back to the backlog to be tried again."""
        request = msg.request
        if type(request) is StoreMessages:
            self.ready.store_failed(request.rows[-1][0])
        elif type(request) is LoadMessages:
            self.ready.load_failed(request.token)

    def _refill(self) -> None:
        """Bring the next paged entries in (their bodies are read back through the store)."""
        request = self.ready.refill()
        if request is not None:
            assert self.storage is not None
            self.storage.load(request, self.actor_ref)

    @handles(Loaded)
    def on_loaded(self, msg: Loaded) -> None:
        """Paged bodies came back from the store: waiting gets and consumers get them."""
        missing = self.ready.loaded(msg.token, msg.messages)
        if missing is None:
            return  # purged (or deleted) while it was read
        if missing:
            log.error("queue %s: %d paged messages missing from the store", self.name, len(missing))
        if self.ready.wants_refill():
            self._refill()
        gets, self.waiting_gets = self.waiting_gets, []
        for method, reply_to in gets:
            self._get(method, reply_to)
        if self.consumers.rotation:
            self._deliver_ready()

    # ----- the channel window (global prefetch)

    def _want_window(self, record: ConsumerRecord) -> None:
        """Ask the consumer's channel for window, if the consumer could otherwise take more."""
        count = min(record.room(), self.ready.total)
        if count > 0:
            record.asking = True
            post(record.ref, WindowWanted(record.tag, record.ref, count))

    def _return_windows(self) -> None:
        """The queue ran dry: give back window that windowed consumers hold unused."""
        for record in self.consumers.records.values():
            if record.windowed and record.window > 0:
                post(record.ref, WindowReturned(record.tag, record.ref, record.window))
                record.window = 0

    @handles(WindowGrant)
    def on_window_grant(self, msg: WindowGrant) -> None:
        """A windowed consumer's channel lent it window."""
        record = self.consumers.get(msg.consumer)
        if record is not None and record.windowed:
            record.window += msg.count
            record.asking = False
            self._deliver_ready()

    @handles(WindowLimit)
    def on_window_limit(self, msg: WindowLimit) -> None:
        """A consumer's channel switched its global prefetch on or off."""
        record = self.consumers.get(msg.consumer)
        if record is not None and self.consumers.set_limited(record, msg.limited):
            self._deliver_ready()

    # ----- consumers

    @handles(AddConsumer)
    def on_add_consumer(self, add: AddConsumer) -> None:
        """basic.consume (forwarded by the vhost): register the consumer, or refuse it."""
        if self.consumers.refuses(add.exclusive):
            text = f"queue '{self.name}' in vhost '{self.owner_vhost}' in exclusive use"
            post(add.channel, Reply(error=access_refused(text, 60, 20)))
            return
        if not post(add.consumer, ConsumerAdded(add.consumer_tag, self.actor_ref, add.nowait)):
            return  # its channel closed while the consume was on its way
        deliverable = self.consumers.add(ConsumerRecord(add))
        self._renew_lease()
        if deliverable:
            self._deliver_ready()

    @handles(CancelConsumer)
    def on_cancel_consumer(self, msg: CancelConsumer) -> None:
        """basic.cancel, or the consumer's channel closed."""
        record = self.consumers.get(msg.consumer)
        if record is None:
            return
        if msg.channel_closed:
            self._consumer_gone(record)
            return
        promoted = self._remove_consumer(record)
        post(record.ref, ConsumerRemoved(record.tag, notify=False, nowait=msg.nowait))
        if promoted:
            self._deliver_ready()
        self._auto_delete()

    def _consumer_gone(self, record: ConsumerRecord) -> None:
        """The consumer's channel closed: what it holds unacknowledged goes back, in order."""
        promoted = self._remove_consumer(record)
        held = [i for i, (_, owner) in self.unacked.items() if owner is record]
        if held:
            self.on_settle(Settle(held, True))  # delivers to the successor, if any
        elif promoted:
            self._deliver_ready()
        self._auto_delete()

    def _remove_consumer(self, record: ConsumerRecord) -> bool:
        """Forget a consumer; True if a waiting single active consumer took its place."""
        promoted = self.consumers.remove(record)
        if not self.consumers:
            self._renew_lease()
        return promoted

    def _auto_delete(self) -> None:
        if (
            self.declaration.auto_delete
            and not self.consumers
            and self.consumers.had_consumer
            and self.state is QueueState.LIVE
        ):
            post(
                self.vhost,
                Request(spec.QueueDelete(queue=self.name, if_unused=True), None, 0),
            )

    # ----- management requests forwarded by the vhost

    @handles(Request)
    def on_request(self, req: Request) -> None:
        """A declare, get, purge or delete the vhost forwarded."""
        method = req.method
        if isinstance(method, spec.QueueDeclare):
            self._renew_lease()
            reply: spec.Method = spec.QueueDeclareOk(
                queue=self.name,
                message_count=self.ready.total,
                consumer_count=len(self.consumers),
            )
            post(req.reply_to, Reply(None if method.no_wait else reply))
        elif isinstance(method, spec.BasicGet):
            self._get(method, req.reply_to)
        elif isinstance(method, spec.QueuePurge):
            count = self.ready.total
            self._purge()
            post(
                req.reply_to,
                Reply(None if method.no_wait else spec.QueuePurgeOk(message_count=count)),
            )
        elif isinstance(method, spec.QueueDelete):
            self._delete(method, req)
        else:
            raise TypeError(f"queue cannot handle {method.NAME}")

    def _purge(self) -> None:
        """Drop every ready message (paged ones too) and forget them in the store."""
        purged = self.ready.purge()
        if self.storage is not None:
            self.storage.forget(purged.entries)
            self.storage.forget_rows(purged.paged)
        self._answer_waiting_gets()

    def _get(self, method: spec.BasicGet, reply_to: ActorRef[Any]) -> None:
        ready = self.ready
        self._renew_lease()
        if self.expiry.expiring:
            self._expire_head(now_ms())
        if not ready and ready.paging:
            if not ready.reading:
                self._refill()
            if not ready:  # a read from the store is on its way
                self.waiting_gets.append((method, reply_to))
                return
        if not ready:
            post(reply_to, GetResult(None, 0, self.actor_ref, method.no_ack))
            return
        entry = ready.pop()
        if self.expiry.expiring:  # as RabbitMQ, the count leaves out what expired behind it
            self._expire_head(now_ms())
        self.totals.delivered += 1
        if not method.no_ack:
            self.unacked[entry.id] = (entry, None)
        if self.storage is not None:
            self.storage.delivered([entry], method.no_ack)
            if ready.wants_refill():
                self._refill()
        post(reply_to, GetResult(entry, ready.total, self.actor_ref, method.no_ack))

    def _delete(self, method: spec.QueueDelete, req: Request) -> None:
        where = f"queue '{self.name}' in vhost '{self.owner_vhost}'"
        error = None
        if (
            req.reply_to is None
            and not method.if_unused
            and not self.lease.expired(now_ms(), bool(self.consumers))
        ):
            # x-expires fired, but the queue was used (or declared) since: it stays
            post(self.vhost, DeleteOutcome(self.name, False, Reply(), None))
            return
        if method.if_unused and self.consumers:
            error = precondition_failed(f"{where} in use", 50, 40)
        elif method.if_empty and self.ready.total:
            error = precondition_failed(f"{where} not empty", 50, 40)
        if error is not None:
            post(self.vhost, DeleteOutcome(self.name, False, Reply(error=error), req.reply_to))
            return
        count = self.ready.total
        for record in self.consumers.clear():
            post(record.ref, ConsumerRemoved(record.tag, notify=True))
        reply = None if method.no_wait else spec.QueueDeleteOk(message_count=count)
        outcome = DeleteOutcome(self.name, True, Reply(reply), req.reply_to)
        if self.storage is not None:  # delete-ok only once the queue is gone from the disk
            self.storage.delete(self.owner_vhost, self.name, (self.vhost, outcome))
        else:
            post(self.vhost, outcome)
        self.state = QueueState.DELETED
        self._answer_waiting_gets()
        self.stop()

    def _answer_waiting_gets(self) -> None:
        """basic.gets waiting for a read of paged messages: the queue is gone, answer empty."""
        for method, reply_to in self.waiting_gets:
            post(reply_to, GetResult(None, 0, self.actor_ref, method.no_ack))
        self.waiting_gets = []

    def on_stop(self) -> None:
        """Publishes still in the mailbox die with the queue; confirm them (as RabbitMQ does
        for a deleted queue) so no publisher waits forever for a confirm or a tx.commit-ok."""
        self.ttl_timer.cancel()
        self.idle_timer.cancel()
        for message, _, _ in self.actor_inbox.queue:
            if type(message) is Enqueue and message.seqs and message.reply_to is not None:
                post(message.reply_to, Accepted(message.seqs))

    def describe(self) -> dict[str, Any]:
        """Counts, totals (for rates) and consumers for the admin page."""
        declaration, ready, rotation = self.declaration, self.ready, self.consumers.rotation
        return {
            **super().describe(),
            "durable": declaration.durable,
            "exclusive_owner": declaration.exclusive_owner,
            "auto_delete": declaration.auto_delete,
            "arguments": declaration.arguments,
            "messages_ready": ready.total,
            "messages_unacknowledged": len(self.unacked),
            "messages_in_memory": ready.in_memory,
            "message_bytes_ready": ready.bytes if self.limits is not None else None,
            "memory_limit": ready.memory_limit,
            "published": self.next_id - 1,
            "delivered": self.totals.delivered,
            "acked": self.totals.acked,
            "consumers": [
                {
                    "consumer_tag": r.tag,
                    "channel": r.channel.actor_urn,
                    "actor": r.ref.actor_urn,
                    "ack_required": not r.no_ack,
                    "prefetch_count": r.prefetch,
                    "exclusive": r.exclusive,
                    "in_flight": r.in_flight,
                    "arguments": r.arguments,
                    "priority": r.priority,
                    "active": rotation.is_active(r),
                    "activity_status": rotation.status(r),
                }
                for r in self.consumers.records.values()
            ],
        }
