"""Bad input over real sockets: each case ends only the offending connection, the way RabbitMQ
3.10 does (same reply code, text and class/method ids, or a plain socket close), logs exactly
one line about it, and leaves the broker and an already-open pika connection working.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pytest
from pika import spec

from dispatchd.wire.errors import bad_frame_end, cannot_decode, erlang_binary, unexpected_frame
from dispatchd.wire.frames import FrameReader
from tests.amqp_raw import (
    EOF,
    TIMEOUT,
    RawClient,
    client_port,
    close_frame,
    connection_lines,
    describe,
    open_client,
    raw_header,
    started_broker,
    wait_until,
    witness_works,
)
from tests.conformance.rawclient import (
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    PROTOCOL_HEADER,
    content_frames,
    method_frame,
    method_payload,
    plain_response,
    raw_frame,
    shortstr,
)


@pytest.fixture(scope="module")
def witness(broker: Any) -> Iterator[pika.BlockingConnection]:
    """A pika connection opened before any bad input, checked after each case."""
    connection = broker.connect()
    yield connection
    assert connection.is_open
    connection.close()


# ----- bad protocol headers


@pytest.mark.parametrize(
    "header",
    [
        b"XMPP\x00\x00\x09\x01",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"AMQP\x00\x00\x09\x02",
        b"AMQP\x00\x01\x00\x00",
        b"AMQP\x01\x01\x00\x0a",
        b"\x00" * 64,
    ],
    ids=["garbage", "http", "0-9-2", "amqp-1.0", "amqp-0-10", "zeros"],
)
def test_bad_protocol_header_is_answered_with_ours(
    broker: Any, witness: pika.BlockingConnection, header: bytes
) -> None:
    client = RawClient(broker.port)
    try:
        client.send(header)
        assert client.recv_bytes(2.0) == b"AMQP\x00\x00\x09\x01"  # then EOF, nothing else
        assert client.eof
        lines = connection_lines(broker, client_port(client))
        assert len(lines) == 1 and "bad protocol header" in lines[0]
    finally:
        client.sock.close()
    assert witness_works(witness)


def test_partial_header_waits_for_the_rest(broker: Any) -> None:
    """Like RabbitMQ, the server waits for all 8 octets (until the handshake timeout)."""
    client = RawClient(broker.port)
    try:
        client.send(b"AMQ")
        assert describe(client.recv_frame(0.3)) == TIMEOUT
        client.send(b"P\x00\x00\x09\x01")
        assert client.recv_method().method.NAME == "Connection.Start"
    finally:
        client.sock.close()


# ----- errors on an open connection


@dataclass(frozen=True)
class Case:
    """Bytes sent on an open connection (channel 1 open) and RabbitMQ's answer to them."""

    data: bytes
    close: tuple[int, str, int, int] | None  # None: the socket is closed without a word
    frame_max: int | None = None
    fatal: bool = False  # the server reads nothing after it (no close-ok handshake)


_PUBLISH = method_frame(1, spec.Basic.Publish(exchange="", routing_key="nowhere"))
_HELLO_BODY = raw_frame(FRAME_BODY, 1, b"hello")
_HEADER_5 = content_frames(1, b"hello")[: -len(_HELLO_BODY)]
_DECLARE = method_frame(1, spec.Queue.Declare(queue="", exclusive=True))
_BAD_TABLE = shortstr("x-foo") + b"Q" + b"\x00\x00\x00\x01"

