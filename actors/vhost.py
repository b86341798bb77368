"""VhostActor: owns a virtual host's name indexes and carries out declares, binds and deletes.

It is the only actor that knows which exchange and queue actors exist under which names, and
every binding between them. Work that needs a queue's own state (message counts, consumers,
purge, get) is forwarded to that queue's actor, which answers the channel directly.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from pykka import ActorRef

from actors.exchange import ExchangeActor
from actors.messages import (
    AddBinding,
    AddConsumer,
    AlternateIs,
    ConnectionClosed,
    DeleteOutcome,
    ExchangeResolved,
    RemoveBinding,
    RemoveDestination,
    Reply,
    Request,
    ResolveExchange,
)
from actors.queue import QueueActor
from actors.routing import ROUTERS, RoutingArgumentError, freeze, thaw
from actors.runtime import ActorFailed, LoopActor, post
from wire import spec
from wire.errors import AMQPError

log = logging.getLogger("dispatchd.vhost")

PREDECLARED = {
    "": "direct",
    "amq.direct": "direct",
    "amq.fanout": "fanout",
    "amq.topic": "topic",
    "amq.headers": "headers",
    "amq.match": "headers",
}


@dataclass(slots=True)
class ExchangeInfo:
    """An exchange's declaration and actor."""

    name: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    arguments: dict[str, Any]
    ref: ActorRef[Any]


@dataclass(slots=True)
class QueueInfo:
    """A queue's declaration and actor."""

    name: str
    durable: bool
    exclusive_owner: int | None
    auto_delete: bool
    arguments: dict[str, Any]
    ref: ActorRef[Any]
    parked: list[Any] = field(default_factory=list)
    deleting: bool = False


