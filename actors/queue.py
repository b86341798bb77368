"""QueueActor: one actor owns one queue (as RabbitMQ's rabbit_amqqueue_process).

It keeps ready messages in position order, hands them round-robin to consumers within their
prefetch and flow credit, tracks what is delivered but unacknowledged, and puts requeued
messages back in their original position with redelivered set.

A durable queue with a store writes its persistent messages (StoreMessages) and confirms them
only once the store has committed them; acks, drops and purges remove them (UnstoreMessages),
and a first delivery is recorded (MarkDelivered) so a crash brings it back redelivered.

A consumer on a channel with a global prefetch (basic.qos global=true) is *windowed*: it may
only take deliveries its channel granted (WindowGrant). When it could take more but has no
window left, the queue asks once (WindowWanted, through the consumer actor so that it follows
the deliveries before it); window left over once the queue runs dry goes back to the channel
(WindowReturned), so an idle queue never sits on a share of the channel's limit.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from pykka import ActorRef

from dispatchd.actors.arguments import integer_argument
from dispatchd.actors.content import Entry, Message
from dispatchd.actors.dead_letter import DeadLettered, dead_letter_target, is_cycle
from dispatchd.actors.expiry import message_ttl, now_ms
from dispatchd.actors.limits import Limits
from dispatchd.actors.messages import (
    Accepted,
    AddConsumer,
    CancelConsumer,
    ConsumerAdded,
    ConsumerRemoved,
    Credit,
    DeadLetters,
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
from dispatchd.actors.priority import PriorityReady, max_priority
from dispatchd.actors.rotation import Rotation, consumer_priority
from dispatchd.actors.runtime import LoopActor, handles, post
from dispatchd.store.actor import (
    DeleteQueue,
    Loaded,
    LoadMessages,
    MarkDelivered,
    Stored,
    StoreFailed,
    StoreMessages,
    UnstoreMessages,
)
from dispatchd.store.ids import StoreIds
from dispatchd.store.paging import DEFAULT_MEMORY_LIMIT, LOAD_BATCH, Backlog, restore
from dispatchd.wire import spec
from dispatchd.wire.errors import AMQPError

log = logging.getLogger("dispatchd.queue")


@dataclass(frozen=True, slots=True)
class ExpiryDue:
    """Timer -> queue: the message at the head may have expired."""


@dataclass(frozen=True, slots=True)
class IdleDue:
    """Timer -> queue: the ``x-expires`` lease may have run out."""


FLOW_CREDIT = 500  # deliveries a consumer may have between two Credit grants from its channel
UNLIMITED = 1 << 62  # the window of a consumer whose channel has no global prefetch


class ConsumerRecord:
    """A consumer as its queue sees it: where to deliver and how much it may take."""

    __slots__ = (
        "ref",
        "channel",
        "tag",
        "no_ack",
        "prefetch",
        "in_flight",
        "credit",
        "exclusive",
        "window",
        "windowed",
        "asking",
        "priority",
        "arguments",
    )

    def __init__(self, add: AddConsumer) -> None:
        self.ref = add.consumer
        self.channel = add.channel
        self.tag = add.consumer_tag
        self.no_ack = add.no_ack
        self.prefetch = 0 if add.no_ack else add.prefetch
        self.in_flight = 0
        self.credit = FLOW_CREDIT
        self.exclusive = add.exclusive
        self.windowed = add.windowed
        self.window = 0 if add.windowed else UNLIMITED
        self.asking = False  # a WindowWanted is out and not yet answered
        self.priority = consumer_priority(add.arguments)
        self.arguments = add.arguments

    def set_limited(self, limited: bool) -> None:
        """Switch the channel window on (empty until granted) or off (unlimited)."""
        self.windowed = limited
        self.window = 0 if limited else UNLIMITED
        self.asking = False

    def room(self) -> int:
        """How many deliveries it could take if the channel window allowed (0: none)."""
        room = self.credit
        if self.prefetch:
            room = min(room, self.prefetch - self.in_flight)
        return max(room, 0)


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
        store: ActorRef[Any] | None = None,
        queue_id: int = 0,
        recovered: list[Entry] | None = None,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        ids: StoreIds | None = None,
    ) -> None:
        super().__init__(name=name, owner=vhost_name, supervisor=vhost)
        self.ids = ids or StoreIds()
        self.vhost = vhost
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = arguments
        self.store = store if durable else None
        self.queue_id = queue_id
        self.requeued: list[Entry] = []  # heap by position, merged ahead of `ready`
        # The ready store, chosen once: a plain FIFO (with `requeued` merged ahead of it), or
        # for an x-max-priority queue per-priority FIFOs that take requeued entries back
        # themselves (`requeued` then stays empty) and are never paged.
        self.priorities = max_priority(arguments)
        self.ready: deque[Entry] | PriorityReady
        self.requeue: Callable[[Entry], None]
        if self.priorities:
            self.ready = PriorityReady(self.priorities)
            self.requeue = self.ready.requeue
        else:
            self.ready = deque()
            self.requeue = partial(heapq.heappush, self.requeued)
        # Paging (durable queues): ready = loading < backlog < spill in position order.
        # `spill` holds entries past the limit until their commit (Stored) pages them into
        # `backlog`; `loading` is what a LoadMessages in flight is reading back. Priority
        # queues keep every ready message in memory (no paging).
        # Message TTL (actors/expiry.py), dead-lettering (actors/dead_letter.py), length
        # limits (actors/limits.py) and the queue's own expiry (x-expires), all optional.
        self.ttl = integer_argument(arguments, "x-message-ttl")
        self.expiring = self.ttl is not None  # some entry may carry an expiry
        self.ttl_timer: asyncio.TimerHandle | None = None
        self.ttl_timer_at = 0
        self.dead_letter = dead_letter_target(arguments, name)
        self.limits = Limits.of(arguments)
        self.ready_bytes = 0  # body bytes of ready messages (kept for length limits only)
        self.idle_ms = integer_argument(arguments, "x-expires")
        self.idle_timer: asyncio.TimerHandle | None = None
        self.idle_deadline = 0
        self.cycle_logged = False
        if self.store is None or self.priorities or self.limits:
            self.limit = UNLIMITED
        else:
            self.limit = max(memory_limit, 1)
        self.spill: deque[Entry] = deque()
        self.backlog = Backlog()
        self.loading: list[Any] | None = None
        self.load_token = 0
        self.paging = False  # spill, backlog or loading is not empty
        self.waiting_gets: list[tuple[spec.BasicGet, ActorRef[Any]]] = []
        self._recover(recovered or [])
        self.unacked: dict[int, tuple[Entry, ConsumerRecord | None]] = {}
        self.consumers: dict[ActorRef[Any], ConsumerRecord] = {}
        # Consumers in delivery order: round-robin groups by x-priority, or the single active.
        self.rotation: Rotation[ConsumerRecord] = Rotation(
            arguments.get("x-single-active-consumer") is True
        )
        last = self.backlog.positions[-1] if len(self.backlog) else 0
        self.next_id = max(last, self.ready[-1].id if self.ready else 0) + 1
        self.had_consumer = False
        self.deleted = False
        self.windowed = 0  # how many consumers are windowed (global prefetch on their channel)
        self.delivered = 0  # deliveries and gets, for the admin's rates
        self.acked = 0

    def on_start(self) -> None:  # noqa: D102
        self._renew_lease()
        if self.expiring:  # recovered messages may have expired while the broker was down
            self._expire_head(now_ms())

    # ----- counts

    @property
    def message_count(self) -> int:
        """Messages ready for delivery (not counting unacknowledged ones)."""
        count = len(self.ready) + len(self.requeued)
        if self.paging:
            count += len(self.spill) + len(self.backlog) + len(self.loading or ())
        return count

    @property
    def in_memory(self) -> int:
        """Ready messages whose bodies this queue holds (paged ones are only in the store)."""
        count = len(self.ready) + len(self.requeued) + len(self.spill)
        loading = self.loading or ()
        return count + len(self.backlog.whole) + sum(isinstance(e, Entry) for e in loading)

    # ----- publishing and delivery

    @handles(Enqueue)
    def on_enqueue(self, msg: Enqueue) -> None:
        messages, seqs = msg.messages, msg.seqs
        if msg.dead_letters:
            messages = self._without_cycles(messages)
        refused: list[int] = []
        if self.limits is not None and self.limits.rejects:
            messages, seqs, refused = self._admit(messages, seqs)
        next_id = self.next_id
        ready = self.ready
        rows: list[tuple[int, Message, int]] = []
        store = self.store
        spilled = self.paging
        room = self.limit - len(ready)
        ttl = self.ttl
        now = 0 if ttl is None else now_ms()
        deadline = 0 if ttl is None else now + ttl  # the queue's TTL, for messages without one
        for message in messages:
            raw = message.raw_properties
            if len(raw) > 1 and raw[0] & 0x01:  # the message has its own expiration
                now = now or now_ms()
                entry = Entry(next_id, message, False, self._expiry(message, now))
            else:  # the usual case: no TTL at all (deadline 0), or the queue's
                entry = Entry(next_id, message, False, deadline)
            if spilled or room <= 0:  # past the limit: paged out once committed
                spilled = True
                self.spill.append(entry)
            else:
                room -= 1
                ready.append(entry)
            if store is not None and message.persistent:
                self.ids.message_id(message)
                rows.append((next_id, message, entry.expires))
            next_id += 1
        self.next_id = next_id
        self.paging = spilled
        if self.limits is not None:
            self.ready_bytes += sum(len(m.body) for m in messages)
        confirm = seqs and msg.reply_to is not None
        if rows:
            assert store is not None
            then = (msg.reply_to, Accepted(seqs)) if confirm else None
            paged = self.actor_ref if spilled else None
            post(store, StoreMessages(self.queue_id, rows, then, paged))
        elif confirm:
            post(msg.reply_to, Accepted(seqs))
        if refused and msg.reply_to is not None:  # after the acks, as RabbitMQ orders them
            post(msg.reply_to, Rejected(refused))
        if self.rotation:
            self._deliver_ready(now)
        if self.limits is not None:
            self._drop_over_limit()
        if self.expiring:  # a TTL of 0: what no consumer took at once expires now
            self._expire_head(max(now_ms(), now + 1))

    def _expiry(self, message: Message, now: int) -> int:
        """When a message arriving ``now`` expires: the queue's TTL or its own, the smaller."""
        ttl, own = self.ttl, message_ttl(message)
        if own is not None:
            ttl = own if ttl is None else min(ttl, own)
        if ttl is None:
            return 0
        self.expiring = True
        return now + ttl

    # ----- TTL, length limits and dead-lettering

    def _head(self) -> Entry | None:
        """The next ready entry to deliver, without taking it (None: none in memory)."""
        requeued, ready = self.requeued, self.ready
        if requeued and (not ready or requeued[0].id < ready[0].id):
            return requeued[0]
        return ready[0] if ready else None

    def _expire_head(self, now: int) -> None:
        """Remove expired entries from the head, then time the next head's expiry."""
        expired: list[Entry] = []
        head = self._head()
        while head is not None and head.expires and head.expires < now:
            expired.append(self._next_entry())
            head = self._head()
        if expired:
            self._discard(expired, "expired")
        if head is None or not head.expires:
            return
        at = head.expires + 1
        if self.ttl_timer is not None:
            if self.ttl_timer_at <= at:
                return
            self.ttl_timer.cancel()
        delay = max(at - now_ms(), 0) / 1000
        self.ttl_timer = self.runtime.loop.call_later(delay, post, self.actor_ref, ExpiryDue())
        self.ttl_timer_at = at

    @handles(ExpiryDue)
    def on_expiry_due(self, _msg: ExpiryDue) -> None:
        self.ttl_timer = None
        self._expire_head(now_ms())

    def _drop_over_limit(self) -> None:
        """drop-head: remove from the head until within the length limits."""
        limits = self.limits
        assert limits is not None
        if limits.rejects:
            return
        dropped: list[Entry] = []
        while (self.ready or self.requeued) and limits.over(
            len(self.ready) + len(self.requeued), self.ready_bytes
        ):
            dropped.append(self._next_entry())
        if dropped:
            self._discard(dropped, "maxlen")

    def _admit(
        self, messages: list[Message], seqs: list[int]
    ) -> tuple[list[Message], list[int], list[int]]:
        """reject-publish: refuse what would take the queue past a limit; what consumers
        with room take at once never counts. The messages and seqs kept, the seqs refused."""
        limits = self.limits
        assert limits is not None
        count, size = self.message_count, self.ready_bytes
        room = 0
        if not count:  # consumers with room take messages at once, whatever the limits
            room = sum(min(r.room(), r.window) for group in self.rotation for r in group)
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
        if self.store is not None:
            self._unstore(entries)
        self._dead_letter([e.message for e in entries], reason)

    def _dead_letter(self, messages: list[Message], reason: str) -> None:
        target = self.dead_letter
        if target is not None and messages:
            letters: list[Message] = [target.letter(m, reason) for m in messages]
            post(self.vhost, DeadLetters(target.exchange, letters))

    def _without_cycles(self, messages: list[Message]) -> list[Message]:
        """Dead letters that went round a cycle back here are dropped (and logged once)."""
        kept = [m for m in messages if not (type(m) is DeadLettered and is_cycle(m, self.name))]
        if len(kept) < len(messages) and not self.cycle_logged:
            self.cycle_logged = True
            log.warning(
                "queue %s in vhost %s: dead-lettered messages dropped, a dead-letter cycle "
                "came back here (reported once)",
                self.name,
                self.owner_vhost,
            )
        return kept

    # ----- the queue's own expiry (x-expires)

    def _renew_lease(self) -> None:
        """Restart the x-expires countdown (none while consumers are attached)."""
        if self.idle_ms is None:
            return
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.consumers or self.deleted:
            return
        self.idle_deadline = now_ms() + self.idle_ms
        delay = self.idle_ms / 1000
        self.idle_timer = self.runtime.loop.call_later(delay, post, self.actor_ref, IdleDue())

    @handles(IdleDue)
    def on_idle_due(self, _msg: IdleDue) -> None:
        self.idle_timer = None
        if self.consumers or self.deleted or now_ms() < self.idle_deadline:
            return
        log.info("queue %s in vhost %s expired (x-expires)", self.name, self.owner_vhost)
        post(self.vhost, Request(spec.QueueDelete(queue=self.name), None, 0))

    # ----- the store (durable queues only)

    def _recover(self, entries: list[Entry]) -> None:
        """Recovered entries: the first ``limit`` whole ones are ready, the rest paged."""
        ready, backlog, limit = self.ready, self.backlog, self.limit
        for entry in entries:
            message = entry.message
            if isinstance(message, int):  # recovery left the body in the store
                backlog.page(entry.id, message, entry.redelivered)
            elif entry.expires and (len(backlog) or len(ready) >= limit):
                backlog.keep(entry)  # an expiry is kept in memory only: not paged
            elif len(backlog) or len(ready) >= limit:
                backlog.page(entry.id, message.store_id, entry.redelivered)
            else:
                ready.append(entry)
            if entry.expires:
                self.expiring = True
            if self.limits is not None and not isinstance(message, int):
                self.ready_bytes += len(message.body)
        self.paging = bool(len(backlog))

    @handles(Stored)
    def on_stored(self, msg: Stored) -> None:
        """Spilled entries up to ``last_position`` are committed: keep only references."""
        spill, backlog = self.spill, self.backlog
        while spill and spill[0].id <= msg.last_position:
            entry = spill.popleft()
            if entry.message.store_id and entry.message.persistent and not entry.expires:
                backlog.page(entry.id, entry.message.store_id, entry.redelivered)
            else:
                backlog.keep(entry)

    @handles(StoreFailed)
    def on_store_failed(self, msg: StoreFailed) -> None:
        """A write or read of ours failed: keep the entries whole (a failed write is not on
        disk), or give a failed read back to the backlog to be tried again."""
        request = msg.request
        if type(request) is StoreMessages:
            spill, last = self.spill, request.rows[-1][0]
            while spill and spill[0].id <= last:
                self.backlog.keep(spill.popleft())
        elif type(request) is LoadMessages and request.token == self.load_token:
            self.backlog.put_back(self.loading or [])
            self.loading = None
            self.load_token += 1  # the next trigger (a delivery or a get) tries again

    def _refill(self) -> None:
        """Bring the next entries past the limit into ``ready``: read paged bodies back
        (asynchronously, through the store) or move spilled entries, which are whole."""
        backlog = self.backlog
        if len(backlog):
            taken, ids = backlog.take(min(LOAD_BATCH, max(self.limit // 2, 1)))
            if ids:
                self.loading = taken
                assert self.store is not None
                post(self.store, LoadMessages(self.queue_id, ids, self.actor_ref, self.load_token))
                return
            self.ready.extend(restore(taken, {})[0])
        else:
            spill, ready = self.spill, self.ready
            while spill and len(ready) < self.limit:
                ready.append(spill.popleft())
        self.paging = bool(self.spill or len(backlog))

    @handles(Loaded)
    def on_loaded(self, msg: Loaded) -> None:
        if msg.token != self.load_token or self.loading is None:
            return  # purged (or deleted) while it was read
        entries, missing = restore(self.loading, msg.messages)
        if missing:
            log.error("queue %s: %d paged messages missing from the store", self.name, len(missing))
        self.loading = None
        self.ready.extend(entries)
        self.paging = bool(self.spill or len(self.backlog))
        if self.paging and len(self.ready) < self.limit // 2:
            self._refill()
        gets, self.waiting_gets = self.waiting_gets, []
        for method, reply_to in gets:
            self._get(method, reply_to)
        if self.rotation:
            self._deliver_ready()

    def _stored(self, entries: list[Entry]) -> list[tuple[int, int]]:
        """(position, store id) of the entries that are in the store."""
        if self.store is None:
            return []
        return [(e.id, e.message.store_id) for e in entries if e.message.store_id]

    def _unstore(self, entries: list[Entry]) -> None:
        rows = self._stored(entries)
        if rows:
            post(self.store, UnstoreMessages(self.queue_id, rows))

    def _mark_delivered(self, entries: list[Entry], no_ack: bool) -> None:
        """No-ack deliveries are done with; others are recorded as delivered once."""
        if no_ack:
            self._unstore(entries)
            return
        first = [e for e in entries if not e.redelivered]
        rows = self._stored(first)
        if rows:
            post(self.store, MarkDelivered(self.queue_id, [p for p, _ in rows]))

    def _next_entry(self) -> Entry:
        requeued = self.requeued
        if requeued and (not self.ready or requeued[0].id < self.ready[0].id):
            entry = heapq.heappop(requeued)
        else:
            entry = self.ready.popleft()
        if self.limits is not None:
            self.ready_bytes -= len(entry.message.body)
        return entry

    def _deliver_ready(self, now: int = 0) -> None:
        """Hand ready entries round the consumers, within their credit, window and prefetch
        (expired ones are dropped instead: as of ``now``, default the current time)."""
        groups = iter(self.rotation)  # round-robin groups, highest consumer priority first
        rotation: deque[ConsumerRecord] = deque()
        ready, requeued = self.ready, self.requeued
        unacked = self.unacked
        batches: dict[ConsumerRecord, list[Entry]] = {}
        expiring = self.expiring
        if expiring and not now:
            now = now_ms()
        expired: list[Entry] = []
        stalled = 0
        while ready or requeued:
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
            entry = self._next_entry()
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
            self.delivered += len(entries)
            if self.store is not None:
                self._mark_delivered(entries, record.no_ack)
            if not post(record.ref, Deliver(entries)):
                self._consumer_gone(record)
        if expired:
            self._discard(expired, "expired")
        if self.paging and self.loading is None and len(ready) < self.limit // 2 + 1:
            self._refill()
            if ready and self.rotation:
                self._deliver_ready()
                return
        if self.windowed and not (ready or requeued) and not self.paging:
            self._return_windows()

    @handles(Settle)
    def on_settle(self, msg: Settle) -> None:
        unacked = self.unacked
        requeue = msg.requeue
        push = self.requeue
        if requeue is None:
            self.acked += len(msg.entry_ids)
        done: list[Entry] = []
        for entry_id in msg.entry_ids:
            held = unacked.pop(entry_id, None)
            if held is None:
                continue
            entry, record = held
            if record is not None:
                record.in_flight -= 1
            if requeue:
                push(Entry(entry.id, entry.message, True, entry.expires))
                if self.limits is not None:
                    self.ready_bytes += len(entry.message.body)
            else:
                done.append(entry)
        if requeue is False:
            self._discard(done, "rejected")
        elif done and self.store is not None:
            self._unstore(done)
        if self.rotation:
            self._deliver_ready()
        if requeue:
            if self.limits is not None:
                self._drop_over_limit()
            if self.expiring:
                self._expire_head(now_ms())

    @handles(Credit)
    def on_credit(self, msg: Credit) -> None:
        record = self.consumers.get(msg.consumer)
        if record is not None:
            record.credit += msg.count
            self._deliver_ready()

    # ----- the channel window (global prefetch)

    def _want_window(self, record: ConsumerRecord) -> None:
        """Ask the consumer's channel for window, if the consumer could otherwise take more."""
        count = min(record.room(), self.message_count)
        if count > 0:
            record.asking = True
            post(record.ref, WindowWanted(record.tag, record.ref, count))

    def _return_windows(self) -> None:
        """The queue ran dry: give back window that windowed consumers hold unused."""
        for record in self.consumers.values():
            if record.windowed and record.window > 0:
                post(record.ref, WindowReturned(record.tag, record.ref, record.window))
                record.window = 0

    @handles(WindowGrant)
    def on_window_grant(self, msg: WindowGrant) -> None:
        record = self.consumers.get(msg.consumer)
        if record is not None and record.windowed:
            record.window += msg.count
            record.asking = False
            self._deliver_ready()

    @handles(WindowLimit)
    def on_window_limit(self, msg: WindowLimit) -> None:
        record = self.consumers.get(msg.consumer)
        if record is not None and record.windowed != msg.limited:
            self.windowed += 1 if msg.limited else -1
            record.set_limited(msg.limited)
            self._deliver_ready()

    # ----- consumers

    @handles(AddConsumer)
    def on_add_consumer(self, add: AddConsumer) -> None:
        text = f"queue '{self.name}' in vhost '{self.owner_vhost}' in exclusive use"
        if any(r.exclusive for r in self.consumers.values()) or (
            add.exclusive and (self.consumers or self.rotation.single_active)
        ):
            post(add.channel, Reply(error=AMQPError(403, text, 60, 20)))
            return
        if not post(add.consumer, ConsumerAdded(add.consumer_tag, self.actor_ref, add.nowait)):
            return  # its channel closed while the consume was on its way
        record = ConsumerRecord(add)
        self.consumers[add.consumer] = record
        self.windowed += record.windowed
        self.had_consumer = True
        self._renew_lease()
        if self.rotation.join(record):
            self._deliver_ready()

    @handles(CancelConsumer)
    def on_cancel_consumer(self, msg: CancelConsumer) -> None:
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
        del self.consumers[record.ref]
        self.windowed -= record.windowed
        if not self.consumers:
            self._renew_lease()
        return self.rotation.leave(record)

    def _auto_delete(self) -> None:
        if self.auto_delete and not self.consumers and self.had_consumer and not self.deleted:
            post(
                self.vhost,
                Request(spec.QueueDelete(queue=self.name, if_unused=True), None, 0),
            )

    # ----- management requests forwarded by the vhost

    @property
    def owner_vhost(self) -> str:
        """The vhost name, for RabbitMQ-style error texts."""
        return self.owner or "/"

    @handles(Request)
    def on_request(self, req: Request) -> None:
        method = req.method
        if isinstance(method, spec.QueueDeclare):
            self._renew_lease()
            reply: spec.Method = spec.QueueDeclareOk(
                queue=self.name,
                message_count=self.message_count,
                consumer_count=len(self.consumers),
            )
            post(req.reply_to, Reply(None if method.no_wait else reply))
        elif isinstance(method, spec.BasicGet):
            self._get(method, req.reply_to)
        elif isinstance(method, spec.QueuePurge):
            count = self.message_count
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
        if self.store is not None:
            loading = self.loading or []
            whole = [e for e in loading if isinstance(e, Entry)]
            self._unstore([*self.ready, *self.requeued, *self.spill, *whole])
            self._unstore(list(self.backlog.whole.values()))
            paged = self.backlog.stored()
            paged += [(e[0], e[1]) for e in loading if not isinstance(e, Entry)]
            if paged:
                post(self.store, UnstoreMessages(self.queue_id, paged))
        self.ready.clear()
        self.requeued.clear()
        self.ready_bytes = 0
        self.spill.clear()
        self.backlog.clear()
        self.loading = None
        self.load_token += 1
        self.paging = False
        self._answer_waiting_gets()

    def _get(self, method: spec.BasicGet, reply_to: ActorRef[Any]) -> None:
        self._renew_lease()
        if self.expiring:
            self._expire_head(now_ms())
        if not (self.ready or self.requeued) and self.paging:
            if self.loading is None:
                self._refill()
            if not (self.ready or self.requeued):  # a read from the store is on its way
                self.waiting_gets.append((method, reply_to))
                return
        if not (self.ready or self.requeued):
            post(reply_to, GetResult(None, 0, self.actor_ref, method.no_ack))
            return
        entry = self._next_entry()
        if self.expiring:  # as RabbitMQ, the count leaves out what expired behind it
            self._expire_head(now_ms())
        self.delivered += 1
        if not method.no_ack:
            self.unacked[entry.id] = (entry, None)
        if self.store is not None:
            self._mark_delivered([entry], method.no_ack)
            if self.paging and self.loading is None and len(self.ready) < self.limit // 2 + 1:
                self._refill()
        post(reply_to, GetResult(entry, self.message_count, self.actor_ref, method.no_ack))

    def _delete(self, method: spec.QueueDelete, req: Request) -> None:
        where = f"queue '{self.name}' in vhost '{self.owner_vhost}'"
        error = None
        if req.reply_to is None and not method.if_unused and not self._lease_expired():
            # x-expires fired, but the queue was used (or declared) since: it stays
            post(self.vhost, DeleteOutcome(self.name, False, Reply(), None))
            return
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
        self.rotation.reset()
        self.windowed = 0
        reply = None if method.no_wait else spec.QueueDeleteOk(message_count=count)
        outcome = DeleteOutcome(self.name, True, Reply(reply), req.reply_to)
        if self.store is not None:  # delete-ok only once the queue is gone from the disk
            post(
                self.store,
                DeleteQueue(self.queue_id, self.owner_vhost, self.name, then=(self.vhost, outcome)),
            )
        else:
            post(self.vhost, outcome)
        self.deleted = True
        self._answer_waiting_gets()
        self.stop()

    def _lease_expired(self) -> bool:
        """Whether the x-expires lease has run out (a queue without one: always)."""
        if self.idle_ms is None:
            return True
        return not self.consumers and now_ms() >= self.idle_deadline

    def _answer_waiting_gets(self) -> None:
        """basic.gets waiting for a read of paged messages: the queue is gone, answer empty."""
        for method, reply_to in self.waiting_gets:
            post(reply_to, GetResult(None, 0, self.actor_ref, method.no_ack))
        self.waiting_gets = []

    def on_stop(self) -> None:
        """Publishes still in the mailbox die with the queue; confirm them (as RabbitMQ does
        for a deleted queue) so no publisher waits forever for a confirm or a tx.commit-ok."""
        for timer in (self.ttl_timer, self.idle_timer):
            if timer is not None:
                timer.cancel()
        for message, _, _ in self.actor_inbox.queue:
            if type(message) is Enqueue and message.seqs and message.reply_to is not None:
                post(message.reply_to, Accepted(message.seqs))

    def describe(self) -> dict[str, Any]:
        """Counts, totals (for rates) and consumers for the admin page."""
        return {
            **super().describe(),
            "durable": self.durable,
            "exclusive_owner": self.exclusive_owner,
            "auto_delete": self.auto_delete,
            "arguments": self.arguments,
            "messages_ready": self.message_count,
            "messages_unacknowledged": len(self.unacked),
            "messages_in_memory": self.in_memory,
            "message_bytes_ready": self.ready_bytes if self.limits is not None else None,
            "memory_limit": self.limit if self.store is not None and not self.priorities else None,
            "published": self.next_id - 1,
            "delivered": self.delivered,
            "acked": self.acked,
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
                    "active": self.rotation.is_active(r),
                    "activity_status": self.rotation.status(r),
                }
                for r in self.consumers.values()
            ],
        }
