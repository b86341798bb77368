"""Durability over real restarts and kill -9: what survives, exactly once, in order."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pika
import pytest

from tests.admin_support import AdminClient, eventually, start_admin_broker
from tests.conftest import BrokerProcess
from tests.support import get_all, wait_until

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def restart(broker: BrokerProcess, crash: bool = False) -> BrokerProcess:
    """Stop (or kill -9) and start a broker on the same port and data dir."""
    if crash:
        broker.kill()
    else:
        assert broker.stop() == 0, broker.log
    return broker.start()


def drain(
    channel: pika.adapters.blocking_connection.BlockingChannel, queue: str
) -> list[tuple[bytes, bool]]:
    """Every message in the queue as (body, redelivered), then acked one by one."""
    got = get_all(channel, queue, auto_ack=False)
    for method, _, _ in got:
        channel.basic_ack(method.delivery_tag)
    return [(body, method.redelivered) for method, _, body in got]


def test_durable_entities_survive_restart_transient_ones_do_not(
    fresh_broker: BrokerProcess,
) -> None:
    conn = fresh_broker.connect()
    ch = conn.channel()
    ch.exchange_declare("dx", "topic", durable=True, arguments={"alternate-exchange": "ae"})
    ch.exchange_declare("tx", "fanout", durable=False)
    ch.queue_declare("dq", durable=True, arguments={"x-max-priority": 3})
    ch.queue_declare("tq", durable=False)
    ch.queue_bind("dq", "dx", "a.#")
    ch.queue_bind("tq", "dx", "b")  # transient end: not persisted
    ch.exchange_bind("tx", "dx", "c")  # transient end: not persisted
    ch.queue_declare("ex", exclusive=True, durable=True)  # exclusive is never durable
    conn.close()
    restart(fresh_broker)
    conn = fresh_broker.connect()
    ch = conn.channel()
    ch.exchange_declare("dx", "topic", passive=True)
    ok = ch.queue_declare("dq", passive=True)
    assert ok.method.message_count == 0
    # The durable binding still routes; the redeclare with equal arguments is accepted.
    ch.queue_declare("dq", durable=True, arguments={"x-max-priority": 3})
    ch.basic_publish("dx", "a.x", b"routed")
    assert ch.basic_get("dq", auto_ack=True)[2] == b"routed"
    for kind, name in (("exchange", "tx"), ("queue", "tq"), ("queue", "ex")):
        probe = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            if kind == "exchange":
                probe.exchange_declare(name, passive=True)
            else:
                probe.queue_declare(name, passive=True)
        assert info.value.reply_code == 404
    conn.close()


def test_persistent_messages_survive_transient_do_not(fresh_broker: BrokerProcess) -> None:
    conn = fresh_broker.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("keep", durable=True)
    ch.queue_declare("lose", durable=False)
    for i in range(5):
        ch.basic_publish("", "keep", f"p{i}".encode(), PERSISTENT)
        ch.basic_publish("", "keep", f"t{i}".encode())  # transient in a durable queue
        ch.basic_publish("", "lose", f"p{i}".encode(), PERSISTENT)
    # Deliver two and ack one: the acked one must never come back; the other is redelivered.
    first, _, body1 = ch.basic_get("keep")
    second, _, body2 = ch.basic_get("keep")
    assert (body1, body2) == (b"p0", b"t0")
    ch.basic_ack(first.delivery_tag)
    conn.close()  # the unacked t0 is requeued (transient: gone after restart)
    restart(fresh_broker)
    conn = fresh_broker.connect()
    ch = conn.channel()
    assert drain(ch, "keep") == [(f"p{i}".encode(), False) for i in range(1, 5)]
    conn.close()


def test_acked_never_comes_back_and_order_kept_across_restarts(fresh_broker: BrokerProcess) -> None:
    conn = fresh_broker.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("ordered", durable=True)
    for i in range(200):
        ch.basic_publish("", "ordered", str(i).encode(), PERSISTENT)
    for _ in range(50):
        method, _, _ = ch.basic_get("ordered")
        ch.basic_ack(method.delivery_tag)
    method, _, body = ch.basic_get("ordered")  # delivered, not acked, then the broker stops
    assert body == b"50"
    conn.close()
    restart(fresh_broker)
    restart(fresh_broker)
    conn = fresh_broker.connect()
    ch = conn.channel()
    got = drain(ch, "ordered")
    assert [int(b) for b, _ in got] == list(range(50, 200))
    assert got[0][1] is True  # it had been delivered before
    assert not any(redelivered for _, redelivered in got[1:])
    conn.close()


def publish_until_killed(port: int, confirmed: list[int], stop: threading.Event) -> None:
    """Publish numbered persistent messages with confirms until the broker dies."""
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.confirm_delivery()
        i = 0
        while not stop.is_set():
            ch.basic_publish("", "crash", str(i).encode(), PERSISTENT, mandatory=True)
            confirmed.append(i)  # basic_publish returned: the broker confirmed it
            i += 1
    except (pika.exceptions.AMQPError, OSError):
        return


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_keeps_every_confirmed_message_once_in_order(
    fresh_broker: BrokerProcess, seed: int
) -> None:
    broker = fresh_broker
    conn = broker.connect()
    ch = conn.channel()
    ch.queue_declare("crash", durable=True)
    ch.confirm_delivery()
    for i in range(20):  # some acked history before the crash
        ch.basic_publish("", "crash", f"old{i}".encode(), PERSISTENT)
    for _ in range(20):
        method, _, _ = ch.basic_get("crash")
        ch.basic_ack(method.delivery_tag)
    conn.close()
    confirmed: list[int] = []
    stop = threading.Event()
    publisher = threading.Thread(target=publish_until_killed, args=(broker.port, confirmed, stop))
    publisher.start()
    want = random.Random(seed).randint(50, 1500)
    wait_until(lambda: len(confirmed) >= want, 10, interval=0.005)
    broker.kill()
    stop.set()
    publisher.join(10)
    assert confirmed, "nothing was confirmed before the kill"
    broker.start()
    conn = broker.connect()
    ch = conn.channel()
    bodies = [b for b, _ in drain(ch, "crash")]
    conn.close()
    numbers = [int(b) for b in bodies]
    assert numbers == sorted(set(numbers)), "duplicates or disorder after recovery"
    assert numbers[: len(confirmed)] == confirmed, "a confirmed message was lost"
    assert not any(b.startswith(b"old") for b in bodies), "an acked message came back"


def queue_details(admin: AdminClient, name: str) -> dict[str, Any]:
    """What the queue actor says of itself (its in-memory count and limit among it)."""
    (urn,) = [
        a["urn"]
        for a in admin.request("GET", "/api/actors").body
        if a["kind"] == "queue" and a["name"] == name
    ]
    return admin.request("GET", f"/api/actors/{urn}").body["details"]


def test_large_backlog_pages_bodies_out_and_back_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit, total = 100, 20_000
    monkeypatch.setenv("DISPATCHD_QUEUE_MEMORY_LIMIT", str(limit))
    broker, admin = start_admin_broker(tmp_path)
    try:
        conn = broker.connect()
        ch = conn.channel()
        ch.queue_declare("big", durable=True)
        ch.tx_select()  # commit-ok comes after the store's commit: every message is on disk
        for i in range(total):
            transient = i % 1000 == 7  # a few stay whole among the paged ones
            props = pika.BasicProperties() if transient else PERSISTENT
            ch.basic_publish("", "big", f"{i:06d}".encode() * 20, props)
        ch.tx_commit()
        details = eventually(
            lambda: (d := queue_details(admin, "big"))["messages_in_memory"] <= limit + 20 and d,
            "the committed backlog to be paged out",
        )
        assert details["messages_ready"] == total
        assert details["memory_limit"] == limit
        # Half of it now, the rest after a restart (recovery pages too); order and bodies kept.
        got = consume(conn.channel(), total // 2, admin)  # (acks in a tx wait for commit)
        conn.close()
        restart(broker)
        conn = broker.connect()
        want = [i for i in range(total) if i < total // 2 or i % 1000 != 7]  # transient: gone
        got += consume(conn.channel(), len(want) - total // 2, admin)
        conn.close()
        assert [int(body[:6]) for body in got] == want
        assert all(body == body[:6] * 20 for body in got)
    finally:
        broker.stop()


def consume(
    channel: pika.adapters.blocking_connection.BlockingChannel, count: int, admin: AdminClient
) -> list[bytes]:
    """Consume and ack ``count`` messages, checking the queue's in-memory bound on the way."""
    channel.basic_qos(prefetch_count=200)
    got: list[bytes] = []
    peak = 0
    for method, _, body in channel.consume("big"):
        got.append(body)
        channel.basic_ack(method.delivery_tag)
        if len(got) % 2500 == 0:
            peak = max(peak, queue_details(admin, "big")["messages_in_memory"])
        if len(got) == count:
            break
    channel.cancel()
    assert peak <= 300, f"{peak} bodies in memory with a limit of 100"
    return got