@dataclass(frozen=True, slots=True)
class BindingKey:
    """One binding as the vhost indexes it."""

    source: str
    dest_kind: str  # "queue" or "exchange"
    dest: str
    routing_key: str
    arguments: Any  # a frozen table


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class VhostActor(LoopActor):
    """One virtual host."""

    kind = "vhost"

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.vhost_name = name
        self.exchanges: dict[str, ExchangeInfo] = {}
        self.queues: dict[str, QueueInfo] = {}
        self.bindings: dict[BindingKey, None] = {}
        self._handlers: dict[type, Any] = {
            Request: self._request,
            AddConsumer: self._add_consumer,
            ResolveExchange: self._resolve_exchange,
            DeleteOutcome: self._delete_outcome,
            ConnectionClosed: self._connection_closed,
            ActorFailed: self._actor_failed,
        }
        self._methods: dict[type, Any] = {
            spec.ExchangeDeclare: self._exchange_declare,
            spec.ExchangeDelete: self._exchange_delete,
            spec.ExchangeBind: self._exchange_bind,
            spec.ExchangeUnbind: self._exchange_bind,
            spec.QueueDeclare: self._queue_declare,
            spec.QueueBind: self._queue_bind,
            spec.QueueUnbind: self._queue_bind,
            spec.QueuePurge: self._forward_to_queue,
            spec.QueueDelete: self._queue_delete,
            spec.BasicGet: self._forward_to_queue,
        }

    def on_start(self) -> None:  # noqa: D102
        for name, type_name in PREDECLARED.items():
            self._create_exchange(name, type_name, True, False, False, {})

    def on_receive(self, message: Any) -> None:  # noqa: D102
        self._handlers[type(message)](message)

    # ----- helpers

    def _where(self, kind: str, name: str) -> str:
        return f"{kind} '{name}' in vhost '{self.vhost_name}'"

    def _exchange_or_404(self, name: str) -> ExchangeInfo:
        info = self.exchanges.get(name)
        if info is None:
            raise AMQPError(404, f"no {self._where('exchange', name)}")
        return info

    def _queue_or_404(self, name: str, connection_id: int) -> QueueInfo:
        info = self.queues.get(name)
        if info is None:
            raise AMQPError(404, f"no {self._where('queue', name)}")
        self._check_exclusive(info, connection_id)
        return info

    def _check_exclusive(self, info: QueueInfo, connection_id: int) -> None:
        if info.exclusive_owner is not None and info.exclusive_owner != connection_id:
            raise AMQPError(
                405,
                f"cannot obtain exclusive access to locked {self._where('queue', info.name)}. "
                "It could be originally declared on another connection or the exclusive "
                "property value does not match that of the original declaration.",
            )

    @staticmethod
    def _not_default(name: str) -> None:
        if name == "":
            raise AMQPError(403, "operation not permitted on the default exchange")

    def _inequivalent(self, kind: str, name: str, arg: str, new: Any, old: Any) -> AMQPError:
        return AMQPError(
            406,
            f"inequivalent arg '{arg}' for {self._where(kind, name)}: "
            f"received '{_fmt(new)}' but current is '{_fmt(old)}'",
        )

    # ----- requests

    def _request(self, req: Request) -> None:
        method = req.method
        try:
            self._methods[type(method)](req)
        except AMQPError as error:
            if req.reply_to is not None:
                post(req.reply_to, Reply(error=error.at(method.CLASS_ID, method.METHOD_ID)))

    def _reply(self, req: Request, method: spec.Method) -> None:
        if req.reply_to is not None:
            post(req.reply_to, Reply(None if getattr(req.method, "no_wait", False) else method))

    # ----- exchanges

    def _create_exchange(
        self,
        name: str,
        type_name: str,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: dict[str, Any],
    ) -> ExchangeInfo:
        alternate_name = arguments.get("alternate-exchange")
        alternate = self.exchanges.get(alternate_name) if isinstance(alternate_name, str) else None
        ref = ExchangeActor.start(
            self.actor_ref,
            self.vhost_name,
            name,
            type_name,
            alternate.ref if alternate else None,
        )
        info = ExchangeInfo(name, type_name, durable, auto_delete, internal, arguments, ref)
        self.exchanges[name] = info
        self._announce_alternate(name, ref)
        return info

    def _announce_alternate(self, name: str, ref: ActorRef[Any] | None) -> None:
        for other in self.exchanges.values():
            if other.arguments.get("alternate-exchange") == name and other.name != name:
                post(other.ref, AlternateIs(ref))

    def _exchange_declare(self, req: Request) -> None:
        m: spec.ExchangeDeclare = req.method  # type: ignore[assignment]
        name = m.exchange
        if m.passive:
            self._not_default(name)
            self._exchange_or_404(name)
            self._reply(req, spec.ExchangeDeclareOk())
            return
        if m.type not in ROUTERS:
            raise AMQPError(503, f"unknown exchange type '{m.type}'")
        self._not_default(name)
        info = self.exchanges.get(name)
        if info is None:
            if name.startswith("amq."):
                raise AMQPError(403, f"exchange name '{name}' contains reserved prefix 'amq.*'")
            alternate = m.arguments.get("alternate-exchange")
            if alternate is not None and not isinstance(alternate, str):
                raise AMQPError(
                    406,
                    f"invalid type '{type(alternate).__name__}' for arg 'alternate-exchange' "
                    f"in {self._where('exchange', name)}",
                )
            self._create_exchange(name, m.type, m.durable, m.auto_delete, m.internal, m.arguments)
        else:
            for arg, new, old in (
                ("type", m.type, info.type),
                ("durable", m.durable, info.durable),
                ("auto_delete", m.auto_delete, info.auto_delete),
                ("internal", m.internal, info.internal),
            ):
                if new != old:
                    raise self._inequivalent("exchange", name, arg, new, old)
            self._check_args_equivalent("exchange", name, m.arguments, info.arguments)
        self._reply(req, spec.ExchangeDeclareOk())

    def _check_args_equivalent(
        self, kind: str, name: str, new: dict[str, Any], old: dict[str, Any]
    ) -> None:
        for key in sorted(set(new) | set(old)):
            if key in EQUIVALENCE_ARGS and freeze(new.get(key)) != freeze(old.get(key)):
                raise AMQPError(
                    406,
                    f"inequivalent arg '{key}' for {self._where(kind, name)}: "
                    f"received {_describe(new.get(key))} but current is "
                    f"{_describe(old.get(key))}",
                )

    def _exchange_delete(self, req: Request) -> None:
        m: spec.ExchangeDelete = req.method  # type: ignore[assignment]
        name = m.exchange
        self._not_default(name)
        if name.startswith("amq."):
            raise AMQPError(403, f"deletion of system {self._where('exchange', name)} not allowed")
        info = self.exchanges.get(name)
        if info is not None:
            if m.if_unused and any(b.source == name for b in self.bindings):
                raise AMQPError(406, f"{self._where('exchange', name)} in use")
            self._delete_exchange(info)
        self._reply(req, spec.ExchangeDeleteOk())

    def _delete_exchange(self, info: ExchangeInfo) -> None:
        del self.exchanges[info.name]
        touched: set[str] = set()
        for binding in list(self.bindings):
            if binding.source == info.name:
                del self.bindings[binding]
            elif binding.dest_kind == "exchange" and binding.dest == info.name:
                del self.bindings[binding]
                touched.add(binding.source)
        for source in touched:
            post(self.exchanges[source].ref, RemoveDestination(info.ref))
        self._announce_alternate(info.name, None)
        info.ref.stop(block=False)
        self._auto_delete_exchanges(touched)

    def _auto_delete_exchanges(self, sources: set[str]) -> None:
        for source in sources:
            info = self.exchanges.get(source)
            if (
                info is not None
                and info.auto_delete
                and not any(b.source == source for b in self.bindings)
            ):
                log.debug("auto-deleting exchange %r", source)
                self._delete_exchange(info)

    def _resolve_exchange(self, msg: ResolveExchange) -> None:
        info = self.exchanges.get(msg.name)
        post(
            msg.reply_to,
            ExchangeResolved(
                msg.name, info.ref if info else None, info.internal if info else False
            ),
        )

    # ----- bindings

    def _exchange_bind(self, req: Request) -> None:
        m = req.method
        unbind = isinstance(m, spec.ExchangeUnbind)
        self._not_default(m.source)
        self._not_default(m.destination)
        source = self._exchange_or_404(m.source)
        dest = self._exchange_or_404(m.destination)
        reply = spec.ExchangeUnbindOk() if unbind else spec.ExchangeBindOk()
        self._bind(req, source, "exchange", dest.name, dest.ref, m.routing_key, m.arguments, reply)

    def _queue_bind(self, req: Request) -> None:
        m = req.method
        unbind = isinstance(m, spec.QueueUnbind)
        self._not_default(m.exchange)
        queue = self.queues.get(m.queue)
        source = self.exchanges.get(m.exchange)
        if source is None:
            raise AMQPError(404, f"no {self._where('exchange', m.exchange)}")
        if queue is None:
            raise AMQPError(404, f"no {self._where('queue', m.queue)}")
        self._check_exclusive(queue, req.connection_id)
        reply = spec.QueueUnbindOk() if unbind else spec.QueueBindOk()
        self._bind(req, source, "queue", queue.name, queue.ref, m.routing_key, m.arguments, reply)

    def _bind(
        self,
        req: Request,
        source: ExchangeInfo,
        dest_kind: str,
        dest_name: str,
        dest_ref: ActorRef[Any],
        routing_key: str,
        arguments: dict[str, Any],
        reply: spec.Method,
    ) -> None:
        key = BindingKey(source.name, dest_kind, dest_name, routing_key, freeze(arguments))
        nowait = getattr(req.method, "no_wait", False)
        reply_to = req.reply_to
        if isinstance(reply, (spec.QueueUnbindOk, spec.ExchangeUnbindOk)):
            if key not in self.bindings:
                self._reply(req, reply)
                return
            del self.bindings[key]
            post(
                source.ref,
                RemoveBinding(
                    dest_ref, routing_key, arguments, reply_to, None if nowait else reply
                ),
            )
            self._auto_delete_exchanges({source.name})
            return
        try:
            ROUTERS[source.type]().validate(freeze(arguments))
        except RoutingArgumentError as exc:
            raise AMQPError(406, str(exc)) from None
        self.bindings[key] = None
        post(
            source.ref,
            AddBinding(dest_ref, routing_key, arguments, reply_to, None if nowait else reply),
        )

    # ----- queues

    def _queue_declare(self, req: Request) -> None:
        m: spec.QueueDeclare = req.method  # type: ignore[assignment]
        name = m.queue
        if m.passive:
            info = self._queue_or_404(name, req.connection_id)
            self._forward(info, req)
            return
        owner = req.connection_id if m.exclusive else None
        durable = m.durable and not m.exclusive
        if name == "":
            name = "amq.gen-" + secrets.token_urlsafe(16)
        elif name.startswith("amq."):
            raise AMQPError(403, f"queue name '{name}' contains reserved prefix 'amq.*'")
        info = self.queues.get(name)
        if info is not None:
            self._check_exclusive(info, req.connection_id)
            for arg, new, old in (
                ("durable", durable, info.durable),
                ("auto_delete", m.auto_delete, info.auto_delete),
            ):
                if new != old:
                    raise self._inequivalent("queue", name, arg, new, old)
            if (owner is None) != (info.exclusive_owner is None):
                self._check_exclusive(info, -1)
            self._check_args_equivalent("queue", name, m.arguments, info.arguments)
            self._forward(info, req)
            return
        ref = QueueActor.start(
            self.actor_ref, self.vhost_name, name, durable, owner, m.auto_delete, m.arguments
        )
        self.queues[name] = QueueInfo(name, durable, owner, m.auto_delete, m.arguments, ref)
        post(self.exchanges[""].ref, AddBinding(ref, name, {}, None, None))
        self._reply(req, spec.QueueDeclareOk(queue=name, message_count=0, consumer_count=0))

    def _forward(self, info: QueueInfo, req: Any) -> None:
        if info.deleting:
            info.parked.append(req)
        else:
            post(info.ref, req)

    def _forward_to_queue(self, req: Request) -> None:
        self._forward(self._queue_or_404(req.method.queue, req.connection_id), req)

    def _add_consumer(self, add: AddConsumer) -> None:
        try:
            info = self._queue_or_404(add.queue, add.connection_id)
        except AMQPError as error:
            post(add.channel, Reply(error=error.at(60, 20)))
            return
        self._forward(info, add)

    def _queue_delete(self, req: Request) -> None:
        m: spec.QueueDelete = req.method  # type: ignore[assignment]
        info = self.queues.get(m.queue)
        if info is None:
            self._reply(req, spec.QueueDeleteOk(message_count=0))
            return
        self._check_exclusive(info, req.connection_id)
        if info.deleting:
            info.parked.append(req)
            return
        info.deleting = True
        post(info.ref, req)

    def _delete_outcome(self, outcome: DeleteOutcome) -> None:
        info = self.queues.get(outcome.name)
        if info is None:
            return
        info.deleting = False
        if outcome.deleted:
            self._forget_queue(info)
        if outcome.reply_to is not None:
            post(outcome.reply_to, outcome.reply)
        parked, info.parked = info.parked, []
        for req in parked:
            self.on_receive(req)

    def _forget_queue(self, info: QueueInfo) -> None:
        del self.queues[info.name]
        sources = {""}
        for binding in list(self.bindings):
            if binding.dest_kind == "queue" and binding.dest == info.name:
                del self.bindings[binding]
                sources.add(binding.source)
        for source in sources:
            exchange = self.exchanges.get(source)
            if exchange is not None:
                post(exchange.ref, RemoveDestination(info.ref))
        self._auto_delete_exchanges(sources - {""})

    def _connection_closed(self, msg: ConnectionClosed) -> None:
        for info in list(self.queues.values()):
            if info.exclusive_owner == msg.connection_id:
                self._request(Request(spec.QueueDelete(queue=info.name), None, msg.connection_id))

    def _actor_failed(self, msg: ActorFailed) -> None:
        for info in list(self.queues.values()):
            if info.ref == msg.ref:
                log.error("queue %r failed and was removed: %r", info.name, msg.exception)
                self._forget_queue(info)
        for exchange in list(self.exchanges.values()):
            if exchange.ref == msg.ref:
                log.error("exchange %r failed and was removed: %r", exchange.name, msg.exception)
                self._delete_exchange(exchange)

    def describe(self) -> dict[str, Any]:
        """Declarations for the admin: exchanges, queues (with actor URNs) and bindings."""
        return {
            **super().describe(),
            "exchanges": [
                {
                    "name": x.name,
                    "type": x.type,
                    "durable": x.durable,
                    "auto_delete": x.auto_delete,
                    "internal": x.internal,
                    "arguments": x.arguments,
                    "actor": x.ref.actor_urn,
                }
                for x in self.exchanges.values()
            ],
            "queues": [
                {
                    "name": q.name,
                    "durable": q.durable,
                    "auto_delete": q.auto_delete,
                    "exclusive_owner": q.exclusive_owner,
                    "arguments": q.arguments,
                    "actor": q.ref.actor_urn,
                }
                for q in self.queues.values()
            ],
            "bindings": [
                {
                    "source": b.source,
                    "destination": b.dest,
                    "destination_type": b.dest_kind,
                    "routing_key": b.routing_key,
                    "arguments": thaw(b.arguments),
                }
                for b in self.bindings
            ],
        }


EQUIVALENCE_ARGS = frozenset(
    {
        "alternate-exchange",
        "x-message-ttl",
        "x-expires",
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-max-length",
        "x-max-length-bytes",
        "x-max-priority",
        "x-overflow",
        "x-queue-mode",
        "x-queue-type",
        "x-single-active-consumer",
    }
)


def _describe(value: Any) -> str:
    if value is None:
        return "none"
    return f"the value '{_fmt(value)}' of type '{_amqp_type_name(value)}'"


def _amqp_type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "long"
    if isinstance(value, str | bytes):
        return "longstr"
    return type(value).__name__
