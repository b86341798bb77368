"""tx.select/commit/rollback: publishes and acks held until commit, rollback restoring acked
deliveries, commit-ok only once the queues have the messages, and RabbitMQ's errors.

Run against RabbitMQ with ``DISPATCHD_PEER_PORT=5692`` (see tests/basic_support.py).
"""

from __future__ import annotations

import pytest
from pika import spec
from pika.adapters.blocking_connection import BlockingChannel

from tests.basic_support import Peer, assert_closes, bodies, raw_publish, replies, wait_count
from tests.basic_support import peer as peer

NOT_TRANSACTIONAL = "PRECONDITION_FAILED - channel is not transactional"

ERRORS = {
    "commit without select": (
        [spec.Tx.Commit()],
        ("Channel.Close", 406, NOT_TRANSACTIONAL, 90, 20),
    ),
    "rollback without select": (
        [spec.Tx.Rollback()],
        ("Channel.Close", 406, NOT_TRANSACTIONAL, 90, 30),
    ),
    "confirm.select on a tx channel": (
        [spec.Tx.Select(), spec.Confirm.Select()],
        (
            "Channel.Close",
            406,
            "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
            85,
            10,
        ),
    ),
    "tx.select on a confirm channel": (
        [spec.Confirm.Select(), spec.Tx.Select()],
        (
            "Channel.Close",
            406,
            "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
            90,
            10,
        ),
    ),
    "publish to a missing exchange (no need to commit)": (
        [spec.Tx.Select(), lambda client, ch: client.publish(ch, "dtest-missing", "k", b"x")],
        ("Channel.Close", 404, "NOT_FOUND - no exchange 'dtest-missing' in vhost '/'", 60, 40),
    ),
}


@pytest.mark.parametrize("steps, expected", ERRORS.values(), ids=ERRORS.keys())
def test_errors_close_with_the_offending_method(
    peer: Peer, steps: list[object], expected: tuple[object, ...]
) -> None:
    assert_closes(peer, steps, expected)


def tx_channel(peer: Peer) -> BlockingChannel:
    """A channel in transaction mode."""
    channel = peer.channel()
    channel.tx_select()
    return channel


def sync(channel: BlockingChannel, queue: str) -> None:
    """A round trip on the channel: everything sent before it has been processed."""
    channel.queue_declare(queue, passive=True)


def test_publishes_wait_for_commit_and_are_queued_by_commit_ok(peer: Peer) -> None:
    queue = peer.queue()
    channel = tx_channel(peer)
    for body in bodies("m", 3):
        channel.basic_publish("", queue, body)
    sync(channel, queue)
    assert peer.count(queue) == 0
    channel.tx_commit()
    assert peer.count(queue) == 3  # no waiting: commit-ok means the queue has them
    assert [body for body, _ in peer.drain(queue)] == bodies("m", 3)


def test_rollback_discards_publishes(peer: Peer) -> None:
    queue = peer.queue()
    channel = tx_channel(peer)
    channel.basic_publish("", queue, b"discarded")
    channel.tx_rollback()
    channel.tx_commit()
    channel.basic_publish("", queue, b"kept")
    channel.tx_commit()
    assert peer.drain(queue) == [(b"kept", False)]


def unacked_gets(channel: BlockingChannel, queue: str, count: int) -> list[int]:
    """basic.get ``count`` messages without acking; their delivery tags."""
    return [channel.basic_get(queue)[0].delivery_tag for _ in range(count)]


def test_rollback_restores_acked_deliveries_to_unacked(peer: Peer) -> None:
    queue = peer.queue()
    peer.fill(queue, bodies("m", 2))
    channel = tx_channel(peer)
    first, _second = unacked_gets(channel, queue, 2)
    channel.basic_ack(first)
    channel.tx_rollback()
    channel.basic_ack(first)  # unacked again: no 406
    channel.tx_commit()
    channel.close()  # only m-1 was never acked
    assert wait_count(peer, queue, 1) == 1
    assert peer.drain(queue) == [(b"m-1", True)]


@pytest.mark.parametrize(
    "settle",
    [
        lambda ch, tag: ch.basic_ack(tag),
        lambda ch, tag: ch.basic_reject(tag, requeue=False),
        lambda ch, tag: ch.basic_nack(tag, requeue=False),
    ],
    ids=["ack", "reject", "nack"],
)
def test_settling_waits_for_commit(peer: Peer, settle: object) -> None:
    queue = peer.queue()
    peer.fill(queue, bodies("m", 2))
    channel = tx_channel(peer)
    first, second = unacked_gets(channel, queue, 2)
    settle(channel, first)  # type: ignore[operator]
    settle(channel, second)  # type: ignore[operator]
    channel.tx_commit()
    channel.close()
    assert peer.count(queue) == 0


def test_settling_without_commit_is_undone_by_close(peer: Peer) -> None:
    queue = peer.queue()
    peer.fill(queue, bodies("m", 2))
    channel = tx_channel(peer)
    first, second = unacked_gets(channel, queue, 2)
    channel.basic_ack(first)
    channel.basic_reject(second, requeue=False)
    channel.close()
    assert wait_count(peer, queue, 2) == 2
    assert peer.drain(queue) == [(b"m-0", True), (b"m-1", True)]


def test_recover_in_a_transaction_requeues_at_once(peer: Peer) -> None:
    queue = peer.queue()
    peer.fill(queue, bodies("m", 2))
    channel = tx_channel(peer)
    first, _second = unacked_gets(channel, queue, 2)
    channel.basic_ack(first)
    channel.basic_recover(requeue=True)  # m-1 back now; m-0's ack still pending
    assert wait_count(peer, queue, 1) == 1
    channel.tx_rollback()
    channel.basic_ack(first)
    channel.tx_commit()
    channel.close()
    assert peer.drain(queue) == [(b"m-1", True)]


def test_mandatory_return_comes_before_commit_ok(peer: Peer) -> None:
    client = peer.raw()
    client.rpc(1, spec.Tx.Select())
    raw_publish("dtest-nowhere", b"lost", mandatory=True)(client, 1)
    client.send_method(1, spec.Tx.Commit())
    got = replies(client, 1)
    assert [(m["method"], m.get("body")) for m in got] == [
        ("Basic.Return", "lost"),
        ("Tx.CommitOk", None),
    ]
