"""Routing snapshots: what an exchange actor routes by, as immutable values from its vhost.

The vhost owns every binding. After each change it sends each exchange concerned a
:class:`RoutingSnapshot`: the exchange's own :class:`ExchangeRoute` (its routing table, which
destinations are exchanges, its alternate exchange) and the routes of every exchange it can
reach through exchange-to-exchange bindings and alternate exchanges, so the exchange actor
routes a message through all of them in one step, as ``rabbit_exchange:route/2`` does: a
message reaches each queue once however many paths lead there, an exchange is visited once
(loops end), and a message routed through several exchanges is enqueued at once, so it
cannot be overtaken by a later method of the same channel. Nothing in a snapshot is ever
changed, so no actor reads state another one mutates, and a snapshot could travel to
another node.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from dispatchd.actors.content import Message

from .base import RoutingTable

__all__ = ["ExchangeRoute", "RoutingSnapshot"]


@dataclass(frozen=True, slots=True, eq=False)
class ExchangeRoute:
    """What routing needs of one exchange at one moment (compared by identity)."""

    name: str
    table: RoutingTable
    uses_headers: bool  # a headers exchange: routing reads the message's headers
    exchange_dests: frozenset[Hashable]  # the bound destinations that are exchanges
    alternate: Hashable | None  # the alternate exchange (if it exists), by destination

    def route(self, message: Message) -> frozenset[Hashable]:
        """The destinations this exchange's own bindings match, for every routing key of
        the message (CC and BCC add keys: see actors/distribution.py)."""
        headers = message.headers if self.uses_headers else None
        if type(message) is Message:
            return self.table.route(message.routing_key, headers)
        dests: set[Hashable] = set()
        for key in message.keys:  # type: ignore[attr-defined]
            dests |= self.table.route(key, headers)
        return frozenset(dests)


@dataclass(frozen=True, slots=True)
class RoutingSnapshot:
    """An exchange's routing: its own route and those of the exchanges it reaches."""

    own: ExchangeRoute
    reachable: Mapping[Hashable, ExchangeRoute]  # by destination; may include ``own``

    def walk(self, message: Message, dests: frozenset[Hashable]) -> set[Hashable]:
        """The queues a message reaches, given what the own bindings matched (``dests``).

        Bound exchanges route the message in turn, each exchange at most once; an exchange
        whose own bindings match nothing hands it to its alternate exchange (if that
        exists).
        """
        queues: set[Hashable] = set()
        route = self.own
        seen: set[Any] = {route}
        pending: list[ExchangeRoute] = []
        reachable = self.reachable
        while True:
            if dests:
                bound = route.exchange_dests
                for dest in dests:
                    if dest not in bound:
                        queues.add(dest)
                        continue
                    nxt = reachable.get(dest)
                    if nxt is not None and nxt not in seen:
                        seen.add(nxt)
                        pending.append(nxt)
            elif route.alternate is not None:
                nxt = reachable.get(route.alternate)
                if nxt is not None and nxt not in seen:
                    seen.add(nxt)
                    pending.append(nxt)
            if not pending:
                return queues
            route = pending.pop()
            dests = route.route(message)
