"""basic.*: consume and cancel, publish and return, get, ack/nack/reject/recover, requeue
order, bodies of every size, and RabbitMQ's errors with the offending method's ids.

Run against RabbitMQ with ``DISPATCHD_PEER_PORT=5692`` (see tests/basic_support.py).
"""

from __future__ import annotations

import os
import re
import uuid

import pika
import pytest
from pika import spec

from tests.basic_support import (
    Inbox,
    Peer,
    assert_closes,
    bodies,
    pump,
    quiet,
    raw_publish,
    replies,
    wait_count,
)
from tests.basic_support import peer as peer

SERVER_NAMED = spec.Queue.Declare(queue="", exclusive=True)


def consume(queue: str = "", tag: str = "", **flags: bool) -> spec.Basic.Consume:
    """A raw basic.consume (the empty queue name means the channel's last declared queue)."""
    return spec.Basic.Consume(queue=queue, consumer_tag=tag, **flags)


def get(no_ack: bool = False) -> spec.Basic.Get:
    """A raw basic.get of the channel's last declared queue."""
    return spec.Basic.Get(queue="", no_ack=no_ack)


def precondition(tag: int, method_id: int) -> tuple[object, ...]:
    """The channel.close RabbitMQ sends for an unknown delivery tag."""
    return (
        "Channel.Close",
        406,
        f"PRECONDITION_FAILED - unknown delivery tag {tag}",
        60,
        method_id,
    )


OWN_QUEUE = f"dtest-own-{uuid.uuid4().hex[:12]}"  # exclusive: one per raw connection
THREE_GOT = [  # delivery tags 1, 2 and 3, unacked
    spec.Queue.Declare(queue=OWN_QUEUE, exclusive=True),
    *(raw_publish(OWN_QUEUE, b"x") for _ in range(3)),
    get(),
    get(),
    get(),
]

