"""ExchangeActor: owns one exchange's bindings (a Router) and routes published messages.

A publish is routed in one step by the exchange actor it was published to: every message goes
to the set of queues its bindings match, one Enqueue per queue per batch.

Exchange-to-exchange bindings and alternate exchanges are followed in that same step through
the vhost's :class:`Topology`, which holds the :class:`ExchangeNode` (router, alternate
exchange name, exchange destinations) of every exchange of the vhost. This is RabbitMQ's
``rabbit_exchange:route/2``: the channel process reads the routing tables of every exchange
on the way. So a message reaches each queue once however many paths lead there, an exchange is
visited once (loops end), and a message routed through several exchanges is enqueued as soon
as one routed directly, so it cannot be overtaken by a later method of the same channel.

Sharing the nodes between actors is sound because every actor runs on the one loop thread and
each node has one writer for each part: its exchange actor changes its bindings (in mailbox
order, so a binding applies to the publishes after it), the vhost adds and removes nodes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pykka import ActorRef

from dispatchd.actors.content import Message
from dispatchd.actors.messages import (
    AddBinding,
    Enqueue,
    Publish,
    RemoveBinding,
    RemoveDestination,
    Reply,
    RouteResult,
)
from dispatchd.actors.reply_to import ReplyToActor
from dispatchd.actors.routing import router_for
from dispatchd.actors.runtime import LoopActor, handles, post


def _reply_only(dests: set[ActorRef[Any]]) -> bool:
    """RabbitMQ's quirk: a mandatory publish that reaches only a direct reply-to consumer
    (no queue) is delivered and also returned as unroutable."""
    return len(dests) == 1 and next(iter(dests)).actor_class is ReplyToActor


class ExchangeNode:
    """What routing needs of one exchange; written only by its actor (bindings) and vhost."""

    __slots__ = ("name", "type_name", "router", "uses_headers", "alternate", "exchange_dests")

    def __init__(self, name: str, type_name: str, alternate: str | None = None) -> None:
        self.name = name
        self.type_name = type_name
        self.router = router_for(type_name)
        self.uses_headers = type_name == "headers"
        # RabbitMQ routes nothing through an alternate-exchange naming the default exchange.
        self.alternate = alternate or None
        self.exchange_dests: set[ActorRef[Any]] = set()  # bound exchanges (the rest are queues)

    def route(self, message: Message) -> set[ActorRef[Any]]:
        """The destinations (queues and exchanges) this exchange's own bindings match, for
        every routing key of the message (CC and BCC add keys: see actors/distribution.py)."""
        headers = message.headers if self.uses_headers else None
        if type(message) is Message:
            return self.router.route(message.routing_key, headers)
        dests: set[ActorRef[Any]] = set()
        for key in message.keys:  # type: ignore[attr-defined]
            dests |= self.router.route(key, headers)
        return dests

    def __repr__(self) -> str:
        return f"<ExchangeNode {self.name!r} {self.type_name}>"


class Topology:
    """The exchanges of one vhost by actor and by name, to route across exchanges."""

    __slots__ = ("_by_ref", "_by_name")

    def __init__(self) -> None:
        self._by_ref: dict[ActorRef[Any], ExchangeNode] = {}
        self._by_name: dict[str, ExchangeNode] = {}

    def add(self, ref: ActorRef[Any], node: ExchangeNode) -> None:
        """An exchange was declared."""
        self._by_ref[ref] = node
        self._by_name[node.name] = node

    def remove(self, ref: ActorRef[Any]) -> None:
        """An exchange was deleted: walks no longer reach it."""
        node = self._by_ref.pop(ref, None)
        if node is not None and self._by_name.get(node.name) is node:
            del self._by_name[node.name]

    def get(self, name: str) -> ExchangeNode | None:
        """The node of the exchange called ``name``, if it exists."""
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self._by_ref)

    def walk(
        self, start: ExchangeNode, message: Message, dests: set[ActorRef[Any]]
    ) -> set[ActorRef[Any]]:
        """The queues a message reaches from ``start``, whose bindings matched ``dests``.

        As ``rabbit_exchange:route/2``: bound exchanges route the message in turn, each
        exchange at most once; an exchange whose own bindings match nothing hands the message
        to its alternate exchange (if that exists). Deleted exchanges are skipped.
        """
        queues: set[ActorRef[Any]] = set()
        seen = {start}
        pending: list[ExchangeNode] = []
        node = start
        while True:
            if dests:
                bound = node.exchange_dests
                for dest in dests:
                    if dest not in bound:
                        queues.add(dest)
                        continue
                    nxt = self._by_ref.get(dest)
                    if nxt is not None and nxt not in seen:
                        seen.add(nxt)
                        pending.append(nxt)
            elif node.alternate is not None:
                nxt = self._by_name.get(node.alternate)
                if nxt is not None and nxt not in seen:
                    seen.add(nxt)
                    pending.append(nxt)
            if not pending:
                return queues
            node = pending.pop()
            dests = node.route(message)


class ExchangeActor(LoopActor):
    """One AMQP exchange of any type."""

    kind = "exchange"

    def __init__(
        self, vhost: ActorRef[Any], vhost_name: str, node: ExchangeNode, topology: Topology
    ) -> None:
        super().__init__(name=node.name or "amq.default", owner=vhost_name, supervisor=vhost)
        self.node = node
        self.topology = topology

    # ----- routing

    @handles(Publish)
    def on_publish(self, msg: Publish) -> None:
        node = self.node
        route = node.router.route
        uses_headers = node.uses_headers
        exchange_dests = node.exchange_dests
        alternate = node.alternate
        walk = self.topology.walk
        seqs = msg.seqs
        batches: dict[ActorRef[Any], tuple[list[Message], list[int]]] = {}
        returned: list[Message] = []
        routed: list[tuple[int, int]] = []
        for i, message in enumerate(msg.messages):
            if type(message) is Message:
                dests = route(message.routing_key, message.headers if uses_headers else None)
            else:  # several routing keys (CC/BCC)
                dests = node.route(message)
            if (exchange_dests and not exchange_dests.isdisjoint(dests)) or (
                alternate is not None and not dests
            ):
                dests = walk(node, message, dests)
            seq = seqs[i] if seqs else 0
            for dest in dests:
                batch = batches.get(dest)
                if batch is None:
                    batches[dest] = batch = ([], [])
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

    # ----- bindings

    @handles(AddBinding)
    def on_add_binding(self, msg: AddBinding) -> None:
        self.node.router.bind(msg.dest, msg.routing_key, msg.arguments)
        if msg.dest.actor_class is ExchangeActor:
            self.node.exchange_dests.add(msg.dest)
        if msg.reply_to is not None:
            post(msg.reply_to, Reply(msg.reply))

    @handles(RemoveBinding)
    def on_remove_binding(self, msg: RemoveBinding) -> None:
        node = self.node
        node.router.unbind(msg.dest, msg.routing_key, msg.arguments)
        if not node.router.has_bindings_to(msg.dest):
            node.exchange_dests.discard(msg.dest)
        if msg.reply_to is not None:
            post(msg.reply_to, Reply(msg.reply))

    @handles(RemoveDestination)
    def on_remove_destination(self, msg: RemoveDestination) -> None:
        self.node.router.unbind_all(msg.dest)
        self.node.exchange_dests.discard(msg.dest)

    def describe(self) -> dict[str, Any]:
        """Type, bindings and alternate exchange for the admin page (flags are the vhost's)."""
        return {
            **super().describe(),
            "exchange": self.node.name,
            "type": self.node.type_name,
            "bindings": len(self.node.router),
            "alternate": self.node.alternate,
        }
