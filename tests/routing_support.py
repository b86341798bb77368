"""What the exchange, queue and binding tests share, on top of :mod:`tests.basic_support`.

The ``net`` fixture is the broker under test (the session's dispatchd, or the broker named by
``DISPATCHD_PEER_PORT``: ``DISPATCHD_PEER_PORT=5692 pytest tests/test_exchanges.py`` runs the
same tests against RabbitMQ) with uniquely named exchanges and queues that are deleted after
the test. Publishing waits for the publisher confirm, so a message is in its queues (or was
returned) when :meth:`Net.publish` returns; queues are read with basic.get. Errors are checked
on a raw connection, which shows the close frame exactly: reply code, text, class and method.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import pytest
from pika import spec

from tests.basic_support import Peer, Step, close_reply
from tests.basic_support import peer as peer

__all__ = ["Net", "channel_close", "connection_close", "declare", "net", "peer"]

Close = tuple[str, int, str, int, int]


def channel_close(code: int, text: str, class_id: int, method_id: int) -> Close:
    """The close a soft error causes, as :func:`tests.basic_support.close_reply` reports it."""
    return ("Channel.Close", code, text, class_id, method_id)


def connection_close(code: int, text: str, class_id: int, method_id: int) -> Close:
    """The close a hard error causes."""
    return ("Connection.Close", code, text, class_id, method_id)


class Net:
    """Exchanges, queues and bindings of one test, on the broker under test."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.exchanges: list[str] = []

    @staticmethod
    def unique(what: str) -> str:
        """A fresh name (a prefix other tests and other brokers' users do not use)."""
        return f"rtest-{what}-{uuid.uuid4().hex[:10]}"

    def exchange(self, kind: str = "direct", **flags: Any) -> str:
        """Declare a uniquely named exchange, deleted after the test."""
        name = self.unique(kind)
        self.exchanges.append(name)
        self.peer.admin().exchange_declare(name, kind, **flags)
        return name

    def queue(self, **flags: Any) -> str:
        """Declare a uniquely named (shared) queue, deleted after the test."""
        name = self.unique("q")
        self.peer.queues.append(name)
        self.peer.admin().queue_declare(name, **flags)
        return name

    def bind(self, queue: str, exchange: str, key: str = "", **arguments: Any) -> None:
        """queue.bind with these binding arguments."""
        self.peer.admin().queue_bind(queue, exchange, key, arguments=arguments or None)

    def publish(
        self,
        exchange: str,
        key: str = "",
        body: bytes = b"m",
        headers: dict[str, Any] | None = None,
        mandatory: bool = False,
    ) -> bool:
        """Publish and wait for the confirm; False if the broker returned the message."""
        properties = pika.BasicProperties(headers=headers)
        try:
            self.peer.admin().basic_publish(exchange, key, body, properties, mandatory)
        except pika.exceptions.UnroutableError:
            return False
        return True

    def take(self, queue: str) -> list[bytes]:
        """Every ready message of the queue (basic.get), in order."""
        return [body for body, _ in self.peer.drain(queue)]

    def count(self, queue: str) -> int:
        """The queue's ready-message count."""
        return self.peer.count(queue)

    def exists(self, kind: str, name: str) -> bool:
        """Whether an exchange or queue of that name exists (passive declare)."""
        channel = self.peer.admin()
        try:
            if kind == "exchange":
                channel.exchange_declare(name, passive=True)
            else:
                channel.queue_declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as error:
            assert error.reply_code == 404, error
            return False
        return True

    def closes(self, *steps: Step) -> tuple[Any, ...]:
        """The close these raw steps (pika methods) cause on a fresh connection."""
        return close_reply(self.peer.raw(), 1, list(steps))

    def close(self) -> None:
        """Delete the test's exchanges (those left: auto-delete may have taken some)."""
        if self.exchanges:
            with pika.BlockingConnection(self.peer.params()) as connection:
                channel = connection.channel()
                for name in self.exchanges:
                    channel.exchange_delete(name)


@pytest.fixture
def net(peer: Peer) -> Iterator[Net]:
    """The broker under test with the test's exchanges and queues, cleaned up after."""
    chosen = Net(peer)
    yield chosen
    chosen.close()


def declare(name: str, kind: str = "direct", **flags: Any) -> spec.Exchange.Declare:
    """An exchange.declare method (for raw steps)."""
    return spec.Exchange.Declare(exchange=name, type=kind, **flags)
