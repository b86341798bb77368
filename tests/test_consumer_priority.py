"""Consumer priorities (basic.consume's ``x-priority``) as RabbitMQ 3.10 classic queues apply
them: higher-priority consumers get messages while they can take them (prefetch, global
prefetch), lower ones only while every higher one is blocked, round-robin among equals.

Every test takes the ``peer`` fixture, so all of them also run against RabbitMQ:
``DISPATCHD_PEER_PORT=5692 pytest tests/test_consumer_priority.py``.
"""

from __future__ import annotations

import os
from typing import Any

import pika
import pytest
from pika import spec

from tests.basic_support import (
    PEER_PORT_ENV,
    Inbox,
    Peer,
    assert_closes,
    bodies,
    consumer,
    settle,
)
from tests.basic_support import peer as peer


def test_the_highest_priority_takes_everything_while_it_can(peer: Peer) -> None:
    queue = peer.queue()
    inbox = Inbox()
    channels = [
        consumer(peer, queue, inbox, "low", priority=1),
        consumer(peer, queue, inbox, "high", priority=10),
        consumer(peer, queue, inbox, "default"),
    ]
    peer.fill(queue, bodies("m", 20))
    settle(*channels)
    assert inbox.bodies("high") == bodies("m", 20)
    assert inbox.bodies("low") == inbox.bodies("default") == []


def test_lower_priorities_only_get_what_higher_ones_cannot_take(peer: Peer) -> None:
    queue = peer.queue()
    inbox = Inbox()
    high = consumer(peer, queue, inbox, "high", prefetch=3, priority=5)
    low = consumer(peer, queue, inbox, "low", prefetch=3, priority=0)
    peer.fill(queue, bodies("m", 10))
    settle(high, low)
    assert inbox.bodies("high") == [b"m-0", b"m-1", b"m-2"]
    assert inbox.bodies("low") == [b"m-3", b"m-4", b"m-5"]
    assert peer.count(queue) == 4
    # An ack frees the high consumer: the next message is its, though low is as full.
    first = next(d for d in inbox.items if d.consumer_tag == "high")
    high.basic_ack(first.delivery_tag)
    settle(high, low)
    assert inbox.bodies("high")[3:] == [b"m-6"]
    assert len(inbox.bodies("low")) == 3
    # Once low is freed too, it takes what high cannot.
    low.basic_ack(0, multiple=True)
    settle(high, low)
    assert inbox.bodies("low")[3:] == [b"m-7", b"m-8", b"m-9"]
    assert peer.count(queue) == 0


def test_equal_priorities_share_round_robin_before_lower_ones(peer: Peer) -> None:
    queue = peer.queue()
    inbox = Inbox()
    channels = [
        consumer(peer, queue, inbox, "low", prefetch=2, priority=0),
        consumer(peer, queue, inbox, "a", prefetch=2, priority=5),
        consumer(peer, queue, inbox, "b", prefetch=2, priority=5),
    ]
    peer.fill(queue, bodies("m", 7))
    settle(*channels)
    assert inbox.bodies("a") == [b"m-0", b"m-2"]
    assert inbox.bodies("b") == [b"m-1", b"m-3"]
    assert inbox.bodies("low") == [b"m-4", b"m-5"]
    assert peer.count(queue) == 1


def test_negative_priorities_come_after_the_default(peer: Peer) -> None:
    queue = peer.queue()
    inbox = Inbox()
    channels = [
        consumer(peer, queue, inbox, "negative", prefetch=1, priority=-3),
        consumer(peer, queue, inbox, "default", prefetch=1),
        consumer(peer, queue, inbox, "huge", prefetch=1, priority=2**40),
    ]
    peer.fill(queue, bodies("m", 4))
    settle(*channels)
    assert (inbox.bodies("huge"), inbox.bodies("default"), inbox.bodies("negative")) == (
        [b"m-0"],
        [b"m-1"],
        [b"m-2"],
    )
    assert peer.count(queue) == 1


