"""ChannelActor: the AMQP semantics of one channel, as a shell over its state objects.

It takes the methods and publishes the wire layer assembled, in order. Publishes are batched
per exchange and told to exchange actors (``publishing.py``); declares, binds, deletes, gets
and consumes go to the vhost actor one at a time: the channel *awaits* each answer before the
next method, which keeps RabbitMQ's ordering. What the channel keeps is held by small state
objects that know nothing of actors: delivery tags and unacknowledged deliveries
(``unacked.py``), publisher confirms (``confirms.py``), the transaction (``transaction.py``)
and the prefetch limits (``limiter.py``); its lifecycle is one :class:`Lifecycle`.

Transactions reuse the confirm machinery: tx.commit publishes the buffered messages with
internal sequence numbers and answers commit-ok once every queue took them (after any
basic.return), as RabbitMQ does; acks, nacks and rejects wait in the transaction until then.

A global prefetch (basic.qos global=true) is the channel's own: the limiter lends the rest of
its limit, as *window*, to the queues of consumers that ask for it (WindowWanted /
WindowGrant / WindowReturned, see actors/queue.py); per-consumer prefetch (global=false) is
enforced by each queue on its own.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, ClassVar

from pykka import ActorRef

from dispatchd.actors.confirms import Confirms, acks
from dispatchd.actors.consumer import ConsumerActor
from dispatchd.actors.content import Message
from dispatchd.actors.distribution import Distributed
from dispatchd.actors.limiter import Limiter
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
    ForgetExchanges,
    GetResult,
    OversizedPublish,
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
from dispatchd.actors.publishing import Publishing, check_destination, checked
from dispatchd.actors.reply_to import REPLY_PREFIX, REPLY_TO, ReplyToActor
from dispatchd.actors.runtime import ActorFailed, LoopActor, handles, post
from dispatchd.actors.stats import MessageTotals
from dispatchd.actors.transaction import Transaction, TxState
from dispatchd.actors.unacked import Unacked, UnackedMessages
from dispatchd.store.actor import StoreFailed
from dispatchd.wire import spec
from dispatchd.wire.errors import (
    AMQPError,
    internal_error,
    message_too_large,
    not_allowed,
    not_found,
    not_implemented,
    precondition_failed,
)
from dispatchd.wire.fields import encode_shortstr
from dispatchd.wire.frames import content_frames, deliver_frames, method_frame
from dispatchd.wire.spec import (
    FIRST_BYTE_EXPIRATION,
    FIRST_BYTE_HEADERS,
    FIRST_BYTE_REPLY_TO,
    SECOND_BYTE_USER_ID,
)

log = logging.getLogger("dispatchd.channel")


class Lifecycle(Enum):
    """Where a channel is in its life."""

    OPEN = "open"
    CLOSING = "closing"  # the server sent channel.close; the client's close-ok is awaited
    STOPPING = "stopping"  # closed, but a get or consume is on its way back (it may hold
    # a message or a consumer to give back)
    STOPPED = "stopped"  # the actor is stopping


@dataclass(slots=True)
class ConsumerState:
    """A consumer as its channel sees it."""

    tag: str
    ref: ActorRef[Any]
    tag_bytes: bytes
    no_ack: bool
    queue: ActorRef[Any] | None = None
    owed_credit: int = 0


@dataclass(frozen=True, slots=True)
class ReplyConsumer:
    """The channel's direct reply-to consumer: its tag, reply name and destination actor."""

    tag: str
    tag_bytes: bytes
    name: str
    dest: ActorRef[Any]


# What the channel awaits before it handles the next method (an answer from another actor).
@dataclass(frozen=True, slots=True)
class AwaitExchange:
    """A publish waits for the vhost to resolve its exchange (ExchangeResolved)."""


@dataclass(frozen=True, slots=True)
class AwaitReply:
    """A declare, bind, delete or purge (or a direct reply-to consume) waits for its Reply."""


@dataclass(frozen=True, slots=True)
class AwaitGet:
    """basic.get waits for its queue (GetResult, or a Reply with an error)."""


@dataclass(frozen=True, slots=True)
class AwaitConsume:
    """basic.consume waits for its queue (ConsumerAdded, or a Reply with an error)."""

    consumer: ConsumerState


