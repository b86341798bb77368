"""Limits (issue 14): ``--max-message-size``, and ``--max-connections``.

The ``peer`` tests replay against RabbitMQ 3.10 (``DISPATCHD_PEER_PORT=5692``) at its default
max_message_size, 128 MiB; the others start a dispatchd with small limits of its own.
Observed on RabbitMQ 3.10: nothing comes back after the content header of an oversized publish;
once the whole body is read, the channel is closed with 406 "message size N is larger than
configured max size M" (basic.publish's ids) and the connection stays open.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from pika import frame as pframe
from pika import spec

from dispatchd.config import load_settings
from dispatchd.wire.errors import MAX_MESSAGE_SIZE, message_too_large
from dispatchd.wire.gate import ACCEPTORS, AcceptGate
from tests.basic_support import WAIT, Peer
from tests.basic_support import peer as peer
from tests.conformance.rawclient import (
    FRAME_BODY,
    PROTOCOL_HEADER,
    TIMEOUT,
    RawClient,
    describe,
    open_client,
    raw_frame,
)
from tests.conftest import BrokerProcess, free_port, tls_args
from tests.support.certs import Certs

DEFAULT_MAX = 134217728
SMALL_MAX = 1024


def send_publish(client: RawClient, channel: int, queue: str, size: int) -> None:
    """basic.publish of a ``size``-byte body to the default exchange, 128 KiB frames."""
    client.send_method(channel, spec.Basic.Publish(exchange="", routing_key=queue))
    client.send(pframe.Header(channel, size, spec.BasicProperties()).marshal())
    chunk = b"x" * (client.frame_max - 8)
    sent = 0
    while sent < size:
        n = min(len(chunk), size - sent)
        assert client.send(raw_frame(FRAME_BODY, channel, chunk[:n]))
        sent += n


def close_of(item: object) -> tuple[object, ...]:
    """(method, code, text, class, method) of a close frame, or what came instead."""
    found = describe(item)
    if not isinstance(found, dict):
        return (found,)
    return tuple(
        found.get(k) for k in ("method", "reply_code", "reply_text", "class_id", "method_id")
    )


def refusal(size: int, limit: int) -> tuple[object, ...]:
    """The channel.close RabbitMQ 3.10 answers an oversized publish with."""
    text = f"PRECONDITION_FAILED - message size {size} is larger than configured max size {limit}"
    return ("Channel.Close", 406, text, 60, 40)


def still_usable(client: RawClient, queue: str) -> None:
    """After the refusal: close-ok, then a new channel publishes and counts on the same
    connection (the refused body's frames were all consumed)."""
    client.send_method(1, spec.Channel.CloseOk())
    assert describe(client.rpc(2, spec.Channel.Open()))["method"] == "Channel.OpenOk"
    client.publish(2, "", queue, b"after")
    reply = client.rpc(2, spec.Queue.Declare(queue=queue, passive=True))
    assert describe(reply)["message_count"] == 1


# ----- max_message_size, against the peer at RabbitMQ's default


def test_over_default_limit_is_refused_after_the_body(peer: Peer) -> None:
    """128 MiB + 1: no answer to the header; 406 once the body is in; connection usable."""
    queue = peer.queue()
    client = peer.raw()
    client.send_method(1, spec.Basic.Publish(exchange="", routing_key=queue))
    client.send(pframe.Header(1, DEFAULT_MAX + 1, spec.BasicProperties()).marshal())
    assert client.recv_method(0.5, 1) == TIMEOUT  # not refused at the header
    chunk = b"x" * (client.frame_max - 8)
    left = DEFAULT_MAX + 1
    while left:
        n = min(len(chunk), left)
        assert client.send(raw_frame(FRAME_BODY, 1, chunk[:n]))
        left -= n
    assert close_of(client.recv_method(WAIT * 2, 1)) == refusal(DEFAULT_MAX + 1, DEFAULT_MAX)
    still_usable(client, queue)


def test_at_default_limit_is_accepted(peer: Peer) -> None:
    """Exactly 128 MiB is routed (and confirmed)."""
    queue = peer.queue()
    client = peer.raw()
    client.rpc(1, spec.Confirm.Select())
    send_publish(client, 1, queue, DEFAULT_MAX)
    assert describe(client.recv_method(WAIT * 2, 1))["method"] == "Basic.Ack"
    assert peer.count(queue) == 1


# ----- max_message_size, configured small (dispatchd)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A broker with max_message_size 1024."""
    base = tmp_path_factory.mktemp("limits")
    args = ["--max-message-size", str(SMALL_MAX)]
    proc = BrokerProcess(free_port(), base / "data", base / "broker.log", args).start()
    yield proc
    proc.stop()


def declare(client: RawClient, channel: int = 1) -> str:
    """A server-named exclusive queue."""
    reply = client.rpc(channel, spec.Queue.Declare(queue="", exclusive=True))
    return reply.method.queue


def test_small_limit_refuses_one_byte_over(small: BrokerProcess) -> None:
    with open_client(small.port, (1,)) as client:
        queue = declare(client)
        client.publish(1, "", queue, b"x" * SMALL_MAX)  # at the limit: fine
        client.publish(1, "", queue, b"x" * (SMALL_MAX + 1))
        assert close_of(client.recv_method(WAIT, 1)) == refusal(SMALL_MAX + 1, SMALL_MAX)
        client.send_method(1, spec.Channel.CloseOk())
        assert describe(client.rpc(2, spec.Channel.Open()))["method"] == "Channel.OpenOk"
        reply = client.rpc(2, spec.Queue.Declare(queue=queue, passive=True))
        assert describe(reply)["message_count"] == 1  # the one at the limit


def test_oversized_body_in_many_frames_is_skipped(small: BrokerProcess) -> None:
    """The body frames behind a refused header are read and dropped, and what the client
    sends on the channel before close-ok is ignored, as for any closing channel."""
    with open_client(small.port, (1,)) as client:
        queue = declare(client, 1)
        client.send_method(2, spec.Channel.Open())
        client.recv_method(WAIT, 2)
        client.publish(2, "", queue, b"a")
        client.send_method(2, spec.Basic.Publish(exchange="", routing_key=queue))
        client.send(pframe.Header(2, 10 * SMALL_MAX, spec.BasicProperties()).marshal())
        for _ in range(10):
            client.send(raw_frame(FRAME_BODY, 2, b"y" * SMALL_MAX))
        client.publish(2, "", queue, b"b")  # after the refusal: dropped
        assert close_of(client.recv_method(WAIT, 2)) == refusal(10 * SMALL_MAX, SMALL_MAX)
        reply = client.rpc(1, spec.Queue.Declare(queue=queue, passive=True))
        assert describe(reply)["message_count"] == 1  # "a", published before


def test_pika_sees_the_channel_closed(small: BrokerProcess) -> None:
    with small.connect() as connection:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
            channel.basic_publish("", queue, b"z" * (SMALL_MAX + 1))
        assert caught.value.reply_code == 406
        assert connection.is_open
        again = connection.channel()
        again.confirm_delivery()
        again.basic_publish("", queue, b"z" * SMALL_MAX)
        assert again.queue_declare(queue, passive=True).method.message_count == 1


def test_max_message_size_setting() -> None:
    assert load_settings([], environ={}).max_message_size == DEFAULT_MAX
    env = {"DISPATCHD_MAX_MESSAGE_SIZE": "2048"}
    assert load_settings([], environ=env).max_message_size == 2048
    assert load_settings(["--max-message-size", str(MAX_MESSAGE_SIZE)], environ={})
    for wrong in ("0", "-1", str(MAX_MESSAGE_SIZE + 1)):
        with pytest.raises(SystemExit, match="--max-message-size must be between 1 and"):
            load_settings(["--max-message-size", wrong], environ={})


def test_refusal_text_at_the_ceiling() -> None:
    """RabbitMQ drops 'configured' when the limit is its own ceiling, 512 MiB."""
    assert message_too_large(9, MAX_MESSAGE_SIZE).reply_text == (
        f"PRECONDITION_FAILED - message size 9 is larger than max size {MAX_MESSAGE_SIZE}"
    )
    assert "configured max size 8" in message_too_large(9, 8).reply_text


# ----- max_connections (RabbitMQ 3.10's connection_max: Ranch's max_connections)


def test_gate_is_soft_by_one_per_acceptor() -> None:
    """Limit 2, 10 acceptors: each acceptor takes one socket, the one reaching the limit
    sleeps, so a burst gets 2 + 9; closes wake an acceptor only back under the limit."""
    gate = AcceptGate(2)
    taken = 0
    while gate.may_accept():
        gate.accepted()
        taken += 1
    assert taken == 2 + ACCEPTORS - 1
    for _ in range(taken - 2):  # down to the limit: nobody wakes
        gate.closed()
        assert not gate.may_accept()
    gate.closed()  # 2 -> 1, within the limit: one acceptor wakes
    assert gate.may_accept() and gate.active == 1
    gate.accepted()  # back at 2: it sleeps again
    assert not gate.may_accept()


def test_gate_without_a_burst_is_exact() -> None:
    gate = AcceptGate(3, acceptors=1)
    for _ in range(3):
        assert gate.may_accept()
        gate.accepted()
    assert not gate.may_accept()
    gate.closed()
    assert gate.may_accept()


def greeted(sock: socket.socket, timeout: float) -> bool:
    """Whether the broker answers the protocol header (connection.start) within timeout."""
    sock.settimeout(timeout)
    try:
        return bool(sock.recv(7))
    except TimeoutError:
        return False


def test_listener_stops_accepting_at_the_limit(tmp_path: Path) -> None:
    """--max-connections 1: 1 + 9 clients are served, the next waits unanswered (no
    refusal, no text), and is served once the count is back under the limit."""
    proc = BrokerProcess(
        free_port(), tmp_path / "data", tmp_path / "broker.log", ["--max-connections", "1"]
    ).start()
    served: list[pika.BlockingConnection] = []
    try:
        for _ in range(1 + ACCEPTORS - 1):
            served.append(proc.connect())
        with socket.create_connection(("127.0.0.1", proc.port), timeout=WAIT) as waiting:
            waiting.sendall(PROTOCOL_HEADER)
            assert not greeted(waiting, 1.0)
            for connection in served[:-1]:  # 10 -> 1: still at the limit, nobody is taken
                connection.close()
            assert not greeted(waiting, 0.5)
            served[-1].close()  # 1 -> 0: an acceptor wakes and takes the waiting client
            assert greeted(waiting, WAIT)
        again = proc.connect()  # the waiting client hung up: its place is free again
        assert again.channel().is_open
        again.close()
    finally:
        for connection in served:
            if connection.is_open:
                connection.close()
        proc.stop()


def test_max_connections_setting() -> None:
    assert load_settings([], environ={}).max_connections == 0  # no limit
    assert load_settings([], environ={"DISPATCHD_MAX_CONNECTIONS": "5"}).max_connections == 5
    with pytest.raises(SystemExit, match="--max-connections must be 0"):
        load_settings(["--max-connections", "-1"], environ={})


def test_tls_listener_has_its_own_gate(tmp_path: Path, certs: Certs) -> None:
    """The AMQPS listener counts apart from the plain one; a held TLS client has done its
    handshake but hears nothing until taken."""
    tls_port = free_port()
    args = tls_args(certs, tls_port, "--max-connections", "1")
    proc = BrokerProcess(free_port(), tmp_path / "data", tmp_path / "broker.log", args)
    proc.tls_port = tls_port
    proc.start()
    context = ssl.create_default_context(cafile=str(certs.ca))
    served: list[pika.BlockingConnection] = []
    try:
        for _ in range(ACCEPTORS):
            served.append(proc.connect())  # the plain listener's burst
        plain = socket.create_connection(("127.0.0.1", proc.port), timeout=WAIT)
        plain.sendall(PROTOCOL_HEADER)
        assert not greeted(plain, 0.5)
        raw = socket.create_connection(("127.0.0.1", tls_port), timeout=WAIT)
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(PROTOCOL_HEADER)
            assert greeted(tls, WAIT)  # its own gate is empty
        plain.close()
    finally:
        for connection in served:
            connection.close()
        proc.stop()


def test_held_tls_client_is_taken_when_a_place_frees(tmp_path: Path, certs: Certs) -> None:
    tls_port = free_port()
    args = tls_args(certs, tls_port, "--max-connections", "1", "--port", "0")
    proc = BrokerProcess(free_port(), tmp_path / "data", tmp_path / "broker.log", args)
    context = ssl.create_default_context(cafile=str(certs.ca))
    params = pika.ConnectionParameters(
        "localhost", tls_port, ssl_options=pika.SSLOptions(context, "localhost")
    )
    proc.port = tls_port  # no plain listener: wait for the TLS one
    proc.start()
    served = [pika.BlockingConnection(params) for _ in range(ACCEPTORS)]
    try:
        raw = socket.create_connection(("127.0.0.1", tls_port), timeout=WAIT)
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(PROTOCOL_HEADER)
            assert not greeted(tls, 1.0)
            for connection in served:
                connection.close()
            assert greeted(tls, WAIT)
    finally:
        for connection in served:
            if connection.is_open:
                connection.close()
        proc.stop()
