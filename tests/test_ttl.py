"""Message TTL (``x-message-ttl`` and the ``expiration`` property) as RabbitMQ 3.10 has it.

Expired messages leave from the head of the queue without any consumer or basic.get, are
never delivered, keep the expiry they got on arrival through requeues and restarts, and a
TTL of 0 means "deliverable right now or not at all". A publish whose ``expiration`` is not
a decimal number of milliseconds (at most ten years) closes the channel with 406 and
``rabbit_basic:parse_expiration``'s error term.

All but the restart tests take the ``peer`` fixture, so they also run against RabbitMQ:
``DISPATCHD_PEER_PORT=5692 pytest tests/test_ttl.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from tests.basic_support import WAIT, Inbox, Peer, pump, quiet, wait_count
from tests.basic_support import peer as peer
from tests.conftest import BrokerProcess, free_port
from tests.support import get_all

PERSISTENT = 2


def publish(
    channel: BlockingChannel,
    queue: str,
    body: bytes,
    expiration: str | None = None,
    **props: object,
) -> None:
    """Publish to ``queue`` through the default exchange, with an optional expiration."""
    properties = pika.BasicProperties(expiration=expiration, **props)  # type: ignore[arg-type]
    channel.basic_publish("", queue, body, properties)


def gone_after(peer: Peer, queue: str, start: float) -> float:
    """Poll the queue's count until it is 0; seconds from ``start`` (monotonic) until then."""
    assert wait_count(peer, queue, 0) == 0, f"{queue} never emptied"
    return time.monotonic() - start


def wait_ready(channel: BlockingChannel, queue: str, count: int) -> None:
    """Poll the queue's ready count (passive declare) until it is ``count``, or fail."""
    assert pump(
        channel.connection,
        lambda: channel.queue_declare(queue, passive=True).method.message_count == count,
    ), f"{queue} never had {count} ready"


def test_queue_ttl_expires_from_head_without_consumer(peer: Peer) -> None:
    queue = peer.queue(**{"x-message-ttl": 300})
    channel = peer.admin()
    start = time.monotonic()
    for i in range(3):
        publish(channel, queue, f"m{i}".encode())
    assert peer.count(queue) == 3  # confirmed, well within the TTL
    elapsed = gone_after(peer, queue, start)
    assert 0.29 <= elapsed < WAIT  # not before the TTL, and without anyone asking
    assert channel.basic_get(queue, auto_ack=True)[0] is None


def test_per_message_expiration(peer: Peer) -> None:
    queue = peer.queue()
    channel = peer.admin()
    start = time.monotonic()
    publish(channel, queue, b"short", "150")
    publish(channel, queue, b"long", "600000")
    publish(channel, queue, b"forever")
    assert peer.count(queue) == 3
    assert wait_count(peer, queue, 2) == 2
    assert time.monotonic() - start >= 0.14
    quiet(channel.connection, 0.2)
    assert peer.count(queue) == 2
    method, props, body = channel.basic_get(queue, auto_ack=True)
    assert (body, props.expiration) == (b"long", "600000")  # the property is delivered as is
    assert channel.basic_get(queue, auto_ack=True)[2] == b"forever"


def test_expired_behind_the_head_counts_until_it_reaches_the_head(peer: Peer) -> None:
    queue = peer.queue()
    channel = peer.admin()
    publish(channel, queue, b"head", "600000")
    publish(channel, queue, b"behind", "50")
    quiet(channel.connection, 0.3)
    assert peer.count(queue) == 2  # only the head is examined
    method, _props, body = channel.basic_get(queue, auto_ack=True)
    # Taking the head uncovers the expired one, which goes at once: not counted, not given.
    assert (body, method.message_count) == (b"head", 0)
    assert channel.basic_get(queue, auto_ack=True)[0] is None
    assert peer.count(queue) == 0


@pytest.mark.parametrize(
    ("queue_ttl", "expiration"),
    [(150, "600000"), (600000, "150")],
    ids=["queue-ttl-smaller", "message-ttl-smaller"],
)
def test_the_smaller_of_queue_and_message_ttl_applies(
    peer: Peer, queue_ttl: int, expiration: str
) -> None:
    queue = peer.queue(**{"x-message-ttl": queue_ttl})
    channel = peer.admin()
    start = time.monotonic()
    publish(channel, queue, b"m", expiration)
    assert peer.count(queue) == 1
    assert 0.14 <= gone_after(peer, queue, start) < WAIT


