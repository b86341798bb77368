"""Publisher confirms: numbering from 1, every publish confirmed once every queue has it
(one ack for a message routed to several queues), unroutable messages confirmed after their
basic.return, coalescing with ``multiple``.

Run against RabbitMQ with ``DISPATCHD_PEER_PORT=5692`` (see tests/basic_support.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import pika
import pytest
from pika import spec

from tests.basic_support import Peer, raw_publish, replies
from tests.basic_support import peer as peer
from tests.conformance.rawclient import RawClient


def confirm_channel(peer: Peer) -> RawClient:
    """A raw client whose channel 1 is in confirm mode."""
    client = peer.raw()
    assert client.rpc(1, spec.Confirm.Select()).method.NAME == "Confirm.SelectOk"
    return client


def confirmations(frames: list[dict[str, Any]]) -> dict[int, int]:
    """Which frame (index) first confirmed each publish sequence number; asserts no nacks
    and no ack that confirms nothing new."""
    confirmed: dict[int, int] = {}
    for index, frame in enumerate(frames):
        assert frame["method"] != "Basic.Nack", frame
        if frame["method"] != "Basic.Ack":
            continue
        tag = frame["delivery_tag"]
        tags = range(1, tag + 1) if frame["multiple"] else [tag]
        new = [t for t in tags if t not in confirmed]
        assert new, f"ack {frame} confirms nothing new"
        confirmed.update((t, index) for t in new)
    return confirmed


def test_every_publish_is_confirmed_once_numbered_from_one(peer: Peer) -> None:
    queue = peer.queue()
    client = confirm_channel(peer)
    for i in range(200):
        raw_publish(queue, f"m-{i}".encode())(client, 1)
    for i in range(20):  # unroutable, every other one mandatory
        raw_publish("dtest-nowhere", f"u-{i}".encode(), mandatory=i % 2 == 0)(client, 1)
    frames = replies(client, 1)
    confirmed = confirmations(frames)
    assert sorted(confirmed) == list(range(1, 221))
    acks = [f for f in frames if f["method"] == "Basic.Ack"]
    assert len(acks) < 220  # coalesced with multiple=true
    returns = {f["body"]: i for i, f in enumerate(frames) if f["method"] == "Basic.Return"}
    assert sorted(returns) == sorted(f"u-{i}" for i in range(0, 20, 2))
    for body, index in returns.items():
        assert index < confirmed[201 + int(body[2:])]  # the return precedes the ack


def test_a_message_in_three_queues_is_confirmed_once(peer: Peer) -> None:
    exchange = f"dtest-x-{uuid.uuid4().hex[:12]}"
    client = peer.raw()
    client.rpc(1, spec.Exchange.Declare(exchange=exchange, type="fanout"))
    try:
        queues = [peer.queue() for _ in range(3)]
        for queue in queues:
            client.rpc(1, spec.Queue.Bind(queue=queue, exchange=exchange))
        client.rpc(1, spec.Confirm.Select())
        client.publish(1, exchange, "", b"everywhere")
        frames = replies(client, 1)
        assert [(f["method"], f["delivery_tag"], f["multiple"]) for f in frames] == [
            ("Basic.Ack", 1, False)
        ]
        assert [peer.count(queue) for queue in queues] == [1, 1, 1]
    finally:
        client.rpc(1, spec.Exchange.Delete(exchange=exchange))


def test_unroutable_messages_are_confirmed_after_their_return(peer: Peer) -> None:
    client = confirm_channel(peer)
    raw_publish("dtest-nowhere", b"returned", mandatory=True)(client, 1)
    raw_publish("dtest-nowhere", b"dropped")(client, 1)
    frames = replies(client, 1)
    assert frames[0]["method"] == "Basic.Return"
    assert (frames[0]["reply_code"], frames[0]["reply_text"]) == (312, "NO_ROUTE")
    assert frames[0]["body"] == "returned"
    assert sorted(confirmations(frames)) == [1, 2]


def test_confirm_select_again_and_nowait(peer: Peer) -> None:
    client = confirm_channel(peer)
    assert client.rpc(1, spec.Confirm.Select()).method.NAME == "Confirm.SelectOk"
    client.send_method(1, spec.Confirm.Select(nowait=True))
    assert client.rpc(1, spec.Basic.Qos()).method.NAME == "Basic.QosOk"


def test_pika_confirm_delivery(peer: Peer) -> None:
    queue = peer.queue()
    channel = peer.channel()
    channel.confirm_delivery()
    channel.basic_publish("", queue, b"persistent", pika.BasicProperties(delivery_mode=2))
    with pytest.raises(pika.exceptions.UnroutableError):
        channel.basic_publish("", "dtest-nowhere", b"x", mandatory=True)
    channel.basic_publish("", queue, b"transient")
    assert peer.count(queue) == 2
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        channel.basic_publish("dtest-missing", "k", b"x")
    assert closed.value.reply_code == 404
