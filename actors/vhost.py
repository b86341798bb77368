"""VhostActor: owns a virtual host's name indexes and carries out declares, binds and deletes.

It is the only actor that knows which exchange and queue actors exist under which names, and
every binding between them (:class:`~dispatchd.actors.routing.bindings.VhostBindings`); after
each change it sends the exchanges concerned their new routing snapshot, before it answers.
Work that needs a queue's own state (message counts, consumers, purge, get,
delete conditions) is forwarded to that queue's actor, which answers the channel directly.

Checks follow ``rabbit_channel`` in RabbitMQ 3.10, in its order, with its reply codes and
texts: a declare checks the exchange type, the default exchange, the ``amq.`` prefix and then
equivalence with an existing declaration (the flags, then the arguments RabbitMQ compares); a
binding needs both ends and valid arguments, and an exclusive queue is locked to the
connection that declared it. Unbinding something that is not bound, or deleting something
that does not exist, succeeds. Deleting a queue or an exchange removes every binding to it,
and an auto-delete exchange goes when it is no longer the source of any binding.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from pykka import ActorRef

from dispatchd.access import topic_refusal
from dispatchd.actors.arguments import (
    CONSUME_VALIDATORS,
    argument_error,
    dead_letter_exchange_error,
)
from dispatchd.actors.content import Entry
from dispatchd.actors.durable import QueueStorage
from dispatchd.actors.exchange import ExchangeActor
from dispatchd.actors.messages import (
    AccessChanged,
    AddConsumer,
    AddReplyName,
    ChannelStopped,
    ConnectionClosed,
    DeadLetters,
    DeleteOutcome,
    ExchangeResolved,
    ForgetExchanges,
    Publish,
    RemoveReplyName,
    Reply,
    Request,
    ResolveExchange,
    RoutingChanged,
    StopVhost,
)
from dispatchd.actors.queue import Declaration, QueueActor
from dispatchd.actors.ready import DEFAULT_MEMORY_LIMIT
from dispatchd.actors.reply_to import REPLY_TO
from dispatchd.actors.routing import (
    ROUTERS,
    BindingKey,
    DestKind,
    RoutingArgumentError,
    RoutingSnapshot,
    freeze,
    thaw,
)
from dispatchd.actors.routing.bindings import VhostBindings
from dispatchd.actors.routing.terms import as_text, exactly_equal, field_type, printed
from dispatchd.actors.runtime import ActorFailed, LoopActor, handles, post
from dispatchd.actors.stats import MessageTotals
from dispatchd.store.actor import DeleteExchange, SaveBinding, SaveExchange, SaveQueue, StoreFailed
from dispatchd.store.ids import StoreIds
from dispatchd.wire import spec
from dispatchd.wire.errors import (
    AMQPError,
    access_refused,
    command_invalid,
    internal_error,
    not_found,
    precondition_failed,
    resource_locked,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from dispatchd.access import Grant
    from dispatchd.store.recovery import Recovered

log = logging.getLogger("dispatchd.vhost")

# (name, type, internal): the exchanges every RabbitMQ 3.10 vhost has, all durable.
PREDECLARED = (
    ("", "direct", False),
    ("amq.direct", "direct", False),
    ("amq.fanout", "fanout", False),
    ("amq.topic", "topic", False),
    ("amq.headers", "headers", False),
    ("amq.match", "headers", False),
    ("amq.rabbitmq.trace", "topic", True),
)

# Type names that are atoms in RabbitMQ's VM but no exchange type: it calls them "invalid"
# rather than "unknown" (rabbit_exchange:check_type/1). These were seen on RabbitMQ 3.10.
INVALID_EXCHANGE_TYPES = frozenset(
    {"", "binding", "classic", "error", "exchange", "false", "none", "ok", "queue", "quorum",
     "true", "undefined"}
)  # fmt: skip

# The arguments RabbitMQ compares when an exchange or a classic queue is declared again, in
# the order it compares them (rabbit_exchange, rabbit_classic_queue:capabilities/0).
EXCHANGE_EQUIVALENCE_ARGS = ("alternate-exchange",)
QUEUE_EQUIVALENCE_ARGS = (
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-queue-type",
    "x-queue-master-locator",
)

BINDING_REPLIES: dict[type, type[spec.Method]] = {
    spec.QueueBind: spec.QueueBindOk,
    spec.QueueUnbind: spec.QueueUnbindOk,
    spec.ExchangeBind: spec.ExchangeBindOk,
    spec.ExchangeUnbind: spec.ExchangeUnbindOk,
}

_ABSENT = object()


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
    """A queue's declaration and actor; requests wait in ``parked`` while a delete runs."""

    name: str
    durable: bool
    exclusive_owner: int | None
    auto_delete: bool
    arguments: dict[str, Any]
    ref: ActorRef[Any]
    parked: list[Any] = field(default_factory=list)
    deleting: bool = False


