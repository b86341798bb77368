"""Dead-lettering (``x-dead-letter-exchange`` / ``x-dead-letter-routing-key``) as RabbitMQ 3.10.

A message rejected or nacked without requeue, or expired, is republished to the queue's DLX
with an ``x-death`` header (count, reason, queue, time, exchange, routing-keys including CC,
original-expiration) and ``x-first-death-*`` headers, its ``expiration`` removed. A
dead-letter routing key replaces the message's keys and drops its CC header; a missing DLX
drops the message silently. A message that went round a cycle of queues back to one it
died in, with no rejection on the way, is dropped; a cycle with a rejection continues.

All but the restart test take the ``peer`` fixture, so they also run against RabbitMQ:
``DISPATCHD_PEER_PORT=5692 pytest tests/test_dead_letter.py``.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from pika import spec
from pika.adapters.blocking_connection import BlockingChannel

from tests.basic_support import Peer, pump, quiet, wait_count
from tests.basic_support import peer as peer
from tests.conftest import BrokerProcess
from tests.support import get_all

Got = tuple[spec.Basic.GetOk, spec.BasicProperties, bytes]


@pytest.fixture
def dlx(peer: Peer) -> Iterator[str]:
    """A uniquely named direct exchange, deleted after the test."""
    name = f"dtest-dlx-{uuid.uuid4().hex[:12]}"
    peer.admin().exchange_declare(name, "direct")
    yield name
    with pika.BlockingConnection(peer.params()) as connection:
        connection.channel().exchange_delete(name)


def get_one(channel: BlockingChannel, queue: str, ack: bool = True) -> Got:
    """basic.get a message, waiting for it to arrive (dead letters travel asynchronously)."""

    def arrived() -> Got | None:
        got = channel.basic_get(queue, auto_ack=ack)
        return got if got[0] is not None else None

    got = pump(channel.connection, arrived)
    assert got, f"nothing arrived in {queue}"
    return got


def assert_recent(stamp: Any) -> None:
    """An x-death time: an AMQP timestamp (pika gives a datetime) of about now."""
    assert isinstance(stamp, datetime.datetime), stamp
    assert abs(stamp.timestamp() - time.time()) < 60


def dlx_queue(peer: Peer, exchange: str = "", key: str | None = None, **more: Any) -> str:
    """A queue dead-lettering to ``exchange`` (with ``key`` as its DLRK if given)."""
    arguments: dict[str, Any] = {"x-dead-letter-exchange": exchange, **more}
    if key is not None:
        arguments["x-dead-letter-routing-key"] = key
    return peer.queue(**arguments)


def test_reject_dead_letters_with_x_death(peer: Peer, dlx: str) -> None:
    source = dlx_queue(peer, dlx)
    by_key, by_cc = peer.queue(), peer.queue()
    channel = peer.admin()
    channel.queue_bind(by_key, dlx, source)  # the message's own routing key
    channel.queue_bind(by_cc, dlx, "dtest-cc-key")  # and its CC key
    props = pika.BasicProperties(
        expiration="60000",
        headers={"CC": ["dtest-cc-key"], "keep": 1},
        message_id="id-1",
        delivery_mode=2,
    )
    channel.basic_publish("", source, b"body", props)
    method, _props, _body = channel.basic_get(source)
    channel.basic_reject(method.delivery_tag, requeue=False)
    assert peer.count(source) == 0
    for queue in (by_key, by_cc):
        method, got, body = get_one(channel, queue)
        assert (body, method.exchange, method.routing_key) == (b"body", dlx, source)
        assert (got.message_id, got.delivery_mode, got.expiration) == ("id-1", 2, None)
        headers = got.headers
        assert list(headers) == [
            "CC",
            "keep",
            "x-death",
            "x-first-death-exchange",
            "x-first-death-queue",
            "x-first-death-reason",
        ]
        assert headers["CC"] == ["dtest-cc-key"]
        assert headers["keep"] == 1
        assert (
            headers["x-first-death-exchange"],
            headers["x-first-death-queue"],
            headers["x-first-death-reason"],
        ) == ("", source, "rejected")
        (death,) = headers["x-death"]
        assert list(death) == [
            "count",
            "reason",
            "queue",
            "time",
            "exchange",
            "routing-keys",
            "original-expiration",
        ]
        assert_recent(death.pop("time"))
        assert death == {
            "count": 1,
            "reason": "rejected",
            "queue": source,
            "exchange": "",
            "routing-keys": [source, "dtest-cc-key"],
            "original-expiration": "60000",
        }
    assert peer.count(by_key) == peer.count(by_cc) == 0


def test_nack_without_requeue_dead_letters_and_with_requeue_does_not(peer: Peer) -> None:
    dead = peer.queue()
    source = dlx_queue(peer, "", dead)
    channel = peer.channel()
    for i in range(3):
        channel.basic_publish("", source, f"m{i}".encode())
    tags = [channel.basic_get(source)[0].delivery_tag for _ in range(3)]
    channel.basic_nack(tags[0], requeue=True)  # back in the source queue, not dead
    channel.basic_nack(tags[2], multiple=True, requeue=False)  # m1 and m2
    assert wait_count(peer, dead, 2) == 2
    got = [get_one(channel, dead) for _ in range(2)]
    assert [body for _m, _p, body in got] == [b"m1", b"m2"]
    for method, props, _body in got:
        assert (method.exchange, method.routing_key) == ("", dead)
        (death,) = props.headers["x-death"]
        assert (death["reason"], death["queue"], death["routing-keys"]) == (
            "rejected",
            source,
            [source],
        )
        assert "original-expiration" not in death
    method, _props, body = channel.basic_get(source, auto_ack=True)
    assert (body, method.redelivered) == (b"m0", True)


def test_dead_letter_routing_key_replaces_keys_and_drops_cc(peer: Peer, dlx: str) -> None:
    source = dlx_queue(peer, dlx, "dtest-dl-key")
    by_dlrk, by_key, by_cc = peer.queue(), peer.queue(), peer.queue()
    channel = peer.admin()
    channel.queue_bind(by_dlrk, dlx, "dtest-dl-key")
    channel.queue_bind(by_key, dlx, source)
    channel.queue_bind(by_cc, dlx, "dtest-cc-key")
    props = pika.BasicProperties(headers={"CC": ["dtest-cc-key"]})
    channel.basic_publish("", source, b"m", props)
    method, _props, _body = channel.basic_get(source)
    channel.basic_reject(method.delivery_tag, requeue=False)
    method, got, body = get_one(channel, by_dlrk)
    assert (body, method.exchange, method.routing_key) == (b"m", dlx, "dtest-dl-key")
    assert "CC" not in got.headers
    (death,) = got.headers["x-death"]
    assert death["routing-keys"] == [source, "dtest-cc-key"]  # what it was published with
    quiet(channel.connection, 0.1)
    assert peer.count(by_key) == peer.count(by_cc) == 0


def test_missing_dead_letter_exchange_drops_silently(peer: Peer) -> None:
    source = dlx_queue(peer, f"dtest-missing-{uuid.uuid4().hex[:8]}")
    channel = peer.channel()
    channel.basic_publish("", source, b"m")
    method, _props, _body = channel.basic_get(source)
    channel.basic_reject(method.delivery_tag, requeue=False)
    assert peer.count(source) == 0
    channel.basic_publish("", source, b"after")  # the channel is fine
    assert channel.basic_get(source, auto_ack=True)[2] == b"after"


def test_expired_messages_dead_letter_with_reason_expired(peer: Peer) -> None:
    dead = peer.queue()
    source = dlx_queue(peer, "", dead, **{"x-message-ttl": 50})
    channel = peer.admin()
    channel.basic_publish("", source, b"queue-ttl")
    channel.basic_publish("", source, b"own-ttl", pika.BasicProperties(expiration="20"))
    got = [get_one(channel, dead) for _ in range(2)]
    assert [body for _m, _p, body in got] == [b"queue-ttl", b"own-ttl"]
    for (_method, props, _body), original in zip(got, [None, "20"], strict=True):
        assert props.expiration is None
        (death,) = props.headers["x-death"]
        assert_recent(death.pop("time"))
        expected = {
            "count": 1,
            "reason": "expired",
            "queue": source,
            "exchange": "",
            "routing-keys": [source],
        }
        if original is not None:
            expected["original-expiration"] = original
        assert death == expected
        assert props.headers["x-first-death-reason"] == "expired"
    assert peer.count(source) == 0


def test_second_death_increments_count_and_moves_to_front(peer: Peer) -> None:
    a_name, b_name = f"dtest-a-{uuid.uuid4().hex[:8]}", f"dtest-b-{uuid.uuid4().hex[:8]}"
    peer.queues += [a_name, b_name]
    channel = peer.admin()
    for name, other in ((a_name, b_name), (b_name, a_name)):
        arguments = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": other}
        channel.queue_declare(name, arguments=arguments)
    worker = peer.channel()
    worker.basic_publish("", a_name, b"ping", pika.BasicProperties(headers={"CC": ["zz"]}))
    seen = []
    for queue in (a_name, b_name, a_name, b_name):
        method, props, _body = get_one(worker, queue, ack=False)
        seen.append(props.headers)
        worker.basic_reject(method.delivery_tag, requeue=False)
    _method, props, _body = get_one(worker, a_name)  # after the fourth rejection
    seen.append(props.headers)

    def deaths(headers: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for death in headers["x-death"]:
            assert_recent(death["time"])
            out.append({k: v for k, v in death.items() if k != "time"})
        return out

    a_entry = {"exchange": "", "queue": a_name, "reason": "rejected"}
    b_entry = {"exchange": "", "queue": b_name, "reason": "rejected"}
    a_keys, b_keys = [a_name, "zz"], [b_name]  # the DLRK dropped CC for the second death
    assert deaths(seen[1]) == [{"count": 1, **a_entry, "routing-keys": a_keys}]
    assert deaths(seen[2]) == [
        {"count": 1, **b_entry, "routing-keys": b_keys},
        {"count": 1, **a_entry, "routing-keys": a_keys},
    ]
    assert deaths(seen[3]) == [
        {"count": 2, **a_entry, "routing-keys": a_keys},
        {"count": 1, **b_entry, "routing-keys": b_keys},
    ]
    assert deaths(seen[4]) == [
        {"count": 2, **b_entry, "routing-keys": b_keys},
        {"count": 2, **a_entry, "routing-keys": a_keys},
    ]
    # A first entry keeps its fields in the order they were made; an updated or later one
    # has them sorted.
    sorted_fields = ["count", "exchange", "queue", "reason", "routing-keys", "time"]
    first_fields = ["count", "reason", "queue", "time", "exchange", "routing-keys"]
    assert list(seen[1]["x-death"][0]) == first_fields
    assert [list(d) for d in seen[2]["x-death"]] == [sorted_fields, first_fields]
    assert [list(d) for d in seen[3]["x-death"]] == [sorted_fields, sorted_fields]
    for headers in seen[1:]:  # the first death stays the first death
        assert (
            headers["x-first-death-exchange"],
            headers["x-first-death-queue"],
            headers["x-first-death-reason"],
        ) == ("", a_name, "rejected")


def test_expiry_cycle_back_to_the_same_queue_is_dropped(peer: Peer) -> None:
    name = f"dtest-self-{uuid.uuid4().hex[:8]}"
    peer.queues.append(name)
    channel = peer.admin()
    arguments = {
        "x-message-ttl": 50,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": name,
    }
    channel.queue_declare(name, arguments=arguments)
    channel.basic_publish("", name, b"loop")
    quiet(channel.connection, 0.4)
    # Had it come back, it would be in the queue most of the time: sample a few times.
    for _ in range(5):
        assert peer.count(name) == 0
        assert channel.basic_get(name, auto_ack=True)[0] is None
        quiet(channel.connection, 0.03)


def test_expiry_cycle_through_two_queues_is_dropped(peer: Peer) -> None:
    a_name, b_name = f"dtest-a-{uuid.uuid4().hex[:8]}", f"dtest-b-{uuid.uuid4().hex[:8]}"
    peer.queues += [a_name, b_name]
    channel = peer.admin()
    for name, other in ((a_name, b_name), (b_name, a_name)):
        arguments = {
            "x-message-ttl": 50,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": other,
        }
        channel.queue_declare(name, arguments=arguments)
    channel.basic_publish("", a_name, b"loop")
    quiet(channel.connection, 0.4)
    for _ in range(5):
        assert peer.count(a_name) == peer.count(b_name) == 0
        quiet(channel.connection, 0.03)


def test_cycle_with_a_rejection_in_it_continues(peer: Peer) -> None:
    a_name, b_name = f"dtest-a-{uuid.uuid4().hex[:8]}", f"dtest-b-{uuid.uuid4().hex[:8]}"
    peer.queues += [a_name, b_name]
    channel = peer.admin()
    # a: expires into b; b: rejected back into a.
    channel.queue_declare(
        a_name,
        arguments={
            "x-message-ttl": 50,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": b_name,
        },
    )
    channel.queue_declare(
        b_name,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": a_name},
    )
    channel.basic_publish("", a_name, b"round")
    worker = peer.channel()
    counts = []
    for _ in range(3):
        method, props, _body = get_one(worker, b_name, ack=False)
        counts.append([(d["queue"], d["reason"], d["count"]) for d in props.headers["x-death"]])
        assert props.headers["x-first-death-reason"] == "expired"
        worker.basic_reject(method.delivery_tag, requeue=False)
    assert counts == [
        [(a_name, "expired", 1)],
        [(a_name, "expired", 2), (b_name, "rejected", 1)],
        [(a_name, "expired", 3), (b_name, "rejected", 2)],
    ]


def test_dead_lettering_works_after_restart(fresh_broker: BrokerProcess) -> None:
    connection = fresh_broker.connect()
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare("dlq", durable=True)
    channel.queue_declare(
        "src",
        durable=True,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"},
    )
    for i in range(3):
        props = pika.BasicProperties(delivery_mode=2, expiration="600000")
        channel.basic_publish("", "src", f"m{i}".encode(), props)
    connection.close()
    assert fresh_broker.stop() == 0, fresh_broker.log
    fresh_broker.start()
    connection = fresh_broker.connect()
    channel = connection.channel()
    method, _props, body = channel.basic_get("src")
    assert body == b"m0"
    channel.basic_reject(method.delivery_tag, requeue=False)
    method, _props, body = channel.basic_get("src")
    channel.basic_nack(method.delivery_tag, requeue=False)
    method, props, body = get_one(channel, "dlq", ack=False)
    assert body == b"m0"
    channel.basic_nack(method.delivery_tag, requeue=True)  # leave it there
    connection.close()
    # The dead letters are persistent in a durable queue: they survive another restart.
    assert fresh_broker.stop() == 0, fresh_broker.log
    fresh_broker.start()
    connection = fresh_broker.connect()
    channel = connection.channel()
    got = []
    for _method, props, body in get_all(channel, "dlq"):
        (death,) = props.headers["x-death"]
        got.append((body, props.delivery_mode, props.expiration, death["reason"]))
        assert death["original-expiration"] == "600000"
        assert (death["queue"], death["routing-keys"]) == ("src", ["src"])
        assert props.headers["x-first-death-queue"] == "src"
    assert got == [(b"m0", 2, None, "rejected"), (b"m1", 2, None, "rejected")]
    assert channel.basic_get("src", auto_ack=True)[2] == b"m2"
    connection.close()
