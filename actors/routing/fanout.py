"""The fanout exchange: a message goes to every bound destination."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from .base import Binding, DestinationSet, Router

__all__ = ["FanoutRouter"]


class FanoutRouter(Router):
    """Routes to every destination, ignoring the routing key, headers and binding arguments."""

    type_name = "fanout"

    __slots__ = ("_dests",)

    def __init__(self) -> None:
        super().__init__()
        self._dests = DestinationSet()

    def _add(self, binding: Binding) -> None:
        self._dests.add(binding.dest)

    def _remove(self, binding: Binding) -> None:
        self._dests.remove(binding.dest)

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> set[Hashable]:
        """Every bound destination."""
        return set(self._dests)
