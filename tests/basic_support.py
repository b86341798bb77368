"""What the basic/tx/confirm/qos/client tests share: the broker under test and small helpers.

Every test takes the ``peer`` fixture: the session's dispatchd, or any broker on 127.0.0.1
named by ``DISPATCHD_PEER_PORT`` (``DISPATCHD_PEER_PORT=5692 pytest tests/test_basic.py``
runs the same tests against the reference RabbitMQ). Queues get unique names and are deleted
afterwards, so a shared RabbitMQ is left as it was found.

No helper sleeps to wait for something: they pump the client until the awaited event or a
deadline. Only :func:`quiet` lets time pass, to show that nothing *more* arrives. ``WAIT``,
``QUIET``, :func:`pump` and :func:`quiet` are :mod:`tests.support`'s, re-exported here.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pika
import pytest
from pika import spec
from pika.adapters.blocking_connection import BlockingChannel

from tests.conformance.rawclient import RawClient, open_client
from tests.conftest import BrokerProcess
from tests.support import QUIET, WAIT, get_all, pump, quiet, wait_until

PEER_PORT_ENV = "DISPATCHD_PEER_PORT"

__all__ = [
    "QUIET",
    "WAIT",
    "Delivery",
    "Inbox",
    "Peer",
    "Step",
    "assert_closes",
    "bodies",
    "close_reply",
    "consumer",
    "peer",
    "pump",
    "quiet",
    "raw_publish",
    "replies",
    "settle",
    "wait_count",
]


@dataclass
class Peer:
    """The broker under test: pika connections, raw clients and queues, all cleaned up."""

    port: int
    connections: list[pika.BlockingConnection] = field(default_factory=list)
    raws: list[RawClient] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    _admin: BlockingChannel | None = None

    def params(self, **kwargs: Any) -> pika.ConnectionParameters:
        """pika parameters for guest/guest with bounded timeouts."""
        return pika.ConnectionParameters(
            "127.0.0.1",
            self.port,
            connection_attempts=1,
            socket_timeout=WAIT,
            blocked_connection_timeout=WAIT,
            **kwargs,
        )

    def connect(self, **kwargs: Any) -> pika.BlockingConnection:
        """A pika BlockingConnection, closed at the end of the test."""
        connection = pika.BlockingConnection(self.params(**kwargs))
        self.connections.append(connection)
        return connection

    def channel(self, **kwargs: Any) -> BlockingChannel:
        """A channel on a connection of its own."""
        return self.connect(**kwargs).channel()

    def raw(self, channels: tuple[int, ...] = (1,), **handshake: Any) -> RawClient:
        """A raw frame-level client with these channels open (to see close frames' ids)."""
        client = open_client(self.port, channels, **handshake)
        self.raws.append(client)
        return client

    def queue(self, **arguments: Any) -> str:
        """Declare a uniquely named queue (usable from any connection) for this test."""
        name = f"dtest-{uuid.uuid4().hex[:12]}"
        self.queues.append(name)
        channel = self.admin()
        channel.queue_declare(name, arguments=arguments or None)
        return name

    def admin(self) -> BlockingChannel:
        """The test's bookkeeping channel (declares, fills, counts)."""
        if self._admin is None or not self._admin.is_open:
            self._admin = self.channel()
            self._admin.confirm_delivery()
        return self._admin

    def fill(self, queue: str, bodies: list[bytes]) -> None:
        """Publish to a queue and return once the broker confirmed every message."""
        channel = self.admin()
        for body in bodies:
            channel.basic_publish("", queue, body)

    def count(self, queue: str) -> int:
        """The queue's ready-message count (passive queue.declare)."""
        return self.admin().queue_declare(queue, passive=True).method.message_count

    def drain(self, queue: str) -> list[tuple[bytes, bool]]:
        """basic.get (auto-ack) every ready message: (body, redelivered) in queue order."""
        return [(body, method.redelivered) for method, _, body in get_all(self.admin(), queue)]

    def close(self) -> None:
        """Close what the test opened and delete its queues."""
        for client in self.raws:
            client.close()
        for connection in self.connections:
            if connection.is_open:
                try:
                    connection.close()
                except pika.exceptions.AMQPError:
                    pass
        if self.queues:
            with pika.BlockingConnection(self.params()) as connection:
                channel = connection.channel()
                for name in self.queues:
                    channel.queue_delete(name)


@pytest.fixture
def peer(broker: BrokerProcess) -> Iterator[Peer]:
    """The broker under test (dispatchd, or ``DISPATCHD_PEER_PORT``), cleaned up after."""
    chosen = Peer(int(os.environ.get(PEER_PORT_ENV) or broker.port))
    yield chosen
    chosen.close()


@dataclass
class Delivery:
    """One message a consumer received."""

    consumer_tag: str
    delivery_tag: int
    redelivered: bool
    body: bytes


class Inbox:
    """A pika consumer callback that records deliveries, for one or many consumers."""

    def __init__(self) -> None:
        self.items: list[Delivery] = []

    def __call__(
        self,
        _channel: BlockingChannel,
        method: spec.Basic.Deliver,
        _properties: spec.BasicProperties,
        body: bytes,
    ) -> None:
        self.items.append(
            Delivery(method.consumer_tag, method.delivery_tag, method.redelivered, body)
        )

    def bodies(self, consumer_tag: str | None = None) -> list[bytes]:
        """Bodies received (by one consumer), in arrival order."""
        return [d.body for d in self.items if consumer_tag in (None, d.consumer_tag)]

    def wait(self, connection: pika.BlockingConnection, count: int) -> bool:
        """Pump until at least ``count`` deliveries arrived."""
        return bool(pump(connection, lambda: len(self.items) >= count))


def bodies(prefix: str, count: int) -> list[bytes]:
    """``count`` distinct bodies: prefix-0, prefix-1, ..."""
    return [f"{prefix}-{i}".encode() for i in range(count)]


def replies(client: RawClient, channel: int, timeout: float = QUIET) -> list[Any]:
    """Every method (described, with bodies) the raw client receives until a quiet spell."""
    out = []
    while True:
        item = client.recv_message(timeout, channel)
        if isinstance(item, str):
            return out
        out.append(item)


Step = Any  # a pika method to send on the raw channel, or a callable(client, channel)


def close_reply(client: RawClient, channel: int, steps: list[Step]) -> tuple[Any, ...]:
    """Run steps on a raw channel; return the close they caused as (method name, reply code,
    reply text, class id, method id), server-generated names masked as ``amq.gen-*``."""
    for step in steps:
        if callable(step):
            step(client, channel)
        else:
            client.send_method(channel, step)
    while True:
        found = client.recv_message(WAIT, channel)
        if isinstance(found, str):
            return (found,)
        if found.get("method") in ("Channel.Close", "Connection.Close"):
            text = re.sub(r"amq\.gen-[\w-]+", "amq.gen-*", found["reply_text"])
            return (
                found["method"],
                found["reply_code"],
                text,
                found["class_id"],
                found["method_id"],
            )


def assert_closes(peer: Peer, steps: list[Step], expected: tuple[Any, ...]) -> None:
    """The steps, on a fresh raw connection, end in exactly this close (see close_reply)."""
    assert close_reply(peer.raw(), 1, steps) == expected


def raw_publish(routing_key: str, body: bytes = b"", **flags: bool) -> Step:
    """A raw step: basic.publish with content to the default exchange."""
    return lambda client, channel: client.publish(channel, "", routing_key, body, **flags)


def wait_count(peer: Peer, queue: str, count: int) -> int:
    """Poll the queue's ready count (one round trip each) until it is ``count`` or WAIT
    passes; the count last seen."""
    seen: list[int] = []

    def reached() -> bool:
        seen.append(peer.count(queue))
        return seen[-1] == count

    wait_until(reached)
    return seen[-1]


def consumer(
    peer: Peer,
    queue: str,
    inbox: Inbox,
    tag: str,
    prefetch: int = 0,
    priority: int | None = None,
) -> BlockingChannel:
    """A consumer on a connection of its own (``priority=None``: no ``x-priority``)."""
    channel = peer.channel()
    if prefetch:
        channel.basic_qos(prefetch_count=prefetch)
    arguments = None if priority is None else {"x-priority": priority}
    channel.basic_consume(queue, inbox, consumer_tag=tag, arguments=arguments)
    return channel


def settle(*channels: BlockingChannel) -> None:
    """Let deliveries in flight arrive on every consumer's connection."""
    for channel in channels:
        quiet(channel.connection)