CASES: dict[str, Case] = {
    "heartbeat on channel 1": Case(
        raw_frame(FRAME_HEARTBEAT, 1, b""),
        (505, "UNEXPECTED_FRAME - type 8, all octets = <<>>", 0, 0),
    ),
    "heartbeat with a payload": Case(
        raw_frame(FRAME_HEARTBEAT, 0, b"junk"),
        (501, 'FRAME_ERROR - type 8, all octets = <<"junk">>: unknown_frame', 0, 0),
    ),
    "unknown frame type": Case(
        raw_frame(9, 1, b"\x00\x00"),
        (501, "FRAME_ERROR - type 9, all octets = <<0,0>>: unknown_frame", 0, 0),
    ),
    "frame-end octet not 0xCE": Case(
        raw_frame(FRAME_METHOD, 1, _DECLARE[7:-1], end=b"\x00"),
        (
            501,
            "FRAME_ERROR - type 1, all octets = <<0,50,0,10,0,0,0,4,0,0,0,0>>: "
            "{invalid_frame_end_marker,\n" + " " * 53 + "0}",
            0,
            0,
        ),
        fatal=True,
    ),
    "huge size field": Case(
        raw_header(FRAME_METHOD, 1, 0xFFFFFFFF) + b"\x00\x32",
        (501, "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,4294967295,131064}", 0, 0),
        fatal=True,
    ),
    "body frame over frame_max": Case(
        _PUBLISH + _HEADER_5 + raw_frame(FRAME_BODY, 1, b"b" * 4097),
        (501, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}", 0, 0),
        frame_max=4096,
        fatal=True,
    ),
    "method on an unopened channel": Case(
        method_frame(5, spec.Queue.Declare(queue="", exclusive=True)),
        (504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10),
    ),
    "second channel.open": Case(
        method_frame(1, spec.Channel.Open()),
        (504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10),
    ),
    "channel method on channel 0": Case(
        method_frame(0, spec.Queue.Declare(queue="", exclusive=True)),
        (504, "CHANNEL_ERROR - unexpected method in connection state running", 50, 10),
    ),
    "unsolicited connection.close-ok": Case(
        method_frame(0, spec.Connection.CloseOk()),
        (504, "CHANNEL_ERROR - unexpected method in connection state running", 10, 51),
    ),
    "connection method on channel 1": Case(
        method_frame(1, spec.Connection.TuneOk(2047, 131072, 0)),
        (503, "COMMAND_INVALID - unimplemented method", 10, 31),
    ),
    "content header without publish": Case(
        content_frames(1, b"hello"),
        (505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0),
    ),
    "body without publish": Case(
        _HELLO_BODY,
        (505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0),
    ),
    "method instead of content header": Case(
        _PUBLISH + _DECLARE,
        (
            505,
            "UNEXPECTED_FRAME - expected content header for class 60, "
            "got non content header frame instead",
            60,
            40,
        ),
    ),
    "method instead of body": Case(
        _PUBLISH + _HEADER_5 + _DECLARE,
        (
            505,
            "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
            60,
            40,
        ),
    ),
    "body longer than its header says": Case(
        _PUBLISH + _HEADER_5 + raw_frame(FRAME_BODY, 1, b"hellohello"),
        (
            505,
            "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
            60,
            40,
        ),
    ),
    "content header of class 50": Case(
        _PUBLISH + raw_frame(FRAME_HEADER, 1, struct.pack(">HHQH", 50, 0, 0, 0)),
        (
            505,
            "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead",
            60,
            40,
        ),
    ),
    "body on channel 0": Case(
        raw_frame(FRAME_BODY, 0, b"hello"),
        (505, 'UNEXPECTED_FRAME - type 3, all octets = <<"hello">>', 0, 0),
    ),
    "publish with immediate": Case(
        method_frame(1, spec.Basic.Publish(routing_key="x", immediate=True)) + _HEADER_5,
        (540, "NOT_IMPLEMENTED - immediate=true", 60, 40),
    ),
    "method payload too short": Case(
        raw_frame(FRAME_METHOD, 1, b"\x00\x32"),
        (501, "FRAME_ERROR - type 1, all octets = <<0,50>>: unknown_frame", 0, 0),
    ),
    "truncated method arguments": Case(
        raw_frame(FRAME_METHOD, 1, method_payload(50, 10, b"\x00\x00\x14conf")),
        (501, "FRAME_ERROR - cannot decode <<0,0,20,99,111,110,102>>", 50, 10),
    ),
    "trailing method arguments": Case(
        raw_frame(FRAME_METHOD, 1, method_payload(20, 20, b"\x01xyz")),
        (501, "FRAME_ERROR - cannot decode <<1,120,121,122>>", 20, 20),
    ),
    "table longer than the frame": Case(
        raw_frame(FRAME_METHOD, 1, method_payload(50, 10, b"\x00\x00\x00\x08\x00\x00\x00\x64ab")),
        (501, "FRAME_ERROR - cannot decode <<0,0,0,8,0,0,0,100,97,98>>", 50, 10),
    ),
    # RabbitMQ's connection process crashes on these: the client just sees the socket close.
    "unknown method id": Case(raw_frame(FRAME_METHOD, 1, method_payload(60, 99)), None),
    "unknown class id": Case(raw_frame(FRAME_METHOD, 1, method_payload(99, 10)), None),
    "unknown connection method": Case(raw_frame(FRAME_METHOD, 0, method_payload(10, 99)), None),
    "unknown field type in a table": Case(
        raw_frame(
            FRAME_METHOD,
            1,
            method_payload(
                50, 10, b"\x00\x00\x00\x08" + struct.pack(">I", len(_BAD_TABLE)) + _BAD_TABLE
            ),
        ),
        None,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_on_an_open_connection(
    broker: Any, witness: pika.BlockingConnection, name: str
) -> None:
    case = CASES[name]
    since = len(broker.log)  # an earlier connection may have had the same port
    client = open_client(broker.port, channels=(1,), frame_max=case.frame_max)
    try:
        port = client_port(client)
        client.send(case.data)
        reply = client.recv_method(2.0)
        if case.close is None:
            assert describe(reply) == EOF
        else:
            assert close_frame(reply) == case.close
            if not case.fatal:
                client.send_method(0, spec.Connection.CloseOk())
                assert describe(client.recv_frame(1.0)) == EOF
        lines = connection_lines(broker, port, since=since)
        assert len(lines) == 1, lines
    finally:
        client.sock.close()
    assert witness_works(witness)


def test_frame_of_exactly_frame_max_payload_is_accepted(broker: Any) -> None:
    """RabbitMQ lets the payload alone reach frame-max (old Java clients forgot the framing)."""
    with open_client(broker.port, channels=(1,), frame_max=4096) as client:
        client.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
        queue = client.recv_method().method.queue
        body = b"b" * 4096
        client.send(
            method_frame(1, spec.Basic.Publish(exchange="", routing_key=queue))
            + content_frames(1, body, frame_max=1 << 20)
            + method_frame(1, spec.Basic.Get(queue=queue, no_ack=True))
        )
        got = client.recv_message()
        assert got["method"] == "Basic.GetOk" and got["body"] == body.decode()


# ----- clients that go away


def _open_then(broker: Any, send: bytes, reset: bool) -> int:
    client = open_client(broker.port, channels=(1,))
    client.send(send)
    if reset:  # vanish: RST instead of FIN
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    port = client_port(client)
    client.sock.close()
    return port


@pytest.mark.parametrize(
    ("send", "reset"),
    [
        (raw_header(FRAME_METHOD, 1, 100) + b"\x00\x32\x00\x0a", False),
        (raw_header(FRAME_BODY, 1, 1000)[:5], True),
        (_PUBLISH + _HEADER_5 + b"\x03\x00", True),
    ],
    ids=["truncated-frame-then-close", "mid-header-reset", "mid-content-reset"],
)
def test_client_vanishing_mid_frame(
    broker: Any, witness: pika.BlockingConnection, send: bytes, reset: bool
) -> None:
    port = _open_then(broker, send, reset)
    lines = wait_until(lambda: connection_lines(broker, port))
    assert len(lines) == 1 and "client unexpectedly closed TCP connection" in lines[0]
    assert witness_works(witness)


# ----- handshake timeout


def test_clients_that_never_finish_the_handshake_are_dropped(tmp_path: Path) -> None:
    stalls = {
        "silent": b"",
        "partial header": b"AMQ",
        "header only": PROTOCOL_HEADER,
    }
    with started_broker(tmp_path, "--handshake-timeout", "1") as quick:
        results: dict[str, tuple[Any, float, int]] = {}

        def stall(name: str, data: bytes) -> None:
            client = RawClient(quick.port, timeout=5.0)
            started = time.monotonic()
            client.send(data)
            if data == PROTOCOL_HEADER:
                client.recv_method()  # connection.start; then never answer it
            item = client.recv_method(5.0)
            results[name] = (item, time.monotonic() - started, client_port(client))
            client.sock.close()

        def stall_after_tune() -> None:
            client = RawClient(quick.port, timeout=5.0)
            started = time.monotonic()
            client.send(PROTOCOL_HEADER)
            client.recv_method()
            client.send_method(
                0,
                spec.Connection.StartOk(
                    client_properties={}, mechanism="PLAIN", response=plain_response()
                ),
            )
            client.recv_method()  # connection.tune; never answered
            item = client.recv_method(5.0)
            results["no tune-ok"] = (item, time.monotonic() - started, client_port(client))
            client.sock.close()

        threads = [threading.Thread(target=stall, args=item) for item in stalls.items()]
        threads.append(threading.Thread(target=stall_after_tune))
        with quick.connect() as witness_:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for name, (item, took, port) in results.items():
                assert describe(item) == EOF, name
                assert 0.9 <= took <= 2.5, (name, took)
                lines = connection_lines(quick, port)
                assert len(lines) == 1 and "handshake_timeout" in lines[0], (name, lines)
            assert witness_works(witness_)  # the timeout is for handshakes only


# ----- RabbitMQ's texts, unit by unit


def test_erlang_binary_rendering() -> None:
    assert erlang_binary(b"") == "<<>>"
    assert erlang_binary(b"junk") == '<<"junk">>'
    assert erlang_binary(b'a"b\\c\n') == '<<"a\\"b\\\\c\\n">>'
    assert erlang_binary(b"\x00\x32") == "<<0,50>>"
    assert erlang_binary(b"abcd", pretty=False) == "<<97,98,99,100>>"
    # ~p wraps long binaries the way RabbitMQ's texts show them.
    assert unexpected_frame(3, bytes([200] * 13 + [1] * 3)).text == (
        "type 3, all octets = <<200,200,200,200,200,200,200,200,200,200,200,200,200,1,1,\n"
        + " " * 23
        + "1>>"
    )
    assert (
        unexpected_frame(3, b"x" * 300).text == 'type 3, first 16 octets = <<"xxxxxxxxxxxxxxxx">>'
    )


def test_frame_end_tuple_wraps_like_rabbitmq() -> None:
    short = b"\x00\x32\x00\x0a\xc5bc\xe9"
    assert bad_frame_end(1, short, 0).text.endswith(": {invalid_frame_end_marker,0}")
    longer = b"\x00\x32\x00\x0a\xc5\xc6c\xe9"
    assert bad_frame_end(1, longer, 0).text.endswith(
        ": {invalid_frame_end_marker,\n" + " " * 52 + "0}"
    )


def test_long_reply_texts_are_cut_like_rabbitmq() -> None:
    text = cannot_decode(50, 10, b"\xc8" * 70).reply_text
    assert len(text.encode()) == 255 and text.endswith(",200,20...")


def test_frame_reader_consumes_frames_as_it_yields() -> None:
    reader = FrameReader(4096)
    data = raw_frame(FRAME_METHOD, 0, b"abcd") + raw_frame(FRAME_BODY, 1, b"xy")
    frames = reader.feed(data[:5])
    assert list(frames) == []
    frames = reader.feed(data[5:])
    assert next(frames) == (FRAME_METHOD, 0, b"abcd")
    frames.close()  # a consumer that stops after one frame keeps the rest for later
    assert list(reader.feed(b"")) == [(FRAME_BODY, 1, b"xy")]
    assert reader.pending == 0
