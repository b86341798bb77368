"""Pure routing logic of the exchange types, one router per exchange, no actors and no I/O.

An ``ExchangeActor`` owns one router: ``router_for(exchange_type)`` makes it, ``bind`` and
``unbind`` keep its bindings, ``route`` answers where a message goes. The vhost keeps every
binding by name in a ``BindingIndex``; ``terms`` knows how RabbitMQ names and prints field
values in its error texts.
"""

from __future__ import annotations

from .base import (
    Binding,
    DestinationSet,
    FrozenTable,
    Router,
    RoutingArgumentError,
    freeze,
    thaw,
    typed_key,
)
from .direct import DirectRouter
from .fanout import FanoutRouter
from .headers import HeadersRouter
from .index import BindingIndex, BindingKey, DestKind
from .topic import TopicRouter

__all__ = [
    "ROUTERS",
    "Binding",
    "BindingIndex",
    "BindingKey",
    "DestKind",
    "DestinationSet",
    "DirectRouter",
    "FanoutRouter",
    "FrozenTable",
    "HeadersRouter",
    "Router",
    "RoutingArgumentError",
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
