"""The direct exchange: a message goes to every binding whose key equals its routing key."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from .base import EMPTY_DESTS, Binding, DestinationSet, Router, RoutingTable
from .pmap import PMap

__all__ = ["DirectRouter", "DirectTable"]


class DirectTable(RoutingTable):
    """Destinations by exact routing key (a persistent map: updates share the rest)."""

    __slots__ = ("_mask", "_shards", "routes")

    def __init__(self, routes: PMap[str, frozenset[Hashable]]) -> None:
        self.routes = routes
        self._shards, self._mask = routes.shards, routes.mask  # the lookup, written out

    def route(  # noqa: D102
        self, routing_key: str, headers: Mapping[str, Any] | None = None
    ) -> frozenset[Hashable]:
        return self._shards[hash(routing_key) & self._mask].get(routing_key, EMPTY_DESTS)


class DirectRouter(Router):
    """Routes by exact key: one lookup finds every destination bound with that key.

    All matching bindings receive the message, not just one (RabbitMQ's direct exchange
    matches ``#route{binding = #binding{source = X, key = Key}}`` for every destination).
    Binding arguments take no part in routing.
    """

    type_name = "direct"

    __slots__ = ("_counts",)
    table: DirectTable

    def __init__(self) -> None:
        super().__init__()
        self._counts: dict[str, DestinationSet] = {}  # bindings per key and destination
        self.table = DirectTable(PMap())

    def _add(self, binding: Binding) -> None:
        key, dest = binding.routing_key, binding.dest
        dests = self._counts.get(key)
        if dests is None:
            dests = self._counts[key] = DestinationSet()
        dests.add(dest)
        if dests[dest] == 1:
            routes = self.table.routes
            self.table = DirectTable(routes.set(key, routes.get(key, EMPTY_DESTS) | {dest}))

    def _remove(self, binding: Binding) -> None:
        key, dest = binding.routing_key, binding.dest
        dests = self._counts[key]
        dests.remove(dest)
        if dest in dests:
            return
        routes = self.table.routes
        if dests:
            self.table = DirectTable(routes.set(key, routes[key] - {dest}))
        else:
            del self._counts[key]
            self.table = DirectTable(routes.delete(key))
