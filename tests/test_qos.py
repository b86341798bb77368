"""basic.qos and channel.flow: per-consumer and per-channel (global) prefetch, alone and
together, changed while consumers run, with transactions; and RabbitMQ's flow answers.

Run against RabbitMQ with ``DISPATCHD_PEER_PORT=5692`` (see tests/basic_support.py).
"""

from __future__ import annotations

import pytest
from pika import spec
from pika.adapters.blocking_connection import BlockingChannel

from tests.basic_support import Inbox, Peer, assert_closes, bodies, quiet
from tests.basic_support import peer as peer


def consumers(channel: BlockingChannel, *queues: str, **flags: bool) -> Inbox:
    """One consumer per queue on the channel (tags c0, c1, ...), recording into one Inbox."""
    inbox = Inbox()
    for i, queue in enumerate(queues):
        channel.basic_consume(queue, inbox, consumer_tag=f"c{i}", **flags)
    return inbox


def settled_count(channel: BlockingChannel, inbox: Inbox, count: int) -> int:
    """Wait for ``count`` deliveries, then let a quiet spell show whether more come."""
    assert inbox.wait(channel.connection, count), len(inbox.items)
    quiet(channel.connection)
    return len(inbox.items)


def filled_queues(peer: Peer, count: int, size: int) -> list[str]:
    """``count`` queues of ``size`` messages each."""
    queues = [peer.queue() for _ in range(count)]
    for queue in queues:
        peer.fill(queue, bodies(queue, size))
    return queues


def test_prefetch_size_is_not_implemented(peer: Peer) -> None:
    assert_closes(
        peer,
        [spec.Basic.Qos(prefetch_size=10)],
        ("Connection.Close", 540, "NOT_IMPLEMENTED - prefetch_size!=0 (10)", 60, 10),
    )


def test_per_consumer_prefetch_applies_to_later_consumers_only(peer: Peer) -> None:
    first, second = filled_queues(peer, 2, 10)
    channel = peer.channel()
    channel.basic_qos(prefetch_count=2)
    inbox = consumers(channel, first)
    assert settled_count(channel, inbox, 2) == 2
    channel.basic_qos(prefetch_count=3)
    channel.basic_consume(second, inbox, consumer_tag="later")
    assert settled_count(channel, inbox, 5) == 5
    assert len(inbox.bodies("c0")) == 2


def test_global_prefetch_is_shared_by_the_channels_consumers(peer: Peer) -> None:
    queues = filled_queues(peer, 2, 5)
    channel = peer.channel()
    channel.basic_qos(prefetch_count=3, global_qos=True)
    inbox = consumers(channel, *queues)
    assert settled_count(channel, inbox, 3) == 3
    channel.basic_ack(inbox.items[0].delivery_tag)
    assert settled_count(channel, inbox, 4) == 4
    channel.basic_ack(0, multiple=True)
    assert settled_count(channel, inbox, 7) == 7
    channel.basic_ack(0, multiple=True)
    assert inbox.wait(channel.connection, 10)
    assert sorted(inbox.bodies()) == sorted(bodies(queues[0], 5) + bodies(queues[1], 5))


def test_consumer_and_channel_limits_apply_together(peer: Peer) -> None:
    queues = filled_queues(peer, 2, 20)
    channel = peer.channel()
    channel.basic_qos(prefetch_count=10)
    channel.basic_qos(prefetch_count=15, global_qos=True)
    inbox = consumers(channel, *queues)
    assert settled_count(channel, inbox, 15) == 15
    assert len(inbox.bodies("c0")) <= 10
    assert len(inbox.bodies("c1")) <= 10


@pytest.mark.parametrize("new_limit, expected", [(3, 3), (0, 5)], ids=["raised", "switched off"])
def test_changing_the_global_limit_affects_running_consumers(
    peer: Peer, new_limit: int, expected: int
) -> None:
    (queue,) = filled_queues(peer, 1, 5)
    channel = peer.channel()
    channel.basic_qos(prefetch_count=1, global_qos=True)
    inbox = consumers(channel, queue)
    assert settled_count(channel, inbox, 1) == 1
    channel.basic_qos(prefetch_count=new_limit, global_qos=True)
    assert settled_count(channel, inbox, expected) == expected


def test_global_limit_set_after_consuming_counts_unacked_deliveries(peer: Peer) -> None:
    (queue,) = filled_queues(peer, 1, 5)
    channel = peer.channel()
    inbox = consumers(channel, queue)
    assert settled_count(channel, inbox, 5) == 5
    channel.basic_qos(prefetch_count=4, global_qos=True)
    peer.fill(queue, [b"more"])
    quiet(channel.connection)
    assert len(inbox.items) == 5  # 5 unacked >= 4
    channel.basic_ack(inbox.items[1].delivery_tag, multiple=True)  # 3 unacked now
    assert settled_count(channel, inbox, 6) == 6


def test_basic_get_does_not_count_against_the_global_limit(peer: Peer) -> None:
    first, second = filled_queues(peer, 2, 5)
    channel = peer.channel()
    channel.basic_qos(prefetch_count=2, global_qos=True)
    assert channel.basic_get(second)[0] is not None  # unacked, but not a consumer delivery
    inbox = consumers(channel, first)
    assert settled_count(channel, inbox, 2) == 2


def test_acks_in_a_transaction_free_the_global_limit_at_commit(peer: Peer) -> None:
    (queue,) = filled_queues(peer, 1, 5)
    channel = peer.channel()
    channel.basic_qos(prefetch_count=2, global_qos=True)
    channel.tx_select()
    inbox = consumers(channel, queue)
    assert settled_count(channel, inbox, 2) == 2
    channel.basic_ack(inbox.items[0].delivery_tag)
    quiet(channel.connection)
    assert len(inbox.items) == 2
    channel.tx_commit()
    assert settled_count(channel, inbox, 3) == 3


def test_no_ack_consumers_ignore_prefetch(peer: Peer) -> None:
    first, second = filled_queues(peer, 2, 5)
    channel = peer.channel()
    channel.basic_qos(prefetch_count=1)
    inbox = consumers(channel, first, auto_ack=True)
    assert settled_count(channel, inbox, 5) == 5
    other = peer.channel()
    other.basic_qos(prefetch_count=1, global_qos=True)
    inbox = consumers(other, second, auto_ack=True)
    assert settled_count(other, inbox, 5) == 5


def test_channel_flow_active_is_acknowledged(peer: Peer) -> None:
    client = peer.raw()
    assert client.rpc(1, spec.Channel.Flow(active=True)).method == spec.Channel.FlowOk(active=True)


def test_channel_flow_inactive_is_not_implemented(peer: Peer) -> None:
    assert_closes(
        peer,
        [spec.Channel.Flow(active=False)],
        ("Connection.Close", 540, "NOT_IMPLEMENTED - active=false", 20, 20),
    )
