"""The direct exchange: a message goes to every binding whose key equals its routing key."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from .base import Binding, DestinationSet, Router

__all__ = ["DirectRouter"]


class DirectRouter(Router):
    """Routes by exact key: one dict lookup finds every destination bound with that key.

    All matching bindings receive the message, not just one (RabbitMQ's direct exchange
    matches ``#route{binding = #binding{source = X, key = Key}}`` for every destination).
    Binding arguments take no part in routing.
    """

    type_name = "direct"

    __slots__ = ("_routes",)

    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[str, DestinationSet] = {}

    def _add(self, binding: Binding) -> None:
        dests = self._routes.get(binding.routing_key)
        if dests is None:
            dests = self._routes[binding.routing_key] = DestinationSet()
        dests.add(binding.dest)

    def _remove(self, binding: Binding) -> None:
        dests = self._routes[binding.routing_key]
        dests.remove(binding.dest)
        if not dests:
            del self._routes[binding.routing_key]

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> set[Hashable]:
        """Every destination bound with exactly ``routing_key``."""
        dests = self._routes.get(routing_key)
        return set(dests) if dests else set()
