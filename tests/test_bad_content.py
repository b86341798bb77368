"""Content headers whose properties do not decode: RabbitMQ 3.10's answer, and no ghosts.

RabbitMQ's channel decodes a publish's properties in full (``ensure_content_decoded``) when it
handles the publish, whatever the routing needs: a field table with an unknown type tag, flags
naming more properties than the bytes hold, or bytes left over crash its channel process, and
the client gets connection.close 541 'INTERNAL_ERROR' (ids 0/0), even for an unroutable
publish. Shortstrs are binaries to Erlang: a content-type that is not UTF-8 is accepted and
delivered byte for byte. A bad ``expiration`` is channel.close 406 on basic.publish. Recorded
from RabbitMQ 3.10.8 (``DISPATCHD_PEER_PORT=5692`` replays these against it).

After any of these, the connection, its channels and consumers leave every listing.
"""

from __future__ import annotations

import asyncio
import struct
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from pika import spec
from pykka import ActorDeadError

from dispatchd.actors.channel import ChannelActor, ConsumerState
from dispatchd.actors.messages import (
    CancelConsumer,
    ChannelInput,
    ChannelStopped,
    ConnectionClosed,
    ConnectionGone,
)
from dispatchd.actors.runtime import ActorFailed, Runtime
from dispatchd.wire.protocol import AMQPProtocol, ChannelSlot
from tests.access_support import ctl_command
from tests.admin_support import AdminClient, eventually, start_admin_broker
from tests.amqp_raw import EOF
from tests.basic_support import Peer, peer
from tests.conformance.rawclient import (
    FRAME_BODY,
    FRAME_HEADER,
    RawClient,
    describe,
    method_frame,
    raw_frame,
)
from tests.conftest import BrokerProcess
from tests.support.actors import TIMEOUT, Collector, on_loop

__all__ = ["peer"]

CRASHED = ("Connection.Close", 541, "INTERNAL_ERROR", 0, 0)

# name: (property flags, property bytes)
CRASHING = {
    "headers-unknown-tag": (0x2000, struct.pack(">I", 4) + b"\x01aZ\x00"),
    "headers-table-past-end": (0x2000, struct.pack(">I", 40) + b"\x01aS"),
    "flags-beyond-bytes": (0xC000, b"\x03abc"),  # content-type, then no content-encoding
    "flags-no-bytes": (0x8000, b""),
    "bytes-left-over": (0x8000, b"\x01a\x00\x00"),
}
EXPIRATION = {
    "expiration-not-a-number": (b"abc", "invalid expiration 'abc': no_integer"),
    "expiration-negative": (b"-1", "invalid expiration '-1': {value_negative,-1}"),
}
MODES = ("queue", "consumer", "headers-exchange", "unroutable")


def header(flags: int, props: bytes, size: int, channel: int = 1) -> bytes:
    """A content header frame with hand-made property bytes."""
    payload = struct.pack(">HHQH", 60, 0, size, flags) + props
    return raw_frame(FRAME_HEADER, channel, payload)


def publish(client: RawClient, exchange: str, key: str, flags: int, props: bytes) -> None:
    """basic.publish with a 2-byte body and these properties, in one write."""
    body = b"hi"
    data = method_frame(1, spec.Basic.Publish(exchange=exchange, routing_key=key))
    client.send(data + header(flags, props, len(body)) + raw_frame(FRAME_BODY, 1, body))


def setup(peer: Peer, mode: str) -> tuple[RawClient, str, str, str]:
    """A raw client on channel 1 and where to publish for ``mode``: (client, queue,
    exchange, routing key)."""
    queue = peer.queue()
    client = peer.raw()
    if mode == "consumer":
        assert client.call(1, spec.Basic.Consume(queue=queue, no_ack=True))["method"] == (
            "Basic.ConsumeOk"
        )
    if mode == "headers-exchange":
        peer.admin().queue_bind(queue, "amq.match", arguments={"x-match": "any", "a": "b"})
        return client, queue, "amq.match", ""
    return client, queue, "", "nowhere-" + queue if mode == "unroutable" else queue


def close_of(client: RawClient) -> tuple[Any, ...]:
    """The first close frame the client gets, as (method, code, text, class id, method id)."""
    while True:
        item = describe(client.recv_frame(3.0))
        if isinstance(item, str) or "Close" in item.get("method", ""):
            break
    if isinstance(item, str):
        return (item,)
    return tuple(item[k] for k in ("method", "reply_code", "reply_text", "class_id", "method_id"))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", sorted(CRASHING))
def test_undecodable_properties_close_the_connection(peer: Peer, case: str, mode: str) -> None:
    client, _queue, exchange, key = setup(peer, mode)
    publish(client, exchange, key, *CRASHING[case])
    assert close_of(client) == CRASHED
    assert client.after_connection_close() == EOF


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", sorted(EXPIRATION))
def test_bad_expiration_closes_the_channel(peer: Peer, case: str, mode: str) -> None:
    client, _queue, exchange, key = setup(peer, mode)
    value, text = EXPIRATION[case]
    publish(client, exchange, key, 0x0100, bytes([len(value)]) + value)
    assert close_of(client) == ("Channel.Close", 406, f"PRECONDITION_FAILED - {text}", 60, 40)


