"""Queue length limits (``x-max-length``, ``x-max-length-bytes``, ``x-overflow``) as RabbitMQ 3.10.

Only ready messages count, and only their body bytes. ``drop-head`` (the default) drops, or
dead-letters with reason ``maxlen``, from the head until the queue is within its limits,
also after a requeue; ``reject-publish`` refuses what would take the queue over (basic.nack
to a confirming publisher) but lets a requeue through; ``reject-publish-dlx`` also
dead-letters what it refuses.

All but the restart test take the ``peer`` fixture, so they also run against RabbitMQ:
``DISPATCHD_PEER_PORT=5692 pytest tests/test_max_length.py``.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from tests.basic_support import Inbox, Peer, consumer, pump, quiet, wait_count
from tests.basic_support import peer as peer
from tests.conformance.helpers import confirm_outcomes, ok
from tests.conftest import BrokerProcess
from tests.support import get_all


def drain(channel: BlockingChannel, queue: str) -> list[tuple[bytes, bool]]:
    """basic.get (auto-ack) until empty: (body, redelivered) in queue order."""
    return [(body, method.redelivered) for method, _props, body in get_all(channel, queue)]


def dead_letters(peer: Peer, queue: str, count: int) -> list[tuple[bytes, dict[str, Any]]]:
    """Wait for ``count`` dead letters in ``queue``; (body, x-death entry) each, time checked
    and removed."""
    assert wait_count(peer, queue, count) == count
    out = []
    for _method, props, body in get_all(peer.admin(), queue):
        (death,) = props.headers["x-death"]
        stamp = death.pop("time")
        assert isinstance(stamp, datetime.datetime)
        assert abs(stamp.timestamp() - time.time()) < 60
        out.append((body, death))
    return out


def test_drop_head_keeps_the_newest(peer: Peer) -> None:
    queue = peer.queue(**{"x-max-length": 3})
    peer.fill(queue, [f"m{i}".encode() for i in range(5)])
    assert peer.count(queue) == 3
    assert [b for b, _ in drain(peer.admin(), queue)] == [b"m2", b"m3", b"m4"]


def test_unacknowledged_messages_do_not_count(peer: Peer) -> None:
    queue = peer.queue(**{"x-max-length": 1})
    channel = peer.channel()
    peer.fill(queue, [b"a"])
    method, _props, _body = channel.basic_get(queue)  # unacked: the queue is empty
    peer.fill(queue, [b"b"])
    assert peer.count(queue) == 1
    channel.basic_ack(method.delivery_tag)
    assert drain(channel, queue) == [(b"b", False)]


def test_drop_head_dead_letters_with_reason_maxlen(peer: Peer) -> None:
    dead = peer.queue()
    queue = peer.queue(
        **{"x-max-length": 1, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
    )
    channel = peer.admin()
    for i in range(3):
        channel.basic_publish("", queue, f"m{i}".encode(), pika.BasicProperties(expiration="9000"))
    got = dead_letters(peer, dead, 2)
    expected = {
        "count": 1,
        "reason": "maxlen",
        "queue": queue,
        "exchange": "",
        "routing-keys": [queue],
        "original-expiration": "9000",
    }
    assert got == [(b"m0", expected), (b"m1", expected)]
    assert [b for b, _ in drain(channel, queue)] == [b"m2"]


def test_max_length_bytes_counts_body_bytes_only(peer: Peer) -> None:
    queue = peer.queue(**{"x-max-length-bytes": 10})
    channel = peer.admin()
    big_headers = pika.BasicProperties(headers={"big": "x" * 500}, message_id="y" * 200)
    channel.basic_publish("", queue, b"12345", big_headers)
    channel.basic_publish("", queue, b"abcde")
    assert peer.count(queue) == 2  # exactly 10 body bytes: within the limit
    channel.basic_publish("", queue, b"!")  # 11: the head goes
    assert peer.count(queue) == 2
    assert [b for b, _ in drain(channel, queue)] == [b"abcde", b"!"]
    channel.basic_publish("", queue, b"x" * 11)  # bigger than the limit on its own
    assert peer.count(queue) == 0


def test_both_limits_apply(peer: Peer) -> None:
    queue = peer.queue(**{"x-max-length": 3, "x-max-length-bytes": 6})
    peer.fill(queue, [b"aa", b"bb", b"cc", b"d"])  # 3 messages max
    assert [b for b, _ in drain(peer.admin(), queue)] == [b"bb", b"cc", b"d"]
    peer.fill(queue, [b"aaa", b"bbb", b"c"])  # 7 bytes: one goes
    assert [b for b, _ in drain(peer.admin(), queue)] == [b"bbb", b"c"]


def test_reject_publish_nacks_confirmed_publishes(peer: Peer) -> None:
    queue = peer.queue(**{"x-max-length": 2, "x-overflow": "reject-publish"})
    channel = peer.channel()
    channel.confirm_delivery()
    channel.basic_publish("", queue, b"a")
    channel.basic_publish("", queue, b"b")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", queue, b"c")
    assert channel.is_open
    plain = peer.channel()  # without confirms: dropped silently
    plain.basic_publish("", queue, b"d")
    assert peer.count(queue) == 2
    method, _props, _body = channel.basic_get(queue)  # unacked ones do not count
    channel.basic_publish("", queue, b"e")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", queue, b"f")
    channel.basic_ack(method.delivery_tag)
    assert [b for b, _ in drain(channel, queue)] == [b"b", b"e"]


def test_reject_publish_lets_a_requeue_take_the_queue_over(peer: Peer) -> None:
    queue = peer.queue(**{"x-max-length": 1, "x-overflow": "reject-publish"})
    channel = peer.channel()
    channel.confirm_delivery()
    channel.basic_publish("", queue, b"a")
    method, _props, _body = channel.basic_get(queue)
    channel.basic_publish("", queue, b"b")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", queue, b"c")
    channel.basic_nack(method.delivery_tag, requeue=True)
    assert peer.count(queue) == 2
    assert drain(channel, queue) == [(b"a", True), (b"b", False)]


def full_queue_with_dlx(peer: Peer, overflow: str) -> tuple[str, str, BlockingChannel]:
    """A queue of one message (``a``) with ``overflow`` and a DLX to a queue of its own:
    (queue, dead-letter queue, a confirming channel)."""
    dead = peer.queue()
    queue = peer.queue(
        **{
            "x-max-length": 1,
            "x-overflow": overflow,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead,
        }
    )
    channel = peer.channel()
    channel.confirm_delivery()
    channel.basic_publish("", queue, b"a")
    return queue, dead, channel


def test_reject_publish_dlx_nacks_and_dead_letters(peer: Peer) -> None:
    queue, dead, channel = full_queue_with_dlx(peer, "reject-publish-dlx")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", queue, b"b", pika.BasicProperties(expiration="9000"))
    got = dead_letters(peer, dead, 1)
    assert got == [
        (
            b"b",
            {
                "count": 1,
                "reason": "maxlen",
                "queue": queue,
                "exchange": "",
                "routing-keys": [queue],
                "original-expiration": "9000",
            },
        )
    ]
    assert drain(channel, queue) == [(b"a", False)]


def test_reject_publish_without_dlx_does_not_dead_letter(peer: Peer) -> None:
    queue, dead, channel = full_queue_with_dlx(peer, "reject-publish")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", queue, b"b")
    quiet(channel.connection, 0.1)
    assert peer.count(dead) == 0


def test_requeue_over_max_length_drops_the_head(peer: Peer) -> None:
    queue = peer.queue(**{"x-max-length": 2})
    channel = peer.channel()
    peer.fill(queue, [b"a", b"b"])
    method, _props, body = channel.basic_get(queue)
    assert body == b"a"
    peer.fill(queue, [b"c"])  # b, c ready: at the limit
    channel.basic_nack(method.delivery_tag, requeue=True)  # a back at the head: it goes
    assert peer.count(queue) == 2
    assert drain(channel, queue) == [(b"b", False), (b"c", False)]


def test_limits_after_restart(fresh_broker: BrokerProcess) -> None:
    connection = fresh_broker.connect()
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare("dlq", durable=True)
    arguments = {
        "x-max-length": 2,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "dlq",
    }
    channel.queue_declare("lq", durable=True, arguments=arguments)
    persistent = pika.BasicProperties(delivery_mode=2)
    for i in range(3):
        channel.basic_publish("", "lq", f"m{i}".encode(), persistent)
    connection.close()
    assert fresh_broker.stop() == 0, fresh_broker.log
    fresh_broker.start()
    connection = fresh_broker.connect()
    channel = connection.channel()
    channel.confirm_delivery()
    assert channel.queue_declare("lq", passive=True).method.message_count == 2
    channel.basic_publish("", "lq", b"m3", persistent)  # the limit holds after recovery
    assert pump(
        connection, lambda: channel.queue_declare("dlq", passive=True).method.message_count >= 2
    ), "m1 was not dead-lettered"
    connection.close()
    assert fresh_broker.stop() == 0, fresh_broker.log
    fresh_broker.start()  # what was dropped stays dropped
    connection = fresh_broker.connect()
    channel = connection.channel()
    assert [b for b, _ in drain(channel, "lq")] == [b"m2", b"m3"]
    got = [(body, p.headers["x-death"][0]["reason"]) for _m, p, body in get_all(channel, "dlq")]
    assert got == [(b"m0", "maxlen"), (b"m1", "maxlen")]
    connection.close()


def test_reject_publish_counts_nothing_a_consumer_takes_at_once(peer: Peer) -> None:
    """A consumer with room takes each message as it arrives: none is refused, even in a burst
    far larger than the limit (one batch of publishes to the queue)."""
    queue = peer.queue(**{"x-max-length": 1, "x-overflow": "reject-publish"})
    inbox = Inbox()
    listener = consumer(peer, queue, inbox, "taker", prefetch=50)
    client = peer.raw()
    ok(client, 1, pika.spec.Confirm.Select())
    for i in range(20):
        client.publish(1, "", queue, f"m{i}".encode())
    assert set(confirm_outcomes(client, 20)["confirms"].values()) == {"ack"}
    assert pump(listener.connection, lambda: len(inbox.items) == 20)
    assert [d.body for d in inbox.items] == [f"m{i}".encode() for i in range(20)]
