"""ChannelActor: the AMQP semantics of one channel.

It takes the methods and publishes the wire layer assembled, in order. Publishes are batched
per exchange and told to exchange actors; declares, binds and deletes go to the vhost actor
one at a time (the channel waits for each Reply before the next method, which keeps
RabbitMQ's ordering). It assigns delivery tags, tracks unacknowledged deliveries, publisher
confirms and transactions, and frames everything it sends.

Transactions reuse the confirm machinery: tx.commit publishes the buffered messages with
internal sequence numbers and answers commit-ok once every queue took them (after any
basic.return), as RabbitMQ does; acks, nacks and rejects wait in the transaction until then.

A global prefetch (basic.qos global=true) is the channel's own: it counts its unacknowledged
consumer deliveries and lends the rest of its limit, as *window*, to the queues of consumers
that ask for it (WindowWanted / WindowGrant / WindowReturned, see actors/queue.py). Window
lent out plus deliveries unacknowledged never exceed the limit, so no queue ever delivers past
it; per-consumer prefetch (global=false) is enforced by each queue on its own.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from pykka import ActorRef

from dispatchd.actors.consumer import ConsumerActor
from dispatchd.actors.content import Message
from dispatchd.actors.distribution import Distributed, sender_selected
from dispatchd.actors.expiry import EXPIRATION_FLAG, check_expiration
from dispatchd.actors.link import Link
from dispatchd.actors.messages import (
    Accepted,
    AddConsumer,
    AddReplyName,
    CancelConsumer,
    ChannelInput,
    ChannelStopped,
    ConnectionGone,
    ConsumerAdded,
    ConsumerRemoved,
    Credit,
    Deliveries,
    ExchangeResolved,
    GetResult,
    Publish,
    Rejected,
    RemoveReplyName,
    Reply,
    ReplyDeliveries,
    Request,
    ResolveExchange,
    RouteResult,
    Settle,
    WindowGrant,
    WindowLimit,
    WindowReturned,
    WindowWanted,
    Writable,
)
from dispatchd.actors.reply_to import REPLY_PREFIX, REPLY_TO, ReplyToActor
from dispatchd.actors.runtime import ActorFailed, LoopActor, handles, post
from dispatchd.actors.stats import MessageTotals
from dispatchd.store.actor import StoreFailed
from dispatchd.wire import spec
from dispatchd.wire.errors import AMQPError
from dispatchd.wire.frames import content_frames, deliver_frames, method_frame

log = logging.getLogger("dispatchd.channel")


@dataclass(slots=True)
class ConsumerState:
    """A consumer as its channel sees it."""

    tag: str
    ref: ActorRef[Any]
    tag_bytes: bytes
    no_ack: bool
    queue: ActorRef[Any] | None = None
    owed_credit: int = 0
    granted: int = 0  # global-prefetch window lent to its queue and not yet used


@dataclass(frozen=True, slots=True)
class ReplyConsumer:
    """The channel's direct reply-to consumer: its tag, reply name and destination actor."""

    tag: str
    tag_bytes: bytes
    name: str
    dest: ActorRef[Any]


@dataclass(frozen=True, slots=True)
class Unacked:
    """A delivery awaiting ack: where it came from."""

    queue: ActorRef[Any]
    entry_id: int
    consumer_tag: str | None


def _shortstr(value: str) -> bytes:
    data = value.encode()
    return bytes((len(data),)) + data


def _unknown_tag(delivery_tag: int) -> AMQPError:
    return AMQPError(406, f"unknown delivery tag {delivery_tag}")