@pytest.mark.xfail(
    not os.environ.get(PEER_PORT_ENV),
    strict=True,
    reason="dispatchd lends global-prefetch window asynchronously: a windowed consumer asks "
    "its channel first, and lower-priority consumers take what is published meanwhile",
)
def test_a_global_prefetch_blocks_a_high_priority_consumer_too(peer: Peer) -> None:
    queue = peer.queue()
    inbox = Inbox()
    high = peer.channel()
    high.basic_qos(prefetch_count=2, global_qos=True)
    high.basic_consume(queue, inbox, consumer_tag="high", arguments={"x-priority": 9})
    low = consumer(peer, queue, inbox, "low", priority=0)
    peer.fill(queue, bodies("m", 5))
    settle(high, low)
    assert inbox.bodies("high") == [b"m-0", b"m-1"]
    assert inbox.bodies("low") == [b"m-2", b"m-3", b"m-4"]


def test_a_cancelled_high_priority_consumer_hands_over_to_the_next(peer: Peer) -> None:
    queue = peer.queue()
    inbox = Inbox()
    high = consumer(peer, queue, inbox, "high", priority=3)
    low = consumer(peer, queue, inbox, "low", priority=1)
    peer.fill(queue, [b"first"])
    settle(high, low)
    high.basic_cancel("high")
    peer.fill(queue, [b"second"])
    settle(high, low)
    assert (inbox.bodies("high"), inbox.bodies("low")) == ([b"first"], [b"second"])


def _consume_with(arguments: dict[str, Any]) -> list[Any]:
    def consume(client: Any, channel: int) -> None:
        client.send_method(channel, spec.Basic.Consume(queue=QUEUE, arguments=arguments))

    return [spec.Queue.Declare(queue=QUEUE, exclusive=True), consume]


QUEUE = "dtest-consumer-priority-args"
WHERE = f"for queue '{QUEUE}' in vhost '/'"


@pytest.mark.parametrize(
    ("arguments", "text"),
    [
        (
            {"x-priority": "high"},
            f"invalid arg 'x-priority' {WHERE}: \"expected integer, got longstr\"",
        ),
        ({"x-priority": True}, f"invalid arg 'x-priority' {WHERE}: \"expected integer, got bool\""),
        (
            {"x-priority": "x", "x-cancel-on-ha-failover": 1},
            f"invalid arg 'x-priority' {WHERE}: \"expected integer, got longstr\"",
        ),
        (
            {"x-cancel-on-ha-failover": 1},
            f"invalid arg 'x-cancel-on-ha-failover' {WHERE}: {{unacceptable_type,signedint}}",
        ),
    ],
)
def test_invalid_consume_arguments_close_the_channel(
    peer: Peer, arguments: dict[str, Any], text: str
) -> None:
    assert_closes(
        peer,
        _consume_with(arguments),
        ("Channel.Close", 406, "PRECONDITION_FAILED - " + text, 60, 20),
    )


def test_a_missing_queue_is_reported_before_bad_arguments(peer: Peer) -> None:
    def consume(client: Any, channel: int) -> None:
        method = spec.Basic.Consume(queue="dtest-no-such-queue", arguments={"x-priority": "x"})
        client.send_method(channel, method)

    expected = ("Channel.Close", 404, "NOT_FOUND - no queue 'dtest-no-such-queue' in vhost '/'")
    assert_closes(peer, [consume], (*expected, 60, 20))


def test_valid_and_unknown_consume_arguments_are_accepted(peer: Peer) -> None:
    queue = peer.queue()
    channel = peer.channel()
    for arguments in ({"x-priority": -7}, {"x-cancel-on-ha-failover": True}, {"x-other": "a"}):
        tag = channel.basic_consume(queue, lambda *_: None, arguments=arguments)
        channel.basic_cancel(tag)
    assert channel.is_open


def test_consumer_priorities_are_advertised(peer: Peer) -> None:
    connection = pika.BlockingConnection(peer.params())
    try:
        assert connection._impl.server_capabilities["consumer_priorities"] is True
    finally:
        connection.close()