def test_content_type_not_utf8_is_delivered_as_sent(peer: Peer) -> None:
    queue = peer.queue()
    client = peer.raw()
    publish(client, "", queue, 0x8000, b"\x02\xff\xfe")
    client.send(method_frame(1, spec.Basic.Get(queue=queue, no_ack=True)))
    sent = header(0x8000, b"\x02\xff\xfe", 2)
    data = client.recv_bytes(1.0)  # the raw get-ok, header and body (then TIMEOUT's quiet)
    assert isinstance(data, bytes) and sent in data, data


# ----- no ghosts


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerProcess, AdminClient]]:
    proc, client = start_admin_broker(tmp_path_factory.mktemp("bad-content"))
    yield proc, client
    assert proc.stop() == 0, proc.log
    assert "Traceback" not in proc.log, proc.log


def totals(client: AdminClient) -> tuple[int, int, int]:
    """(connections, channels, consumers) from /api/overview."""
    t = client.get("/api/overview")["object_totals"]
    return t["connections"], t["channels"], t["consumers"]


def connection_rows(proc: BrokerProcess) -> list[str]:
    """``dispatchd ctl -q list_connections`` rows (without the header)."""
    done = subprocess.run(
        [*ctl_command(proc.data_dir), "-q", "list_connections"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[1:]


@pytest.mark.parametrize("case", sorted(CRASHING))
def test_no_ghost_after_undecodable_properties(
    admin: tuple[BrokerProcess, AdminClient], case: str
) -> None:
    proc, client = admin
    assert eventually(lambda: totals(client) == (0, 0, 0) or None, "a clean start")
    raw = RawClient(proc.port)
    assert raw.handshake()["stage"] == "opened" and raw.open_channel(1) == "Channel.OpenOk"
    assert raw.call(1, spec.Queue.Declare(queue="", exclusive=True))["method"] == (
        "Queue.DeclareOk"
    )
    assert raw.call(1, spec.Basic.Consume(queue="", no_ack=False))["method"] == ("Basic.ConsumeOk")
    assert totals(client) == (1, 1, 1)
    publish(raw, "", "", *CRASHING[case])
    assert close_of(raw) == CRASHED
    raw.after_connection_close()
    raw.close()
    eventually(lambda: totals(client) == (0, 0, 0) or None, "no connection, channel, consumer")
    assert connection_rows(proc) == []
    assert client.get("/api/connections") == []
    assert client.get("/api/queues") == []  # the exclusive queue went with its connection


# ----- clean-up with dead actors


class DeadRef:
    """An actor ref whose actor has crashed."""

    def tell(self, _message: Any) -> None:
        raise ActorDeadError("dead")


class RecordingRef:
    """An actor ref that keeps what it was told."""

    def __init__(self) -> None:
        self.told: list[Any] = []

    def tell(self, message: Any) -> None:
        self.told.append(message)


class FakeServer:
    """Just what AMQPProtocol reads of its server before and in ``_release``."""

    def __init__(self, vhost: RecordingRef) -> None:
        from dispatchd.config import Settings

        self.settings = Settings()
        self.vhosts = {"/": vhost}


def test_release_completes_when_the_actors_are_dead() -> None:
    async def scenario() -> tuple[AMQPProtocol, RecordingRef, RecordingRef]:
        vhost, alive = RecordingRef(), RecordingRef()
        protocol = AMQPProtocol(FakeServer(vhost))  # type: ignore[arg-type]
        protocol.vhost, protocol.id = "/", 7
        protocol.channels = {1: ChannelSlot(DeadRef()), 2: ChannelSlot(alive)}  # type: ignore[arg-type]
        protocol.connection_ref = DeadRef()  # type: ignore[assignment]
        protocol._release()
        return protocol, vhost, alive

    protocol, vhost, alive = asyncio.run(scenario())
    assert protocol.channels == {} and protocol.connection_ref is None
    assert [type(m) for m in alive.told] == [ConnectionGone]
    assert [(type(m), m.connection_id) for m in vhost.told] == [(ConnectionClosed, 7)]


class FakeLink:
    """Just what a channel actor reads of its connection's wire side."""

    connection_name = "test"
    id = 1
    frame_max = 131072

    def write(self, _data: bytes) -> None:
        pass

    def channel_closed(self, _number: int) -> None:
        pass


def test_crashed_channel_gives_its_consumers_back(runtime: Runtime) -> None:
    """A channel actor that crashes still takes its consumers off their queues and stops
    them (before, they stayed registered with a dead channel), and reports its counts."""

    async def scenario() -> tuple[Any, ...]:
        queue, vhost, connection = (runtime.start(Collector, 1) for _ in range(3))
        consumer = runtime.start(Collector)
        channel = runtime.start(ChannelActor, FakeLink(), 1, connection, vhost)
        actor = channel._actor_weakref()  # noqa: SLF001
        actor.consumers["t"] = ConsumerState("t", consumer, b"t", True, queue)
        channel.tell(ChannelInput([object()]))  # no handler for it: the actor crashes
        return queue, vhost, connection, consumer

    refs = on_loop(runtime, scenario())
    queue, vhost, connection, consumer = (ref._actor_weakref() for ref in refs)  # noqa: SLF001
    for collector in (queue, vhost, connection):
        assert collector.done.wait(TIMEOUT)
    (cancel,) = queue.items
    assert isinstance(cancel, CancelConsumer) and cancel.channel_closed
    assert cancel.consumer == refs[3]
    assert [type(m) for m in vhost.items] == [ChannelStopped]
    assert [type(m) for m in connection.items] == [ActorFailed]
    assert eventually(lambda: not refs[3].is_alive() or None, "the consumer actor to stop")
