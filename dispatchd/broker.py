"""The Broker: settings, users, vhosts and live connections, wired together at start-up.

It is plain data owned by the loop thread, one per running broker, and the wire layer's
``Server`` (see ``wire/protocol.py``): connections ask it to authenticate, to find a vhost,
and to start the connection and channel actors. It holds everything that is per broker
rather than per actor: the actor runtime, the store's ids and commit figures.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import platform
import socket
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pykka import ActorRef

from dispatchd import __version__
from dispatchd.access import AccessControl
from dispatchd.actors.channel import ChannelActor
from dispatchd.actors.connection import ConnectionActor
from dispatchd.actors.messages import StopVhost
from dispatchd.actors.vhost import VhostActor
from dispatchd.alarms import Alarms, ResourceMonitor
from dispatchd.config import Settings, user_list, value_list
from dispatchd.store.actor import CommitStats
from dispatchd.store.ids import StoreIds

if TYPE_CHECKING:
    from dispatchd.actors.runtime import Runtime
    from dispatchd.store.recovery import Recovered
    from dispatchd.wire.protocol import AMQPProtocol

log = logging.getLogger("dispatchd.broker")

# Exactly what works today; each extension adds itself when it lands.
CAPABILITIES: dict[str, bool] = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "consumer_priorities": True,
    "per_consumer_qos": True,
    "authentication_failure_close": True,
    "direct_reply_to": True,
    "connection.blocked": True,
}


@dataclass(frozen=True, slots=True)
class Listener:
    """A socket the broker accepts on: ``protocol`` as RabbitMQ names it (amqp, amqp/ssl,
    http, https)."""

    protocol: str
    ip: str
    port: int

    @property
    def interface(self) -> str:
        """The address as RabbitMQ prints it: an IPv6 one in brackets."""
        return f"[{self.ip}]" if ":" in self.ip else self.ip


def node_name() -> str:
    """This node's name, in RabbitMQ's ``name@host`` form."""
    return f"dispatchd@{socket.gethostname()}"


class Broker:
    """Everything a connection needs to find: users, vhosts, and the other connections."""

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        store: ActorRef[Any] | None = None,
        recovered: Recovered | None = None,
        commits: CommitStats | None = None,
        access: AccessControl | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.store = store
        self.recovered = recovered
        self.ids = StoreIds(
            recovered.max_queue_id if recovered else 0,
            recovered.max_message_id if recovered else 0,
        )
        self.commits = commits  # the store's group commits (recorded on the loop), if any
        self.access = access if access is not None else AccessControl()
        self.loopback_users = user_list(settings.loopback_users)
        self.auth_mechanisms = value_list(settings.auth_mechanisms)
        self.tls_handshake_failures: Counter[str] = Counter()  # by reason
        self.vhosts: dict[str, ActorRef[Any]] = {}
        self.connections: dict[int, AMQPProtocol] = {}
        self.listeners: list[Listener] = []  # filled in as each listener binds
        self.alarms = Alarms()  # kept by the monitor, read by every connection
        self.monitor: ResourceMonitor | None = None  # measuring memory and disk, once started
        self.capabilities = dict(CAPABILITIES)
        self.cluster_name = node_name()
        self.started_at = time.time()
        self.server_properties: dict[str, Any] = {
            "product": "dispatchd",
            "version": __version__,
            "platform": f"Python {platform.python_version()}",
            "copyright": "dispatchd contributors",
            "information": "An AMQP 0-9-1 broker built from Pykka actors",
            "capabilities": self.capabilities,
            "cluster_name": self.cluster_name,
        }
        self._connection_ids = itertools.count(1)
        self._drained: asyncio.Event | None = None  # set when the last connection is gone

    def start(self) -> None:
        """Start an actor for every vhost the store knows. Call on the loop thread."""
        for name in self.access.vhosts:
            self.start_vhost(name)
        self.recovered = None  # handed over; the vhosts keep what they need

    def start_vhost(self, name: str) -> ActorRef[Any]:
        """The actor of vhost ``name`` (which ``access`` knows), started now if need be."""
        ref = self.vhosts.get(name)
        if ref is None:
            ref = self.vhosts[name] = self.runtime.start(
                VhostActor,
                name,
                self.store,
                self.recovered,
                self.settings.queue_memory_limit,
                self.ids,
                self.access.grants(name),
                self.access.vhosts[name].limits.get("max-queues"),
            )
        return ref

    async def stop_vhost(self, ref: ActorRef[Any]) -> None:
        """Stop a deleted vhost's actor once its queues and exchanges have stopped."""
        stops = await ref.ask(StopVhost(), block=False)
        await asyncio.gather(*stops, return_exceptions=True)
        await ref.stop(block=False)

    def check_password(self, user: str, password: str) -> bool:
        """Whether the credentials are a user's (one with a password)."""
        return self.access.authenticate(user, password) is not None

    def check_user(self, user: str) -> bool:
        """Whether ``user`` exists (EXTERNAL: the certificate stands for the password)."""
        return user in self.access.users

    def vhost_refusal(self, vhost: str, user: str) -> str | None:
        """Why ``user`` may not open ``vhost`` (None: they may), in RabbitMQ's words."""
        if vhost not in self.access.vhosts or vhost not in self.vhosts:
            return f"vhost {vhost} not found"
        if (vhost, user) not in self.access.permissions:
            return f"access to vhost '{vhost}' refused for user '{user}'"
        limit = self.access.vhosts[vhost].limits.get("max-connections")
        if limit is not None and sum(p.vhost == vhost for p in self.connections.values()) >= limit:
            return (
                f"access to vhost '{vhost}' refused for user '{user}': "
                f"connection limit ({limit}) is reached"
            )
        limit = self._user_limit(user, "max-connections")
        opened = sum(p.user == user and bool(p.vhost) for p in self.connections.values())
        if limit is not None and opened >= limit:
            return (
                f"connection refused for user '{user}': user connection limit ({limit}) is reached"
            )
        return None

    def _user_limit(self, user: str, name: str) -> int | None:
        account = self.access.users.get(user)
        return account.limits.get(name) if account is not None else None

    def channel_refusal(self, user: str) -> str | None:
        """Why ``user`` may not open another channel (their ``max-channels``), or None."""
        limit = self._user_limit(user, "max-channels")
        if limit is None:
            return None
        if sum(len(p.channels) for p in self.connections.values() if p.user == user) >= limit:
            return (
                f"number of channels opened for user '{user}' has reached the maximum allowed "
                f"user limit of ({limit})"
            )
        return None

    def alarms_changed(self, _resource: str, _on: bool) -> None:
        """A resource alarm was raised or cleared: blocked connections may read again."""
        for protocol in list(self.connections.values()):
            protocol.alarms_changed()

    # ----- connections

    def connection_opened(self, protocol: AMQPProtocol) -> int:
        """A socket was accepted; returns the connection's id."""
        connection_id = next(self._connection_ids)
        self.connections[connection_id] = protocol
        return connection_id

    def connection_closed(self, protocol: AMQPProtocol) -> None:
        """A socket is gone."""
        self.connections.pop(protocol.id, None)
        if not self.connections and self._drained is not None:
            self._drained.set()

    def open_connection(self, protocol: AMQPProtocol) -> ActorRef[Any]:
        """Start the connection actor once connection.open succeeded."""
        return self.runtime.start(
            ConnectionActor, protocol, protocol.id, self.vhosts[protocol.vhost], protocol.user
        )

    def open_channel(
        self, protocol: AMQPProtocol, connection: ActorRef[Any], number: int
    ) -> ActorRef[Any]:
        """Start a channel actor for channel.open."""
        return self.runtime.start(
            ChannelActor, protocol, number, connection, self.vhosts[protocol.vhost]
        )

    async def close_all(self, reason: str, timeout: float) -> None:
        """Close every connection with 320 CONNECTION_FORCED and wait (bounded) for them.

        The reply text is RabbitMQ's: ``broker forced connection closure with reason 'shutdown'``.
        Connections still open after ``timeout`` seconds are aborted.
        """
        text = f"broker forced connection closure with reason '{reason}'"
        for protocol in list(self.connections.values()):
            protocol.force_close(text)
        if self.connections:
            self._drained = asyncio.Event()
            try:
                await asyncio.wait_for(self._drained.wait(), timeout)
            except TimeoutError:
                pass
        for protocol in list(self.connections.values()):
            if protocol.transport is not None:
                protocol.transport.abort()
