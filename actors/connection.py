"""ConnectionActor: one client connection's presence among the actors.

It supervises the connection's channel actors (a channel that crashes closes the connection
with 541 INTERNAL_ERROR, as in RabbitMQ) and, when the connection goes, tells the vhost so
that exclusive queues are deleted.
"""

from __future__ import annotations

import logging
from typing import Any

from pykka import ActorRef

from actors.link import Link
from actors.messages import ConnectionClosed, ConnectionGone
from actors.runtime import ActorFailed, LoopActor, post
from wire.errors import AMQPError

log = logging.getLogger("dispatchd.connection")


class ConnectionActor(LoopActor):
    """One open AMQP connection."""

    kind = "connection"

    def __init__(self, link: Link, connection_id: int, vhost: ActorRef[Any], user: str) -> None:
        super().__init__(name=link.connection_name, owner=user)
        self.link = link
        self.connection_id = connection_id
        self.vhost = vhost

    def on_receive(self, message: Any) -> None:  # noqa: D102
        if isinstance(message, ActorFailed):
            self.link.close_connection(AMQPError(541, f"channel crashed: {message.exception!r}"))
        elif isinstance(message, ConnectionGone):
            post(self.vhost, ConnectionClosed(self.connection_id))
            self.stop()
        else:
            raise TypeError(f"connection cannot handle {message!r}")

    def describe(self) -> dict[str, Any]:
        """Who is connected, to which vhost, from where, with what client, for the admin."""
        link = self.link
        return {
            **super().describe(),
            "connection_id": self.connection_id,
            "user": self.owner,
            "vhost": getattr(link, "vhost", None),
            "peer": link.connection_name,
            "client_properties": dict(getattr(link, "client_properties", {})),
        }