class ChannelActor(LoopActor):
    """One open AMQP channel."""

    kind = "channel"

    def __init__(
        self,
        link: Link,
        number: int,
        connection: ActorRef[Any],
        vhost: ActorRef[Any],
        connection_id: int,
        cancel_notify: bool,
    ) -> None:
        super().__init__(
            name=f"{link.connection_name} ({number})",
            owner=link.connection_name,
            supervisor=connection,
        )
        self.link = link
        self.user = link.user
        self.number = number
        self.vhost = vhost
        self.connection_id = connection_id
        self.cancel_notify = cancel_notify
        self.pending: deque[Any] = deque()
        self.waiting = False  # a method is in progress: later input waits behind it
        self.closing = False
        self.stop_pending = False  # gone, but a get or consume is still on its way back
        self.stopped = False
        self.exchanges: dict[str, tuple[ActorRef[Any], bool]] = {}
        self.batches: dict[ActorRef[Any], tuple[list[Message], list[int]]] = {}
        self.next_tag = 0
        self.unacked: OrderedDict[int, Unacked] = OrderedDict()
        self.consumers: dict[str, ConsumerState] = {}
        self.reply_consumer: ReplyConsumer | None = None  # consuming amq.rabbitmq.reply-to
        self.adding: ConsumerState | None = None  # basic.consume awaiting its queue
        self.cancelling: tuple[str, bool] | None = None  # basic.cancel (tag, nowait) in progress
        self.getting = False  # basic.get awaiting its queue
        self.confirming = False
        self.next_seq = 1
        self.unconfirmed: OrderedDict[int, int] = OrderedDict()
        self.transactional = False
        self.committing = False
        self.tx_publishes: dict[ActorRef[Any], tuple[list[Message], list[int]]] = {}
        self.tx_settles: list[tuple[int, Unacked, bool | None]] = []
        self.prefetch_count = 0
        self.global_limit = 0
        self.global_used = 0  # unacked consumer deliveries while global_limit is set
        self.global_granted = 0  # window lent to queues, not yet used or returned
        self.wanting: dict[str, int] = {}  # consumer tag -> window asked for, in ask order
        self.last_queue = ""
        self.publish_count = 0
        self.deliver_count = 0
        self.ack_count = 0
        self._methods: dict[type, Any] = {
            spec.BasicAck: self._ack,
            spec.BasicNack: self._nack,
            spec.BasicReject: self._reject,
            spec.BasicQos: self._qos,
            spec.BasicConsume: self._consume,
            spec.BasicCancel: self._cancel,
            spec.BasicGet: self._get,
            spec.BasicRecover: self._recover,
            spec.BasicRecoverAsync: self._recover,
            spec.ExchangeDeclare: self._request,
            spec.ExchangeDelete: self._request,
            spec.ExchangeBind: self._request,
            spec.ExchangeUnbind: self._request,
            spec.QueueDeclare: self._queue_declare,
            spec.QueueBind: self._queue_request,
            spec.QueueUnbind: self._queue_request,
            spec.QueuePurge: self._queue_request,
            spec.QueueDelete: self._queue_request,
            spec.TxSelect: self._tx_select,
            spec.TxCommit: self._tx_commit,
            spec.TxRollback: self._tx_rollback,
            spec.ConfirmSelect: self._confirm_select,
            spec.ChannelFlow: self._flow,
            spec.ChannelClose: self._client_close,
            spec.ChannelCloseOk: self._close_ok,
            spec.BasicCancelOk: lambda _m: None,  # a client answering our basic.cancel
        }

    # ----- output

    def _send(self, method: spec.Method) -> None:
        self.link.write(method_frame(self.number, method.encode()))

    def _send_content(self, method: spec.Method, message: Message) -> None:
        self._send(method)
        self.link.write(
            content_frames(
                self.number, 60, message.raw_properties, message.body, self.link.frame_max
            )
        )

    # ----- input processing

    @handles(ChannelInput)
    def on_channel_input(self, msg: ChannelInput) -> None:
        self.pending.extend(msg.items)
        self._process()

    def _process(self) -> None:
        pending = self.pending
        methods = self._methods
        while pending and not self.waiting:
            item = pending.popleft()
            try:
                if type(item) is Message:
                    if self.closing:
                        continue
                    if not self._publish(item):
                        pending.appendleft(item)
                        break
                    continue
                if self.closing and not isinstance(item, spec.ChannelClose | spec.ChannelCloseOk):
                    continue
                handler = methods.get(type(item))
                if handler is None:
                    raise AMQPError(540, f"{item.NAME} is not implemented")
                self._flush_publishes()
                handler(item)
            except AMQPError as error:
                if type(item) is Message:
                    error.at(60, 40)
                else:
                    error.at(item.CLASS_ID, item.METHOD_ID)
                self._flush_publishes()
                self._close_with(error)
        self._flush_publishes()

    def _close_with(self, error: AMQPError) -> None:
        """Close the channel (soft error) or the connection (hard error)."""
        if error.hard:
            self.link.close_connection(error)
            self._shutdown()
            return
        log.info("channel %s error: %s", self.name, error)
        self.link.channel_closing(self.number)  # the client's close-ok frees the number at once
        self._send(
            spec.ChannelClose(
                reply_code=error.code,
                reply_text=error.reply_text,
                class_id=error.class_id,
                method_id=error.method_id,
            )
        )
        self.closing = True
        self.waiting = False
        self._release()

    # ----- publishing

    def _publish(self, message: Message) -> bool:
        """Batch one publish (or hold it in the transaction); False to resolve its exchange."""
        cached = self.exchanges.get(message.exchange)
        if cached is None or not cached[0].is_alive():
            self._flush_publishes()
            self.waiting = True
            post(self.vhost, ResolveExchange(message.exchange, self.actor_ref))
            return False
        ref, internal = cached
        if internal:
            raise AMQPError(
                403,
                f"cannot publish to internal exchange '{message.exchange}' "
                f"in vhost '{self.link.vhost}'",
            )
        raw = message.raw_properties
        # headers, reply-to, expiration, user-id
        if len(raw) > 1 and (raw[0] & 0x23 or raw[1] & 0x10):
            if raw[0] & 0x21 or raw[1] & 0x10:
                message = self._checked(message)
            if raw[0] & 0x02:
                message = self._reply_addressed(message)
        self.publish_count += 1
        batches = self.tx_publishes if self.transactional else self.batches
        batch = batches.get(ref)
        if batch is None:
            batches[ref] = batch = ([], [])
        batch[0].append(message)
        if self.confirming:
            seq = self.next_seq
            self.next_seq = seq + 1
            self.unconfirmed[seq] = -1
            batch[1].append(seq)
        return True

    def _checked(self, message: Message) -> Message:
        """A publish with headers, an expiration or a user-id: checked as RabbitMQ does
        (user-id, expiration, then the CC/BCC headers), and the message to route (BCC gone)."""
        raw = message.raw_properties
        if raw[1] & 0x10:
            user_id = message.properties.user_id
            if user_id != self.user:
                user = self.user
                text = f"user_id property set to '{user_id}' but authenticated user was '{user}'"
                raise AMQPError(406, text)
        if raw[0] & EXPIRATION_FLAG:
            check_expiration(message)
        if raw[0] & 0x20:
            message = sender_selected(message)
        return message

    def _reply_addressed(self, message: Message) -> Message:
        """A publish with reply-to ``amq.rabbitmq.reply-to`` names this channel's reply
        consumer instead (406 without one); any other reply-to passes untouched."""
        props = message.properties
        if props.reply_to != REPLY_TO:
            return message
        reply = self.reply_consumer
        if reply is None:
            raise AMQPError(406, "fast reply consumer does not exist")
        try:
            props.reply_to = reply.name
            raw = props.encode()
        finally:
            props.reply_to = REPLY_TO
        if type(message) is Distributed:  # CC/BCC routing keys ride along
            return Distributed(message, raw, message.keys)
        return Message(message.exchange, message.routing_key, raw, message.body, message.mandatory)

    def _flush_publishes(self) -> None:
        if not self.batches:
            return
        me = self.actor_ref
        for ref, (messages, seqs) in self.batches.items():
            wants_reply = bool(seqs) or any(m.mandatory for m in messages)
            post(ref, Publish(messages, seqs, me if wants_reply else None))
        self.batches = {}

    @handles(ExchangeResolved)
    def on_exchange_resolved(self, msg: ExchangeResolved) -> None:
        self.waiting = False
        if self.closing:
            return
        if msg.ref is None:
            self.pending.popleft()
            self._close_with(
                AMQPError(404, f"no exchange '{msg.name}' in vhost '{self.link.vhost}'", 60, 40)
            )
            return
        self.exchanges[msg.name] = (msg.ref, msg.internal)
        self._process()

    @handles(RouteResult)
    def on_route_result(self, msg: RouteResult) -> None:
        if self.closing:
            return
        for message in msg.returned:
            self._send_content(
                spec.BasicReturn(
                    reply_code=312,
                    reply_text="NO_ROUTE",
                    exchange=message.exchange,
                    routing_key=message.routing_key,
                ),
                message,
            )
        done = []
        unconfirmed = self.unconfirmed
        for seq, count in msg.routed:
            if count == 0:
                done.append(seq)
            elif seq in unconfirmed:
                unconfirmed[seq] = count
        if done:
            self._confirm(done)

    @handles(Accepted)
    def on_accepted(self, msg: Accepted) -> None:
        unconfirmed = self.unconfirmed
        done = []
        for seq in msg.seqs:
            left = unconfirmed.get(seq)
            if left is None:
                continue
            if left <= 1:
                done.append(seq)
            else:
                unconfirmed[seq] = left - 1
        if done:
            self._confirm(done)

    @handles(Rejected)
    def on_rejected(self, msg: Rejected) -> None:
        """A queue refused publishes: nack each still unconfirmed (in a transaction they
        count as settled, as RabbitMQ's tx does not report them)."""
        unconfirmed = self.unconfirmed
        seqs = [seq for seq in msg.seqs if seq in unconfirmed]
        if not seqs:
            return
        if self.transactional or self.closing:
            self._confirm(seqs)
            return
        for seq in seqs:
            unconfirmed.pop(seq)
        for seq in seqs:
            self._send(spec.BasicNack(delivery_tag=seq, multiple=False))

    def _confirm(self, seqs: list[int]) -> None:
        """Ack confirmed publishes, coalescing into one multiple=true ack where possible."""
        unconfirmed = self.unconfirmed
        for seq in seqs:
            unconfirmed.pop(seq, None)
        if self.closing:
            return
        if self.transactional:
            if self.committing and not unconfirmed:
                self.committing = False
                self.waiting = False
                self._send(spec.TxCommitOk())
                self._process()
            return
        lowest = next(iter(unconfirmed)) if unconfirmed else None
        top = max(seqs)
        if lowest is None or top < lowest:
            self._send(spec.BasicAck(delivery_tag=top, multiple=len(seqs) > 1))
            return
        below = [s for s in seqs if s < lowest]
        if below:
            self._send(spec.BasicAck(delivery_tag=max(below), multiple=len(below) > 1))
        for seq in sorted(s for s in seqs if s > lowest):
            self._send(spec.BasicAck(delivery_tag=seq, multiple=False))

    # ----- deliveries

    @handles(Deliveries)
    def on_deliveries(self, msg: Deliveries) -> None:
        consumer = self.consumers.get(msg.consumer_tag)
        if consumer is None:
            # The channel closed: its CancelConsumer makes the queue requeue these itself.
            return
        number, frame_max = self.number, self.link.frame_max
        tag_bytes = consumer.tag_bytes
        tag = self.next_tag
        unacked = self.unacked
        no_ack = msg.no_ack
        queue = msg.queue
        out = []
        for entry in msg.entries:
            tag += 1
            message = entry.message
            if not no_ack:
                unacked[tag] = Unacked(queue, entry.id, msg.consumer_tag)
            out.append(
                deliver_frames(
                    number,
                    tag_bytes,
                    tag,
                    entry.redelivered,
                    _shortstr(message.exchange),
                    _shortstr(message.routing_key),
                    message.raw_properties,
                    message.body,
                    frame_max,
                )
            )
        self.next_tag = tag
        count = len(out)
        self.deliver_count += count
        self.link.write(b"".join(out))
        if self.link.writable:
            post(queue, Credit(consumer.ref, count))
        else:
            consumer.owed_credit += count
        if self.global_limit:
            self._window_used(consumer, count)

    @handles(Writable)
    def on_writable(self, _msg: Writable) -> None:
        for consumer in self.consumers.values():
            if consumer.owed_credit and consumer.queue is not None:
                post(consumer.queue, Credit(consumer.ref, consumer.owed_credit))
                consumer.owed_credit = 0

    # ----- global prefetch: the channel's window, lent to its consumers' queues

    def _set_global_limit(self, limit: int) -> None:
        was, self.global_limit = self.global_limit, limit
        if bool(was) != bool(limit):
            self.global_granted = 0
            self.wanting.clear()
            if limit:
                self.global_used = sum(
                    1 for r in self.unacked.values() if r.consumer_tag is not None
                ) + sum(1 for _, r, _ in self.tx_settles if r.consumer_tag is not None)
            for consumer in self.consumers.values():
                consumer.granted = 0
                if consumer.queue is not None:
                    post(consumer.queue, WindowLimit(consumer.ref, bool(limit)))
        if limit:
            self._grant()

    def _grant(self) -> None:
        """Lend what is left of the global limit to consumers that asked, first come first."""
        available = self.global_limit - self.global_used - self.global_granted
        wanting = self.wanting
        while available > 0 and wanting and not self.closing:
            tag = next(iter(wanting))
            want = wanting.pop(tag)
            consumer = self.consumers.get(tag)
            if consumer is None or consumer.queue is None:
                continue
            count = min(want, available)
            consumer.granted += count
            self.global_granted += count
            available -= count
            post(consumer.queue, WindowGrant(consumer.ref, count))

    def _window_used(self, consumer: ConsumerState, count: int) -> None:
        """Deliveries arrived: lent window became unacked deliveries (or, for no-ack, freed)."""
        used = min(count, consumer.granted)
        consumer.granted -= used
        self.global_granted -= used
        if consumer.no_ack:
            if self.wanting:
                self._grant()
        else:
            self.global_used += count

    def _window_consumer(self, msg: WindowWanted | WindowReturned) -> ConsumerState | None:
        consumer = self.consumers.get(msg.consumer_tag)
        if consumer is None or consumer.ref != msg.consumer or not self.global_limit:
            return None
        return consumer

    @handles(WindowWanted)
    def on_window_wanted(self, msg: WindowWanted) -> None:
        if self._window_consumer(msg) is not None:
            self.wanting[msg.consumer_tag] = msg.count
            self._grant()

    @handles(WindowReturned)
    def on_window_returned(self, msg: WindowReturned) -> None:
        consumer = self._window_consumer(msg)
        if consumer is not None:
            count = min(msg.count, consumer.granted)
            consumer.granted -= count
            self.global_granted -= count
            self._grant()

    def _forget_window(self, consumer: ConsumerState) -> None:
        """A consumer is gone: the window it held is free again."""
        self.global_granted -= consumer.granted
        consumer.granted = 0
        self.wanting.pop(consumer.tag, None)
        self._grant()

    # ----- acks

    def _take(self, delivery_tag: int, multiple: bool) -> list[tuple[int, Unacked]]:
        """Remove and return the deliveries an ack/nack names (RabbitMQ's collect_acks).

        ``multiple`` with tag 0 takes everything; otherwise the tag itself must be
        outstanding, whatever lies below it.
        """
        unacked = self.unacked
        if not multiple:
            record = unacked.pop(delivery_tag, None)
            if record is None:
                raise _unknown_tag(delivery_tag)
            return [(delivery_tag, record)]
        if delivery_tag == 0:
            taken = list(unacked.items())
            unacked.clear()
            return taken
        if delivery_tag not in unacked:
            raise _unknown_tag(delivery_tag)
        tags = []
        for tag in unacked:  # ascending: tags are handed out in order, rollback re-sorts
            if tag > delivery_tag:
                break
            tags.append(tag)
        return [(tag, unacked.pop(tag)) for tag in tags]

    def _settle(self, taken: list[tuple[int, Unacked]], requeue: bool | None) -> None:
        if self.transactional:
            self.tx_settles.extend((tag, record, requeue) for tag, record in taken)
            return
        self._apply_settles([(record, requeue) for _, record in taken])

    def _apply_settles(self, settles: list[tuple[Unacked, bool | None]]) -> None:
        groups: dict[tuple[ActorRef[Any], bool | None], list[int]] = {}
        for record, requeue in settles:
            key = (record.queue, requeue)
            ids = groups.get(key)
            if ids is None:
                groups[key] = [record.entry_id]
            else:
                ids.append(record.entry_id)
        for (queue, requeue), ids in groups.items():
            post(queue, Settle(ids, requeue))
        self.ack_count += len(settles)
        if self.global_limit:
            freed = sum(1 for record, _ in settles if record.consumer_tag is not None)
            if freed:
                self.global_used = max(0, self.global_used - freed)
                self._grant()

    def _ack(self, m: spec.BasicAck) -> None:
        self._settle(self._take(m.delivery_tag, m.multiple), None)

    def _nack(self, m: spec.BasicNack) -> None:
        self._settle(self._take(m.delivery_tag, m.multiple), m.requeue)

    def _reject(self, m: spec.BasicReject) -> None:
        self._settle(self._take(m.delivery_tag, False), m.requeue)

    def _recover(self, m: spec.BasicRecover | spec.BasicRecoverAsync) -> None:
        if not m.requeue:
            raise AMQPError(540, "requeue=false")
        taken = self._take(0, True)
        if taken:  # not transactional, even in a transaction (as RabbitMQ)
            self._apply_settles([(record, True) for _, record in taken])
        if isinstance(m, spec.BasicRecover):
            self._send(spec.BasicRecoverOk())

    # ----- consumers

    def _qos(self, m: spec.BasicQos) -> None:
        if m.prefetch_size:
            raise AMQPError(540, f"prefetch_size!=0 ({m.prefetch_size})")
        if m.global_:
            self._set_global_limit(m.prefetch_count)
        else:
            self.prefetch_count = m.prefetch_count
        self._send(spec.BasicQosOk())

    def _queue_name(self, name: str) -> str:
        if name:
            return name
        if not self.last_queue:
            raise AMQPError(404, "no previously declared queue")
        return self.last_queue

    def _consume(self, m: spec.BasicConsume) -> None:
        queue = self._queue_name(m.queue)
        tag = m.consumer_tag or "amq.ctag-" + secrets.token_urlsafe(16)
        reply = self.reply_consumer
        if tag in self.consumers or (reply is not None and reply.tag == tag):
            raise AMQPError(530, f"attempt to reuse consumer tag '{tag}'")
        if queue == REPLY_TO:
            self._reply_consume(m, tag)
            return
        ref = self.runtime.start(ConsumerActor, self.actor_ref, tag, queue, m.no_ack, self.name)
        consumer = ConsumerState(tag, ref, _shortstr(tag), m.no_ack)
        self.consumers[tag] = consumer
        post(
            self.vhost,
            AddConsumer(
                queue,
                ref,
                self.actor_ref,
                self.connection_id,
                tag,
                m.no_ack,
                m.exclusive,
                self.prefetch_count,
                m.no_wait,
                m.arguments,
                windowed=bool(self.global_limit),
            ),
        )
        self.adding = consumer
        self.waiting = True

    def _reply_consume(self, m: spec.BasicConsume, tag: str) -> None:
        """Consume from ``amq.rabbitmq.reply-to``: a fresh reply name, bound on the default
        exchange to a ReplyToActor; consume-ok comes back once the binding is in place."""
        if self.reply_consumer is not None:
            raise AMQPError(406, "reply consumer already set")
        if not m.no_ack:
            raise AMQPError(406, "reply consumer cannot acknowledge")
        name = REPLY_PREFIX + secrets.token_urlsafe(24)
        dest = self.runtime.start(ReplyToActor, self.actor_ref, name, self.name)
        self.reply_consumer = ReplyConsumer(tag, _shortstr(tag), name, dest)
        ok = None if m.no_wait else spec.BasicConsumeOk(consumer_tag=tag)
        post(self.vhost, AddReplyName(name, dest, self.actor_ref, ok))
        self.waiting = True  # until the vhost's Reply (consume-ok or none)

    def _drop_reply_consumer(self) -> None:
        reply, self.reply_consumer = self.reply_consumer, None
        if reply is not None:
            post(self.vhost, RemoveReplyName(reply.name))
            reply.dest.stop(block=False)

    @handles(ReplyDeliveries)
    def on_reply_deliveries(self, msg: ReplyDeliveries) -> None:
        """Replies for the reply consumer: delivered at once, no-ack."""
        reply = self.reply_consumer
        if reply is None or reply.name != msg.name or self.closing:
            return  # cancelled or closed meanwhile: dropped, as RabbitMQ does
        number, frame_max = self.number, self.link.frame_max
        tag = self.next_tag
        out = []
        for message in msg.messages:
            tag += 1
            out.append(
                deliver_frames(
                    number,
                    reply.tag_bytes,
                    tag,
                    False,
                    _shortstr(message.exchange),
                    _shortstr(message.routing_key),
                    message.raw_properties,
                    message.body,
                    frame_max,
                )
            )
        self.next_tag = tag
        self.deliver_count += len(out)
        self.link.write(b"".join(out))

    @handles(ConsumerAdded)
    def on_consumer_added(self, msg: ConsumerAdded) -> None:
        consumer = self.adding
        if consumer is None or consumer.tag != msg.consumer_tag:
            return
        self.adding = None
        if self.closing:
            # Closed while the consume was on its way: take the consumer straight back off.
            post(msg.queue, CancelConsumer(consumer.ref, True, channel_closed=True))
            consumer.ref.stop(block=False)
            self._stop_if_pending()
            return
        consumer.queue = msg.queue
        self.waiting = False
        if not msg.nowait:
            self._send(spec.BasicConsumeOk(consumer_tag=msg.consumer_tag))
        self._process()

    def _cancel(self, m: spec.BasicCancel) -> None:
        reply = self.reply_consumer
        if reply is not None and reply.tag == m.consumer_tag:
            self._drop_reply_consumer()
            if not m.no_wait:
                self._send(spec.BasicCancelOk(consumer_tag=m.consumer_tag))
            return
        consumer = self.consumers.get(m.consumer_tag)
        if consumer is not None and consumer.queue is not None:
            if post(consumer.queue, CancelConsumer(consumer.ref, m.no_wait)):
                self.cancelling = (m.consumer_tag, m.no_wait)  # answered via the consumer actor
                self.waiting = True
                return
            self._drop_consumer(consumer)  # its queue is gone
        if not m.no_wait:
            self._send(spec.BasicCancelOk(consumer_tag=m.consumer_tag))

    def _drop_consumer(self, consumer: ConsumerState) -> None:
        del self.consumers[consumer.tag]
        if self.global_limit:
            self._forget_window(consumer)

    @handles(ConsumerRemoved)
    def on_consumer_removed(self, msg: ConsumerRemoved) -> None:
        consumer = self.consumers.get(msg.consumer_tag)
        if consumer is None or self.closing:
            return
        self._drop_consumer(consumer)
        if self.cancelling is not None and self.cancelling[0] == msg.consumer_tag:
            # Our basic.cancel finished (or crossed the queue's deletion): answer it.
            nowait = self.cancelling[1]
            self.cancelling = None
            self.waiting = False
            if not nowait:
                self._send(spec.BasicCancelOk(consumer_tag=msg.consumer_tag))
            self._process()
        elif msg.notify and self.cancel_notify:
            self._send(spec.BasicCancel(consumer_tag=msg.consumer_tag, no_wait=True))

    def _get(self, m: spec.BasicGet) -> None:
        self._queue_request(m)
        self.getting = True

    @handles(GetResult)
    def on_get_result(self, msg: GetResult) -> None:
        self.getting = False
        entry = msg.entry
        if self.closing:
            if entry is not None and not msg.no_ack:
                post(msg.queue, Settle([entry.id], True))
            self._stop_if_pending()
            return
        self.waiting = False
        if entry is None:
            self._send(spec.BasicGetEmpty())
        else:
            self.next_tag += 1
            if not msg.no_ack:
                self.unacked[self.next_tag] = Unacked(msg.queue, entry.id, None)
            message = entry.message
            self._send_content(
                spec.BasicGetOk(
                    delivery_tag=self.next_tag,
                    redelivered=entry.redelivered,
                    exchange=message.exchange,
                    routing_key=message.routing_key,
                    message_count=msg.message_count,
                ),
                message,
            )
            self.deliver_count += 1
        self._process()

    # ----- requests to the vhost

    def _request(self, method: spec.Method) -> None:
        post(self.vhost, Request(method, self.actor_ref, self.connection_id))
        self.waiting = True

    def _queue_declare(self, m: spec.QueueDeclare) -> None:
        """A passive declare of '' names the queue '' (not the last one, as RabbitMQ); a
        no-wait declare of a named queue still makes it the channel's last declared queue."""
        if m.no_wait and m.queue:
            self.last_queue = m.queue.replace("\r", "").replace("\n", "")
        self._request(m)

    def _queue_request(self, m: Any) -> None:
        if not m.queue:
            m.queue = self._queue_name("")
            if isinstance(m, spec.QueueBind | spec.QueueUnbind) and not m.routing_key:
                m.routing_key = m.queue  # RabbitMQ binds with the queue's name then
        self._request(m)

    @handles(Reply)
    def on_reply(self, msg: Reply) -> None:
        self.waiting = False
        self.getting = False
        adding, self.adding = self.adding, None
        if msg.error is not None and adding is not None:
            self.consumers.pop(adding.tag, None)
            adding.ref.stop(block=False)
        if self.closing:
            self._stop_if_pending()
            return
        if msg.error is not None:
            self._close_with(msg.error)
            return
        method = msg.method
        if isinstance(method, spec.QueueDeclareOk):
            self.last_queue = method.queue
        if method is not None:
            self._send(method)
        self._process()

    # ----- transactions, confirms, flow

    def _tx_select(self, _m: spec.TxSelect) -> None:
        if self.confirming:
            raise AMQPError(406, "cannot switch from confirm to tx mode")
        self.transactional = True
        self._send(spec.TxSelectOk())

    def _tx_commit(self, _m: spec.TxCommit) -> None:
        if not self.transactional:
            raise AMQPError(406, "channel is not transactional")
        publishes, self.tx_publishes = self.tx_publishes, {}
        settles, self.tx_settles = self.tx_settles, []
        unconfirmed = self.unconfirmed
        for ref, (messages, seqs) in publishes.items():
            if ref.is_alive():  # numbered, so that commit-ok can wait for the queues
                seqs.extend(range(self.next_seq, self.next_seq + len(messages)))
                self.next_seq += len(messages)
                unconfirmed.update(dict.fromkeys(seqs, -1))
                self.batches[ref] = (messages, seqs)
        self._flush_publishes()
        if settles:
            self._apply_settles([(record, requeue) for _, record, requeue in settles])
        if self.unconfirmed:
            self.committing = True  # commit-ok once the queues took every message (_confirm)
            self.waiting = True
        else:
            self._send(spec.TxCommitOk())

    def _tx_rollback(self, _m: spec.TxRollback) -> None:
        if not self.transactional:
            raise AMQPError(406, "channel is not transactional")
        self.tx_publishes = {}
        settles, self.tx_settles = self.tx_settles, []
        if settles:
            merged = list(self.unacked.items()) + [(tag, record) for tag, record, _ in settles]
            self.unacked = OrderedDict(sorted(merged, key=lambda item: item[0]))
        self._send(spec.TxRollbackOk())

    def _confirm_select(self, m: spec.ConfirmSelect) -> None:
        if self.transactional:
            raise AMQPError(406, "cannot switch from tx to confirm mode")
        self.confirming = True
        if not m.nowait:
            self._send(spec.ConfirmSelectOk())

    def _flow(self, m: spec.ChannelFlow) -> None:
        if not m.active:
            raise AMQPError(540, "active=false")
        self._send(spec.ChannelFlowOk(active=True))

    # ----- closing

    def _client_close(self, _m: spec.ChannelClose) -> None:
        if self.closing:
            # Crossed our own channel.close: answer it, but the channel stays ours until the
            # client's close-ok (RabbitMQ's 'closing' state).
            self.link.write(method_frame(self.number, spec.ChannelCloseOk().encode()))
            return
        self.closing = True
        self._release()
        self.link.write(method_frame(self.number, spec.ChannelCloseOk().encode()))
        self._finish()

    def _close_ok(self, _m: spec.ChannelCloseOk) -> None:
        if self.closing:
            self._finish()

    def _finish(self) -> None:
        self.link.channel_closed(self.number)
        self._stop_when_settled()

    def _release(self) -> None:
        """Give back everything the channel holds: unacked deliveries and consumers."""
        self._flush_publishes()
        held = [(record, True) for record in self.unacked.values()]
        held += [(record, True) for _, record, _ in self.tx_settles]  # never committed
        if held:
            self._apply_settles(held)
            self.unacked.clear()
        for consumer in self.consumers.values():
            if consumer.queue is not None:
                post(consumer.queue, CancelConsumer(consumer.ref, True, channel_closed=True))
                consumer.ref.stop(block=False)
            # else: its consume is still on its way; _on_consumer_added takes it back off
        self.consumers.clear()
        self._drop_reply_consumer()
        self.wanting.clear()
        self.tx_publishes = {}
        self.tx_settles = []

    def _shutdown(self) -> None:
        """The connection is going: give everything back and stop."""
        self.closing = True
        self._release()
        self._stop_when_settled()

    def _stop_when_settled(self) -> None:
        """Stop now, or once an outstanding get or consume came back (it may carry a
        message or register a consumer that must be given back)."""
        if self.stopped or self.stop_pending:
            return
        if self.adding is not None or self.getting:
            self.stop_pending = True
            return
        self.stopped = True
        self.stop()

    def _stop_if_pending(self) -> None:
        if self.stop_pending and self.adding is None and not self.getting:
            self.stop_pending = False
            self._stop_when_settled()

    @handles(ConnectionGone)
    def on_connection_gone(self, _msg: ConnectionGone) -> None:
        self._shutdown()

    @handles(ActorFailed)
    def on_actor_failed(self, msg: ActorFailed) -> None:
        self._close_with(AMQPError(541, f"consumer failed: {msg.exception!r}"))

    @handles(StoreFailed)
    def on_store_failed(self, msg: StoreFailed) -> None:
        """A write this channel waits for (a confirm, a declare) failed: nothing is confirmed."""
        if not self.closing:
            self._close_with(AMQPError(541, f"the store failed: {msg.error}", 60, 40))

    # ----- admin

    def on_stop(self) -> None:
        """Hand this channel's counts to its vhost's totals (see actors/stats.py)."""
        totals = MessageTotals(self.publish_count, self.deliver_count, self.ack_count)
        post(self.vhost, ChannelStopped(totals))

    def on_failure(self, *_exc_info: Any) -> None:
        """A crashed channel's counts still count."""
        self.on_stop()

    def describe(self) -> dict[str, Any]:
        """Prefetch, modes, pending counts, consumers and message totals for the admin page."""
        return {
            **super().describe(),
            "number": self.number,
            "connection_id": self.connection_id,
            "prefetch_count": self.prefetch_count,
            "global_prefetch_count": self.global_limit,
            "messages_unacknowledged": len(self.unacked),
            "messages_unconfirmed": len(self.unconfirmed),
            "messages_uncommitted": sum(len(m) for m, _ in self.tx_publishes.values()),
            "acks_uncommitted": len(self.tx_settles),
            "confirm": self.confirming,
            "transactional": self.transactional,
            "closing": self.closing,
            "consumer_count": len(self.consumers),
            "reply_consumer": None if self.reply_consumer is None else self.reply_consumer.name,
            "consumers": sorted(self.consumers),
            "published": self.publish_count,
            "delivered": self.deliver_count,
            "acked": self.ack_count,
        }
