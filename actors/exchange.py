"""ExchangeActor: routes the messages published to one exchange.

It owns no bindings: its vhost sends it a :class:`~dispatchd.actors.routing.snapshot.
RoutingSnapshot` (``RoutingChanged``) after every change, before it answers the change, so a
publish that follows a bind-ok always routes by the new bindings (mailboxes are FIFO). A
publish is routed in one step: every message goes to the set of queues its bindings match,
through bound exchanges and alternate exchanges too (``RoutingSnapshot.walk``), one Enqueue
per queue per batch. Topic routing results are cached per routing key, in this actor, for
the snapshot they came from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from pykka import ActorRef

from dispatchd.actors.content import Message
from dispatchd.actors.messages import Enqueue, Publish, RouteResult, RoutingChanged
from dispatchd.actors.reply_to import ReplyToActor
from dispatchd.actors.routing import RoutingSnapshot, RoutingTable
from dispatchd.actors.runtime import LoopActor, handles, post

CACHE_SIZE = 4096  # routing keys whose topic routing results one exchange keeps

Route = Callable[[str, Mapping[str, Any] | None], frozenset[Hashable]]


def _reply_only(dests: frozenset[Hashable] | set[Hashable]) -> bool:
    """RabbitMQ's quirk: a mandatory publish that reaches only a direct reply-to consumer
    (no queue) is delivered and also returned as unroutable."""
    return len(dests) == 1 and next(iter(dests)).actor_class is ReplyToActor  # type: ignore[attr-defined]


def _cached(table: RoutingTable) -> Route:
    """``table.route`` with a cache of its results by routing key (for topic tables)."""
    cache: dict[str, frozenset[Hashable]] = {}
    route = table.route

    def cached(routing_key: str, headers: Mapping[str, Any] | None = None) -> frozenset[Hashable]:
        found = cache.get(routing_key)
        if found is None:
            if len(cache) >= CACHE_SIZE:
                cache.clear()
            found = cache[routing_key] = route(routing_key, headers)
        return found

    return cached


class ExchangeActor(LoopActor):
    """One AMQP exchange of any type."""

    kind = "exchange"

    def __init__(
        self, vhost: ActorRef[Any], vhost_name: str, type_name: str, routing: RoutingSnapshot
    ) -> None:
        super().__init__(name=routing.own.name or "amq.default", owner=vhost_name, supervisor=vhost)
        self.type_name = type_name
        self.routing = routing
        self.route = self._route_for(routing)

    @staticmethod
    def _route_for(routing: RoutingSnapshot) -> Route:
        table = routing.own.table
        return _cached(table) if table.cacheable else table.route

    @handles(RoutingChanged)
    def on_routing_changed(self, msg: RoutingChanged) -> None:
        """The vhost's new snapshot: route by it from now on."""
        self.routing = msg.routing
        self.route = self._route_for(msg.routing)

    @handles(Publish)
    def on_publish(self, msg: Publish) -> None:
        """Route a batch of publishes and enqueue them, one Enqueue per destination."""
        routing = self.routing
        own = routing.own
        route = self.route
        uses_headers = own.uses_headers
        exchange_dests = own.exchange_dests
        alternate = own.alternate
        walk = routing.walk
        seqs = msg.seqs
        batches: dict[ActorRef[Any], tuple[list[Message], list[int]]] = {}
        returned: list[Message] = []
        routed: list[tuple[int, int]] = []
        for i, message in enumerate(msg.messages):
            dests: frozenset[Hashable] | set[Hashable]
            if type(message) is Message:
                dests = route(message.routing_key, message.headers if uses_headers else None)
            else:  # several routing keys (CC/BCC)
                dests = own.route(message)
            if (exchange_dests and not exchange_dests.isdisjoint(dests)) or (
                alternate is not None and not dests
            ):
                dests = walk(message, dests)  # type: ignore[arg-type]
            seq = seqs[i] if seqs else 0
            for dest in dests:
                batch = batches.get(dest)  # type: ignore[call-overload]
                if batch is None:
                    batches[dest] = batch = ([], [])  # type: ignore[index]
                batch[0].append(message)
                if seq:
                    batch[1].append(seq)
            if message.mandatory and (not dests or _reply_only(dests)):
                returned.append(message)
            if seq:
                routed.append((seq, len(dests)))
        reply_to = msg.reply_to
        dead = msg.dead_letters
        gone: list[int] = []
        for dest, (messages, dest_seqs) in batches.items():
            enqueue = Enqueue(messages, dest_seqs, reply_to if dest_seqs else None, dead)
            if not post(dest, enqueue):
                gone += dest_seqs  # a queue deleted a moment ago: it will never accept these
        if gone:
            lost = Counter(gone)
            routed = [(seq, count - lost[seq]) for seq, count in routed]
        if reply_to is not None and (returned or routed):
            post(reply_to, RouteResult(returned, routed))

    def describe(self) -> dict[str, Any]:
        """Type, alternate exchange and routing reach for the admin page (flags and bindings
        are the vhost's)."""
        own = self.routing.own
        alternate = self.routing.reachable.get(own.alternate) if own.alternate else None
        return {
            **super().describe(),
            "exchange": own.name,
            "type": self.type_name,
            "alternate": None if alternate is None else alternate.name,
            "reachable": sorted(route.name for route in self.routing.reachable.values()),
        }