def strip_cr_lf(name: str) -> str:
    """RabbitMQ drops CR and LF from the names in declares, deletes, binds and unbinds."""
    if "\r" in name or "\n" in name:
        return name.replace("\r", "").replace("\n", "")
    return name


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _described(value: Any) -> str:
    """An argument in an equivalence error where the other side is absent (``val/1``)."""
    if value is _ABSENT:
        return "none"
    return f"the value '{printed(value)}' of type '{field_type(value)}'"


class VhostActor(LoopActor):
    """One virtual host."""

    kind = "vhost"

    def __init__(
        self,
        name: str,
        store: ActorRef[Any] | None = None,
        recovered: Recovered | None = None,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        ids: StoreIds | None = None,
        grants: Mapping[str, Grant] | None = None,
        max_queues: int | None = None,
    ) -> None:
        super().__init__(name=name)
        self.max_queues = max_queues  # the vhost's queue limit (None: none)
        self.grants: Mapping[str, Grant] = grants or {}  # user -> what they may do here
        self.publishers: dict[ActorRef[Any], None] = {}  # channels that resolved exchanges
        self.vhost_name = name
        self.memory_limit = memory_limit  # ready messages a durable queue keeps in memory
        self.store = store  # durable declarations are saved there; None: nothing persists
        self.ids = ids or StoreIds()  # the broker's: numbers durable queues and messages
        self.recovered = recovered
        self.exchanges: dict[str, ExchangeInfo] = {}
        self.queues: dict[str, QueueInfo] = {}
        self.bindings = VhostBindings()  # every binding, and the routing they make
        self.exclusive: dict[int, set[str]] = {}  # connection id -> its exclusive queues
        self.reply_names: dict[str, ActorRef[Any]] = {}  # live direct reply-to names
        self.closed_channels = MessageTotals()  # what the vhost's stopped channels counted

    def on_start(self) -> None:  # noqa: D102
        for name, type_name, internal in PREDECLARED:
            self._create_exchange(name, type_name, True, False, internal, {})
        if self.recovered is not None:
            self._recover(self.recovered)
            self.recovered = None

    def _recover(self, state: Recovered) -> None:
        """Re-create this vhost's durable exchanges, queues (with messages) and bindings."""
        for x in state.exchanges:
            if x.vhost == self.vhost_name and x.name not in self.exchanges:
                self._create_exchange(x.name, x.type, True, x.auto_delete, x.internal, x.arguments)
        for q in state.queues:
            if q.vhost == self.vhost_name:
                entries = [Entry(*message) for message in q.messages]
                self._start_queue(
                    q.name, True, None, q.auto_delete, q.arguments, q.queue_id, entries
                )
        for b in state.bindings:
            source = self.exchanges.get(b.source)
            dest = (self.queues if b.dest_kind == "queue" else self.exchanges).get(b.dest)
            if b.vhost != self.vhost_name or source is None or dest is None:
                continue
            key = BindingKey(b.source, b.dest_kind, b.dest, b.routing_key, freeze(b.arguments))
            self._route(self.bindings.bind(key, dest.ref))

    # ----- the store

    def _persist(self, write: Any, req: Request | None, ok: spec.Method | None) -> None:
        """Save ``write`` (a store message); the reply to ``req`` goes out after the commit."""
        if self.store is None:
            if req is not None and ok is not None:
                self._reply(req, ok)
            return
        if req is not None and req.reply_to is not None and ok is not None:
            write = replace(write, then=(req.reply_to, Reply(self._reply_method(req, ok))))
        post(self.store, write)

    @handles(StoreFailed)
    def on_store_failed(self, msg: StoreFailed) -> None:
        """A queue's delete did not reach the disk: it is gone here; tell its requester."""
        log.error("store write failed for %r: %s", msg.request, msg.error)
        then = getattr(msg.request, "then", None)
        if then is not None and isinstance(then[1], DeleteOutcome):
            outcome = then[1]
            error = internal_error(f"the store failed: {msg.error}", 50, 40)
            self.on_delete_outcome(replace(outcome, reply=Reply(error=error)))

    # ----- errors

    def _where(self, kind: str, name: str) -> str:
        return f"{kind} '{name}' in vhost '{self.vhost_name}'"

    def _not_found(self, kind: str, name: str) -> AMQPError:
        return not_found(f"no {self._where(kind, name)}")

    def _locked(self, name: str) -> AMQPError:
        return resource_locked(
            f"cannot obtain exclusive access to locked {self._where('queue', name)}. "
            "It could be originally declared on another connection or the exclusive "
            "property value does not match that of the original declaration.",
        )

    def _permit(self, user: str | None, permission: str, kind: str, name: str) -> None:
        """403 unless ``user`` has ``permission`` on the resource (None: the broker itself).

        The default exchange is ``amq.default`` to permissions, as in RabbitMQ.
        """
        if user is None:
            return
        if kind == "exchange" and name == "":
            name = "amq.default"
        grant = self.grants.get(user)
        if grant is None or not grant.allows(permission, name):
            raise access_refused(f"access to {self._where(kind, name)} refused for user '{user}'")

    def _permit_topic(
        self, user: str | None, permission: str, exchange: ExchangeInfo, routing_key: str
    ) -> None:
        """403 unless ``user``'s topic permission on a topic exchange covers the key."""
        if user is None or exchange.type != "topic":
            return
        grant = self.grants.get(user)
        if grant is not None and not grant.allows_topic(permission, exchange.name, routing_key):
            raise access_refused(topic_refusal(routing_key, exchange.name, self.vhost_name, user))

    @staticmethod
    def _not_default(name: str) -> None:
        if name == "":
            raise access_refused("operation not permitted on the default exchange")

    @staticmethod
    def _check_name(kind: str, name: str) -> None:
        if name.startswith("amq."):
            raise access_refused(f"{kind} name '{name}' contains reserved prefix 'amq.*'")

    def _assert_flags(self, kind: str, name: str, flags: tuple[tuple[str, Any, Any], ...]) -> None:
        """406 for the first ``(field, received, current)`` that differs."""
        for arg, new, old in flags:
            if new != old:
                new_text, old_text = (
                    (_flag(new), _flag(old)) if isinstance(new, bool) else (new, old)
                )
                raise precondition_failed(
                    f"inequivalent arg '{arg}' for {self._where(kind, name)}: "
                    f"received '{new_text}' but current is '{old_text}'",
                )

    def _assert_args(
        self,
        kind: str,
        name: str,
        keys: tuple[str, ...],
        new: dict[str, Any],
        old: dict[str, Any],
    ) -> None:
        """406 for the first of ``keys`` whose value differs (``assert_args_equivalence``)."""
        for key in keys:
            received, current = new.get(key, _ABSENT), old.get(key, _ABSENT)
            if received is _ABSENT or current is _ABSENT:
                present = current if received is _ABSENT else received
                if present is _ABSENT or (
                    # Every queue here is classic, and RabbitMQ takes no type for 'classic'.
                    key == "x-queue-type" and exactly_equal("classic", present)
                ):
                    continue
                detail = f"received {_described(received)} but current is {_described(current)}"
            elif exactly_equal(received, current):
                continue
            else:
                detail = f"received '{printed(received)}' but current is '{printed(current)}'"
            raise precondition_failed(
                f"inequivalent arg '{key}' for {self._where(kind, name)}: {detail}"
            )

    # ----- requests

    @handles(Request)
    def on_request(self, req: Request) -> None:
        method = req.method
        try:
            self.METHODS[type(method)](self, req)
        except AMQPError as error:
            if req.reply_to is not None:
                post(req.reply_to, Reply(error=error.at(method.CLASS_ID, method.METHOD_ID)))

    @staticmethod
    def _reply_method(req: Request, method: spec.Method) -> spec.Method | None:
        """The reply method the channel should send (None for no-wait)."""
        return None if getattr(req.method, "no_wait", False) else method

    def _reply(self, req: Request, method: spec.Method) -> None:
        if req.reply_to is not None:
            post(req.reply_to, Reply(self._reply_method(req, method)))

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
        alternate = arguments.get("alternate-exchange")
        routing = self.bindings.declare_exchange(
            name, type_name, alternate if isinstance(alternate, str) else None
        )
        ref = self.runtime.start(ExchangeActor, self.actor_ref, self.vhost_name, type_name, routing)
        info = ExchangeInfo(name, type_name, durable, auto_delete, internal, arguments, ref)
        self.exchanges[name] = info
        self._route(self.bindings.exchange_started(name, ref))
        return info

    def _route(self, sends: list[tuple[Any, RoutingSnapshot]]) -> None:
        """Send exchanges their new routing (before the change is answered: FIFO mailboxes
        keep 'bind-ok, then publish' in order)."""
        for ref, routing in sends:
            post(ref, RoutingChanged(routing))

    @staticmethod
    def _check_type(type_name: str) -> None:
        if type_name not in ROUTERS:
            adjective = "invalid" if type_name in INVALID_EXCHANGE_TYPES else "unknown"
            raise command_invalid(f"{adjective} exchange type '{type_name}'")

    def _exchange_declare(self, req: Request) -> None:
        m: spec.ExchangeDeclare = req.method  # type: ignore[assignment]
        name = strip_cr_lf(m.exchange)
        if m.passive:
            self._not_default(name)
            self._exchange(name)
            self._reply(req, spec.ExchangeDeclareOk())
            return
        self._check_type(m.type)
        self._not_default(name)
        self._permit(req.user, "configure", "exchange", name)
        info = self.exchanges.get(name)
        if info is None:
            self._check_name("exchange", name)
            alternate = m.arguments.get("alternate-exchange", _ABSENT)
            if alternate is not _ABSENT:
                if field_type(alternate) != "longstr":
                    raise precondition_failed(
                        f"invalid type '{field_type(alternate)}' for arg 'alternate-exchange' "
                        f"in {self._where('exchange', name)}",
                    )
                self._permit(req.user, "read", "exchange", name)
                self._permit(req.user, "write", "exchange", as_text(alternate))
            self._create_exchange(name, m.type, m.durable, m.auto_delete, m.internal, m.arguments)
            if m.durable:
                write = SaveExchange(
                    self.vhost_name, name, m.type, m.auto_delete, m.internal, m.arguments
                )
                self._persist(write, req, spec.ExchangeDeclareOk())
                return
        else:
            self._assert_flags(
                "exchange",
                name,
                (
                    ("type", m.type, info.type),
                    ("durable", m.durable, info.durable),
                    ("auto_delete", m.auto_delete, info.auto_delete),
                    ("internal", m.internal, info.internal),
                ),
            )
            self._assert_args(
                "exchange", name, EXCHANGE_EQUIVALENCE_ARGS, m.arguments, info.arguments
            )
        self._reply(req, spec.ExchangeDeclareOk())

    def _exchange(self, name: str) -> ExchangeInfo:
        info = self.exchanges.get(name)
        if info is None:
            raise self._not_found("exchange", name)
        return info

    def _exchange_delete(self, req: Request) -> None:
        m: spec.ExchangeDelete = req.method  # type: ignore[assignment]
        name = strip_cr_lf(m.exchange)
        self._not_default(name)
        if name.startswith("amq."):
            raise access_refused(f"deletion of system {self._where('exchange', name)} not allowed")
        self._permit(req.user, "configure", "exchange", name)
        info = self.exchanges.get(name)
        if info is not None:
            if m.if_unused and self.bindings.has_source(name):
                raise precondition_failed(f"{self._where('exchange', name)} in use")
            self._delete_exchange(info, req)
            return
        self._reply(req, spec.ExchangeDeleteOk())

    def _delete_exchange(self, info: ExchangeInfo, req: Request | None = None) -> None:
        """Delete an exchange with its bindings either way; auto-delete sources left unused.

        ``req``, when given, is answered with delete-ok (after the store forgot it, if durable).
        """
        if info.durable:
            self._persist(DeleteExchange(self.vhost_name, info.name), req, spec.ExchangeDeleteOk())
        elif req is not None:
            self._reply(req, spec.ExchangeDeleteOk())
        del self.exchanges[info.name]
        sources, sends = self.bindings.delete_exchange(info.name)
        self._route(sends)
        info.ref.stop(block=False)
        self._auto_delete_exchanges(sources)

    def _auto_delete_exchanges(self, sources: set[str]) -> None:
        for source in sources:
            info = self.exchanges.get(source)
            if info is not None and info.auto_delete and not self.bindings.has_source(source):
                log.debug("auto-deleting %s", self._where("exchange", source))
                self._delete_exchange(info)

    @handles(ResolveExchange)
    def on_resolve_exchange(self, msg: ResolveExchange) -> None:
        """The exchange a channel publishes to, once its user may write to it."""
        self.publishers[msg.reply_to] = None
        try:
            self._permit(msg.user, "write", "exchange", msg.name)
        except AMQPError as error:
            post(msg.reply_to, ExchangeResolved(msg.name, None, refused=error))
            return
        info = self.exchanges.get(msg.name)
        if info is None:
            post(msg.reply_to, ExchangeResolved(msg.name, None))
            return
        topic = None
        grant = self.grants.get(msg.user) if msg.user is not None else None
        if grant is not None and info.type == "topic":
            topic = grant.topic_pattern("write", info.name)
        post(msg.reply_to, ExchangeResolved(msg.name, info.ref, info.internal, topic))

    @handles(StopVhost)
    def on_stop_vhost(self, _msg: StopVhost) -> list[Any]:
        """The vhost is deleted: its queues and exchanges stop (their stop futures)."""
        refs = [q.ref for q in self.queues.values()] + [x.ref for x in self.exchanges.values()]
        self.queues.clear()
        self.exchanges.clear()
        self.exclusive.clear()
        return [ref.stop(block=False) for ref in refs]

    @handles(AccessChanged)
    def on_access_changed(self, msg: AccessChanged) -> None:
        """New permissions: every later request is checked against them, and channels that
        publish resolve their exchanges (and so their write permission) again."""
        self.grants = msg.grants
        self.max_queues = msg.max_queues
        for channel in self.publishers:
            post(channel, ForgetExchanges())

    @handles(DeadLetters)
    def on_dead_letters(self, msg: DeadLetters) -> None:
        """Route a queue's dead letters through its DLX (dropped if there is no such exchange)."""
        info = self.exchanges.get(msg.exchange)
        if info is None:
            count = len(msg.messages)
            log.debug("dead-letter exchange %r missing: %d dropped", msg.exchange, count)
            return
        post(info.ref, Publish(msg.messages, [], None, dead_letters=True))

    # ----- bindings

    def _exchange_bind(self, req: Request) -> None:
        m = req.method
        source, destination = strip_cr_lf(m.source), strip_cr_lf(m.destination)
        self._permit(req.user, "write", "exchange", destination)
        self._not_default(destination)
        self._not_default(source)
        self._permit(req.user, "read", "exchange", source)
        self._binding_action(req, source, "exchange", destination, m.routing_key, m.arguments)

    def _queue_bind(self, req: Request) -> None:
        m = req.method
        exchange = strip_cr_lf(m.exchange)
        self._permit(req.user, "write", "queue", strip_cr_lf(m.queue))
        self._not_default(exchange)
        self._permit(req.user, "read", "exchange", exchange)
        self._binding_action(
            req, exchange, "queue", strip_cr_lf(m.queue), m.routing_key, m.arguments
        )

    def _binding_action(
        self,
        req: Request,
        source_name: str,
        dest_kind: DestKind,
        dest_name: str,
        routing_key: str,
        arguments: dict[str, Any],
    ) -> None:
        """Bind or unbind (by the method's type), checking as ``rabbit_binding`` does."""
        unbind = isinstance(req.method, (spec.QueueUnbind, spec.ExchangeUnbind))
        source = self.exchanges.get(source_name)
        dest: ExchangeInfo | QueueInfo | None = (
            self.queues.get(dest_name) if dest_kind == "queue" else self.exchanges.get(dest_name)
        )
        if source is not None:
            self._permit_topic(req.user, "read", source, routing_key)
        key = BindingKey(source_name, dest_kind, dest_name, routing_key, freeze(arguments))
        ok = BINDING_REPLIES[type(req.method)]()
        if unbind and (source is None or dest is None or key not in self.bindings):
            self._reply(req, ok)  # RabbitMQ: nothing to unbind is no error, missing ends either
            return
        if source is None:
            raise self._not_found("exchange", source_name)
        if dest is None:
            raise self._not_found(dest_kind, dest_name)
        if not unbind:
            try:
                self.bindings.router(source_name).validate(key.arguments)
            except RoutingArgumentError as exc:
                raise precondition_failed(str(exc)) from None
        if isinstance(dest, QueueInfo):
            self._check_exclusive(dest, req)
        if unbind:
            self._route(self.bindings.unbind(key, dest.ref))
        else:
            self._route(self.bindings.bind(key, dest.ref))
        if source.durable and dest.durable and self.store is not None:
            write = SaveBinding(
                self.vhost_name, source.name, dest_kind, dest.name, routing_key, arguments, unbind
            )
            self._persist(write, req, ok)  # the store answers after the commit
        else:
            self._reply(req, ok)
        if unbind:
            self._auto_delete_exchanges({source.name})

    # ----- queues

    def _queue(self, name: str, req: Request | AddConsumer) -> QueueInfo:
        """The queue named in a request (404), if its connection may use it (405)."""
        info = self.queues.get(name)
        if info is None:
            raise self._not_found("queue", name)
        self._check_exclusive(info, req)
        return info

    def _check_exclusive(self, info: QueueInfo, req: Request | AddConsumer) -> None:
        """405 unless the queue is shared or the request's connection owns it.

        Requests without a reply address come from the broker itself (auto-delete, a closed
        connection), which may act on any queue.
        """
        owner = info.exclusive_owner
        if owner is not None and owner != req.connection_id:
            if isinstance(req, AddConsumer) or req.reply_to is not None:
                raise self._locked(info.name)

    def _queue_declare(self, req: Request) -> None:
        m: spec.QueueDeclare = req.method  # type: ignore[assignment]
        name = strip_cr_lf(m.queue)
        if m.passive:
            if name == REPLY_TO or name in self.reply_names:  # as RabbitMQ: always one consumer
                ok = spec.QueueDeclareOk(queue=name, message_count=0, consumer_count=1)
                self._reply(req, ok)
                return
            self._forward(self._queue(name, req), req)
            return
        owner = req.connection_id if m.exclusive else None
        durable = m.durable and not m.exclusive
        if name == "":
            name = "amq.gen-" + secrets.token_urlsafe(16)
        else:
            self._check_name("queue", name)
        self._permit(req.user, "configure", "queue", name)
        info = self.queues.get(name)
        if info is not None:
            if info.exclusive_owner != owner:
                raise self._locked(name)
            flags = (
                ("durable", durable, info.durable),
                ("auto_delete", m.auto_delete, info.auto_delete),
            )
            self._assert_flags("queue", name, flags)
            self._assert_args("queue", name, QUEUE_EQUIVALENCE_ARGS, m.arguments, info.arguments)
            self._forward(info, req)
            return
        self._check_arguments(name, m.arguments, req.user)
        if self.max_queues is not None and len(self.queues) >= self.max_queues:
            raise precondition_failed(
                f"cannot declare queue '{name}': queue limit in vhost '{self.vhost_name}' "
                f"({self.max_queues}) is reached"
            )
        queue_id = self.ids.queue_id() if durable and self.store is not None else 0
        self._start_queue(name, durable, owner, m.auto_delete, m.arguments, queue_id, [])
        ok = spec.QueueDeclareOk(queue=name, message_count=0, consumer_count=0)
        if queue_id:
            self._persist(
                SaveQueue(queue_id, self.vhost_name, name, m.auto_delete, m.arguments), req, ok
            )
        else:
            self._reply(req, ok)

    def _check_arguments(self, name: str, arguments: dict[str, Any], user: str | None) -> None:
        """406 for a new queue's first invalid argument, in RabbitMQ's order and words; a
        dead-letter exchange needs read on the queue and write on that exchange (403)."""
        where = self._where("queue", name)
        dlx_type = dead_letter_exchange_error(arguments)
        if dlx_type is not None:
            raise precondition_failed(
                f"invalid type '{dlx_type}' for arg 'x-dead-letter-exchange' in {where}"
            )
        if "x-dead-letter-exchange" in arguments:
            self._permit(user, "read", "queue", name)
            self._permit(user, "write", "exchange", as_text(arguments["x-dead-letter-exchange"]))
        error = argument_error(arguments)
        if error is not None:
            raise precondition_failed(f"invalid arg '{error[0]}' for {where}: {error[1]}")

    def _start_queue(
        self,
        name: str,
        durable: bool,
        owner: int | None,
        auto_delete: bool,
        arguments: dict[str, Any],
        queue_id: int,
        entries: list[Entry],
    ) -> None:
        storage = None
        if queue_id:
            assert self.store is not None
            storage = QueueStorage(self.store, queue_id, self.ids)
        ref = self.runtime.start(
            QueueActor,
            self.actor_ref,
            self.vhost_name,
            name,
            Declaration(durable, owner, auto_delete, arguments),
            storage,
            entries,
            self.memory_limit,
        )
        self.queues[name] = QueueInfo(name, durable, owner, auto_delete, arguments, ref)
        if owner is not None:
            self.exclusive.setdefault(owner, set()).add(name)
        self._route(self.bindings.bind_default(name, ref))

    def _forward(self, info: QueueInfo, req: Any) -> None:
        if info.deleting:
            info.parked.append(req)
        else:
            post(info.ref, req)

    def _forward_to_queue(self, req: Request) -> None:
        """Purge and get: they need read on the queue."""
        self._permit(req.user, "read", "queue", req.method.queue)
        self._forward(self._queue(req.method.queue, req), req)

    @handles(AddConsumer)
    def on_add_consumer(self, add: AddConsumer) -> None:
        try:
            self._permit(add.user, "read", "queue", add.queue)
            info = self._queue(add.queue, add)
            invalid = argument_error(add.arguments, CONSUME_VALIDATORS)
            if invalid is not None:
                where = self._where("queue", add.queue)
                raise precondition_failed(f"invalid arg '{invalid[0]}' for {where}: {invalid[1]}")
        except AMQPError as error:
            post(add.channel, Reply(error=error.at(60, 20)))
            return
        self._forward(info, add)

    def _queue_delete(self, req: Request) -> None:
        m: spec.QueueDelete = req.method  # type: ignore[assignment]
        self._permit(req.user, "configure", "queue", strip_cr_lf(m.queue))
        info = self.queues.get(strip_cr_lf(m.queue))
        if info is None:
            self._reply(req, spec.QueueDeleteOk(message_count=0))
            return
        self._check_exclusive(info, req)
        if info.deleting:
            info.parked.append(req)
            return
        info.deleting = True
        post(info.ref, req)

    @handles(DeleteOutcome)
    def on_delete_outcome(self, outcome: DeleteOutcome) -> None:
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
            self.handlers[type(req)](self, req)

    def _forget_queue(self, info: QueueInfo) -> None:
        """A queue is gone: drop its bindings everywhere; auto-delete sources left unused."""
        del self.queues[info.name]
        if info.exclusive_owner is not None:
            owned = self.exclusive.get(info.exclusive_owner)
            if owned is not None:
                owned.discard(info.name)
                if not owned:
                    del self.exclusive[info.exclusive_owner]
        sources, sends = self.bindings.remove_queue(info.name, info.ref)
        self._route(sends)
        self._auto_delete_exchanges(sources)

    @handles(ConnectionClosed)
    def on_connection_closed(self, msg: ConnectionClosed) -> None:
        for name in sorted(self.exclusive.get(msg.connection_id, ())):
            self.on_request(Request(spec.QueueDelete(queue=name), None, msg.connection_id))

    @handles(ActorFailed)
    def on_actor_failed(self, msg: ActorFailed) -> None:
        for info in list(self.queues.values()):
            if info.ref == msg.ref:
                log.error("queue %r failed and was removed: %r", info.name, msg.exception)
                self._forget_queue(info)
        for exchange in list(self.exchanges.values()):
            if exchange.ref == msg.ref:
                log.error("exchange %r failed and was removed: %r", exchange.name, msg.exception)
                self._delete_exchange(exchange)

    # ----- direct reply-to

    @handles(AddReplyName)
    def on_add_reply_name(self, msg: AddReplyName) -> None:
        """Bind a reply consumer's name on the default exchange; the channel's consume-ok
        follows the new routing."""
        self.reply_names[msg.name] = msg.dest
        self._route(self.bindings.bind_default(msg.name, msg.dest))
        post(msg.channel, Reply(msg.reply))

    @handles(RemoveReplyName)
    def on_remove_reply_name(self, msg: RemoveReplyName) -> None:
        dest = self.reply_names.pop(msg.name, None)
        if dest is not None:
            self._route(self.bindings.unbind_default(dest))

    METHODS: ClassVar[dict[type, Callable[[VhostActor, Request], None]]] = {
        spec.ExchangeDeclare: _exchange_declare,
        spec.ExchangeDelete: _exchange_delete,
        spec.ExchangeBind: _exchange_bind,
        spec.ExchangeUnbind: _exchange_bind,
        spec.QueueDeclare: _queue_declare,
        spec.QueueBind: _queue_bind,
        spec.QueueUnbind: _queue_bind,
        spec.QueuePurge: _forward_to_queue,
        spec.QueueDelete: _queue_delete,
        spec.BasicGet: _forward_to_queue,
    }
    """AMQP method class -> how the vhost carries it out (declared once for the class)."""

    # ----- introspection

    @handles(ChannelStopped)
    def on_channel_stopped(self, msg: ChannelStopped) -> None:
        """A channel stopped: its counts join the vhost's totals."""
        self.closed_channels.add(msg.totals)
        self.publishers.pop(msg.channel, None)

    def consistency_problems(self) -> list[str]:
        """Where the binding index, the exchange routers and the routes they were sent
        disagree; an empty list means everything agrees."""
        refs: dict[tuple[DestKind, str], Any] = {
            **{("queue", name): q.ref for name, q in self.queues.items()},
            **{("exchange", name): x.ref for name, x in self.exchanges.items()},
        }
        implicit = {name: q.ref for name, q in self.queues.items()}
        return self.bindings.problems(refs, {**implicit, **self.reply_names})

    def describe(self) -> dict[str, Any]:
        """Declarations for the admin: exchanges, queues (with actor URNs) and bindings."""
        return {
            **super().describe(),
            "closed_channels": asdict(self.closed_channels),
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