ERRORS = {
    "ack of an unknown tag": ([spec.Basic.Ack(delivery_tag=5)], precondition(5, 80)),
    "ack of tag 0 without multiple": ([spec.Basic.Ack(delivery_tag=0)], precondition(0, 80)),
    "reject of an unknown tag": ([spec.Basic.Reject(delivery_tag=3)], precondition(3, 90)),
    "nack multiple of an unknown tag": (
        [spec.Basic.Nack(delivery_tag=3, multiple=True)],
        precondition(3, 120),
    ),
    "double ack": (
        [*THREE_GOT, spec.Basic.Ack(delivery_tag=2), spec.Basic.Ack(delivery_tag=2)],
        precondition(2, 80),
    ),
    "ack multiple naming an acked tag": (
        [*THREE_GOT, spec.Basic.Ack(delivery_tag=2), spec.Basic.Ack(delivery_tag=2, multiple=True)],
        precondition(2, 80),
    ),
    "ack multiple above every tag": (
        [*THREE_GOT, spec.Basic.Ack(delivery_tag=7, multiple=True)],
        precondition(7, 80),
    ),
    "recover without requeue": (
        [spec.Basic.Recover(requeue=False)],
        ("Connection.Close", 540, "NOT_IMPLEMENTED - requeue=false", 60, 110),
    ),
    "recover-async without requeue": (
        [spec.Basic.RecoverAsync(requeue=False)],
        ("Connection.Close", 540, "NOT_IMPLEMENTED - requeue=false", 60, 100),
    ),
    "consume from a missing queue": (
        [consume("dtest-missing")],
        ("Channel.Close", 404, "NOT_FOUND - no queue 'dtest-missing' in vhost '/'", 60, 20),
    ),
    "duplicate consumer tag": (
        [SERVER_NAMED, consume(tag="dup"), consume(tag="dup")],
        ("Connection.Close", 530, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'", 60, 20),
    ),
    "exclusive consume on a queue with a consumer": (
        [SERVER_NAMED, consume(tag="a"), consume(tag="b", exclusive=True)],
        (
            "Channel.Close",
            403,
            "ACCESS_REFUSED - queue 'amq.gen-*' in vhost '/' in exclusive use",
            60,
            20,
        ),
    ),
    "consume on a queue with an exclusive consumer": (
        [SERVER_NAMED, consume(tag="a", exclusive=True), consume(tag="b")],
        (
            "Channel.Close",
            403,
            "ACCESS_REFUSED - queue 'amq.gen-*' in vhost '/' in exclusive use",
            60,
            20,
        ),
    ),
    "publish to a missing exchange": (
        [lambda client, ch: client.publish(ch, "dtest-missing", "k", b"x")],
        ("Channel.Close", 404, "NOT_FOUND - no exchange 'dtest-missing' in vhost '/'", 60, 40),
    ),
    "publish with immediate": (
        [raw_publish("k", b"x", immediate=True)],
        ("Connection.Close", 540, "NOT_IMPLEMENTED - immediate=true", 60, 40),
    ),
}


@pytest.mark.parametrize("steps, expected", ERRORS.values(), ids=ERRORS.keys())
def test_errors_close_with_the_offending_method(
    peer: Peer, steps: list[object], expected: tuple[object, ...]
) -> None:
    assert_closes(peer, steps, expected)


# ----- consumers


def settle_all(channel: pika.adapters.blocking_connection.BlockingChannel) -> None:
    """Ack everything delivered on the channel so far (ack multiple, tag 0)."""
    channel.basic_ack(delivery_tag=0, multiple=True)


def test_round_robin_respects_each_consumers_prefetch(peer: Peer) -> None:
    queue = peer.queue()
    connection = peer.connect()
    slow, fast = connection.channel(), connection.channel()
    slow.basic_qos(prefetch_count=1)
    fast.basic_qos(prefetch_count=3)
    inbox = Inbox()
    slow.basic_consume(queue, inbox, consumer_tag="slow")
    fast.basic_consume(queue, inbox, consumer_tag="fast")
    sent = bodies("m", 10)
    peer.fill(queue, sent)

    assert inbox.wait(connection, 4)
    quiet(connection)
    assert inbox.bodies("slow") == [b"m-0"]
    assert inbox.bodies("fast") == [b"m-1", b"m-2", b"m-3"]

    settle_all(slow)  # one ack, one more delivery
    assert inbox.wait(connection, 5)
    quiet(connection)
    assert inbox.bodies("slow") == [b"m-0", b"m-4"]

    while len(inbox.items) < len(sent):
        count = len(inbox.items)
        settle_all(slow)
        settle_all(fast)
        assert inbox.wait(connection, count + 1)
    assert sorted(inbox.bodies()) == sorted(sent)
    assert not any(d.redelivered for d in inbox.items)


def test_round_robin_without_prefetch_alternates(peer: Peer) -> None:
    queue = peer.queue()
    channel = peer.channel()
    inbox = Inbox()
    channel.basic_consume(queue, inbox, auto_ack=True, consumer_tag="a")
    channel.basic_consume(queue, inbox, auto_ack=True, consumer_tag="b")
    peer.fill(queue, bodies("m", 6))
    assert inbox.wait(channel.connection, 6)
    assert inbox.bodies("a") == [b"m-0", b"m-2", b"m-4"]
    assert inbox.bodies("b") == [b"m-1", b"m-3", b"m-5"]


def test_server_generates_unique_consumer_tags(peer: Peer) -> None:
    client = peer.raw()
    client.rpc(1, SERVER_NAMED)
    tags = [client.rpc(1, consume()).method.consumer_tag for _ in range(2)]
    assert all(re.fullmatch(r"amq\.ctag-[A-Za-z0-9_-]{22}", tag) for tag in tags), tags
    assert tags[0] != tags[1]


def test_cancel_stops_deliveries(peer: Peer) -> None:
    queue = peer.queue()
    channel = peer.channel()
    inbox = Inbox()
    tag = channel.basic_consume(queue, inbox, auto_ack=True)
    peer.fill(queue, [b"before"])
    assert inbox.wait(channel.connection, 1)
    channel.basic_cancel(tag)
    assert tag not in channel.consumer_tags
    peer.fill(queue, [b"after"])
    quiet(channel.connection)
    assert inbox.bodies() == [b"before"]
    assert peer.count(queue) == 1


def test_cancel_of_an_unknown_tag_is_answered(peer: Peer) -> None:
    client = peer.raw()
    reply = client.rpc(1, spec.Basic.Cancel(consumer_tag="nobody"))
    assert reply.method == spec.Basic.CancelOk(consumer_tag="nobody")


def test_cancel_ok_comes_after_the_deliveries_sent_before_it(peer: Peer) -> None:
    queue = peer.queue()
    peer.fill(queue, bodies("m", 50))
    client = peer.raw()
    client.send_method(1, consume(queue, "c"))
    client.send_method(1, spec.Basic.Cancel(consumer_tag="c"))
    frames = replies(client, 1)
    names = [f["method"] for f in frames]
    assert names[0] == "Basic.ConsumeOk"
    assert names.count("Basic.CancelOk") == 1
    delivered = names.index("Basic.CancelOk") - 1
    assert names[1 : delivered + 1] == ["Basic.Deliver"] * delivered
    assert names[delivered + 2 :] == []  # nothing after cancel-ok
    assert [f["body"] for f in frames[1 : delivered + 1]] == [
        b.decode() for b in bodies("m", delivered)
    ]
    assert peer.count(queue) == 50 - delivered


def test_queue_deletion_cancels_consumers_that_asked_to_know(peer: Peer) -> None:
    queue = peer.queue()
    channel = peer.channel()
    cancelled: list[str] = []
    channel.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = channel.basic_consume(queue, Inbox())
    peer.admin().queue_delete(queue)
    assert pump(channel.connection, lambda: cancelled)
    assert cancelled == [tag]
    assert tag not in channel.consumer_tags
    assert channel.is_open


def test_queue_deletion_is_silent_without_consumer_cancel_notify(peer: Peer) -> None:
    queue = peer.queue()
    client = peer.raw(capabilities={})
    assert client.rpc(1, consume(queue, "c")).method.NAME == "Basic.ConsumeOk"
    peer.admin().queue_delete(queue)
    assert replies(client, 1) == []
    reply = client.rpc(1, spec.Basic.Cancel(consumer_tag="c"))
    assert reply.method == spec.Basic.CancelOk(consumer_tag="c")


# ----- publish, return, get


def test_mandatory_unroutable_is_returned(peer: Peer) -> None:
    queue = peer.queue()
    channel = peer.channel()
    returned: list[tuple[spec.Basic.Return, bytes]] = []
    channel.add_on_return_callback(
        lambda _ch, method, _props, body: returned.append((method, body))
    )
    channel.basic_publish("", "dtest-nowhere", b"lost", mandatory=True)
    channel.basic_publish("", "dtest-nowhere", b"dropped")
    channel.basic_publish("", queue, b"routed", mandatory=True)
    assert pump(channel.connection, lambda: returned)
    quiet(channel.connection)
    assert len(returned) == 1
    method, body = returned[0]
    assert (method.reply_code, method.reply_text) == (312, "NO_ROUTE")
    assert (method.exchange, method.routing_key, body) == ("", "dtest-nowhere", b"lost")
    assert peer.drain(queue) == [(b"routed", False)]


def test_get_reports_the_remaining_count(peer: Peer) -> None:
    queue = peer.queue()
    peer.fill(queue, bodies("m", 3))
    channel = peer.channel()
    seen = []
    for _ in range(3):
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        seen.append((body, method.message_count, method.redelivered))
    assert seen == [(b"m-0", 2, False), (b"m-1", 1, False), (b"m-2", 0, False)]
    assert channel.basic_get(queue) == (None, None, None)


def test_a_publish_is_visible_to_a_get_right_after_it(peer: Peer) -> None:
    queue = peer.queue()
    channel = peer.channel()
    for body in bodies("m", 20):
        channel.basic_publish("", queue, body)
        method, _props, got = channel.basic_get(queue, auto_ack=True)
        assert got == body


BODY_SIZES = {
    "empty": 0,
    "one byte": 1,
    "one full frame": 131072 - 8,
    "one byte over a frame": 131072 - 7,
    "three frames and a byte": 3 * 131072 + 1,
    "one MiB": 1 << 20,
}


def test_bodies_of_any_size_survive_framing(peer: Peer) -> None:
    queue = peer.queue()
    channel = peer.channel()
    sent = [os.urandom(size) for size in BODY_SIZES.values()]
    for body in sent:
        channel.basic_publish("", queue, body)
    got = [channel.basic_get(queue, auto_ack=True)[2] for _ in sent]
    assert [len(b) for b in got] == list(BODY_SIZES.values())
    assert got == sent
    for body in sent:
        channel.basic_publish("", queue, body)
    inbox = Inbox()
    channel.basic_consume(queue, inbox, auto_ack=True)
    assert inbox.wait(channel.connection, len(sent))
    assert inbox.bodies() == sent


# ----- ack, nack, reject, recover and requeue


def get_unacked(
    channel: pika.adapters.blocking_connection.BlockingChannel, queue: str, count: int
) -> list[int]:
    """basic.get ``count`` messages without acking them; their delivery tags."""
    return [channel.basic_get(queue)[0].delivery_tag for _ in range(count)]


def test_requeued_messages_return_to_their_original_position(peer: Peer) -> None:
    queue = peer.queue()
    peer.fill(queue, bodies("m", 5))
    channel = peer.channel()
    first, second, _third = get_unacked(channel, queue, 3)
    channel.basic_reject(second, requeue=True)
    channel.basic_nack(first, requeue=True)
    assert wait_count(peer, queue, 4) == 4
    assert peer.drain(queue) == [
        (b"m-0", True),
        (b"m-1", True),
        (b"m-3", False),
        (b"m-4", False),
    ]
    channel.close()  # m-2, still unacknowledged, goes back
    assert wait_count(peer, queue, 1) == 1
    assert peer.drain(queue) == [(b"m-2", True)]


def test_nack_multiple_and_reject_without_requeue(peer: Peer) -> None:
    queue = peer.queue()
    peer.fill(queue, bodies("m", 6))
    channel = peer.channel()
    tags = get_unacked(channel, queue, 6)
    channel.basic_nack(tags[2], multiple=True, requeue=True)  # m-0..m-2 back
    channel.basic_reject(tags[3], requeue=False)  # m-3 dropped
    channel.basic_nack(tags[5], multiple=True, requeue=False)  # m-4, m-5 dropped
    channel.basic_ack(0, multiple=True)  # nothing left to ack: no error
    assert wait_count(peer, queue, 3) == 3
    assert peer.drain(queue) == [(b"m-0", True), (b"m-1", True), (b"m-2", True)]
    channel.close()
    assert peer.count(queue) == 0


def test_recover_redelivers_everything_unacked(peer: Peer) -> None:
    queue = peer.queue()
    peer.fill(queue, bodies("m", 3))
    channel = peer.channel()
    inbox = Inbox()
    channel.basic_consume(queue, inbox)
    assert inbox.wait(channel.connection, 3)
    channel.basic_recover(requeue=True)
    assert inbox.wait(channel.connection, 6)
    assert [(d.body, d.redelivered) for d in inbox.items] == [
        *((b, False) for b in bodies("m", 3)),
        *((b, True) for b in bodies("m", 3)),
    ]
    assert [d.delivery_tag for d in inbox.items] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("closing", ["channel", "connection"])
def test_closing_requeues_unacked_in_order(peer: Peer, closing: str) -> None:
    queue = peer.queue()
    sent = bodies("m", 5)
    peer.fill(queue, sent)
    channel = peer.channel()
    inbox = Inbox()
    channel.basic_consume(queue, inbox)
    assert inbox.wait(channel.connection, 5)
    channel.basic_ack(inbox.items[1].delivery_tag)
    (channel if closing == "channel" else channel.connection).close()
    assert wait_count(peer, queue, 4) == 4
    assert peer.drain(queue) == [(b, True) for b in sent if b != b"m-1"]


def test_deliveries_in_flight_when_the_channel_closes_are_requeued(peer: Peer) -> None:
    queue = peer.queue()
    sent = bodies("m", 300)
    peer.fill(queue, sent)
    client = peer.raw()
    client.send_method(1, consume(queue, "c"))
    client.send_method(1, spec.Channel.Close(200, "bye", 0, 0))
    assert "Channel.CloseOk" in [f["method"] for f in replies(client, 1)]
    assert wait_count(peer, queue, len(sent)) == len(sent)
    assert [body for body, _ in peer.drain(queue)] == sent