@dataclass(frozen=True, slots=True)
class AwaitCancel:
    """basic.cancel waits for its queue to let the consumer go (ConsumerRemoved)."""

    tag: str
    nowait: bool


@dataclass(frozen=True, slots=True)
class AwaitCommit:
    """tx.commit waits for the queues to take the committed publishes."""


Awaiting = AwaitExchange | AwaitReply | AwaitGet | AwaitConsume | AwaitCancel | AwaitCommit
_AWAIT_EXCHANGE, _AWAIT_REPLY, _AWAIT_GET, _AWAIT_COMMIT = (
    AwaitExchange(),
    AwaitReply(),
    AwaitGet(),
    AwaitCommit(),
)


# Properties a publish is checked for (headers: CC/BCC; expiration; user-id, in the second
# byte), and reply-to, which may name the direct reply-to consumer.
_CHECKED = FIRST_BYTE_HEADERS | FIRST_BYTE_EXPIRATION
_CHECKED_OR_READDRESSED = _CHECKED | FIRST_BYTE_REPLY_TO


class ChannelActor(LoopActor):
    """One open AMQP channel."""

    kind = "channel"
    METHODS: ClassVar[dict[type, Callable[[ChannelActor, Any], None]]]

    def __init__(
        self, link: Link, number: int, connection: ActorRef[Any], vhost: ActorRef[Any]
    ) -> None:
        super().__init__(
            name=f"{link.connection_name} ({number})",
            owner=link.connection_name,
            supervisor=connection,
        )
        self.link = link
        self.number = number
        self.vhost = vhost
        self.pending: deque[Any] = deque()  # input not handled yet, in order
        self.state = Lifecycle.OPEN
        self.awaiting: Awaiting | None = None  # later input waits behind it (while OPEN)
        self.publishing = Publishing()
        self.unacked = UnackedMessages()
        self.consumers: dict[str, ConsumerState] = {}
        self.reply_consumer: ReplyConsumer | None = None  # consuming amq.rabbitmq.reply-to
        self.confirms = Confirms()
        self.confirming = False  # confirm.select: publishes are numbered and confirmed
        self.tx: Transaction | None = None  # tx.select made the channel transactional
        self.limiter = Limiter()
        self.last_queue = ""
        self.totals = MessageTotals()  # published, delivered and acked on this channel

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
        """Methods and publishes from the wire, handled in order."""
        self.pending.extend(msg.items)
        self._process()

    def _process(self) -> None:
        pending = self.pending
        methods = self.METHODS
        # Input waits behind what the channel awaits; once closed, nothing waits (only
        # close and close-ok are still handled).
        while pending and (self.awaiting is None or self.state is not Lifecycle.OPEN):
            item = pending.popleft()
            try:
                if type(item) is Message:
                    if self.state is Lifecycle.OPEN and not self._publish(item):
                        pending.appendleft(item)
                        break
                    continue
                if self.state is not Lifecycle.OPEN and not isinstance(
                    item, spec.ChannelClose | spec.ChannelCloseOk
                ):
                    continue
                handler = methods.get(type(item))
                if handler is None:
                    raise not_implemented(f"{item.NAME} is not implemented")
                self._flush_publishes()
                handler(self, item)
            except AMQPError as error:
                if type(item) is Message:
                    error.at(60, 40)
                else:
                    error.at(item.CLASS_ID, item.METHOD_ID)
                self._flush_publishes()
                self._close_with(error)
        self._flush_publishes()

    def _answered(self) -> None:
        """What the channel awaited came; on with the input behind it."""
        self.awaiting = None
        self._process()

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
        self.state = Lifecycle.CLOSING
        self._release()

    # ----- publishing

    def _publish(self, message: Message) -> bool:
        """Batch one publish (or hold it in the transaction); False to resolve its exchange."""
        resolved = self.publishing.exchanges.get(message.exchange)
        if resolved is None or not resolved[0].is_alive():
            self._flush_publishes()
            self.awaiting = _AWAIT_EXCHANGE
            post(self.vhost, ResolveExchange(message.exchange, self.actor_ref, self.link.user))
            return False
        ref, internal, topic_write = resolved
        check_destination(message, internal, topic_write, self.link.vhost, self.link.user)
        raw = message.raw_properties
        if len(raw) > 1 and (raw[0] & _CHECKED_OR_READDRESSED or raw[1] & SECOND_BYTE_USER_ID):
            if raw[0] & _CHECKED or raw[1] & SECOND_BYTE_USER_ID:
                message = checked(message, self.link.user)
            if raw[0] & FIRST_BYTE_REPLY_TO:
                message = self._reply_addressed(message)
        self.totals.published += 1
        if self.tx is not None:
            self.tx.publish(ref, message)
        elif self.confirming:
            self.publishing.add(ref, message, self.confirms.number())
        else:
            self.publishing.add(ref, message)
        return True

    def _reply_addressed(self, message: Message) -> Message:
        """A publish with reply-to ``amq.rabbitmq.reply-to`` names this channel's reply
        consumer instead (406 without one); any other reply-to passes untouched."""
        props = message.properties
        if props.reply_to != REPLY_TO:
            return message
        reply = self.reply_consumer
        if reply is None:
            raise precondition_failed("fast reply consumer does not exist")
        try:
            props.reply_to = reply.name
            raw = props.encode()
        finally:
            props.reply_to = REPLY_TO
        if type(message) is Distributed:  # CC/BCC routing keys ride along
            return Distributed(message, raw, message.keys)
        return Message(message.exchange, message.routing_key, raw, message.body, message.mandatory)

    def _flush_publishes(self) -> None:
        if not self.publishing.batches:
            return
        me = self.actor_ref
        for ref, (messages, seqs) in self.publishing.take().items():
            wants_reply = bool(seqs) or any(m.mandatory for m in messages)
            post(ref, Publish(messages, seqs, me if wants_reply else None))

    @handles(ExchangeResolved)
    def on_exchange_resolved(self, msg: ExchangeResolved) -> None:
        """The vhost found (or did not find) the exchange a publish waits for."""
        self.awaiting = None
        if self.state is not Lifecycle.OPEN:
            return
        if msg.ref is None:
            self.pending.popleft()
            missing = f"no exchange '{msg.name}' in vhost '{self.link.vhost}'"
            error = msg.refused or not_found(missing)
            self._close_with(error.at(60, 40))
            return
        self.publishing.remember(msg.name, msg.ref, msg.internal, msg.topic_write)
        self._process()

    @handles(ForgetExchanges)
    def on_forget_exchanges(self, _msg: ForgetExchanges) -> None:
        """Permissions changed: the next publish to each exchange asks the vhost again."""
        self._flush_publishes()
        self.publishing.exchanges.clear()

    # ----- confirms

    @handles(RouteResult)
    def on_route_result(self, msg: RouteResult) -> None:
        """An exchange routed our publishes: return the unroutable mandatory ones, count the
        queues each numbered publish went to."""
        if self.state is not Lifecycle.OPEN:
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
        done = self.confirms.routed(msg.routed)
        if done:
            self._confirmed(done)

    @handles(Accepted)
    def on_accepted(self, msg: Accepted) -> None:
        """A queue took numbered publishes."""
        done = self.confirms.accepted(msg.seqs)
        if done:
            self._confirmed(done)

    @handles(Rejected)
    def on_rejected(self, msg: Rejected) -> None:
        """A queue refused publishes: nack each still unconfirmed (in a transaction they
        count as settled, as RabbitMQ's tx does not report them)."""
        seqs = self.confirms.rejected(msg.seqs)
        if not seqs:
            return
        if self.tx is not None or self.state is not Lifecycle.OPEN:
            self._confirmed(seqs)
            return
        for seq in seqs:
            self._send(spec.BasicNack(delivery_tag=seq, multiple=False))

    def _confirmed(self, seqs: list[int]) -> None:
        """Numbered publishes are settled: ack them (coalesced into multiple=true acks where
        possible), or, in a transaction, answer commit-ok once none is left."""
        if self.state is not Lifecycle.OPEN:
            return
        if self.tx is not None:
            if self.tx.state is TxState.COMMITTING and not self.confirms:
                self.tx.committed()
                self._send(spec.TxCommitOk())
                self._answered()
            return
        for tag, multiple in acks(seqs, self.confirms.lowest()):
            self._send(spec.BasicAck(delivery_tag=tag, multiple=multiple))

    # ----- deliveries

    @handles(Deliveries)
    def on_deliveries(self, msg: Deliveries) -> None:
        """A consumer's deliveries: tag, frame and write them; credit goes back to its queue."""
        consumer = self.consumers.get(msg.consumer_tag)
        if consumer is None:
            # The channel closed: its CancelConsumer makes the queue requeue these itself.
            return
        entries = msg.entries
        number, frame_max = self.number, self.link.frame_max
        tag_bytes = consumer.tag_bytes
        tag = self.unacked.deliver(msg.queue, msg.consumer_tag, entries, msg.no_ack)
        out = []
        for entry in entries:
            message = entry.message
            out.append(
                deliver_frames(
                    number,
                    tag_bytes,
                    tag,
                    entry.redelivered,
                    encode_shortstr(message.exchange),
                    encode_shortstr(message.routing_key),
                    message.raw_properties,
                    message.body,
                    frame_max,
                )
            )
            tag += 1
        count = len(out)
        self.totals.delivered += count
        self.link.write(b"".join(out))
        if self.link.writable:
            post(msg.queue, Credit(consumer.ref, count))
        else:
            consumer.owed_credit += count
        if self.limiter.limit:
            self.limiter.delivered(consumer.tag, count, consumer.no_ack)
            if consumer.no_ack:
                self._grant()

    @handles(Writable)
    def on_writable(self, _msg: Writable) -> None:
        """The socket drained: the credit held back goes to the consumers' queues."""
        for consumer in self.consumers.values():
            if consumer.owed_credit and consumer.queue is not None:
                post(consumer.queue, Credit(consumer.ref, consumer.owed_credit))
                consumer.owed_credit = 0

    # ----- global prefetch: the channel's window, lent to its consumers' queues

    def _grant(self) -> None:
        if self.state is not Lifecycle.OPEN:
            return
        for tag, count in self.limiter.grants(self._has_queue):
            consumer = self.consumers[tag]
            post(consumer.queue, WindowGrant(consumer.ref, count))  # type: ignore[arg-type]

    def _has_queue(self, tag: str) -> bool:
        consumer = self.consumers.get(tag)
        return consumer is not None and consumer.queue is not None

    def _window_consumer(self, msg: WindowWanted | WindowReturned) -> ConsumerState | None:
        consumer = self.consumers.get(msg.consumer_tag)
        if consumer is None or consumer.ref != msg.consumer or not self.limiter.limit:
            return None
        return consumer

    @handles(WindowWanted)
    def on_window_wanted(self, msg: WindowWanted) -> None:
        """A consumer's queue asks for window."""
        if self._window_consumer(msg) is not None:
            self.limiter.want(msg.consumer_tag, msg.count)
            self._grant()

    @handles(WindowReturned)
    def on_window_returned(self, msg: WindowReturned) -> None:
        """A consumer's queue gives back window it cannot use."""
        if self._window_consumer(msg) is not None:
            self.limiter.returned(msg.consumer_tag, msg.count)
            self._grant()

    # ----- acks

    def _settle(self, taken: list[tuple[int, Unacked]], requeue: bool | None) -> None:
        if self.tx is not None:
            self.tx.settle(taken, requeue)
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
        self.totals.acked += len(settles)
        if self.limiter.limit:
            freed = sum(1 for record, _ in settles if record.consumer_tag is not None)
            if freed:
                self.limiter.freed(freed)
                self._grant()

    def _basic_ack(self, m: spec.BasicAck) -> None:
        self._settle(self.unacked.take(m.delivery_tag, m.multiple), None)

    def _basic_nack(self, m: spec.BasicNack) -> None:
        self._settle(self.unacked.take(m.delivery_tag, m.multiple), m.requeue)

    def _basic_reject(self, m: spec.BasicReject) -> None:
        self._settle(self.unacked.take(m.delivery_tag, False), m.requeue)

    def _basic_recover(self, m: spec.BasicRecover | spec.BasicRecoverAsync) -> None:
        if not m.requeue:
            raise not_implemented("requeue=false")
        taken = self.unacked.take_all()
        if taken:  # not transactional, even in a transaction (as RabbitMQ)
            self._apply_settles([(record, True) for _, record in taken])
        if isinstance(m, spec.BasicRecover):
            self._send(spec.BasicRecoverOk())

    # ----- consumers

    def _basic_qos(self, m: spec.BasicQos) -> None:
        if m.prefetch_size:
            raise not_implemented(f"prefetch_size!=0 ({m.prefetch_size})")
        if m.global_:
            self._set_global_limit(m.prefetch_count)
        else:
            self.limiter.prefetch = m.prefetch_count
        self._send(spec.BasicQosOk())

    def _set_global_limit(self, limit: int) -> None:
        held = self.tx.settles if self.tx is not None else ()
        in_tx = sum(1 for _, record, _ in held if record.consumer_tag is not None)
        if self.limiter.set_limit(limit, self.unacked.consumer_deliveries() + in_tx):
            for consumer in self.consumers.values():
                if consumer.queue is not None:
                    post(consumer.queue, WindowLimit(consumer.ref, bool(limit)))
        if limit:
            self._grant()

    def _queue_name(self, name: str) -> str:
        if name:
            return name
        if not self.last_queue:
            raise not_found("no previously declared queue")
        return self.last_queue

    def _basic_consume(self, m: spec.BasicConsume) -> None:
        queue = self._queue_name(m.queue)
        tag = m.consumer_tag or "amq.ctag-" + secrets.token_urlsafe(16)
        reply = self.reply_consumer
        if tag in self.consumers or (reply is not None and reply.tag == tag):
            raise not_allowed(f"attempt to reuse consumer tag '{tag}'")
        if queue == REPLY_TO:
            self._reply_consume(m, tag)
            return
        ref = self.runtime.start(ConsumerActor, self.actor_ref, tag, queue, m.no_ack, self.name)
        consumer = ConsumerState(tag, ref, encode_shortstr(tag), m.no_ack)
        self.consumers[tag] = consumer
        post(
            self.vhost,
            AddConsumer(
                queue,
                ref,
                self.actor_ref,
                self.link.id,
                tag,
                m.no_ack,
                m.exclusive,
                self.limiter.prefetch,
                m.no_wait,
                m.arguments,
                windowed=bool(self.limiter.limit),
                user=self.link.user,
            ),
        )
        self.awaiting = AwaitConsume(consumer)

    def _reply_consume(self, m: spec.BasicConsume, tag: str) -> None:
        """Consume from ``amq.rabbitmq.reply-to``: a fresh reply name, bound on the default
        exchange to a ReplyToActor; consume-ok comes back once the binding is in place."""
        if self.reply_consumer is not None:
            raise precondition_failed("reply consumer already set")
        if not m.no_ack:
            raise precondition_failed("reply consumer cannot acknowledge")
        name = REPLY_PREFIX + secrets.token_urlsafe(24)
        dest = self.runtime.start(ReplyToActor, self.actor_ref, name, self.name)
        self.reply_consumer = ReplyConsumer(tag, encode_shortstr(tag), name, dest)
        ok = None if m.no_wait else spec.BasicConsumeOk(consumer_tag=tag)
        post(self.vhost, AddReplyName(name, dest, self.actor_ref, ok))
        self.awaiting = _AWAIT_REPLY  # the vhost's Reply (consume-ok or none)

    def _drop_reply_consumer(self) -> None:
        reply, self.reply_consumer = self.reply_consumer, None
        if reply is not None:
            post(self.vhost, RemoveReplyName(reply.name))
            reply.dest.stop(block=False)

    @handles(ReplyDeliveries)
    def on_reply_deliveries(self, msg: ReplyDeliveries) -> None:
        """Replies for the reply consumer: delivered at once, no-ack."""
        reply = self.reply_consumer
        if reply is None or reply.name != msg.name or self.state is not Lifecycle.OPEN:
            return  # cancelled or closed meanwhile: dropped, as RabbitMQ does
        number, frame_max = self.number, self.link.frame_max
        tag = self.unacked.tags(len(msg.messages))
        out = []
        for message in msg.messages:
            out.append(
                deliver_frames(
                    number,
                    reply.tag_bytes,
                    tag,
                    False,
                    encode_shortstr(message.exchange),
                    encode_shortstr(message.routing_key),
                    message.raw_properties,
                    message.body,
                    frame_max,
                )
            )
            tag += 1
        self.totals.delivered += len(out)
        self.link.write(b"".join(out))

    @handles(ConsumerAdded)
    def on_consumer_added(self, msg: ConsumerAdded) -> None:
        """The queue took the consumer a basic.consume awaits."""
        awaited = self.awaiting
        if not isinstance(awaited, AwaitConsume) or awaited.consumer.tag != msg.consumer_tag:
            return
        consumer = awaited.consumer
        if self.state is not Lifecycle.OPEN:
            # Closed while the consume was on its way: take the consumer straight back off.
            self.awaiting = None
            post(msg.queue, CancelConsumer(consumer.ref, True, channel_closed=True))
            consumer.ref.stop(block=False)
            self._stop_if_settled()
            return
        consumer.queue = msg.queue
        if not msg.nowait:
            self._send(spec.BasicConsumeOk(consumer_tag=msg.consumer_tag))
        self._answered()

    def _basic_cancel(self, m: spec.BasicCancel) -> None:
        reply = self.reply_consumer
        if reply is not None and reply.tag == m.consumer_tag:
            self._drop_reply_consumer()
            if not m.no_wait:
                self._send(spec.BasicCancelOk(consumer_tag=m.consumer_tag))
            return
        consumer = self.consumers.get(m.consumer_tag)
        if consumer is not None and consumer.queue is not None:
            if post(consumer.queue, CancelConsumer(consumer.ref, m.no_wait)):
                # answered through the consumer actor, behind the deliveries before it
                self.awaiting = AwaitCancel(m.consumer_tag, m.no_wait)
                return
            self._drop_consumer(consumer)  # its queue is gone
        if not m.no_wait:
            self._send(spec.BasicCancelOk(consumer_tag=m.consumer_tag))

    def _drop_consumer(self, consumer: ConsumerState) -> None:
        del self.consumers[consumer.tag]
        if self.limiter.limit:
            self.limiter.forget(consumer.tag)
            self._grant()

    @handles(ConsumerRemoved)
    def on_consumer_removed(self, msg: ConsumerRemoved) -> None:
        """A queue let a consumer go: our basic.cancel finished, or the queue was deleted."""
        consumer = self.consumers.get(msg.consumer_tag)
        if consumer is None or self.state is not Lifecycle.OPEN:
            return
        self._drop_consumer(consumer)
        awaited = self.awaiting
        if isinstance(awaited, AwaitCancel) and awaited.tag == msg.consumer_tag:
            # Our basic.cancel finished (or crossed the queue's deletion): answer it.
            if not awaited.nowait:
                self._send(spec.BasicCancelOk(consumer_tag=msg.consumer_tag))
            self._answered()
        elif msg.notify and self.link.cancel_notify:
            self._send(spec.BasicCancel(consumer_tag=msg.consumer_tag, no_wait=True))

    def _basic_get(self, m: spec.BasicGet) -> None:
        self._queue_request(m)
        self.awaiting = _AWAIT_GET

    @handles(GetResult)
    def on_get_result(self, msg: GetResult) -> None:
        """The queue's answer to basic.get."""
        entry = msg.entry
        if self.state is not Lifecycle.OPEN:
            self.awaiting = None
            if entry is not None and not msg.no_ack:
                post(msg.queue, Settle([entry.id], True))
            self._stop_if_settled()
            return
        if entry is None:
            self._send(spec.BasicGetEmpty())
        else:
            tag = self.unacked.deliver(msg.queue, None, [entry], msg.no_ack)
            message = entry.message
            self._send_content(
                spec.BasicGetOk(
                    delivery_tag=tag,
                    redelivered=entry.redelivered,
                    exchange=message.exchange,
                    routing_key=message.routing_key,
                    message_count=msg.message_count,
                ),
                message,
            )
            self.totals.delivered += 1
        self._answered()

    # ----- requests to the vhost

    def _request(self, method: spec.Method) -> None:
        post(self.vhost, Request(method, self.actor_ref, self.link.id, user=self.link.user))
        self.awaiting = _AWAIT_REPLY

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
        """The answer to a request (or an error for a get or consume)."""
        awaited, self.awaiting = self.awaiting, None
        if msg.error is not None and isinstance(awaited, AwaitConsume):
            self.consumers.pop(awaited.consumer.tag, None)
            awaited.consumer.ref.stop(block=False)
        if self.state is not Lifecycle.OPEN:
            self._stop_if_settled()
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
            raise precondition_failed("cannot switch from confirm to tx mode")
        if self.tx is None:
            self.tx = Transaction()
        self._send(spec.TxSelectOk())

    def _tx_commit(self, _m: spec.TxCommit) -> None:
        if self.tx is None:
            raise precondition_failed("channel is not transactional")
        publishes, settles = self.tx.commit()
        for ref, messages in publishes.items():
            if ref.is_alive():  # numbered, so that commit-ok can wait for the queues
                for message, seq in zip(
                    messages, self.confirms.number_many(len(messages)), strict=True
                ):
                    self.publishing.add(ref, message, seq)
        self._flush_publishes()
        if settles:
            self._apply_settles([(record, requeue) for _, record, requeue in settles])
        if self.confirms:
            self.awaiting = _AWAIT_COMMIT  # commit-ok once the queues took every message
        else:
            self.tx.committed()
            self._send(spec.TxCommitOk())

    def _tx_rollback(self, _m: spec.TxRollback) -> None:
        if self.tx is None:
            raise precondition_failed("channel is not transactional")
        settles = self.tx.rollback()
        if settles:
            self.unacked.restore((tag, record) for tag, record, _ in settles)
        self._send(spec.TxRollbackOk())

    def _confirm_select(self, m: spec.ConfirmSelect) -> None:
        if self.tx is not None:
            raise precondition_failed("cannot switch from tx to confirm mode")
        self.confirming = True
        if not m.nowait:
            self._send(spec.ConfirmSelectOk())

    def _channel_flow(self, m: spec.ChannelFlow) -> None:
        if not m.active:
            raise not_implemented("active=false")
        self._send(spec.ChannelFlowOk(active=True))

    # ----- closing

    def _channel_close(self, _m: spec.ChannelClose) -> None:
        if self.state is Lifecycle.CLOSING:
            # Crossed our own channel.close: answer it, but the channel stays ours until the
            # client's close-ok (RabbitMQ's 'closing' state).
            self.link.write(method_frame(self.number, spec.ChannelCloseOk().encode()))
            return
        self.state = Lifecycle.CLOSING
        self._release()
        self.link.write(method_frame(self.number, spec.ChannelCloseOk().encode()))
        self._finish()

    def _channel_close_ok(self, _m: spec.ChannelCloseOk) -> None:
        if self.state is Lifecycle.CLOSING:
            self._finish()

    def _basic_cancel_ok(self, _m: spec.BasicCancelOk) -> None:
        """A client answering our basic.cancel: nothing to do."""

    def _finish(self) -> None:
        self.link.channel_closed(self.number)
        self._stop_when_settled()

    def _release(self) -> None:
        """Give back everything the channel holds: unacked deliveries and consumers."""
        self._flush_publishes()
        held = [(record, True) for _, record in self.unacked.take_all()]
        if self.tx is not None:  # what the transaction held was never committed
            held += [(record, True) for _, record, _ in self.tx.rollback()]
        if held:
            self._apply_settles(held)
        for consumer in self.consumers.values():
            if consumer.queue is not None:
                post(consumer.queue, CancelConsumer(consumer.ref, True, channel_closed=True))
                consumer.ref.stop(block=False)
            # else: its consume is still on its way; on_consumer_added takes it back off
        self.consumers.clear()
        self._drop_reply_consumer()
        self.limiter.clear()

    def _shutdown(self) -> None:
        """The connection is going: give everything back and stop."""
        if self.state is Lifecycle.OPEN:
            self.state = Lifecycle.CLOSING
        self._release()
        self._stop_when_settled()

    def _stop_when_settled(self) -> None:
        """Stop now, or once an outstanding get or consume came back (it may carry a
        message or register a consumer that must be given back)."""
        if self.state in (Lifecycle.STOPPING, Lifecycle.STOPPED):
            return
        self.state = Lifecycle.STOPPING
        self._stop_if_settled()

    def _stop_if_settled(self) -> None:
        if self.state is Lifecycle.STOPPING and not isinstance(
            self.awaiting, AwaitGet | AwaitConsume
        ):
            self.state = Lifecycle.STOPPED
            self.stop()

    @handles(ConnectionGone)
    def on_connection_gone(self, _msg: ConnectionGone) -> None:
        """The connection is closing or closed: give everything back and stop."""
        self._shutdown()

    @handles(ActorFailed)
    def on_actor_failed(self, msg: ActorFailed) -> None:
        """A consumer actor of ours crashed."""
        self._close_with(internal_error(f"consumer failed: {msg.exception!r}"))

    @handles(StoreFailed)
    def on_store_failed(self, msg: StoreFailed) -> None:
        """A write this channel waits for (a confirm, a declare) failed: nothing is confirmed."""
        if self.state is Lifecycle.OPEN:
            self._close_with(internal_error(f"the store failed: {msg.error}", 60, 40))

    def _oversized_publish(self, item: OversizedPublish) -> None:
        raise message_too_large(item.size, item.limit)

    METHODS = {
        OversizedPublish: _oversized_publish,
        spec.BasicAck: _basic_ack,
        spec.BasicNack: _basic_nack,
        spec.BasicReject: _basic_reject,
        spec.BasicQos: _basic_qos,
        spec.BasicConsume: _basic_consume,
        spec.BasicCancel: _basic_cancel,
        spec.BasicCancelOk: _basic_cancel_ok,
        spec.BasicGet: _basic_get,
        spec.BasicRecover: _basic_recover,
        spec.BasicRecoverAsync: _basic_recover,
        spec.ExchangeDeclare: _request,
        spec.ExchangeDelete: _request,
        spec.ExchangeBind: _request,
        spec.ExchangeUnbind: _request,
        spec.QueueDeclare: _queue_declare,
        spec.QueueBind: _queue_request,
        spec.QueuePurge: _queue_request,
        spec.QueueUnbind: _queue_request,
        spec.QueueDelete: _queue_request,
        spec.TxSelect: _tx_select,
        spec.TxCommit: _tx_commit,
        spec.TxRollback: _tx_rollback,
        spec.ConfirmSelect: _confirm_select,
        spec.ChannelFlow: _channel_flow,
        spec.ChannelClose: _channel_close,
        spec.ChannelCloseOk: _channel_close_ok,
    }
    """AMQP method class -> how the channel carries it out (declared once for the class)."""

    # ----- admin

    def on_stop(self) -> None:
        """Hand this channel's counts to its vhost's totals (see actors/stats.py)."""
        post(self.vhost, ChannelStopped(replace(self.totals), self.actor_ref))

    def on_failure(self, *_exc_info: Any) -> None:
        """A crashed channel still gives back what it holds, as RabbitMQ's queues do when a
        channel process dies (they monitor it): its consumers leave their queues, its unacked
        deliveries are requeued; and its counts still count."""
        self.state = Lifecycle.STOPPED
        for consumer in self.consumers.values():
            if consumer.queue is not None:
                post(consumer.queue, CancelConsumer(consumer.ref, True, channel_closed=True))
            consumer.ref.stop(block=False)
        self.consumers.clear()
        try:
            self._release()  # unacked, transaction, reply-to consumer, limiter
        except Exception:  # the state that crashed may crash again: the consumers are gone
            log.exception("channel %s: giving back after a crash failed", self.name)
        self.on_stop()

    def describe(self) -> dict[str, Any]:
        """Prefetch, modes, pending counts, consumers and message totals for the admin page."""
        return {
            **super().describe(),
            "number": self.number,
            "connection_id": self.link.id,
            "prefetch_count": self.limiter.prefetch,
            "global_prefetch_count": self.limiter.limit,
            "messages_unacknowledged": len(self.unacked),
            "messages_unconfirmed": len(self.confirms),
            "messages_uncommitted": self.tx.held_messages() if self.tx is not None else 0,
            "acks_uncommitted": len(self.tx.settles) if self.tx is not None else 0,
            "confirm": self.confirming,
            "transactional": self.tx is not None,
            "closing": self.state is not Lifecycle.OPEN,
            "consumer_count": len(self.consumers),
            "reply_consumer": None if self.reply_consumer is None else self.reply_consumer.name,
            "consumers": sorted(self.consumers),
            "published": self.totals.published,
            "delivered": self.totals.delivered,
            "acked": self.totals.acked,
        }
