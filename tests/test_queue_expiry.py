"""Queue expiry (``x-expires``) as RabbitMQ 3.10 has it.

A queue unused for its ``x-expires`` milliseconds is deleted, messages and all. A
queue.declare (passive or not) or a basic.get renews the lease, a publish does not, and no
countdown runs while a consumer is attached. A durable queue's countdown starts again when
the broker recovers it.

All but the restart test take the ``peer`` fixture, so they also run against RabbitMQ:
``DISPATCHD_PEER_PORT=5692 pytest tests/test_queue_expiry.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pika
from pika.adapters.blocking_connection import BlockingChannel

from tests.basic_support import WAIT, Inbox, Peer, quiet
from tests.basic_support import peer as peer
from tests.conftest import BrokerProcess
from tests.support import wait_until


def exists(connection: pika.BlockingConnection, queue: str) -> bool:
    """Whether the queue exists (a passive declare on a channel of its own; this renews a
    lease, as any declare does)."""
    channel = connection.channel()
    try:
        channel.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as error:
        assert error.reply_code == 404
        return False
    channel.close()
    return True


def wait_gone(connection: pika.BlockingConnection, queue: str, poll: float = 0.05) -> float:
    """Poll (every ``poll`` seconds) until the queue is gone; the monotonic time it was."""
    assert wait_until(lambda: not exists(connection, queue), WAIT, poll), (
        f"{queue} was never deleted"
    )
    return time.monotonic()


def keep_using(channel: BlockingChannel, use: Callable[[], object], seconds: float) -> None:
    """Call ``use`` every 100 ms for ``seconds`` (not a wait for a condition: the use is the
    point)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        use()
        channel.connection.sleep(0.1)


def test_unused_queue_is_deleted_after_the_interval(peer: Peer) -> None:
    start = time.monotonic()
    queue = peer.queue(**{"x-expires": 200})
    peer.fill(queue, [b"m1", b"m2"])  # messages do not keep it alive
    connection = peer.connect()
    # Polling with a passive declare renews the lease: poll less often than it runs.
    gone = wait_gone(connection, queue, poll=0.3)
    assert gone - start >= 0.19


def test_declare_renews_the_lease(peer: Peer) -> None:
    queue = peer.queue(**{"x-expires": 400})
    channel = peer.admin()
    start = time.monotonic()
    keep_using(channel, lambda: channel.queue_declare(queue, passive=True), 0.6)
    keep_using(channel, lambda: channel.queue_declare(queue, arguments={"x-expires": 400}), 0.6)
    stopped = time.monotonic()
    assert stopped - start >= 1.1  # well past the interval, and it is still there
    assert exists(peer.connect(), queue)
    gone = wait_gone(peer.connect(), queue, poll=0.5)
    assert gone - stopped >= 0.39


def test_basic_get_renews_the_lease(peer: Peer) -> None:
    queue = peer.queue(**{"x-expires": 400})
    channel = peer.channel()
    keep_using(channel, lambda: channel.basic_get(queue, auto_ack=True), 1.0)
    assert exists(peer.connect(), queue)
    wait_gone(peer.connect(), queue, poll=0.5)


def test_publishing_does_not_renew_the_lease(peer: Peer) -> None:
    queue = peer.queue(**{"x-expires": 300})
    channel = peer.channel()
    start = time.monotonic()
    keep_using(channel, lambda: channel.basic_publish("", queue, b"m"), 1.0)
    assert time.monotonic() - start >= 0.9
    assert not exists(peer.connect(), queue)


def test_a_consumer_holds_expiry_off(peer: Peer) -> None:
    queue = peer.queue(**{"x-expires": 300})
    consumer = peer.channel()
    inbox = Inbox()
    tag = consumer.basic_consume(queue, inbox)
    quiet(consumer.connection, 0.8)
    peer.fill(queue, [b"m"])  # and it is the same queue: the consumer gets the message
    assert inbox.wait(consumer.connection, 1)
    consumer.basic_cancel(tag)  # the countdown starts now (the unacked message goes back)
    cancelled = time.monotonic()
    gone = wait_gone(peer.connect(), queue, poll=0.4)
    assert gone - cancelled >= 0.29


def test_durable_queue_expires_after_restart(fresh_broker: BrokerProcess) -> None:
    connection = fresh_broker.connect()
    channel = connection.channel()
    channel.queue_declare("short", durable=True, arguments={"x-expires": 1500})
    channel.queue_declare("long", durable=True, arguments={"x-expires": 600000})
    channel.confirm_delivery()
    channel.basic_publish("", "short", b"m", pika.BasicProperties(delivery_mode=2))
    connection.close()
    assert fresh_broker.stop() == 0, fresh_broker.log
    fresh_broker.start()
    connection = fresh_broker.connect()
    # The countdown starts with the recovery (the broker was down for less than 1.5 s).
    assert exists(connection, "short")
    renewed = time.monotonic()
    gone = wait_gone(connection, "short", poll=1.7)
    assert 1.49 <= gone - renewed < WAIT
    assert exists(connection, "long")
    connection.close()
    # Deleted for good: not back after another restart.
    assert fresh_broker.stop() == 0, fresh_broker.log
    fresh_broker.start()
    connection = fresh_broker.connect()
    assert not exists(connection, "short")
    assert exists(connection, "long")
    connection.close()
