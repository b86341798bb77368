"""ChannelActor: the AMQP semantics of one channel.

It takes the methods and publishes the wire layer assembled, in order. Publishes are batched
per exchange and told to exchange actors; declares, binds and deletes go to the vhost actor
one at a time (the channel waits for each Reply before the next method, which keeps
RabbitMQ's ordering). It assigns delivery tags, tracks unacknowledged deliveries, publisher
confirms and transactions, and frames everything it sends.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from pykka import ActorRef

from actors.consumer import ConsumerActor
from actors.content import Message
from actors.link import Link
from actors.messages import (
    Accepted,
    AddConsumer,
    CancelConsumer,
    ChannelInput,
    ConnectionGone,
    ConsumerAdded,
    ConsumerRemoved,
    Credit,
    Deliveries,
    ExchangeResolved,
    GetResult,
    Publish,
    Reply,
    Request,
    ResolveExchange,
    RouteResult,
    Settle,
    Writable,
)
from actors.runtime import ActorFailed, LoopActor, post
from wire import spec
from wire.errors import AMQPError
from wire.frames import content_frames, deliver_frames, method_frame

log = logging.getLogger("dispatchd.channel")


@dataclass(slots=True)
class ConsumerState:
    """A consumer as its channel sees it."""

    ref: ActorRef[Any]
    tag_bytes: bytes
    no_ack: bool
    queue: ActorRef[Any] | None = None
    owed_credit: int = 0


@dataclass(frozen=True, slots=True)
class Unacked:
    """A delivery awaiting ack: where it came from."""

    queue: ActorRef[Any]
    entry_id: int
    consumer_tag: str | None


def _shortstr(value: str) -> bytes:
    data = value.encode()
    return bytes((len(data),)) + data


# Requests whose reply also updates the channel's idea of "the last declared queue".
QUEUE_NAMED = (spec.QueueBind, spec.QueueUnbind, spec.QueuePurge, spec.QueueDelete, spec.BasicGet)


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
        self.number = number
        self.vhost = vhost
        self.connection_id = connection_id
        self.cancel_notify = cancel_notify
        self.pending: deque[Any] = deque()
        self.waiting = False
        self.closing = False
        self.exchanges: dict[str, tuple[ActorRef[Any], bool]] = {}
        self.batches: dict[ActorRef[Any], tuple[list[Message], list[int]]] = {}
        self.next_tag = 0
        self.unacked: OrderedDict[int, Unacked] = OrderedDict()
        self.consumers: dict[str, ConsumerState] = {}
        self.awaiting_consumer: str | None = None
        self.confirming = False
        self.next_seq = 1
        self.unconfirmed: OrderedDict[int, int] = OrderedDict()
        self.transactional = False
        self.tx_publishes: list[Message] = []
        self.tx_settles: list[tuple[int, Unacked, bool | None]] = []
        self.prefetch_count = 0
        self.global_prefetch = 0
        self.last_queue = ""
        self.publish_count = 0
        self.deliver_count = 0
        self.ack_count = 0
        self._handlers: dict[type, Any] = {
            ChannelInput: self._on_input,
            Deliveries: self._on_deliveries,
            RouteResult: self._on_route_result,
            Accepted: self._on_accepted,
            Reply: self._on_reply,
            ExchangeResolved: self._on_exchange_resolved,
            ConsumerAdded: self._on_consumer_added,
            ConsumerRemoved: self._on_consumer_removed,
            GetResult: self._on_get_result,
            Writable: self._on_writable,
            ConnectionGone: self._on_connection_gone,
            ActorFailed: self._on_actor_failed,
        }
        self._methods: dict[type, Any] = {
            spec.BasicAck: self._ack,
            spec.BasicNack: self._nack,
            spec.BasicReject: self._reject,
            spec.BasicQos: self._qos,
            spec.BasicConsume: self._consume,
            spec.BasicCancel: self._cancel,
            spec.BasicGet: self._queue_request,
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

    def on_receive(self, message: Any) -> None:  # noqa: D102
        self._handlers[type(message)](message)

    # ----- output

    def _send(self, method: spec.Method) -> None:
        self.link.write(method_frame(self.number, method.encode()))

    # ----- input processing

    def _on_input(self, msg: ChannelInput) -> None:
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
            self._release()
            self.stop()
            return
        log.info("channel %s error: %s", self.name, error)
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
        """Batch one publish; False when its exchange must be resolved first."""
        self.publish_count += 1
        if self.transactional:
            self.tx_publishes.append(message)
            return True
        cached = self.exchanges.get(message.exchange)
        if cached is None or not cached[0].is_alive():
            self.publish_count -= 1
            self._flush_publishes()
            self.waiting = True
            post(self.vhost, ResolveExchange(message.exchange, self.actor_ref))
            return False
        ref, internal = cached
        if internal:
            raise AMQPError(
                403, f"cannot publish to internal exchange '{message.exchange}' in vhost '/'"
            )
        batch = self.batches.get(ref)
        if batch is None:
            self.batches[ref] = batch = ([], [])
        batch[0].append(message)
        if self.confirming:
            seq = self.next_seq
            self.next_seq = seq + 1
            self.unconfirmed[seq] = -1
            batch[1].append(seq)
        return True

    def _flush_publishes(self) -> None:
        if not self.batches:
            return
        me = self.actor_ref
        for ref, (messages, seqs) in self.batches.items():
            wants_reply = bool(seqs) or any(m.mandatory for m in messages)
            post(ref, Publish(messages, seqs, me if wants_reply else None))
        self.batches = {}

    def _on_exchange_resolved(self, msg: ExchangeResolved) -> None:
        self.waiting = False
        if msg.ref is None:
            self.pending.popleft()
            self._close_with(AMQPError(404, f"no exchange '{msg.name}' in vhost '/'", 60, 40))
            return
        self.exchanges[msg.name] = (msg.ref, msg.internal)
        self._process()

    def _on_route_result(self, msg: RouteResult) -> None:
        for message in msg.returned:
            self._send(
                spec.BasicReturn(
                    reply_code=312,
                    reply_text="NO_ROUTE",
                    exchange=message.exchange,
                    routing_key=message.routing_key,
                )
            )
            self.link.write(
                content_frames(
                    self.number, 60, message.raw_properties, message.body, self.link.frame_max
                )
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

    def _on_accepted(self, msg: Accepted) -> None:
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

    def _confirm(self, seqs: list[int]) -> None:
        """Ack confirmed publishes, coalescing into one multiple=true ack where possible."""
        unconfirmed = self.unconfirmed
        for seq in seqs:
            unconfirmed.pop(seq, None)
        if self.closing:
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

    def _on_deliveries(self, msg: Deliveries) -> None:
        consumer = self.consumers.get(msg.consumer_tag)
        if self.closing or consumer is None:
            if not msg.no_ack:
                post(msg.queue, Settle([e.id for e in msg.entries], True))
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
        self.deliver_count += len(out)
        self.link.write(b"".join(out))
        if self.link.writable:
            post(queue, Credit(consumer.ref, len(out)))
        else:
            consumer.owed_credit += len(out)

    def _on_writable(self, _msg: Writable) -> None:
        for consumer in self.consumers.values():
            if consumer.owed_credit and consumer.queue is not None:
                post(consumer.queue, Credit(consumer.ref, consumer.owed_credit))
                consumer.owed_credit = 0

    # ----- acks

    def _take(self, delivery_tag: int, multiple: bool) -> list[tuple[int, Unacked]]:
        """Remove and return the deliveries an ack/nack names (RabbitMQ's collect_acks)."""
        unacked = self.unacked
        if not multiple:
            record = unacked.pop(delivery_tag, None)
            if record is None:
                raise AMQPError(406, f"unknown delivery tag {delivery_tag}")
            return [(delivery_tag, record)]
        if delivery_tag == 0:
            taken = list(unacked.items())
            unacked.clear()
            return taken
        tags = []
        found = False
        for tag in unacked:
            if tag <= delivery_tag:
                tags.append(tag)
                if tag == delivery_tag:
                    found = True
                    break
            else:
                found = True
                break
        if not found:
            raise AMQPError(406, f"unknown delivery tag {delivery_tag}")
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

    def _ack(self, m: spec.BasicAck) -> None:
        self._settle(self._take(m.delivery_tag, m.multiple), None)

    def _nack(self, m: spec.BasicNack) -> None:
        self._settle(self._take(m.delivery_tag, m.multiple), m.requeue)

    def _reject(self, m: spec.BasicReject) -> None:
        self._settle(self._take(m.delivery_tag, False), m.requeue)

    def _recover(self, m: spec.BasicRecover | spec.BasicRecoverAsync) -> None:
        if not m.requeue:
            raise AMQPError(540, "requeue=false")
        self._settle(self._take(0, True), True)
        if isinstance(m, spec.BasicRecover):
            self._send(spec.BasicRecoverOk())

    # ----- consumers

    def _qos(self, m: spec.BasicQos) -> None:
        if m.prefetch_size:
            raise AMQPError(540, f"prefetch_size!=0 ({m.prefetch_size})")
        if m.global_:
            self.global_prefetch = m.prefetch_count
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
        if tag in self.consumers:
            raise AMQPError(530, f"attempt to reuse consumer tag '{tag}'")
        ref = ConsumerActor.start(self.actor_ref, tag, queue, m.no_ack, self.name)
        self.consumers[tag] = ConsumerState(ref, _shortstr(tag), m.no_ack)
        prefetch = self.prefetch_count
        if self.global_prefetch:
            prefetch = min(prefetch or self.global_prefetch, self.global_prefetch)
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
                prefetch,
                m.no_wait,
                m.arguments,
            ),
        )
        self.awaiting_consumer = tag
        self.waiting = True

    def _on_consumer_added(self, msg: ConsumerAdded) -> None:
        consumer = self.consumers.get(msg.consumer_tag)
        if consumer is not None:
            consumer.queue = msg.queue
        if self.awaiting_consumer == msg.consumer_tag:
            self.awaiting_consumer = None
            self.waiting = False
            if not msg.nowait and not self.closing:
                self._send(spec.BasicConsumeOk(consumer_tag=msg.consumer_tag))
            self._process()

    def _cancel(self, m: spec.BasicCancel) -> None:
        consumer = self.consumers.get(m.consumer_tag)
        if consumer is None or consumer.queue is None:
            if not m.no_wait:
                self._send(spec.BasicCancelOk(consumer_tag=m.consumer_tag))
            return
        post(consumer.queue, CancelConsumer(consumer.ref, m.no_wait))
        self.awaiting_consumer = m.consumer_tag
        self.waiting = True

    def _on_consumer_removed(self, msg: ConsumerRemoved) -> None:
        self.consumers.pop(msg.consumer_tag, None)
        if self.closing:
            return
        if msg.notify:
            if self.cancel_notify:
                self._send(spec.BasicCancel(consumer_tag=msg.consumer_tag, no_wait=True))
            return
        if self.awaiting_consumer == msg.consumer_tag:
            self.awaiting_consumer = None
            self.waiting = False
            if not msg.nowait:
                self._send(spec.BasicCancelOk(consumer_tag=msg.consumer_tag))
            self._process()

    def _on_get_result(self, msg: GetResult) -> None:
        self.waiting = False
        entry = msg.entry
        if entry is None:
            self._send(spec.BasicGetEmpty())
        else:
            self.next_tag += 1
            if not msg.no_ack:
                self.unacked[self.next_tag] = Unacked(msg.queue, entry.id, None)
            message = entry.message
            self._send(
                spec.BasicGetOk(
                    delivery_tag=self.next_tag,
                    redelivered=entry.redelivered,
                    exchange=message.exchange,
                    routing_key=message.routing_key,
                    message_count=msg.message_count,
                )
            )
            self.link.write(
                content_frames(
                    self.number, 60, message.raw_properties, message.body, self.link.frame_max
                )
            )
            self.deliver_count += 1
        self._process()

    # ----- requests to the vhost

    def _request(self, method: spec.Method) -> None:
        post(self.vhost, Request(method, self.actor_ref, self.connection_id))
        self.waiting = True

    def _queue_declare(self, m: spec.QueueDeclare) -> None:
        if m.passive and not m.queue:
            m = spec.QueueDeclare(queue=self._queue_name(""), passive=True, no_wait=m.no_wait)
        self._request(m)

    def _queue_request(self, m: Any) -> None:
        if not m.queue:
            m.queue = self._queue_name("")
        self._request(m)

    def _on_reply(self, msg: Reply) -> None:
        self.waiting = False
        if msg.error is not None:
            if self.awaiting_consumer is not None:
                consumer = self.consumers.pop(self.awaiting_consumer, None)
                if consumer is not None:
                    consumer.ref.stop()
                self.awaiting_consumer = None
            self._close_with(msg.error)
            return
        method = msg.method
        if isinstance(method, spec.QueueDeclareOk):
            self.last_queue = method.queue
        if method is not None and not self.closing:
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
        publishes, self.tx_publishes = self.tx_publishes, []
        settles, self.tx_settles = self.tx_settles, []
        self.transactional = False
        try:
            for message in publishes:
                if not self._publish(message):
                    # The exchange needs resolving: replay the rest after it, then commit again.
                    index = publishes.index(message)
                    self.pending.extendleft(reversed([*publishes[index:], spec.TxCommit()]))
                    self.tx_settles = settles
                    return
        finally:
            self.transactional = True
        self._flush_publishes()
        self._apply_settles([(record, requeue) for _, record, requeue in settles])
        self._send(spec.TxCommitOk())

    def _tx_rollback(self, _m: spec.TxRollback) -> None:
        if not self.transactional:
            raise AMQPError(406, "channel is not transactional")
        self.tx_publishes = []
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
        self._release()
        self.link.write(method_frame(self.number, spec.ChannelCloseOk().encode()))
        self._finish()

    def _close_ok(self, _m: spec.ChannelCloseOk) -> None:
        if self.closing:
            self._finish()

    def _finish(self) -> None:
        self.link.channel_closed(self.number)
        self.stop()

    def _release(self) -> None:
        """Give back everything the channel holds: unacked deliveries and consumers."""
        self._flush_publishes()
        if self.unacked:
            self._apply_settles([(record, True) for record in self.unacked.values()])
            self.unacked.clear()
        for consumer in self.consumers.values():
            if consumer.queue is not None:
                post(consumer.queue, CancelConsumer(consumer.ref, True, channel_closed=True))
            consumer.ref.stop()
        self.consumers.clear()
        self.tx_publishes = []
        self.tx_settles = []

    def _on_connection_gone(self, _msg: ConnectionGone) -> None:
        self.closing = True
        self._release()
        self.stop()

    def _on_actor_failed(self, msg: ActorFailed) -> None:
        self._close_with(AMQPError(541, f"consumer failed: {msg.exception!r}"))
