"""kombu (Celery's transport) end to end: what it asks of the broker for priorities and TTLs.

kombu's ``Queue(max_priority=...)`` declares ``x-max-priority``, ``Queue(message_ttl=...)``
``x-message-ttl`` (seconds to milliseconds), ``Queue(expires=...)`` ``x-expires``, and
``Producer.publish(expiration=...)`` sets the ``expiration`` property to milliseconds as a
string. Takes the ``peer`` fixture, so it also runs against RabbitMQ:
``DISPATCHD_PEER_PORT=5692 pytest tests/test_kombu.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection, Exchange, Producer, Queue
from kombu.message import Message

from tests.basic_support import WAIT, Peer
from tests.basic_support import peer as peer
from tests.support import wait_until


@pytest.fixture
def kombu_connection(peer: Peer) -> Iterator[Connection]:
    """A kombu connection to the broker under test, publishing with confirms."""
    url = f"amqp://guest:guest@127.0.0.1:{peer.port}//"
    # Confirmed publishes: counted by the queue once Producer.publish returns.
    options = {"confirm_publish": True}
    with Connection(url, connect_timeout=WAIT, transport_options=options) as conn:
        conn.connect()
        yield conn


@pytest.fixture
def exchange(peer: Peer, kombu_connection: Connection) -> Iterator[Exchange]:
    """A uniquely named direct exchange (deleted after the test)."""
    bound = Exchange(f"dtest-kx-{uuid.uuid4().hex[:12]}", "direct", durable=False)(
        kombu_connection.default_channel
    )
    bound.declare()
    yield bound
    bound.delete()


def make_queue(peer: Peer, connection: Connection, exchange: Exchange, **options: object) -> Queue:
    """Declare (through kombu) a uniquely named queue bound to ``exchange`` by its name."""
    name = f"dtest-kq-{uuid.uuid4().hex[:12]}"
    peer.queues.append(name)
    queue = Queue(name, exchange, routing_key=name, durable=False, **options)  # type: ignore[arg-type]
    bound = queue(connection.default_channel)
    bound.declare()
    return bound


def assert_declared_with(peer: Peer, queue: Queue, arguments: dict[str, int]) -> None:
    """What kombu declared: redeclaring with exactly these arguments is accepted (with other
    ones the broker would close the channel with 406 inequivalent arg)."""
    ok = peer.admin().queue_declare(queue.name, arguments=arguments)
    assert ok.method.queue == queue.name


def get_all(queue: Queue) -> list[Message]:
    """kombu's basic.get (no-ack) until the queue is empty."""
    out = []
    while (message := queue.get(no_ack=True)) is not None:
        out.append(message)
    return out


def ready(queue: Queue) -> int:
    """The queue's ready count (passive declare)."""
    return queue.queue_declare(passive=True).message_count


def test_max_priority_orders_deliveries(
    peer: Peer, kombu_connection: Connection, exchange: Exchange
) -> None:
    queue = make_queue(peer, kombu_connection, exchange, max_priority=10)
    assert_declared_with(peer, queue, {"x-max-priority": 10})
    producer = Producer(kombu_connection.default_channel, exchange=exchange)
    for body, priority in [("low", 1), ("none", None), ("high", 9), ("mid", 5), ("over", 42)]:
        producer.publish(body, routing_key=queue.name, priority=priority, serializer="json")
    assert ready(queue) == 5
    got = get_all(queue)
    assert [m.decode() for m in got] == ["over", "high", "mid", "low", "none"]  # 42 counts as 10
    assert [m.properties.get("priority") for m in got] == [42, 9, 5, 1, None]


def test_expiration_on_publish(
    peer: Peer, kombu_connection: Connection, exchange: Exchange
) -> None:
    queue = make_queue(peer, kombu_connection, exchange)
    producer = Producer(kombu_connection.default_channel, exchange=exchange)
    start = time.monotonic()
    producer.publish("short", routing_key=queue.name, expiration=0.15)
    producer.publish("kept", routing_key=queue.name, expiration=600)
    assert ready(queue) == 2
    assert wait_until(lambda: ready(queue) == 1), "the expiring message never went"
    assert time.monotonic() - start >= 0.14
    (message,) = get_all(queue)
    assert message.decode() == "kept"
    assert message.properties["expiration"] == "600000"


def test_expiration_with_priorities_and_queue_ttl(
    peer: Peer, kombu_connection: Connection, exchange: Exchange
) -> None:
    queue = make_queue(peer, kombu_connection, exchange, max_priority=5, message_ttl=0.5)
    assert_declared_with(peer, queue, {"x-max-priority": 5, "x-message-ttl": 500})
    producer = Producer(kombu_connection.default_channel, exchange=exchange)
    # (First: RabbitMQ only reschedules its expiry timer for a publish into an empty queue.)
    producer.publish("p5-short", routing_key=queue.name, priority=5, expiration=0.05)
    producer.publish("p1", routing_key=queue.name, priority=1)
    producer.publish("p3", routing_key=queue.name, priority=3, expiration=60)
    assert ready(queue) == 3
    # The head (priority 5) goes first.
    assert wait_until(lambda: ready(queue) == 2), "the head never expired"
    assert [m.decode() for m in get_all(queue)] == ["p3", "p1"]
    producer.publish("late", routing_key=queue.name, priority=2)
    # The queue's 500 ms applies too.
    assert wait_until(lambda: ready(queue) == 0), "the queue TTL never applied"
    assert queue.get(no_ack=True) is None


def test_queue_expires(peer: Peer, kombu_connection: Connection, exchange: Exchange) -> None:
    queue = make_queue(peer, kombu_connection, exchange, expires=0.3)
    assert_declared_with(peer, queue, {"x-expires": 300})
    channel = kombu_connection.channel()

    def gone() -> bool:
        try:
            channel.queue_declare(queue.name, passive=True)
        except kombu_connection.channel_errors as error:
            assert getattr(error, "reply_code", getattr(error, "code", None)) == 404
            return True
        return False

    # Poll less often than the lease runs: a passive declare renews it.
    assert wait_until(gone, interval=0.4), "the queue never expired"
