"""The fanout exchange: a message goes to every bound destination."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from .base import EMPTY_DESTS, Binding, DestinationSet, Router, RoutingTable

__all__ = ["FanoutRouter", "FanoutTable"]


class FanoutTable(RoutingTable):
    """Every bound destination."""

    __slots__ = ("dests",)

    def __init__(self, dests: frozenset[Hashable]) -> None:
        self.dests = dests

    def route(  # noqa: D102
        self, routing_key: str, headers: Mapping[str, Any] | None = None
    ) -> frozenset[Hashable]:
        return self.dests


class FanoutRouter(Router):
    """Routes to every destination, ignoring the routing key, headers and binding arguments."""

    type_name = "fanout"

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        super().__init__()
        self._counts = DestinationSet()  # bindings per destination
        self.table = FanoutTable(EMPTY_DESTS)

    def _add(self, binding: Binding) -> None:
        self._counts.add(binding.dest)
        if self._counts[binding.dest] == 1:
            self.table = FanoutTable(self.table.route("") | {binding.dest})

    def _remove(self, binding: Binding) -> None:
        self._counts.remove(binding.dest)
        if binding.dest not in self._counts:
            self.table = FanoutTable(self.table.route("") - {binding.dest})
