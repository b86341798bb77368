"""Pure routing logic of the exchange types, one router per exchange, no actors and no I/O.

The vhost owns one router per exchange: ``router_for(exchange_type)`` makes it, ``bind`` and
``unbind`` keep its bindings, and its ``table`` (an immutable :class:`RoutingTable`) answers
where a message goes. The vhost also keeps every binding by name in a ``BindingIndex``, and
sends each exchange actor a :class:`RoutingSnapshot` of the tables it routes by
(``snapshot.py``); ``terms`` knows how RabbitMQ names and prints field values in its error
texts.
"""

from __future__ import annotations

from .base import (
    Binding,
    DestinationSet,
    FrozenTable,
    Router,
    RoutingArgumentError,
    RoutingTable,
    freeze,
    thaw,
    typed_key,
)
from .direct import DirectRouter
from .fanout import FanoutRouter
from .headers import HeadersRouter
from .index import BindingIndex, BindingKey, DestKind
from .snapshot import ExchangeRoute, RoutingSnapshot
from .topic import TopicRouter

__all__ = [
    "ROUTERS",
    "Binding",
    "BindingIndex",
    "BindingKey",
    "DestKind",
    "DestinationSet",
    "DirectRouter",
    "ExchangeRoute",
    "FanoutRouter",
    "FrozenTable",
    "HeadersRouter",
    "Router",
    "RoutingArgumentError",
    "RoutingSnapshot",
    "RoutingTable",
    "TopicRouter",
    "freeze",
    "router_for",
    "thaw",
    "typed_key",
]

ROUTERS: dict[str, type[Router]] = {
    router.type_name: router for router in (DirectRouter, FanoutRouter, TopicRouter, HeadersRouter)
}


def router_for(type_name: str) -> Router:
    """A new, empty router for an exchange type; ``KeyError`` if the type is unknown."""
    return ROUTERS[type_name]()