def test_ttl_zero_delivers_to_a_waiting_consumer_and_drops_otherwise(peer: Peer) -> None:
    queue = peer.queue(**{"x-message-ttl": 0})
    channel = peer.admin()
    publish(channel, queue, b"nobody")
    assert peer.count(queue) == 0
    assert channel.basic_get(queue, auto_ack=True)[0] is None
    consumer = peer.channel()
    consumer.basic_qos(prefetch_count=1)
    inbox = Inbox()
    consumer.basic_consume(queue, inbox)
    publish(channel, queue, b"one")
    publish(channel, queue, b"two")  # the consumer has no room for it: dropped
    assert inbox.wait(consumer.connection, 1)
    assert peer.count(queue) == 0
    consumer.basic_ack(inbox.items[0].delivery_tag)
    quiet(consumer.connection)
    assert inbox.bodies() == [b"one"]
    publish(channel, queue, b"three")  # room again: delivered
    assert inbox.wait(consumer.connection, 2)
    assert inbox.bodies() == [b"one", b"three"]


def test_expiration_zero_property_behaves_like_ttl_zero(peer: Peer) -> None:
    queue = peer.queue()
    channel = peer.admin()
    publish(channel, queue, b"nobody", "0")
    assert peer.count(queue) == 0
    consumer = peer.channel()
    got: list[tuple[bytes, str | None]] = []
    consumer.basic_consume(
        queue, lambda _c, _m, props, body: got.append((body, props.expiration)), auto_ack=True
    )
    publish(channel, queue, b"waited-for", "0")
    assert pump(consumer.connection, lambda: got)
    assert got == [(b"waited-for", "0")]


def test_requeued_message_keeps_its_original_expiry(peer: Peer) -> None:
    queue = peer.queue(**{"x-message-ttl": 300})
    channel = peer.channel()
    start = time.monotonic()
    publish(channel, queue, b"m")
    method, _props, _body = channel.basic_get(queue)
    channel.basic_nack(method.delivery_tag, requeue=True)  # within its TTL: back in the queue
    method, _props, body = channel.basic_get(queue)
    assert (body, method.redelivered) == (b"m", True)
    quiet(channel.connection, max(0.0, 0.45 - (time.monotonic() - start)))
    channel.basic_nack(method.delivery_tag, requeue=True)
    # Its TTL ran out while it was unacknowledged: the requeue does not start a new one.
    assert channel.basic_get(queue)[0] is None
    assert peer.count(queue) == 0


def test_expired_messages_are_never_delivered(peer: Peer) -> None:
    queue = peer.queue(**{"x-message-ttl": 200})
    consumer = peer.channel()
    consumer.basic_qos(prefetch_count=1)
    inbox = Inbox()
    consumer.basic_consume(queue, inbox)
    channel = peer.admin()
    for i in range(5):
        publish(channel, queue, f"m{i}".encode())
    assert inbox.wait(consumer.connection, 1)
    quiet(consumer.connection, 0.4)  # the other four expire behind the unacked one
    assert len(inbox.items) == 1
    consumer.basic_ack(inbox.items[0].delivery_tag)
    quiet(consumer.connection, 0.3)
    assert inbox.bodies() == [b"m0"]
    assert peer.count(queue) == 0
    publish(channel, queue, b"fresh")  # and the consumer still works
    assert inbox.wait(consumer.connection, 2)
    assert inbox.bodies() == [b"m0", b"fresh"]


EXPIRATION_ERRORS = [
    ("abc", "no_integer"),
    ("", "no_integer"),
    (" 5", "no_integer"),
    ("-1", "{value_negative,-1}"),
    ("1.5", '{leftover_string,".5"}'),
    ("12abc", '{leftover_string,"abc"}'),
    ("-5x", '{leftover_string,"x"}'),
    ("5 ", '{leftover_string," "}'),
    ("315360000001", "{value_too_large,315360000001}"),
    # io_lib's ~p breaks a term that would pass the line width
    ("99999999999999999999", "{value_too_large,\n" + " " * 44 + "99999999999999999999}"),
]


@pytest.mark.parametrize(
    ("expiration", "error"),
    EXPIRATION_ERRORS,
    ids=[repr(expiration) for expiration, _ in EXPIRATION_ERRORS],
)
def test_invalid_expiration_closes_the_channel(peer: Peer, expiration: str, error: str) -> None:
    queue = peer.queue()
    channel = peer.channel()
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        publish(channel, queue, b"m", expiration)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid expiration '{expiration}': {error}"
    )
    assert peer.count(queue) == 0


def test_invalid_expiration_is_refused_even_when_unroutable(peer: Peer) -> None:
    channel = peer.channel()
    publish(channel, "dtest-no-such-queue", b"m", "abc")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare("", exclusive=True)
    assert (info.value.reply_code, info.value.reply_text) == (
        406,
        "PRECONDITION_FAILED - invalid expiration 'abc': no_integer",
    )


