"""Memory and disk alarms: who gets connection.blocked and when, as RabbitMQ 3.10.

The tests that take ``peer`` and ``operator`` replay against RabbitMQ with
``DISPATCHD_PEER_PORT=5692`` (and ``RABBITMQ_NODENAME``, ``ERL_EPMD_ADDRESS`` for its CLI);
they set the alarm with ``set_vm_memory_high_watermark`` (a tiny fraction) or
``set_disk_free_limit`` (more than is free) and always put the defaults back.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from dispatchd.alarms import DISK, MEMORY, Alarms, DiskLimit, MemoryWatermark, parse_size
from dispatchd.config import load_settings
from tests.access_support import Operator
from tests.access_support import operator as operator
from tests.admin_support import start_admin_broker
from tests.basic_support import Peer
from tests.basic_support import peer as peer
from tests.conformance.rawclient import content_frames, method_frame
from tests.conftest import BrokerProcess, free_port
from tests.support import WAIT, pump, quiet, wait_until

ALARM_ON = ("set_vm_memory_high_watermark", "0.0000001")
ALARM_OFF = ("set_vm_memory_high_watermark", "0.4")
DISK_DEFAULT = ("set_disk_free_limit", "50MB")


def test_sizes_and_limits() -> None:
    assert parse_size("50000000") == 50_000_000
    assert parse_size("50MB") == 50_000_000 and parse_size("150MiB") == 150 << 20
    assert parse_size("2GiB") == parse_size("2G") == 2 << 30 and parse_size("1GB") == 10**9
    for bad in ("100TB", "1.5GB", "MB", "-1"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert MemoryWatermark.parse("0.4").limit(1000) == 400
    assert MemoryWatermark.parse("2GiB").limit(1000) == 2 << 30
    with pytest.raises(ValueError, match="fraction between 0.0 and 1.0"):
        MemoryWatermark.parse("1.5")
    assert DiskLimit.parse("1GB").limit(5) == 10**9 and DiskLimit.parse("1.5").limit(10) == 15
    with pytest.raises(SystemExit, match="--memory-high-watermark"):
        load_settings(["--memory-high-watermark", "lots"], {})
    assert load_settings([], {"DISPATCHD_DISK_FREE_LIMIT": "1GB"}).disk_free_limit == "1GB"


def test_alarm_state_and_reason() -> None:
    alarms = Alarms()
    assert alarms.set(DISK, True) and not alarms.set(DISK, True)
    assert alarms.reason == "low on disk"
    alarms.set(MEMORY, True)
    assert alarms.reason == "low on memory & disk" and list(alarms.active) == [DISK, MEMORY]
    assert alarms.set(DISK, False) and alarms.reason == "low on memory"
    assert alarms.set(MEMORY, False) and not alarms.active


class Events:
    """connection.blocked / unblocked as a pika connection saw them."""

    def __init__(self, connection: pika.BlockingConnection) -> None:
        self.seen: list[tuple[str, ...]] = []
        connection.add_on_connection_blocked_callback(
            lambda _c, frame: self.seen.append(("blocked", frame.method.reason))
        )
        connection.add_on_connection_unblocked_callback(
            lambda _c, _frame: self.seen.append(("unblocked",))
        )


def local_port(connection: pika.BlockingConnection) -> str:
    """The client's port of a pika connection (the broker's peer_port)."""
    return str(connection._impl._transport._sock.getsockname()[1])  # noqa: SLF001


def states(operator: Operator) -> dict[str, str]:
    """peer_port -> state, from list_connections."""
    out = operator.run("list_connections", "peer_port", "state", "-q").stdout
    return dict(line.split("\t") for line in out.splitlines()[1:] if "\t" in line)


def diagnostics(operator: Operator, *args: str) -> Any:
    """rabbitmq-diagnostics' verb (dispatchd ctl has them too)."""
    command = ["rabbitmq-diagnostics"] if operator.command == ["rabbitmqctl"] else operator.command
    return Operator(operator.port, command, operator.env).run(*args, check=False)


@pytest.fixture
def alarm(operator: Operator) -> Iterator[Operator]:
    """The operator; the watermark and disk limit are set back to their defaults after."""
    yield operator
    operator.run(*ALARM_OFF)
    operator.run(*DISK_DEFAULT)


