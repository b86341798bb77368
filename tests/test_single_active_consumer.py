"""Single active consumer (queue argument ``x-single-active-consumer``) as RabbitMQ 3.10
classic queues do it: the first consumer registered gets every message (whatever the
priorities), the others wait; when it is cancelled or its channel closes (requeueing what it
held, redelivered), the waiting consumer with the highest priority takes over.

The tests take the ``peer`` fixture and also run against RabbitMQ
(``DISPATCHD_PEER_PORT=5692 pytest tests/test_single_active_consumer.py``), except the ones
marked ``dispatchd_only`` (RabbitMQ 3.10.8 stalls there); the admin tests always use a
dispatchd of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from pika import spec
from pika.adapters.blocking_connection import BlockingChannel

from tests.admin_support import AdminClient, eventually, vpath
from tests.admin_support import admin_broker as admin_broker
from tests.basic_support import (
    PEER_PORT_ENV,
    Inbox,
    Peer,
    assert_closes,
    bodies,
    consumer,
    pump,
    settle,
)
from tests.basic_support import peer as peer
from tests.conformance.rawclient import RawClient
from tests.conftest import BrokerProcess

SAC = {"x-single-active-consumer": True}

dispatchd_only = pytest.mark.skipif(
    bool(os.environ.get(PEER_PORT_ENV)),
    reason="RabbitMQ 3.10.8 leaves ready messages to the successor of a cancelled active "
    "consumer until the next requeue or new consumer",
)


def two_consumers(
    peer: Peer, prefetch: int, count: int
) -> tuple[Inbox, str, BlockingChannel, BlockingChannel]:
    """A SAC queue with consumers "first" (active) and "second" and ``count`` messages."""
    queue = peer.queue(**SAC)
    inbox = Inbox()
    first = consumer(peer, queue, inbox, "first", prefetch=prefetch)
    second = consumer(peer, queue, inbox, "second", prefetch=prefetch)
    peer.fill(queue, bodies("m", count))
    settle(first, second)
    return inbox, queue, first, second


def raw_consumer(peer: Peer, queue: str, prefetch: int, count: int) -> RawClient:
    """A raw-frame consumer (it can close its channel without pika's cancel first) that has
    received ``count`` deliveries."""
    client = peer.raw()
    assert client.call(1, spec.Basic.Qos(prefetch_count=prefetch))["method"] == "Basic.QosOk"
    reply = client.call(1, spec.Basic.Consume(queue=queue, consumer_tag="raw"))
    assert reply["method"] == "Basic.ConsumeOk"
    got = [client.recv_message(2.0, 1) for _ in range(count)]
    assert all(item.get("method") == "Basic.Deliver" for item in got), got
    return client


def test_only_the_first_consumer_receives(peer: Peer) -> None:
    queue = peer.queue(**SAC)
    inbox = Inbox()
    channels = [consumer(peer, queue, inbox, tag) for tag in ("first", "second", "third")]
    peer.fill(queue, bodies("m", 10))
    settle(*channels)
    assert inbox.bodies("first") == bodies("m", 10)
    assert inbox.bodies("second") == inbox.bodies("third") == []
    # declare-ok counts every consumer, waiting ones too.
    assert peer.admin().queue_declare(queue, passive=True).method.consumer_count == 3


def test_the_first_registered_is_active_whatever_the_priorities(peer: Peer) -> None:
    queue = peer.queue(**SAC)
    inbox = Inbox()
    first = consumer(peer, queue, inbox, "first", prefetch=2, priority=0)
    high = consumer(peer, queue, inbox, "high", priority=10)
    peer.fill(queue, bodies("m", 5))
    settle(first, high)
    # The active consumer's prefetch holds the rest back: nothing spills to a waiting one.
    assert inbox.bodies("first") == [b"m-0", b"m-1"]
    assert inbox.bodies("high") == []
    assert peer.count(queue) == 3
    first.basic_ack(0, multiple=True)
    settle(first, high)
    assert inbox.bodies("first") == [b"m-0", b"m-1", b"m-2", b"m-3"]
    assert inbox.bodies("high") == []


@pytest.mark.parametrize("how", ["channel.close", "connection lost"])
def test_the_successor_gets_what_a_closed_channel_held_first(peer: Peer, how: str) -> None:
    queue = peer.queue(**SAC)
    peer.fill(queue, bodies("m", 5))
    active = raw_consumer(peer, queue, prefetch=2, count=2)
    inbox = Inbox()
    waiting = consumer(peer, queue, inbox, "waiting")
    settle(waiting)
    assert inbox.items == []
    if how == "channel.close":
        reply = active.call(1, spec.Channel.Close(200, "bye", 0, 0))
        assert reply["method"] == "Channel.CloseOk"
    else:
        active.sock.close()
        active.eof = True  # nothing left for its teardown to say
    assert inbox.wait(waiting.connection, 5)
    settle(waiting)
    got = [(d.body, d.redelivered) for d in inbox.items]
    assert got == [
        (b"m-0", True),
        (b"m-1", True),
        (b"m-2", False),
        (b"m-3", False),
        (b"m-4", False),
    ]


def test_requeued_messages_of_a_cancelled_active_go_to_the_successor(peer: Peer) -> None:
    inbox, queue, first, second = two_consumers(peer, prefetch=5, count=2)
    assert inbox.bodies("first") == [b"m-0", b"m-1"]
    first.basic_cancel("first")  # still holds both, unacknowledged
    assert peer.admin().queue_declare(queue, passive=True).method.consumer_count == 1
    first.basic_nack(0, multiple=True, requeue=True)
    assert pump(second.connection, lambda: len(inbox.bodies("second")) == 2)
    assert [(d.body, d.redelivered) for d in inbox.items if d.consumer_tag == "second"] == [
        (b"m-0", True),
        (b"m-1", True),
    ]
    peer.fill(queue, [b"later"])
    settle(first, second)
    assert inbox.bodies("second")[2:] == [b"later"]
    assert inbox.bodies("first") == [b"m-0", b"m-1"]


def test_the_waiting_consumer_with_the_highest_priority_takes_over(peer: Peer) -> None:
    queue = peer.queue(**SAC)
    inbox = Inbox()
    tags = [("active", 0), ("low", 0), ("high", 5), ("high-later", 5), ("lowest", -1)]
    channels = {tag: consumer(peer, queue, inbox, tag, priority=p) for tag, p in tags}
    order = []
    for tag in ("active", "high", "high-later", "low", "lowest"):
        peer.fill(queue, [f"to-{tag}".encode()])
        settle(*channels.values())
        assert len(inbox.items) == len(order) + 1, inbox.items
        order.append(inbox.items[-1].consumer_tag)
        channels[tag].basic_cancel(tag)
    assert order == ["active", "high", "high-later", "low", "lowest"]


@dispatchd_only
def test_the_successor_takes_ready_messages_at_once(peer: Peer) -> None:
    inbox, queue, first, second = two_consumers(peer, prefetch=2, count=5)
    first.basic_cancel("first")
    assert pump(second.connection, lambda: len(inbox.bodies("second")) == 2)
    assert inbox.bodies("second") == [b"m-2", b"m-3"]
    first.basic_ack(0, multiple=True)
    second.basic_ack(0, multiple=True)
    assert pump(second.connection, lambda: len(inbox.bodies("second")) == 3)
    assert peer.count(queue) == 0


def test_an_exclusive_consume_is_refused(peer: Peer) -> None:
    queue = peer.queue(**SAC)

    def consume(client: Any, channel: int) -> None:
        client.send_method(channel, spec.Basic.Consume(queue=queue, exclusive=True))

    text = f"ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use"
    assert_closes(peer, [consume], ("Channel.Close", 403, text, 60, 20))


def test_basic_get_still_works_beside_the_active_consumer(peer: Peer) -> None:
    queue = peer.queue(**SAC)
    inbox = Inbox()
    active = consumer(peer, queue, inbox, "active", prefetch=1)
    peer.fill(queue, bodies("m", 3))
    settle(active)
    method, _props, body = peer.admin().basic_get(queue, auto_ack=True)
    assert (body, method.message_count) == (b"m-1", 1)
    assert inbox.bodies("active") == [b"m-0"]


@pytest.fixture
def admin_channel(
    admin_broker: tuple[BrokerProcess, AdminClient],
) -> Iterator[tuple[BlockingChannel, AdminClient]]:
    """A channel on the admin test broker, and the admin client."""
    broker, api = admin_broker
    connection = broker.connect()
    yield connection.channel(), api
    connection.close()


def listed(api: AdminClient, queue: str, count: int) -> list[dict[str, Any]]:
    """The queue's consumers in /api/consumers (by tag), once there are ``count``."""

    def probe() -> list[dict[str, Any]] | None:
        found = [c for c in api.get("/api/consumers") if c["queue"]["name"] == queue]
        return sorted(found, key=lambda c: c["consumer_tag"]) if len(found) == count else None

    return eventually(probe, f"{count} consumers of {queue}")


def test_the_admin_shows_which_consumer_is_active(
    admin_channel: tuple[BlockingChannel, AdminClient],
) -> None:
    channel, api = admin_channel
    queue = channel.queue_declare("", exclusive=True, arguments=SAC).method.queue
    channel.basic_consume(queue, lambda *_: None, consumer_tag="one")
    channel.basic_consume(queue, lambda *_: None, consumer_tag="two", arguments={"x-priority": 4})
    one, two = listed(api, queue, 2)
    assert (one["active"], one["activity_status"]) == (True, "single_active")
    assert (two["active"], two["activity_status"]) == (False, "waiting")
    assert two["arguments"] == {"x-priority": 4}
    path = f"/api/queues/{vpath('/', queue)}"
    assert api.get(path)["single_active_consumer_tag"] == "one"
    channel.basic_cancel("one")
    [two] = listed(api, queue, 1)
    assert (two["active"], two["activity_status"]) == (True, "single_active")
    assert api.get(path)["single_active_consumer_tag"] == "two"


def test_plain_queue_consumers_are_all_up(
    admin_channel: tuple[BlockingChannel, AdminClient],
) -> None:
    channel, api = admin_channel
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_consume(queue, lambda *_: None, consumer_tag="solo")
    assert [(c["active"], c["activity_status"]) for c in listed(api, queue, 1)] == [(True, "up")]
    assert "single_active_consumer_tag" not in api.get(f"/api/queues/{vpath('/', queue)}")


def test_pika_consumers_on_one_connection(peer: Peer) -> None:
    """Two consumers on one channel: the second waits until the first is cancelled."""
    queue = peer.queue(**SAC)
    inbox = Inbox()
    channel = peer.channel()
    channel.basic_consume(queue, inbox, consumer_tag="a")
    channel.basic_consume(queue, inbox, consumer_tag="b")
    peer.fill(queue, [b"one"])
    settle(channel)
    channel.basic_cancel("a")
    peer.fill(queue, [b"two"])
    settle(channel)
    assert (inbox.bodies("a"), inbox.bodies("b")) == ([b"one"], [b"two"])
