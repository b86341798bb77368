"""Priority queues (``x-max-priority``) as RabbitMQ 3.10 classic queues deliver them.

Highest priority first, FIFO within a priority; no priority property counts as 0, one above
the maximum as the maximum; a requeued message goes back to its place within its priority.
All but the restart test take the ``peer`` fixture, so they also run against RabbitMQ:
``DISPATCHD_PEER_PORT=5692 pytest tests/test_priority.py``.
"""

from __future__ import annotations

from pathlib import Path

import pika
from pika.adapters.blocking_connection import BlockingChannel

from tests.basic_support import Inbox, Peer, pump, quiet
from tests.basic_support import peer as peer
from tests.conftest import BrokerProcess, free_port
from tests.support import get_all


def publish(channel: BlockingChannel, queue: str, items: list[tuple[str, int | None]]) -> None:
    """Publish (body, priority) pairs in order (``None``: no priority property)."""
    for body, priority in items:
        channel.basic_publish("", queue, body.encode(), pika.BasicProperties(priority=priority))


def take_all(channel: BlockingChannel, queue: str) -> list[tuple[str, bool, int]]:
    """basic.get (auto-ack) until empty: (body, redelivered, message_count) per message."""
    return [
        (body.decode(), method.redelivered, method.message_count)
        for method, _props, body in get_all(channel, queue)
    ]


def test_priority_then_fifo_and_clamping(peer: Peer) -> None:
    queue = peer.queue(**{"x-max-priority": 5})
    channel = peer.admin()
    publish(
        channel,
        queue,
        [("a1", 1), ("b5", 5), ("c0", None), ("d3", 3), ("e9", 9), ("f5", 5), ("g1", 1)],
    )
    publish(channel, queue, [("h0", 0), ("i255", 255), ("j3", 3)])
    assert peer.count(queue) == 10
    got = take_all(channel, queue)
    # e9 and i255 are clamped to 5: after the 5s already there, in publish order.
    assert [b for b, _, _ in got] == ["b5", "e9", "f5", "i255", "d3", "j3", "a1", "g1", "c0", "h0"]
    assert [n for _, _, n in got] == list(range(9, -1, -1))
    assert peer.count(queue) == 0


def test_plain_queue_ignores_priority(peer: Peer) -> None:
    queue = peer.queue()
    publish(peer.admin(), queue, [("a1", 1), ("b5", 5), ("c0", None)])
    assert [b for b, _, _ in take_all(peer.admin(), queue)] == ["a1", "b5", "c0"]


def test_requeue_returns_to_its_place_within_its_priority(peer: Peer) -> None:
    queue = peer.queue(**{"x-max-priority": 3})
    channel = peer.channel()
    publish(channel, queue, [("a1", 1), ("b1", 1), ("c2", 2)])
    taken = []
    for _ in range(2):  # c2, then a1
        method, _props, body = channel.basic_get(queue)
        taken.append((body, method.delivery_tag))
    assert [b for b, _ in taken] == [b"c2", b"a1"]
    publish(channel, queue, [("d1", 1), ("e2", 2), ("f3", 3)])
    for _body, tag in taken:
        channel.basic_nack(tag, requeue=True)
    got = take_all(channel, queue)
    assert [(b, r) for b, r, _ in got] == [
        ("f3", False),
        ("c2", True),  # ahead of e2, published later at the same priority
        ("e2", False),
        ("a1", True),  # ahead of b1 and d1
        ("b1", False),
        ("d1", False),
    ]