def test_only_publishers_are_blocked_at_their_next_publish(peer: Peer, alarm: Operator) -> None:
    queue = peer.queue()
    before = peer.connect()
    before_events = Events(before)
    before.channel().basic_publish("", queue, b"before")
    consumer = peer.connect()
    consumer_events = Events(consumer)
    got: list[bytes] = []
    consumer.channel().basic_consume(queue, lambda _ch, _m, _p, body: got.append(body), True)
    publisher = peer.connect()
    events = Events(publisher)
    channel = publisher.channel()
    pump(consumer, lambda: got == [b"before"])

    alarm.run(*ALARM_ON)
    quiet(publisher)
    assert events.seen == [] and before_events.seen == []  # nobody is told at the alarm
    assert set(states(alarm).values()) == {"blocking"}
    done = diagnostics(alarm, "check_local_alarms")
    assert done.returncode == 69
    assert done.stderr.strip().splitlines()[-1].startswith("Memory alarm on node ")

    channel.basic_publish("", queue, b"held")
    assert pump(publisher, lambda: events.seen) == [("blocked", "low on memory")]
    assert states(alarm)[local_port(publisher)] == "blocked"
    assert states(alarm)[local_port(before)] == "blocking"
    quiet(consumer)
    assert got == [b"before"]  # the publish is held, not dropped
    consumer.channel().queue_declare(queue, passive=True)  # other connections work

    alarm.run(*ALARM_OFF)
    assert pump(publisher, lambda: len(events.seen) == 2)
    assert events.seen[1] == ("unblocked",)
    assert pump(consumer, lambda: got == [b"before", b"held"])
    assert before_events.seen == [] and consumer_events.seen == []
    assert set(states(alarm).values()) == {"running"}


def test_consumers_and_acks_keep_working(peer: Peer, alarm: Operator) -> None:
    queue = peer.queue()
    with_capability = peer.connect()
    with_capability.channel().basic_publish("", queue, b"a")
    consumer = peer.connect()
    events = Events(consumer)
    channel = consumer.channel()
    alarm.run(*ALARM_ON)
    got: list[int] = []
    channel.basic_consume(
        queue, lambda ch, m, _p, _b: (got.append(1), ch.basic_ack(m.delivery_tag))
    )
    assert pump(consumer, lambda: got)
    channel.basic_qos(prefetch_count=5)
    assert channel.queue_declare(queue, passive=True).method.message_count == 0
    quiet(consumer)
    assert events.seen == []
    assert states(alarm)[local_port(consumer)] == "blocking"


def test_blocked_connection_outlives_heartbeats(peer: Peer, alarm: Operator) -> None:
    queue = peer.queue()
    publisher = peer.connect(heartbeat=1)
    events = Events(publisher)
    channel = publisher.channel()
    alarm.run(*ALARM_ON)
    channel.basic_publish("", queue, b"x")
    assert pump(publisher, lambda: events.seen)
    quiet(publisher, 3.5)  # 3x the heartbeat interval, blocked all along
    assert publisher.is_open
    alarm.run(*ALARM_OFF)
    assert pump(publisher, lambda: len(events.seen) == 2)
    assert channel.queue_declare(queue, passive=True).method.message_count == 1


def test_disk_alarm_blocks_and_reasons_add_up(peer: Peer, alarm: Operator) -> None:
    queue = peer.queue()
    publisher = peer.connect()
    events = Events(publisher)
    channel = publisher.channel()
    free = shutil.disk_usage("/").free
    alarm.run("set_disk_free_limit", str(free + 10**12))
    assert wait_until(lambda: diagnostics(alarm, "check_local_alarms").returncode == 69)
    assert "Free disk space alarm on node" in diagnostics(alarm, "check_local_alarms").stderr
    channel.basic_publish("", queue, b"x")
    assert pump(publisher, lambda: events.seen) == [("blocked", "low on disk")]
    alarm.run(*ALARM_ON)  # already told: nothing more
    quiet(publisher)
    assert events.seen == [("blocked", "low on disk")]
    alarm.run(*DISK_DEFAULT)
    quiet(publisher)
    assert len(events.seen) == 1  # the memory alarm still holds it
    alarm.run(*ALARM_OFF)
    assert pump(publisher, lambda: len(events.seen) == 2)


def test_blocked_reason_for_both(peer: Peer, alarm: Operator) -> None:
    publisher = peer.connect()
    events = Events(publisher)
    channel = publisher.channel()
    alarm.run(*ALARM_ON)
    alarm.run("set_disk_free_limit", str(shutil.disk_usage("/").free + 10**12))
    assert wait_until(lambda: "Free disk" in diagnostics(alarm, "check_local_alarms").stderr)
    channel.basic_publish("", "", b"x")
    reason = pump(publisher, lambda: events.seen)[0][1]
    assert reason in ("low on memory & disk", "low on disk & memory")


def test_ctl_argument_errors(operator: Operator) -> None:
    done = operator.run("set_vm_memory_high_watermark", "1.5", check=False)
    assert done.returncode == 65
    assert "The threshold should be a fraction between 0.0 and 1.0" in done.stderr
    done = operator.run("set_disk_free_limit", "100TB", check=False)
    assert done.returncode == 65 and "Bad argument." in done.stderr
    done = operator.run("set_vm_memory_high_watermark", "absolute", "2GiB")
    assert done.stdout.strip().endswith("to 2GiB bytes ...")
    done = operator.run("set_disk_free_limit", "mem_relative", "1.0")
    assert done.stdout.strip().endswith("to 1.0 times the total RAM ...")
    operator.run(*ALARM_OFF)
    operator.run(*DISK_DEFAULT)


# ----- dispatchd only: flags, the admin, a real flood