@pytest.mark.parametrize("expiration", ["+5000", "-0", "315360000000", "4294967296"])
def test_valid_expiration_edge_cases_are_accepted(peer: Peer, expiration: str) -> None:
    queue = peer.queue()
    channel = peer.channel()
    channel.confirm_delivery()
    publish(channel, queue, b"m", expiration)
    assert channel.is_open
    if expiration != "-0":  # -0 is an expiration of 0: dropped at once
        method, props, _body = channel.basic_get(queue, auto_ack=True)
        assert props.expiration == expiration


# ----- restarts


def restart_after(broker: BrokerProcess, seconds: float) -> None:
    """Stop the broker cleanly, let ``seconds`` pass while it is down, start it again."""
    assert broker.stop() == 0, broker.log
    time.sleep(seconds)
    broker.start()


def test_restart_drops_what_expired_while_down_and_expires_the_rest_on_time(
    fresh_broker: BrokerProcess,
) -> None:
    connection = fresh_broker.connect()
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare("tq", durable=True)
    channel.queue_declare("qttl", durable=True, arguments={"x-message-ttl": 300})
    published = time.time()
    publish(channel, "tq", b"short", "200", delivery_mode=PERSISTENT)
    publish(channel, "tq", b"long", "3000", delivery_mode=PERSISTENT)
    publish(channel, "tq", b"plain", delivery_mode=PERSISTENT)
    publish(channel, "qttl", b"q", delivery_mode=PERSISTENT)
    connection.close()
    restart_after(fresh_broker, 1.2)  # "short" and "q" expire while the broker is down
    connection = fresh_broker.connect()
    channel = connection.channel()
    assert time.time() - published < 2.6, "the restart took too long for this test"
    assert channel.queue_declare("qttl", passive=True).method.message_count == 0
    assert channel.basic_get("qttl", auto_ack=True)[0] is None
    # "long" has over 0.4 s left: still there, at the head.
    assert channel.queue_declare("tq", passive=True).method.message_count == 2
    assert pump(
        connection, lambda: channel.queue_declare("tq", passive=True).method.message_count == 1, 8
    ), "the pending message never expired"
    gone = time.time() - published
    # On time: its expiry counts from the publish, not from the restart (1.2 s later).
    assert 2.9 <= gone < 4.0
    method, props, body = channel.basic_get("tq", auto_ack=True)
    assert (body, props.expiration, method.message_count) == (b"plain", None, 0)
    connection.close()


def test_requeued_expiry_survives_restart(fresh_broker: BrokerProcess) -> None:
    connection = fresh_broker.connect()
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare("rq", durable=True)
    publish(channel, "rq", b"a", "1000", delivery_mode=PERSISTENT)
    publish(channel, "rq", b"b", delivery_mode=PERSISTENT)
    method, _props, body = channel.basic_get("rq")
    assert body == b"a"
    channel.basic_nack(method.delivery_tag, requeue=True)
    connection.close()
    restart_after(fresh_broker, 1.2)  # "a" expired while down, requeued or not
    connection = fresh_broker.connect()
    channel = connection.channel()
    method, props, body = channel.basic_get("rq", auto_ack=True)
    assert (body, method.redelivered, method.message_count) == (b"b", False, 0)
    connection.close()


def test_priority_queue_with_ttl_after_restart(tmp_path: Path) -> None:
    broker = BrokerProcess(free_port(), tmp_path / "data", tmp_path / "broker.log").start()
    try:
        connection = broker.connect()
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare("dlq", durable=True)
        channel.queue_declare(
            "pq",
            durable=True,
            arguments={
                "x-max-priority": 5,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": "dlq",
            },
        )
        items = [("hi5", 5, "300"), ("lo1", 1, None), ("mid3", 3, "600000"), ("lo1b", 1, "300")]
        for body, priority, expiration in items:
            props = pika.BasicProperties(
                priority=priority, expiration=expiration, delivery_mode=PERSISTENT
            )
            channel.basic_publish("", "pq", body.encode(), props)
        connection.close()
        restart_after(broker, 0.8)
        connection = broker.connect()
        channel = connection.channel()
        # hi5 was at the head and expired: dead-lettered on recovery, reason expired.
        wait_ready(channel, "dlq", 1)
        method, props, body = channel.basic_get("dlq", auto_ack=True)
        assert body == b"hi5"
        assert props.delivery_mode == PERSISTENT
        (death,) = props.headers["x-death"]
        assert (death["reason"], death["queue"], death["original-expiration"]) == (
            "expired",
            "pq",
            "300",
        )
        got = [body.decode() for _method, _props, body in get_all(channel, "pq")]
        # lo1b expired too: it goes when it reaches the head, after lo1.
        assert got == ["mid3", "lo1"]
        assert channel.queue_declare("pq", passive=True).method.message_count == 0
        wait_ready(channel, "dlq", 1)
        assert [body.decode() for _m, _p, body in get_all(channel, "dlq")] == ["lo1b"]
        connection.close()
    finally:
        broker.stop()