def test_consumer_with_prefetch_gets_highest_first(peer: Peer) -> None:
    queue = peer.queue(**{"x-max-priority": 10})
    channel = peer.channel()
    publish(channel, queue, [("a0", None), ("b4", 4), ("c8", 8), ("d4", 4)])
    channel.basic_qos(prefetch_count=1)
    inbox = Inbox()
    channel.basic_consume(queue, inbox)
    connection = channel.connection
    acked = 0
    # Each ack lets one more through; publishes (confirmed) in between compete by priority.
    extra = {0: [("e9", 9), ("f0", 0)], 2: [("g4", 4)]}
    while pump(connection, lambda n=acked: len(inbox.items) > n):
        quiet(connection, 0.05)
        assert len(inbox.items) == acked + 1  # the prefetch holds the rest back
        publish(peer.admin(), queue, extra.get(acked, []))  # confirmed: in the queue
        channel.basic_ack(inbox.items[acked].delivery_tag)
        acked += 1
        if acked == 7:
            break
    assert inbox.bodies() == [b"c8", b"e9", b"b4", b"d4", b"g4", b"a0", b"f0"]
    quiet(connection)
    assert peer.count(queue) == 0


def test_unacked_consumer_deliveries_requeue_in_priority_order(peer: Peer) -> None:
    queue = peer.queue(**{"x-max-priority": 5})
    consumer = peer.channel()
    publish(consumer, queue, [("a1", 1), ("b5", 5), ("c1", 1), ("d0", 0)])
    inbox = Inbox()
    tag = consumer.basic_consume(queue, inbox)
    assert pump(consumer.connection, lambda: len(inbox.items) == 4)
    assert inbox.bodies() == [b"b5", b"a1", b"c1", b"d0"]
    publish(consumer, queue, [("e1", 1), ("f5", 5)])
    assert pump(consumer.connection, lambda: len(inbox.items) == 6)
    consumer.basic_cancel(tag)
    consumer.basic_recover(requeue=True)
    got = take_all(peer.admin(), queue)
    assert [(b, r) for b, r, _ in got] == [
        ("b5", True),
        ("f5", True),
        ("a1", True),
        ("c1", True),
        ("e1", True),
        ("d0", True),
    ]


def test_restart_keeps_priority_order(tmp_path: Path) -> None:
    base = tmp_path
    # A tiny in-memory limit: a priority queue must still recover every message in order.
    broker = BrokerProcess(
        free_port(), base / "data", base / "broker.log", ["--queue-memory-limit", "2"]
    ).start()
    try:
        connection = broker.connect()
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare("pq", durable=True, arguments={"x-max-priority": 4})
        items = [("a1", 1), ("b4", 4), ("c0", None), ("d2", 2), ("e7", 7), ("f1", 1), ("g2", 2)]
        for body, priority in items:
            props = pika.BasicProperties(priority=priority, delivery_mode=2)
            channel.basic_publish("", "pq", body.encode(), props)
        channel.basic_publish("", "pq", b"t4", pika.BasicProperties(priority=4))  # transient
        method, _props, body = channel.basic_get("pq")
        assert body == b"b4"
        channel.basic_nack(method.delivery_tag, requeue=True)
        connection.close()
        assert broker.stop() == 0, broker.log
        broker.start()
        connection = broker.connect()
        channel = connection.channel()
        assert channel.queue_declare("pq", passive=True).method.message_count == 7
        got = take_all(channel, "pq")
        assert [(b, r) for b, r, _ in got] == [
            ("b4", True),
            ("e7", False),
            ("d2", False),
            ("g2", False),
            ("a1", False),
            ("f1", False),
            ("c0", False),
        ]
        connection.close()
    finally:
        broker.stop()


def test_purge_and_counts(peer: Peer) -> None:
    queue = peer.queue(**{"x-max-priority": 2})
    channel = peer.channel()
    publish(channel, queue, [("a0", None), ("b2", 2), ("c1", 1)])
    method, _props, body = channel.basic_get(queue)
    assert (body, method.message_count) == (b"b2", 2)
    channel.basic_nack(method.delivery_tag, requeue=True)
    assert peer.count(queue) == 3
    assert channel.queue_purge(queue).method.message_count == 3
    assert peer.count(queue) == 0
    publish(channel, queue, [("d1", 1), ("e2", 2)])
    assert [b for b, _, _ in take_all(channel, queue)] == ["e2", "d1"]
