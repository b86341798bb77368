"""Direct reply-to (``amq.rabbitmq.reply-to``), as RabbitMQ 3.10 does it.

A channel consumes (no-ack) from ``amq.rabbitmq.reply-to``; its publishes with that reply-to
carry a reply name instead, and replies published to the name through the default exchange
go straight to the consumer. Run against RabbitMQ with ``DISPATCHD_PEER_PORT=5692``.
"""

from __future__ import annotations

from typing import Any

import pika
import pytest
from pika import spec
from pika.adapters.blocking_connection import BlockingChannel

from tests.basic_support import Inbox, Peer, assert_closes, pump, quiet
from tests.basic_support import peer as peer
from tests.support import wait_until

REPLY_TO = "amq.rabbitmq.reply-to"
ASKING = pika.BasicProperties(reply_to=REPLY_TO)


class Replies:
    """A reply consumer's callback: (exchange, routing key, body) of each reply."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, bytes]] = []

    def __call__(
        self,
        _channel: BlockingChannel,
        method: spec.Basic.Deliver,
        _properties: spec.BasicProperties,
        body: bytes,
    ) -> None:
        self.items.append((method.exchange, method.routing_key, body))


def next_message(channel: BlockingChannel, queue: str) -> tuple[Any, spec.BasicProperties, bytes]:
    """basic.get (auto-ack), polling until a message is there: (method, properties, body)."""

    def fetch() -> Any:
        got = channel.basic_get(queue, auto_ack=True)
        return got if got[0] is not None else None

    got = wait_until(fetch)
    assert got, f"nothing arrived in {queue}"
    return got


def reply_name(peer: Peer, channel: BlockingChannel) -> str:
    """The reply name a publish with reply-to ``amq.rabbitmq.reply-to`` carries."""
    queue = peer.queue()
    channel.basic_publish("", queue, b"ask", ASKING)
    _method, props, _body = next_message(peer.admin(), queue)
    assert props is not None
    return str(props.reply_to)


def test_rpc_round_trip(peer: Peer) -> None:
    client_connection = peer.connect()
    client = client_connection.channel()
    replies = Replies()
    client.basic_consume(REPLY_TO, replies, auto_ack=True)
    requests = peer.queue()
    for i in range(2):
        client.basic_publish(
            "", requests, f"req-{i}".encode(), pika.BasicProperties(reply_to=REPLY_TO)
        )

    server = peer.channel()
    server.confirm_delivery()
    names = set()
    for _ in range(2):
        _method, props, body = next_message(server, requests)
        assert props.reply_to.startswith(REPLY_TO + ".")
        names.add(props.reply_to)
        server.basic_publish("", props.reply_to, b"re:" + body)  # confirmed
    assert len(names) == 1  # one name for every publish of one consumer
    name = names.pop()
    assert pump(client_connection, lambda: len(replies.items) == 2)
    assert replies.items == [("", name, b"re:req-0"), ("", name, b"re:req-1")]
    ok = server.queue_declare(name, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (name, 0, 1)


def test_reconsuming_gives_a_new_name_and_the_old_one_is_gone(peer: Peer) -> None:
    connection = peer.connect()
    channel = connection.channel()
    tag = channel.basic_consume(REPLY_TO, Replies(), auto_ack=True)
    first = reply_name(peer, channel)
    channel.basic_cancel(tag)
    channel.basic_publish("", peer.queue(), b"x", ASKING)  # no reply consumer any more
    assert pump(connection, lambda: channel.is_closed)
    channel = connection.channel()
    channel.basic_consume(REPLY_TO, Replies(), auto_ack=True)
    second = reply_name(peer, channel)
    assert second != first and second.startswith(REPLY_TO + ".")

    sender = peer.channel()
    sender.confirm_delivery()
    sender.basic_publish("", first, b"dropped")  # confirmed all the same
    with pytest.raises(pika.exceptions.UnroutableError):
        sender.basic_publish("", first, b"returned", mandatory=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        sender.queue_declare(first, passive=True)
    assert closed.value.reply_code == 404
    assert closed.value.reply_text == f"NOT_FOUND - no queue '{first}' in vhost '/'"


def test_closed_connection_name_drops_replies(peer: Peer) -> None:
    connection = peer.connect()
    channel = connection.channel()
    channel.basic_consume(REPLY_TO, Replies(), auto_ack=True)
    name = reply_name(peer, channel)
    connection.close()
    sender = peer.channel()
    sender.confirm_delivery()
    sender.basic_publish("", name, b"dropped")
    with pytest.raises(pika.exceptions.UnroutableError):
        sender.basic_publish("", name, b"returned", mandatory=True)


def test_mandatory_reply_to_a_live_name_is_delivered_and_returned(peer: Peer) -> None:
    connection = peer.connect()
    channel = connection.channel()
    replies = Replies()
    channel.basic_consume(REPLY_TO, replies, auto_ack=True)
    name = reply_name(peer, channel)
    sender_connection = peer.connect()
    sender = sender_connection.channel()
    sender.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        sender.basic_publish("", name, b"both", mandatory=True)
    assert pump(connection, lambda: replies.items)
    assert replies.items == [("", name, b"both")]


def test_replies_between_connections_without_confirms(peer: Peer) -> None:
    connection = peer.connect()
    channel = connection.channel()
    inbox = Inbox()
    channel.basic_consume(REPLY_TO, inbox, auto_ack=True)
    name = reply_name(peer, channel)
    sender_connection = peer.connect()
    sender = sender_connection.channel()
    for i in range(50):
        sender.basic_publish("", name, f"r{i}".encode())
    assert inbox.wait(connection, 50)
    quiet(connection)
    assert inbox.bodies() == [f"r{i}".encode() for i in range(50)]


@pytest.mark.parametrize("consumer", [False, True], ids=["no consumer", "consumer"])
def test_passive_declare_of_the_pseudo_queue(peer: Peer, consumer: bool) -> None:
    channel = peer.channel()
    if consumer:
        channel.basic_consume(REPLY_TO, Replies(), auto_ack=True)
    ok = peer.channel().queue_declare(REPLY_TO, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (REPLY_TO, 0, 1)


def consume(no_ack: bool) -> Any:
    """A raw basic.consume of amq.rabbitmq.reply-to."""
    return spec.Basic.Consume(queue=REPLY_TO, no_ack=no_ack)


ERRORS: dict[str, tuple[list[Any], tuple[Any, ...]]] = {
    "consume with acks": (
        [consume(no_ack=False)],
        ("Channel.Close", 406, "PRECONDITION_FAILED - reply consumer cannot acknowledge", 60, 20),
    ),
    "consume twice": (
        [consume(no_ack=True), consume(no_ack=True)],
        ("Channel.Close", 406, "PRECONDITION_FAILED - reply consumer already set", 60, 20),
    ),
    "publish asking for replies without a reply consumer": (
        [lambda client, ch: client.publish(ch, "", "dtest-nowhere", b"x", ASKING)],
        ("Channel.Close", 406, "PRECONDITION_FAILED - fast reply consumer does not exist", 60, 40),
    ),
    "passive declare of a bogus reply name": (
        [spec.Queue.Declare(queue=REPLY_TO + ".bogus", passive=True)],
        (
            "Channel.Close",
            404,
            f"NOT_FOUND - no queue '{REPLY_TO}.bogus' in vhost '/'",
            50,
            10,
        ),
    ),
}


@pytest.mark.parametrize("steps, expected", ERRORS.values(), ids=ERRORS.keys())
def test_errors_close_with_the_offending_method(
    peer: Peer, steps: list[Any], expected: tuple[Any, ...]
) -> None:
    assert_closes(peer, steps, expected)
