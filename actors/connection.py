"""ConnectionActor: one client connection's presence among the actors.

It supervises the connection's channel actors (a channel that crashes closes the connection
with 541 INTERNAL_ERROR, as in RabbitMQ) and, when the connection goes, tells the vhost so
that exclusive queues are deleted.
"""

from __future__ import annotations

import logging
from typing import Any

from pykka import ActorRef

from dispatchd.actors.link import Link
from dispatchd.actors.messages import ConnectionClosed, ConnectionGone
from dispatchd.actors.runtime import ActorFailed, LoopActor, handles, post
from dispatchd.wire.errors import ChannelCrashed

log = logging.getLogger("dispatchd.connection")


class ConnectionActor(LoopActor):
    """One open AMQP connection."""

    kind = "connection"

    def __init__(self, link: Link, connection_id: int, vhost: ActorRef[Any], user: str) -> None:
        super().__init__(name=link.connection_name, owner=user)
        self.link = link
        self.connection_id = connection_id
        self.vhost = vhost

    @handles(ActorFailed)
    def on_actor_failed(self, msg: ActorFailed) -> None:
        """A channel crashed: the connection closes with 541, as in RabbitMQ."""
        self.link.close_connection(ChannelCrashed(f"channel crashed: {msg.exception!r}"))

    @handles(ConnectionGone)
    def on_connection_gone(self, _msg: ConnectionGone) -> None:
        """The socket is gone: the vhost drops the connection's exclusive queues."""
        post(self.vhost, ConnectionClosed(self.connection_id))
        self.stop()

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