def rss(pid: int) -> int:
    """A process's resident set size in bytes."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_disk_free_limit_flag_admin_and_health(tmp_path: Path) -> None:
    limit = shutil.disk_usage(tmp_path).free + 10**12
    proc, admin = start_admin_broker(tmp_path, "--disk-free-limit", str(limit))
    try:
        node = admin.get("/api/nodes")[0]
        assert node["disk_free_alarm"] is True and node["mem_alarm"] is False
        assert node["disk_free_limit"] == limit and node["disk_free"] < limit
        assert 0 < node["mem_used"] < node["mem_limit"]
        health = admin.request("GET", "/api/health/checks/alarms")
        assert health.status == 503
        assert health.body == {
            "status": "failed",
            "reason": "There are alarms in effect in the cluster",
            "alarms": [{"resource": "disk space", "node": node["name"]}],
        }
        metrics = admin.request("GET", "/metrics").body
        assert 'dispatchd_resource_alarm{resource="disk"} 1' in metrics
        assert "disk resource limit alarm set on node" in proc.log
        connection = proc.connect()
        events = Events(connection)
        connection.channel().basic_publish("", "", b"x")
        assert pump(connection, lambda: events.seen) == [("blocked", "low on disk")]
        operator = Operator(proc.port, ctl_of(proc), {**os.environ})
        operator.run("set_disk_free_limit", "50MB")
        assert pump(connection, lambda: len(events.seen) == 2)
        assert admin.request("GET", "/api/health/checks/alarms").status == 200
        assert "disk resource limit alarm cleared on node" in proc.log
        connection.close()
    finally:
        assert proc.stop() == 0


def ctl_of(proc: BrokerProcess) -> list[str]:
    """``dispatchd ctl`` for ``proc``."""
    from tests.access_support import ctl_command

    return ctl_command(proc.data_dir)


def test_flood_is_held_under_the_watermark(tmp_path: Path) -> None:
    """Publish 64 KiB transient messages with confirms until the alarm (150 MiB above idle)
    blocks the publisher; a consumer on another connection then drains; every confirmed
    message arrives, and RSS stays under the watermark plus MARGIN."""
    margin = 48 << 20
    proc = BrokerProcess(free_port(), tmp_path / "data", tmp_path / "log").start()
    try:
        assert proc.proc is not None
        pid = proc.proc.pid
        watermark = rss(pid) + (150 << 20)
        Operator(proc.port, ctl_of(proc), {**os.environ}).run(
            "set_vm_memory_high_watermark", "absolute", str(watermark)
        )
        peak = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss(pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        publisher = proc.connect()
        events = Events(publisher)
        channel = publisher.channel()
        channel.queue_declare("flood")
        channel.confirm_delivery()
        received: list[int] = []

        def consume() -> None:
            # pika runs the blocked callback only once the held publish returns: start
            # draining when the broker is over its watermark (so the alarm is on)
            wait_until(lambda: peak[0] > watermark, timeout=60)
            with proc.connect() as connection:
                ch = connection.channel()
                ch.basic_qos(prefetch_count=200)

                def on(ch_: Any, method: Any, _p: Any, body: bytes) -> None:
                    received.append(int(body[:8]))
                    ch_.basic_ack(method.delivery_tag)

                ch.basic_consume("flood", on)
                pump(connection, lambda: stop.is_set(), timeout=120)

        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        body = b"x" * (64 << 10)
        confirmed = []
        total = int(2.5 * (150 << 20) / len(body))
        for n in range(total):
            channel.basic_publish("", "flood", b"%08d" % n + body)
            confirmed.append(n)
        publisher.process_data_events(0)  # pika's blocked/unblocked callbacks
        assert events.seen[0] == ("blocked", "low on memory")
        assert ("unblocked",) in events.seen
        assert wait_until(lambda: len(received) == total, timeout=60)
        assert received == confirmed
        assert peak[0] < watermark + margin, (peak[0] - watermark) >> 20
        stop.set()
        consumer.join(WAIT)
        publisher.close()
    finally:
        stop.set()
        assert proc.stop() == 0


@pytest.mark.parametrize("told", [False, True])
def test_reading_stops_right_after_the_content_header(
    peer: Peer, alarm: Operator, told: bool
) -> None:
    """Frames sent in the same write behind a blocked publish wait until the alarm clears;
    connection.blocked only goes to a client with the capability."""
    queue = peer.queue()
    capabilities = {"connection.blocked": True} if told else {}
    raw = peer.raw((1, 2), capabilities=capabilities)
    alarm.run(*ALARM_ON)
    method = pika.spec.Basic.Publish(exchange="", routing_key=queue)
    data = method_frame(1, method) + content_frames(1, b"body")
    data += method_frame(2, pika.spec.Queue.Declare(queue=queue, passive=True))
    raw.send(data)
    seen = [item.get("method") for item in raw.drain(0.5) if isinstance(item, dict)]
    assert seen == (["Connection.Blocked"] if told else []), seen
    alarm.run(*ALARM_OFF)
    after = [item.get("method") for item in raw.drain(1.0) if isinstance(item, dict)]
    assert after == (["Connection.Unblocked"] if told else []) + ["Queue.DeclareOk"], after
    assert peer.admin().queue_declare(queue, passive=True).method.message_count == 1
