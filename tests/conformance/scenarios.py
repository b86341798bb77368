"""Conformance scenarios: small, deterministic probes of broker behaviour.

Each ``scenario_xxx(port) -> dict`` connects to 127.0.0.1:port, performs a few steps and returns
a JSON-serialisable summary of what the broker did. Results recorded against RabbitMQ are kept in
``rabbitmq.json`` beside this file and replayed against dispatchd by ``tests/test_conformance.py``.

Scenarios that check reply codes and close frames use :mod:`.rawclient` (to see class/method ids
and exactly which frames arrive); scenarios about routing and delivery mostly use pika.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import pika
import pika.exceptions
from pika import spec

from tests.support import pump, wait_until

from .helpers import (
    SCENARIOS,
    Result,
    attempt,
    attempt_raw,
    bodies,
    collect,
    confirm_outcomes,
    declare_queue,
    fill,
    get,
    get_bodies,
    ok,
    outcome,
    pika_channel,
    pika_connection,
    pika_error,
    run_scenario,
    scenario,
)
from .rawclient import (
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    PROTOCOL_HEADER,
    RawClient,
    amqplain_response,
    content_frames,
    describe,
    method_frame,
    method_name,
    method_payload,
    open_client,
    plain,
    plain_response,
    raw_frame,
    shortstr,
)

__all__ = ["SCENARIOS", "run_scenario"]


# =============================================================================================
# Protocol header and handshake
# =============================================================================================


def _header_probe(port: int, header: bytes) -> Result:
    """Send a protocol header and report what comes back: bytes, connection.start, EOF."""
    client = RawClient(port)
    try:
        client.send(header)
        data = client.recv_bytes(1.5)
        if isinstance(data, str):
            return {"reply": data}
        if data.startswith(b"AMQP"):
            return {"reply_header": list(data[:8]), "rest": data[8:].hex(), "eof": client.eof}
        client.buf = data
        item = client.recv_frame(0.1)
        result: Result = {"reply": describe(item)}
        if method_name(item) == "Connection.Start":
            result["version"] = [item.method.version_major, item.method.version_minor]
        return result
    finally:
        client.sock.close()


@scenario()
def scenario_header_garbage(port: int) -> Result:
    """Eight bytes that are not an AMQP header: the server answers with its own header."""
    return _header_probe(port, b"XMPP\x00\x00\x09\x01")


@scenario()
def scenario_header_http(port: int) -> Result:
    """An HTTP request line instead of the protocol header."""
    return _header_probe(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


@scenario()
def scenario_header_wrong_revision(port: int) -> Result:
    """'AMQP' 0-0-9-2: right protocol, unknown revision."""
    return _header_probe(port, b"AMQP\x00\x00\x09\x02")


@scenario()
def scenario_header_amqp_1_0(port: int) -> Result:
    """The AMQP 1.0 header (protocol id 0, version 1.0.0)."""
    return _header_probe(port, b"AMQP\x00\x01\x00\x00")


@scenario()
def scenario_header_amqp_0_10(port: int) -> Result:
    """The AMQP 0-10 header."""
    return _header_probe(port, b"AMQP\x01\x01\x00\x0a")


@scenario()
def scenario_header_amqp_0_8(port: int) -> Result:
    """The AMQP 0-8 header (RabbitMQ may still speak 0-8)."""
    return _header_probe(port, b"AMQP\x01\x01\x08\x00")


@scenario()
def scenario_header_amqp_0_9(port: int) -> Result:
    """The AMQP 0-9 header (class 1 instance 1 version 0.9)."""
    return _header_probe(port, b"AMQP\x01\x01\x00\x09")


@scenario()
def scenario_header_0_9_1(port: int) -> Result:
    """The correct 0-9-1 header: connection.start with version 0-9."""
    return _header_probe(port, PROTOCOL_HEADER)


@scenario()
def scenario_header_incomplete(port: int) -> Result:
    """Only 'AMQP' (4 bytes) then silence: does the server wait for the rest?"""
    return _header_probe(port, b"AMQP")


@scenario()
def scenario_connection_start_contents(port: int) -> Result:
    """connection.start: server_properties keys, capabilities, mechanisms and locales."""
    client = RawClient(port)
    try:
        client.send(PROTOCOL_HEADER)
        item = client.recv_method()
        start = item.method
        props = plain(start.server_properties)
        return {
            "channel": item.channel_number,
            "version": [start.version_major, start.version_minor],
            "server_property_keys": sorted(props),
            "product": props.get("product"),
            "capabilities": props.get("capabilities"),
            "mechanisms": sorted(plain(start.mechanisms).split()),
            "locales": plain(start.locales),
        }
    finally:
        client.sock.close()


@scenario()
def scenario_connection_tune_values(port: int) -> Result:
    """connection.tune: the channel_max, frame_max and heartbeat offered."""
    client = RawClient(port)
    try:
        client.handshake()
        tune = client.tune
        return {
            "channel_max": tune.channel_max,
            "frame_max": tune.frame_max,
            "heartbeat": tune.heartbeat,
        }
    finally:
        client.close()


def _handshake(port: int, **kwargs: Any) -> Result:
    """Run a handshake with the given overrides and report how it ended."""
    client = RawClient(port)
    try:
        result = client.handshake(**kwargs)
        if result["stage"] == "opened":
            result["channel_open"] = client.open_channel(1)
        return result
    finally:
        client.close()


@scenario()
def scenario_auth_plain_ok(port: int) -> Result:
    """PLAIN guest/guest opens the connection."""
    return _handshake(port)


@scenario()
def scenario_auth_plain_bad_password(port: int) -> Result:
    """PLAIN with a wrong password (client announces authentication_failure_close)."""
    return _handshake(port, response=plain_response("guest", "wrong"))


@scenario()
def scenario_auth_plain_unknown_user(port: int) -> Result:
    """PLAIN with a user that does not exist."""
    return _handshake(port, response=plain_response("conf-nobody", "guest"))


@scenario()
def scenario_auth_bad_password_no_capability(port: int) -> Result:
    """Wrong password from a client without authentication_failure_close: just EOF?"""
    return _handshake(port, response=plain_response("guest", "wrong"), capabilities={})


@scenario()
def scenario_auth_plain_malformed(port: int) -> Result:
    """A PLAIN response without the NUL separators."""
    return _handshake(port, response=b"guestguest")


@scenario()
def scenario_auth_unknown_mechanism(port: int) -> Result:
    """start-ok with mechanism 'CRAM-XYZ' that the server did not offer."""
    return _handshake(port, mechanism="CRAM-XYZ")


@scenario()
def scenario_auth_amqplain_ok(port: int) -> Result:
    """AMQPLAIN (LOGIN/PASSWORD table) with guest/guest."""
    return _handshake(port, mechanism="AMQPLAIN", response=amqplain_response())


@scenario()
def scenario_auth_amqplain_bad_password(port: int) -> Result:
    """AMQPLAIN with a wrong password."""
    return _handshake(port, mechanism="AMQPLAIN", response=amqplain_response("guest", "x"))


@scenario()
def scenario_open_unknown_vhost(port: int) -> Result:
    """connection.open on a vhost that does not exist."""
    return _handshake(port, vhost="conf-no-such-vhost")


@scenario()
def scenario_tune_ok_frame_max_too_small(port: int) -> Result:
    """tune-ok with frame_max 1024, below the 4096 minimum."""
    return _handshake(port, frame_max=1024)


@scenario()
def scenario_tune_ok_frame_max_minimum(port: int) -> Result:
    """tune-ok with frame_max exactly 4096 is accepted."""
    return _handshake(port, frame_max=4096)


@scenario()
def scenario_tune_ok_frame_max_too_large(port: int) -> Result:
    """tune-ok with frame_max above what the server offered."""
    return _handshake(port, frame_max=131072 * 2)


@scenario()
def scenario_tune_ok_frame_max_zero(port: int) -> Result:
    """tune-ok with frame_max 0 ('no limit') when the server offered a limit."""
    return _handshake(port, frame_max=0)


@scenario()
def scenario_tune_ok_channel_max_too_large(port: int) -> Result:
    """tune-ok with channel_max above what the server offered."""
    return _handshake(port, channel_max=4000)


@scenario()
def scenario_tune_ok_channel_max_zero(port: int) -> Result:
    """tune-ok with channel_max 0 ('no limit')."""
    return _handshake(port, channel_max=0)


@scenario()
def scenario_tune_ok_heartbeat_custom(port: int) -> Result:
    """tune-ok with a heartbeat different from the one offered."""
    return _handshake(port, heartbeat=5)


def _until_tune(port: int) -> tuple[RawClient, str]:
    """Connect, send the header and a PLAIN start-ok; the client and the reply's name."""
    client = RawClient(port)
    client.send(PROTOCOL_HEADER)
    client.recv_method()
    start_ok = spec.Connection.StartOk(
        client_properties={}, mechanism="PLAIN", response=plain_response()
    )
    client.send_method(0, start_ok)
    return client, method_name(client.recv_method())


@scenario()
def scenario_method_before_tune_ok(port: int) -> Result:
    """connection.open sent right after start-ok, skipping tune-ok."""
    client, tune = _until_tune(port)
    with client:
        return {"tune": tune, "open": attempt(client, 0, spec.Connection.Open(virtual_host="/"))}


@scenario()
def scenario_channel_open_before_connection_open(port: int) -> Result:
    """channel.open sent after tune-ok but before connection.open."""
    client, _tune = _until_tune(port)
    with client:
        client.send_method(0, spec.Connection.TuneOk(2047, 131072, 0))
        return {"reply": attempt(client, 1, spec.Channel.Open())}


# =============================================================================================
# Framing errors on an open connection
# =============================================================================================


def _framing(port: int, data: bytes, frame_max: int | None = None) -> Result:
    """Open a connection and channel 1, send ``data``, report the reply and its aftermath."""
    with open_client(port, frame_max=frame_max) as client:
        return {"reply": attempt_raw(client, data)}


@scenario()
def scenario_frame_end_not_ce(port: int) -> Result:
    """A method frame (queue.declare on channel 1) whose frame-end octet is 0x00."""
    payload = method_frame(1, spec.Queue.Declare(queue="", exclusive=True))[7:-1]
    return _framing(port, raw_frame(FRAME_METHOD, 1, payload, end=b"\x00"))


@scenario()
def scenario_frame_unknown_type(port: int) -> Result:
    """A frame of type 9 (not method/header/body/heartbeat)."""
    return _framing(port, raw_frame(9, 1, b"\x00\x00"))


@scenario()
def scenario_frame_too_large_method(port: int) -> Result:
    """A method frame bigger than the negotiated frame_max (4096)."""
    big = {"x-pad": "p" * 5000}
    frame = method_frame(1, spec.Queue.Declare(queue="", exclusive=True, arguments=big))
    return _framing(port, frame, frame_max=4096)


def _body_frame_probe(port: int, payload_size: int) -> Result:
    """Publish one message in a single body frame of ``payload_size`` bytes (frame_max 4096),
    then basic.get it: either the get succeeds or the connection is closed."""
    with open_client(port, frame_max=4096) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        data = method_frame(1, spec.Basic.Publish(exchange="", routing_key=queue))
        data += content_frames(1, b"b" * payload_size, frame_max=1 << 20)
        data += method_frame(1, spec.Basic.Get(queue=queue, no_ack=True))
        reply = attempt_raw(client, data)
        return {"reply": reply, "then": client.drain(0.3)}


@scenario()
def scenario_frame_body_payload_frame_max_minus_8(port: int) -> Result:
    """A body frame of exactly frame_max octets in all (payload frame_max - 8)."""
    return _body_frame_probe(port, 4096 - 8)


@scenario()
def scenario_frame_body_payload_frame_max(port: int) -> Result:
    """A body frame whose payload alone is frame_max octets (8 over, header included)."""
    return _body_frame_probe(port, 4096)


@scenario()
def scenario_frame_body_payload_frame_max_plus_1(port: int) -> Result:
    """A body frame whose payload is frame_max + 1 octets."""
    return _body_frame_probe(port, 4096 + 1)


@scenario()
def scenario_method_on_unopened_channel(port: int) -> Result:
    """queue.declare on channel 5, which was never opened."""
    return _framing(port, method_frame(5, spec.Queue.Declare(queue="", exclusive=True)))


@scenario()
def scenario_channel_open_twice(port: int) -> Result:
    """channel.open on channel 1 which is already open."""
    return _framing(port, method_frame(1, spec.Channel.Open()))


@scenario()
def scenario_channel_number_above_channel_max(port: int) -> Result:
    """channel.open on channel numbers above the negotiated channel_max (10)."""
    with open_client(port, channel_max=10) as client:
        return {
            "open_10": attempt(client, 10, spec.Channel.Open()),
            "open_11": attempt(client, 11, spec.Channel.Open()),
            "open_65535": attempt(client, 65535, spec.Channel.Open()),
        }


@scenario()
def scenario_channel_count_above_channel_max(port: int) -> Result:
    """With channel_max 2 negotiated: open channels 1 and 2, then a third one."""
    with open_client(port, channels=(1, 2), channel_max=2) as client:
        return {"open_3": attempt(client, 3, spec.Channel.Open())}


@scenario()
def scenario_channel_open_on_channel_zero(port: int) -> Result:
    """channel.open on channel 0."""
    return _framing(port, method_frame(0, spec.Channel.Open()))


@scenario()
def scenario_channel_method_on_channel_zero(port: int) -> Result:
    """queue.declare on channel 0."""
    return _framing(port, method_frame(0, spec.Queue.Declare(queue="", exclusive=True)))


@scenario()
def scenario_connection_method_on_channel_one(port: int) -> Result:
    """connection.tune-ok sent on channel 1."""
    return _framing(port, method_frame(1, spec.Connection.TuneOk(2047, 131072, 0)))


@scenario()
def scenario_content_header_without_publish(port: int) -> Result:
    """A content header frame on channel 1 with no basic.publish before it."""
    return _framing(port, content_frames(1, b"hello"))


@scenario()
def scenario_body_without_publish(port: int) -> Result:
    """A body frame on channel 1 when a method frame is expected."""
    return _framing(port, raw_frame(FRAME_BODY, 1, b"hello"))


@scenario()
def scenario_method_instead_of_content_header(port: int) -> Result:
    """basic.publish followed by another method instead of its content header."""
    data = method_frame(1, spec.Basic.Publish(exchange="", routing_key="conf-nowhere"))
    data += method_frame(1, spec.Queue.Declare(queue="", exclusive=True))
    return _framing(port, data)


@scenario()
def scenario_method_instead_of_body(port: int) -> Result:
    """basic.publish and a content header announcing 5 bytes, then a method frame."""
    data = method_frame(1, spec.Basic.Publish(exchange="", routing_key="conf-nowhere"))
    data += content_frames(1, b"hello")[: -len(raw_frame(FRAME_BODY, 1, b"hello"))]
    data += method_frame(1, spec.Queue.Declare(queue="", exclusive=True))
    return _framing(port, data)


@scenario()
def scenario_body_longer_than_header_size(port: int) -> Result:
    """A content header announcing 5 bytes, a 10-byte body frame, then basic.get."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        data = method_frame(1, spec.Basic.Publish(exchange="", routing_key=queue))
        data += content_frames(1, b"hello")[: -len(raw_frame(FRAME_BODY, 1, b"hello"))]
        data += raw_frame(FRAME_BODY, 1, b"hellohello")
        data += method_frame(1, spec.Basic.Get(queue=queue, no_ack=True))
        reply = attempt_raw(client, data)
        return {"reply": reply, "then": client.drain(0.3)}


@scenario()
def scenario_content_header_wrong_class(port: int) -> Result:
    """basic.publish then a content header whose class id is 50 (queue) instead of 60."""
    data = method_frame(1, spec.Basic.Publish(exchange="", routing_key="conf-nowhere"))
    data += raw_frame(FRAME_HEADER, 1, struct.pack(">HHQH", 50, 0, 0, 0))
    return _framing(port, data)


@scenario()
def scenario_content_header_on_other_channel(port: int) -> Result:
    """basic.publish on channel 1, its content header on channel 2 (also open)."""
    with open_client(port, channels=(1, 2)) as client:
        data = method_frame(1, spec.Basic.Publish(exchange="", routing_key="conf-nowhere"))
        data += content_frames(2, b"hello")
        return {"reply": attempt_raw(client, data)}


@scenario()
def scenario_unknown_method_id(port: int) -> Result:
    """Class 60 (basic), method 99: an unknown method id."""
    return _framing(port, raw_frame(FRAME_METHOD, 1, method_payload(60, 99)))


@scenario()
def scenario_unknown_class_id(port: int) -> Result:
    """Class 99, method 10: an unknown class id."""
    return _framing(port, raw_frame(FRAME_METHOD, 1, method_payload(99, 10)))


@scenario()
def scenario_unknown_connection_method(port: int) -> Result:
    """Class 10 (connection), method 99, on channel 0."""
    return _framing(port, raw_frame(FRAME_METHOD, 0, method_payload(10, 99)))


@scenario()
def scenario_truncated_method_args(port: int) -> Result:
    """queue.declare whose queue-name short string claims 20 bytes but has 4."""
    args = struct.pack(">H", 0) + bytes([20]) + b"conf"
    return _framing(port, raw_frame(FRAME_METHOD, 1, method_payload(50, 10, args)))


@scenario()
def scenario_empty_method_payload(port: int) -> Result:
    """A method frame with a 2-byte payload (no room for class and method ids)."""
    return _framing(port, raw_frame(FRAME_METHOD, 1, b"\x00\x32"))


@scenario()
def scenario_trailing_method_args(port: int) -> Result:
    """channel.flow(active) with 3 extra bytes after its arguments."""
    frame = method_frame(1, spec.Channel.Flow(active=True))
    payload = frame[7:-1] + b"xyz"
    return _framing(port, raw_frame(FRAME_METHOD, 1, payload))


@scenario()
def scenario_bad_field_table_type(port: int) -> Result:
    """queue.declare whose arguments table holds a value of unknown type tag 'Q'."""
    table = shortstr("x-foo") + b"Q" + b"\x00\x00\x00\x01"
    args = struct.pack(">H", 0) + shortstr("") + b"\x08" + struct.pack(">I", len(table)) + table
    return _framing(port, raw_frame(FRAME_METHOD, 1, method_payload(50, 10, args)))


@scenario()
def scenario_heartbeat_on_channel_zero(port: int) -> Result:
    """A heartbeat frame on channel 0 gets no reply; the connection keeps working."""
    with open_client(port) as client:
        client.send(raw_frame(FRAME_HEARTBEAT, 0, b""))
        quiet = client.drain(0.3)
        return {"after_heartbeat": quiet, "channel_open": client.open_channel(2)}


@scenario()
def scenario_heartbeat_on_nonzero_channel(port: int) -> Result:
    """A heartbeat frame on channel 1."""
    return _framing(port, raw_frame(FRAME_HEARTBEAT, 1, b""))


@scenario()
def scenario_heartbeat_with_payload(port: int) -> Result:
    """A heartbeat frame on channel 0 carrying 4 payload bytes."""
    return _framing(port, raw_frame(FRAME_HEARTBEAT, 0, b"junk"))


@scenario()
def scenario_connection_open_twice(port: int) -> Result:
    """A second connection.open after the connection is open."""
    return _framing(port, method_frame(0, spec.Connection.Open(virtual_host="/")))


@scenario()
def scenario_start_ok_after_open(port: int) -> Result:
    """connection.start-ok sent again on an open connection."""
    method = spec.Connection.StartOk(
        client_properties={}, mechanism="PLAIN", response=plain_response()
    )
    return _framing(port, method_frame(0, method))


# =============================================================================================
# Closing connections and channels
# =============================================================================================


@scenario()
def scenario_client_connection_close(port: int) -> Result:
    """Client connection.close: close-ok, then the server closes the socket."""
    client = open_client(port)
    try:
        reply = client.call(0, spec.Connection.Close(200, "bye", 0, 0))
        return {"reply": reply, "then": method_name(client.recv_frame(1.0))}
    finally:
        client.sock.close()


@scenario()
def scenario_client_connection_close_with_error_code(port: int) -> Result:
    """Client connection.close carrying an error code (541) and ids: still just close-ok."""
    client = open_client(port)
    try:
        reply = client.call(0, spec.Connection.Close(541, "client broke", 60, 40))
        return {"reply": reply, "then": method_name(client.recv_frame(1.0))}
    finally:
        client.sock.close()


@scenario()
def scenario_client_channel_close(port: int) -> Result:
    """Client channel.close: close-ok; the channel number can be opened again."""
    with open_client(port) as client:
        reply = client.call(1, spec.Channel.Close(200, "bye", 0, 0))
        return {"reply": reply, "reopen": client.open_channel(1)}


@scenario()
def scenario_channel_close_unopened(port: int) -> Result:
    """channel.close on a channel that was never opened."""
    return _framing(port, method_frame(7, spec.Channel.Close(200, "bye", 0, 0)))


@scenario()
def scenario_channel_close_ok_unopened(port: int) -> Result:
    """channel.close-ok on a channel that was never opened."""
    return _framing(port, method_frame(7, spec.Channel.CloseOk()))


@scenario()
def scenario_methods_after_server_channel_close(port: int) -> Result:
    """After a server channel.close, other methods on that channel are ignored until close-ok."""
    with open_client(port) as client:
        closed = describe(client.rpc(1, spec.Queue.Declare(queue="conf-missing", passive=True)))
        client.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
        client.send_method(1, spec.Basic.Qos(prefetch_count=1))
        ignored = client.drain(0.4)
        client.send_method(1, spec.Channel.CloseOk())
        after_close_ok = client.drain(0.3)
        return {
            "close": closed,
            "while_closing": ignored,
            "after_close_ok": after_close_ok,
            "reopen": client.open_channel(1),
        }


@scenario()
def scenario_channel_close_while_server_closing(port: int) -> Result:
    """Answering a server channel.close with channel.close (instead of close-ok)."""
    with open_client(port) as client:
        closed = describe(client.rpc(1, spec.Queue.Declare(queue="conf-missing", passive=True)))
        reply = client.call(1, spec.Channel.Close(200, "bye", 0, 0), timeout=0.5)
        return {"close": closed, "reply": reply, "reopen": attempt(client, 1, spec.Channel.Open())}


@scenario()
def scenario_methods_after_server_connection_close(port: int) -> Result:
    """After a server connection.close, other methods are ignored; close-ok ends it."""
    client = open_client(port)
    try:
        closed = describe(client.rpc(1, spec.Channel.Open()))
        client.send_method(2, spec.Channel.Open())
        client.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
        ignored = client.drain(0.4)
        return {"close": closed, "while_closing": ignored, "after": client.after_connection_close()}
    finally:
        client.sock.close()


@scenario()
def scenario_channel_flow_active_false(port: int) -> Result:
    """channel.flow(active=false) from the client."""
    with open_client(port) as client:
        return {"reply": attempt(client, 1, spec.Channel.Flow(active=False))}


@scenario()
def scenario_channel_flow_active_true(port: int) -> Result:
    """channel.flow(active=true) from the client."""
    with open_client(port) as client:
        return {"reply": attempt(client, 1, spec.Channel.Flow(active=True))}


# =============================================================================================
# Exchanges
# =============================================================================================


def _xdeclare(name: str, kind: str = "direct", **kwargs: Any) -> spec.Exchange.Declare:
    """An exchange.declare method."""
    return spec.Exchange.Declare(exchange=name, type=kind, **kwargs)


def _qbind(queue: str, exchange: str, key: str = "", **kw: Any) -> spec.Queue.Bind:
    """A queue.bind method."""
    return spec.Queue.Bind(queue=queue, exchange=exchange, routing_key=key, **kw)


def _qunbind(queue: str, exchange: str, key: str = "", **kw: Any) -> spec.Queue.Unbind:
    """A queue.unbind method."""
    return spec.Queue.Unbind(queue=queue, exchange=exchange, routing_key=key, **kw)


def _xbind(destination: str, source: str, key: str = "") -> spec.Exchange.Bind:
    """An exchange.bind method."""
    return spec.Exchange.Bind(destination=destination, source=source, routing_key=key)


def _xunbind(destination: str, source: str, key: str = "") -> spec.Exchange.Unbind:
    """An exchange.unbind method."""
    return spec.Exchange.Unbind(destination=destination, source=source, routing_key=key)


def _once_gone(client: RawClient, channel: int, passive: Any, timeout: float = 2.0) -> Any:
    """Repeat a passive declare until it fails (deletions may lag their cause a little);
    the outcome of the last attempt."""
    results: list[Any] = []

    def gone() -> bool:
        result = attempt(client, channel, passive)
        results.append(result)
        return not (isinstance(result, dict) and result.get("method", "").endswith(".DeclareOk"))

    wait_until(gone, timeout, interval=0.05)
    return results[-1]


def _redeclare(port: int, first: spec.Exchange.Declare, second: Any) -> Result:
    """Declare something, then (re)declare with ``second``: the second reply."""
    with open_client(port) as client:
        return {"first": attempt(client, 1, first), "second": attempt(client, 1, second)}


@scenario(exchanges=tuple(f"conf-ex-type-{t}" for t in ("direct", "fanout", "topic", "headers")))
def scenario_exchange_declare_each_type(port: int) -> Result:
    """Declare, passively re-declare and delete one exchange of each built-in type."""
    with open_client(port) as client:
        out = {}
        for kind in ("direct", "fanout", "topic", "headers"):
            name = f"conf-ex-type-{kind}"
            out[kind] = [
                attempt(client, 1, _xdeclare(name, kind)),
                attempt(client, 1, _xdeclare(name, kind, passive=True)),
                attempt(client, 1, spec.Exchange.Delete(exchange=name)),
            ]
        return out


@scenario(exchanges=("conf-ex-unknown-type",))
def scenario_exchange_declare_unknown_type(port: int) -> Result:
    """exchange.declare with type 'conf-nonsense'."""
    with open_client(port) as client:
        return {"reply": attempt(client, 1, _xdeclare("conf-ex-unknown-type", "conf-nonsense"))}


@scenario(exchanges=("conf-ex-unknown-type-passive",))
def scenario_exchange_declare_unknown_type_passive(port: int) -> Result:
    """Passive exchange.declare of a missing exchange with an unknown type."""
    with open_client(port) as client:
        method = _xdeclare("conf-ex-unknown-type-passive", "conf-nonsense", passive=True)
        return {"reply": attempt(client, 1, method)}


@scenario(exchanges=("conf-ex-redeclare",))
def scenario_exchange_redeclare_same(port: int) -> Result:
    """Redeclaring with identical properties is fine."""
    m = _xdeclare("conf-ex-redeclare", "topic", auto_delete=False)
    return _redeclare(port, m, m)


@scenario(exchanges=("conf-ex-redeclare",))
def scenario_exchange_redeclare_type(port: int) -> Result:
    """Redeclare a direct exchange as fanout."""
    return _redeclare(
        port, _xdeclare("conf-ex-redeclare"), _xdeclare("conf-ex-redeclare", "fanout")
    )


@scenario(exchanges=("conf-ex-redeclare",))
def scenario_exchange_redeclare_durable(port: int) -> Result:
    """Redeclare a transient exchange as durable."""
    return _redeclare(
        port, _xdeclare("conf-ex-redeclare"), _xdeclare("conf-ex-redeclare", durable=True)
    )


@scenario(exchanges=("conf-ex-redeclare",))
def scenario_exchange_redeclare_auto_delete(port: int) -> Result:
    """Redeclare an exchange with auto_delete flipped."""
    return _redeclare(
        port, _xdeclare("conf-ex-redeclare"), _xdeclare("conf-ex-redeclare", auto_delete=True)
    )


@scenario(exchanges=("conf-ex-redeclare",))
def scenario_exchange_redeclare_internal(port: int) -> Result:
    """Redeclare an exchange with internal flipped."""
    return _redeclare(
        port, _xdeclare("conf-ex-redeclare"), _xdeclare("conf-ex-redeclare", internal=True)
    )


@scenario(exchanges=("conf-ex-redeclare",))
def scenario_exchange_redeclare_arguments(port: int) -> Result:
    """Redeclare an exchange with a different alternate-exchange argument."""
    first = _xdeclare("conf-ex-redeclare", arguments={"alternate-exchange": "conf-ae-1"})
    second = _xdeclare("conf-ex-redeclare", arguments={"alternate-exchange": "conf-ae-2"})
    return _redeclare(port, first, second)


@scenario(exchanges=("conf-ex-redeclare",))
def scenario_exchange_redeclare_extra_custom_argument(port: int) -> Result:
    """Redeclare an exchange adding an argument RabbitMQ does not interpret ('x-conf')."""
    first = _xdeclare("conf-ex-redeclare")
    second = _xdeclare("conf-ex-redeclare", arguments={"x-conf": "yes"})
    return _redeclare(port, first, second)


@scenario(exchanges=("conf-ex-redeclare",))
def scenario_exchange_passive_ignores_type(port: int) -> Result:
    """Passive declare of an existing direct exchange, stating type fanout and durable."""
    first = _xdeclare("conf-ex-redeclare")
    second = _xdeclare("conf-ex-redeclare", "fanout", durable=True, passive=True)
    return _redeclare(port, first, second)


@scenario()
def scenario_exchange_passive_missing(port: int) -> Result:
    """Passive declare of an exchange that does not exist."""
    with open_client(port) as client:
        return {"reply": attempt(client, 1, _xdeclare("conf-ex-missing", passive=True))}


@scenario(exchanges=("amq.conf-ex",))
def scenario_exchange_declare_amq_prefix(port: int) -> Result:
    """Declare 'amq.conf-ex' (reserved prefix), actively and passively."""
    with open_client(port) as client:
        return {
            "active": attempt(client, 1, _xdeclare("amq.conf-ex")),
            "passive": attempt(client, 1, _xdeclare("amq.conf-ex", passive=True)),
        }


@scenario()
def scenario_exchange_builtins(port: int) -> Result:
    """Passive declare of the amq.* exchanges, naming the type each is expected to have."""
    with open_client(port) as client:
        out = {}
        for name, kind in (
            ("amq.direct", "direct"),
            ("amq.fanout", "fanout"),
            ("amq.topic", "topic"),
            ("amq.headers", "headers"),
            ("amq.match", "headers"),
        ):
            out[name] = attempt(client, 1, _xdeclare(name, kind, passive=True))
        return out


@scenario()
def scenario_exchange_builtin_active_redeclare(port: int) -> Result:
    """Non-passive declare of amq.direct with its exact properties (durable direct)."""
    with open_client(port) as client:
        method = _xdeclare("amq.direct", "direct", durable=True)
        return {"reply": attempt(client, 1, method)}


@scenario()
def scenario_exchange_builtin_delete(port: int) -> Result:
    """exchange.delete of amq.direct."""
    with open_client(port) as client:
        return {"reply": attempt(client, 1, spec.Exchange.Delete(exchange="amq.direct"))}


@scenario()
def scenario_exchange_delete_missing(port: int) -> Result:
    """exchange.delete of an exchange that does not exist."""
    with open_client(port) as client:
        return {"reply": attempt(client, 1, spec.Exchange.Delete(exchange="conf-ex-missing"))}


@scenario(exchanges=("conf-ex-unused",), queues=("conf-q-unused",))
def scenario_exchange_delete_if_unused(port: int) -> Result:
    """exchange.delete if-unused: with a queue binding, then after unbinding."""
    with open_client(port) as client:
        ok(client, 1, _xdeclare("conf-ex-unused"))
        ok(client, 1, spec.Queue.Declare(queue="conf-q-unused"))
        ok(client, 1, _qbind("conf-q-unused", "conf-ex-unused"))
        in_use = attempt(client, 1, spec.Exchange.Delete(exchange="conf-ex-unused", if_unused=True))
        ok(client, 1, _qunbind("conf-q-unused", "conf-ex-unused"))
        unused = attempt(client, 1, spec.Exchange.Delete(exchange="conf-ex-unused", if_unused=True))
        return {"bound": in_use, "unbound": unused}


@scenario(exchanges=("conf-ex-src", "conf-ex-dst"))
def scenario_exchange_delete_if_unused_e2e(port: int) -> Result:
    """if-unused delete of the source, then of the destination, of an exchange binding."""
    with open_client(port) as client:
        ok(client, 1, _xdeclare("conf-ex-src"))
        ok(client, 1, _xdeclare("conf-ex-dst"))
        ok(client, 1, _xbind("conf-ex-dst", "conf-ex-src"))
        src = attempt(client, 1, spec.Exchange.Delete(exchange="conf-ex-src", if_unused=True))
        dst = attempt(client, 1, spec.Exchange.Delete(exchange="conf-ex-dst", if_unused=True))
        src_after = attempt(client, 1, _xdeclare("conf-ex-src", passive=True))
        return {"source": src, "destination": dst, "source_after": src_after}


@scenario(exchanges=("conf-ex-internal",))
def scenario_exchange_internal_publish(port: int) -> Result:
    """basic.publish to an internal exchange."""
    with open_client(port) as client:
        ok(client, 1, _xdeclare("conf-ex-internal", "fanout", internal=True))
        client.publish(1, "conf-ex-internal", "k", b"x")
        return {"reply": outcome(client, client.recv_reply())}


@scenario()
def scenario_exchange_default_operations(port: int) -> Result:
    """Operations on the default exchange '': declare, passive declare, bind, unbind, delete."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        return {
            "declare": attempt(client, 1, _xdeclare("", "direct", durable=True)),
            "declare_passive": attempt(client, 1, _xdeclare("", "direct", passive=True)),
            "bind": attempt(client, 1, _qbind(queue, "", "k")),
            "unbind": attempt(client, 1, _qunbind(queue, "", queue)),
            "delete": attempt(client, 1, spec.Exchange.Delete(exchange="")),
            "e2e_bind_source": attempt(client, 1, _xbind("amq.fanout", "")),
            "e2e_bind_destination": attempt(client, 1, _xbind("", "amq.fanout")),
        }


@scenario(queues=("conf-q-default",))
def scenario_exchange_default_routes_by_queue_name(port: int) -> Result:
    """Publishing to '' delivers to the queue named by the routing key (and nowhere else)."""
    with pika_channel(port) as ch:
        ch.queue_declare("conf-q-default")
        ch.basic_publish("", "conf-q-default", b"hit")
        ch.basic_publish("", "conf-q-default-missing", b"miss")
        ch.basic_publish("", "CONF-Q-DEFAULT", b"case")
        return {"bodies": get_bodies(ch, "conf-q-default")}


@scenario(exchanges=("conf-ex-e2e-src", "conf-ex-e2e-dst"), queues=("conf-q-e2e",))
def scenario_exchange_bind_routing(port: int) -> Result:
    """exchange.bind direct→fanout on key 'k': messages flow; unbind stops them."""
    with pika_channel(port) as ch:
        ch.exchange_declare("conf-ex-e2e-src", "direct")
        ch.exchange_declare("conf-ex-e2e-dst", "fanout")
        ch.queue_declare("conf-q-e2e")
        ch.queue_bind("conf-q-e2e", "conf-ex-e2e-dst")
        ch.exchange_bind("conf-ex-e2e-dst", "conf-ex-e2e-src", routing_key="k")
        ch.basic_publish("conf-ex-e2e-src", "k", b"k1")
        ch.basic_publish("conf-ex-e2e-src", "other", b"other")
        bound = get_bodies(ch, "conf-q-e2e")
        ch.exchange_unbind("conf-ex-e2e-dst", "conf-ex-e2e-src", routing_key="k")
        ch.basic_publish("conf-ex-e2e-src", "k", b"k2")
        return {"bound": bound, "unbound": get_bodies(ch, "conf-q-e2e")}


@scenario(exchanges=("conf-ex-loop-a", "conf-ex-loop-b"), queues=("conf-q-loop",))
def scenario_exchange_bind_loop(port: int) -> Result:
    """Fanout exchanges A→B→A with a queue on both: one publish, one copy, no hang."""
    with pika_channel(port) as ch:
        ch.exchange_declare("conf-ex-loop-a", "fanout")
        ch.exchange_declare("conf-ex-loop-b", "fanout")
        ch.exchange_bind("conf-ex-loop-b", "conf-ex-loop-a")
        ch.exchange_bind("conf-ex-loop-a", "conf-ex-loop-b")
        ch.queue_declare("conf-q-loop")
        ch.queue_bind("conf-q-loop", "conf-ex-loop-b")
        ch.basic_publish("conf-ex-loop-a", "", b"via-a")
        only_b = get_bodies(ch, "conf-q-loop")
        ch.queue_bind("conf-q-loop", "conf-ex-loop-a")
        ch.basic_publish("conf-ex-loop-a", "", b"via-a-both")
        ch.basic_publish("conf-ex-loop-b", "", b"via-b-both")
        return {"bound_to_b": only_b, "bound_to_both": get_bodies(ch, "conf-q-loop")}


@scenario(exchanges=("conf-ex-paths-x", "conf-ex-paths-y"), queues=("conf-q-paths",))
def scenario_exchange_two_paths_one_copy(port: int) -> Result:
    """A queue reachable from X directly and via X→Y receives a single copy."""
    with pika_channel(port) as ch:
        ch.exchange_declare("conf-ex-paths-x", "direct")
        ch.exchange_declare("conf-ex-paths-y", "fanout")
        ch.queue_declare("conf-q-paths")
        ch.queue_bind("conf-q-paths", "conf-ex-paths-x", routing_key="k")
        ch.exchange_bind("conf-ex-paths-y", "conf-ex-paths-x", routing_key="k")
        ch.queue_bind("conf-q-paths", "conf-ex-paths-y")
        ch.basic_publish("conf-ex-paths-x", "k", b"one")
        return {"bodies": get_bodies(ch, "conf-q-paths")}


@scenario(queues=("conf-q-e2e-missing",))
def scenario_exchange_bind_missing(port: int) -> Result:
    """exchange.bind / queue.bind naming missing exchanges or queues; unbind of nothing."""
    with open_client(port) as client:
        ok(client, 1, spec.Queue.Declare(queue="conf-q-e2e-missing"))
        return {
            "e2e_missing_source": attempt(client, 1, _xbind("amq.fanout", "conf-ex-none")),
            "e2e_missing_destination": attempt(client, 1, _xbind("conf-ex-none", "amq.fanout")),
            "queue_bind_missing_exchange": attempt(
                client, 1, _qbind("conf-q-e2e-missing", "conf-ex-none")
            ),
            "queue_bind_missing_queue": attempt(client, 1, _qbind("conf-q-none", "amq.direct")),
            "queue_unbind_not_bound": attempt(
                client,
                1,
                _qunbind("conf-q-e2e-missing", "amq.direct", "z"),
            ),
            "queue_unbind_missing_queue": attempt(client, 1, _qunbind("conf-q-none", "amq.direct")),
            "queue_unbind_missing_exchange": attempt(
                client, 1, _qunbind("conf-q-e2e-missing", "conf-ex-none")
            ),
            "e2e_unbind_not_bound": attempt(client, 1, _xunbind("amq.fanout", "amq.direct")),
        }


@scenario(exchanges=("conf-ex-ae-main", "conf-ex-ae"), queues=("conf-q-ae-main", "conf-q-ae"))
def scenario_exchange_alternate(port: int) -> Result:
    """alternate-exchange: unroutable messages go to the AE; mandatory is then satisfied."""
    with open_client(port) as client:
        ok(client, 1, _xdeclare("conf-ex-ae", "fanout"))
        ok(client, 1, _xdeclare("conf-ex-ae-main", arguments={"alternate-exchange": "conf-ex-ae"}))
        ok(client, 1, spec.Queue.Declare(queue="conf-q-ae-main"))
        ok(client, 1, spec.Queue.Declare(queue="conf-q-ae"))
        ok(client, 1, _qbind("conf-q-ae-main", "conf-ex-ae-main", "a"))
        ok(client, 1, _qbind("conf-q-ae", "conf-ex-ae"))
        client.publish(1, "conf-ex-ae-main", "a", b"routed", mandatory=True)
        client.publish(1, "conf-ex-ae-main", "b", b"to-ae", mandatory=True)
        returns = client.drain(0.3)
        result = {"returns": returns}
        for queue in ("conf-q-ae-main", "conf-q-ae"):
            ok(client, 1, spec.Basic.Consume(queue=queue, no_ack=True, consumer_tag=queue))
            result[queue] = bodies(collect(client, 0.3))
        return result


@scenario(exchanges=("conf-ex-ae-dangling",))
def scenario_exchange_alternate_missing(port: int) -> Result:
    """An alternate-exchange that does not exist: mandatory unroutable is returned."""
    with open_client(port) as client:
        arguments = {"alternate-exchange": "conf-ex-ae-none"}
        ok(client, 1, _xdeclare("conf-ex-ae-dangling", arguments=arguments))
        client.publish(1, "conf-ex-ae-dangling", "b", b"lost", mandatory=True)
        return {"returned": collect(client, 0.3)}


@scenario(exchanges=("conf-ex-autodel",), queues=("conf-q-autodel",))
def scenario_exchange_auto_delete(port: int) -> Result:
    """An auto-delete exchange survives until its last binding goes, then disappears."""
    with open_client(port) as client:
        ok(client, 1, _xdeclare("conf-ex-autodel", auto_delete=True))
        passive = _xdeclare("conf-ex-autodel", passive=True)
        never_bound = attempt(client, 1, passive)
        ok(client, 1, spec.Queue.Declare(queue="conf-q-autodel"))
        ok(client, 1, _qbind("conf-q-autodel", "conf-ex-autodel", "a"))
        ok(client, 1, _qbind("conf-q-autodel", "conf-ex-autodel", "b"))
        ok(client, 1, _qunbind("conf-q-autodel", "conf-ex-autodel", "a"))
        one_left = attempt(client, 1, passive)
        ok(client, 1, _qunbind("conf-q-autodel", "conf-ex-autodel", "b"))
        return {
            "never_bound": never_bound,
            "one_left": one_left,
            "none_left": _once_gone(client, 1, passive),
        }


@scenario(exchanges=("conf-ex-autodel-q",), queues=("conf-q-autodel-q",))
def scenario_exchange_auto_delete_on_queue_delete(port: int) -> Result:
    """An auto-delete exchange disappears when the only bound queue is deleted."""
    with open_client(port) as client:
        ok(client, 1, _xdeclare("conf-ex-autodel-q", "fanout", auto_delete=True))
        ok(client, 1, spec.Queue.Declare(queue="conf-q-autodel-q"))
        ok(client, 1, _qbind("conf-q-autodel-q", "conf-ex-autodel-q"))
        ok(client, 1, spec.Queue.Delete(queue="conf-q-autodel-q"))
        return {"passive": _once_gone(client, 1, _xdeclare("conf-ex-autodel-q", passive=True))}


@scenario(exchanges=("conf-ex-autodel-src", "conf-ex-autodel-dst"))
def scenario_exchange_auto_delete_e2e(port: int) -> Result:
    """An auto-delete source exchange after its only exchange binding is removed."""
    with open_client(port) as client:
        ok(client, 1, _xdeclare("conf-ex-autodel-src", auto_delete=True))
        ok(client, 1, _xdeclare("conf-ex-autodel-dst"))
        ok(client, 1, _xbind("conf-ex-autodel-dst", "conf-ex-autodel-src", "k"))
        ok(client, 1, _xunbind("conf-ex-autodel-dst", "conf-ex-autodel-src", "k"))
        passive = _xdeclare("conf-ex-autodel-src", passive=True)
        return {"source_after_unbind": _once_gone(client, 1, passive)}


# =============================================================================================
# Queues
# =============================================================================================


def _qdeclare(name: str, **kwargs: Any) -> spec.Queue.Declare:
    """A queue.declare method."""
    return spec.Queue.Declare(queue=name, **kwargs)


def _numbered(count: int) -> list[str]:
    """Message bodies '1'..'count'."""
    return [str(i) for i in range(1, count + 1)]


@scenario()
def scenario_queue_server_named(port: int) -> Result:
    """queue.declare with an empty name: the server picks an 'amq.gen-' name."""
    with open_client(port) as client:
        item = client.rpc(1, _qdeclare("", exclusive=True))
        name = item.method.queue
        return {
            "reply": describe(item),
            "amq_gen_prefix": name.startswith("amq.gen-"),
            "passive_by_name": client.call(1, _qdeclare(name, passive=True)),
        }


@scenario()
def scenario_queue_passive_missing(port: int) -> Result:
    """Passive queue.declare of a queue that does not exist."""
    with open_client(port) as client:
        return {"reply": attempt(client, 1, _qdeclare("conf-q-missing", passive=True))}


@scenario(queues=("amq.conf-q",))
def scenario_queue_declare_amq_prefix(port: int) -> Result:
    """queue.declare of 'amq.conf-q' (reserved prefix), actively and passively."""
    with open_client(port) as client:
        return {
            "active": attempt(client, 1, _qdeclare("amq.conf-q")),
            "passive": attempt(client, 1, _qdeclare("amq.conf-q", passive=True)),
        }


def _queue_redeclare(port: int, first: dict[str, Any], second: dict[str, Any]) -> Result:
    """Declare conf-q-redeclare with ``first`` properties, then again with ``second``."""
    with open_client(port) as client:
        return {
            "first": attempt(client, 1, _qdeclare("conf-q-redeclare", **first)),
            "second": attempt(client, 1, _qdeclare("conf-q-redeclare", **second)),
        }


@scenario(queues=("conf-q-redeclare",))
def scenario_queue_redeclare_same(port: int) -> Result:
    """Redeclaring a queue with identical properties is fine."""
    props = {"durable": False, "arguments": {"x-message-ttl": 60000}}
    return _queue_redeclare(port, props, props)


@scenario(queues=("conf-q-redeclare",))
def scenario_queue_redeclare_durable(port: int) -> Result:
    """Redeclare a transient queue as durable."""
    return _queue_redeclare(port, {}, {"durable": True})


@scenario(queues=("conf-q-redeclare",))
def scenario_queue_redeclare_auto_delete(port: int) -> Result:
    """Redeclare a queue with auto_delete flipped."""
    return _queue_redeclare(port, {}, {"auto_delete": True})


@scenario(queues=("conf-q-redeclare",))
def scenario_queue_redeclare_exclusive(port: int) -> Result:
    """Redeclare a non-exclusive queue as exclusive, from the same connection."""
    return _queue_redeclare(port, {}, {"exclusive": True})


@scenario(queues=("conf-q-redeclare",))
def scenario_queue_redeclare_exclusive_to_shared(port: int) -> Result:
    """Redeclare an exclusive queue as non-exclusive, from the owning connection."""
    return _queue_redeclare(port, {"exclusive": True}, {})


@scenario(queues=("conf-q-redeclare",))
def scenario_queue_redeclare_argument_value(port: int) -> Result:
    """Redeclare a queue with a different x-message-ttl."""
    return _queue_redeclare(
        port, {"arguments": {"x-message-ttl": 1000}}, {"arguments": {"x-message-ttl": 2000}}
    )


@scenario(queues=("conf-q-redeclare",))
def scenario_queue_redeclare_argument_added(port: int) -> Result:
    """Redeclare a queue adding x-max-length."""
    return _queue_redeclare(port, {}, {"arguments": {"x-max-length": 10}})


@scenario(queues=("conf-q-redeclare",))
def scenario_queue_redeclare_argument_removed(port: int) -> Result:
    """Redeclare a queue omitting the x-max-length it was declared with."""
    return _queue_redeclare(port, {"arguments": {"x-max-length": 10}}, {})


@scenario(queues=("conf-q-redeclare",))
def scenario_queue_redeclare_custom_argument(port: int) -> Result:
    """Redeclare a queue with a different value of an argument RabbitMQ ignores."""
    return _queue_redeclare(port, {"arguments": {"x-conf": "a"}}, {"arguments": {"x-conf": "b"}})


@scenario(queues=("conf-q-redeclare",))
def scenario_queue_passive_ignores_properties(port: int) -> Result:
    """Passive declare stating other properties (durable, arguments) than the queue has."""
    return _queue_redeclare(
        port, {}, {"passive": True, "durable": True, "arguments": {"x-max-length": 1}}
    )


@scenario(queues=("conf-q-badarg",))
def scenario_queue_invalid_arguments(port: int) -> Result:
    """Argument validation: wrong types and out-of-range values for x-* arguments."""
    with open_client(port) as client:
        out = {}
        for label, args in (
            ("ttl_negative", {"x-message-ttl": -1}),
            ("ttl_string", {"x-message-ttl": "1000"}),
            ("expires_zero", {"x-expires": 0}),
            ("max_length_negative", {"x-max-length": -1}),
            ("max_length_string", {"x-max-length": "ten"}),
            ("overflow_unknown", {"x-overflow": "conf-nonsense"}),
            ("max_priority_string", {"x-max-priority": "high"}),
            ("dlx_int", {"x-dead-letter-exchange": 5}),
            ("queue_type_unknown", {"x-queue-type": "conf-nonsense"}),
        ):
            out[label] = attempt(client, 1, _qdeclare("conf-q-badarg", arguments=args))
        return out


@scenario(queues=("conf-q-excl",))
def scenario_queue_exclusive_other_connection(port: int) -> Result:
    """Another connection uses an exclusive queue: declare, passive, consume, get, bind..."""
    owner = open_client(port)
    other = open_client(port)
    try:
        ok(owner, 1, _qdeclare("conf-q-excl", exclusive=True))
        out = {}
        for label, method in (
            ("declare", _qdeclare("conf-q-excl", exclusive=True)),
            ("declare_shared", _qdeclare("conf-q-excl")),
            ("declare_passive", _qdeclare("conf-q-excl", passive=True)),
            ("consume", spec.Basic.Consume(queue="conf-q-excl")),
            ("get", spec.Basic.Get(queue="conf-q-excl")),
            ("bind", _qbind("conf-q-excl", "amq.direct", "k")),
            ("unbind", _qunbind("conf-q-excl", "amq.direct", "k")),
            ("purge", spec.Queue.Purge(queue="conf-q-excl")),
            ("delete", spec.Queue.Delete(queue="conf-q-excl")),
        ):
            out[label] = attempt(other, 1, method)
        fill(other, "conf-q-excl", ["from-other"])
        out["publish_then_owner_get"] = get(owner, 1, "conf-q-excl")
        return out
    finally:
        other.close()
        owner.close()


@scenario(queues=("conf-q-counts",))
def scenario_queue_declare_ok_counts(port: int) -> Result:
    """declare-ok message_count (ready only) and consumer_count with an unacked delivery."""
    with open_client(port, channels=(1, 2)) as client:
        empty = client.call(1, _qdeclare("conf-q-counts"))
        fill(client, "conf-q-counts", _numbered(3))
        three = client.call(1, _qdeclare("conf-q-counts", passive=True))
        ok(client, 2, spec.Basic.Qos(prefetch_count=1))
        ok(client, 2, spec.Basic.Consume(queue="conf-q-counts", consumer_tag="c1"))
        delivered = bodies(collect(client, 0.3))
        consuming = client.call(1, _qdeclare("conf-q-counts"))
        return {
            "empty": empty,
            "three_ready": three,
            "delivered": delivered,
            "with_consumer": consuming,
        }


@scenario(queues=("conf-q-purge",))
def scenario_queue_purge(port: int) -> Result:
    """queue.purge returns the number of ready messages; unacked ones are kept."""
    with open_client(port) as client:
        ok(client, 1, _qdeclare("conf-q-purge"))
        fill(client, "conf-q-purge", _numbered(4))
        got = get(client, 1, "conf-q-purge", no_ack=False)
        first = client.call(1, spec.Queue.Purge(queue="conf-q-purge"))
        second = client.call(1, spec.Queue.Purge(queue="conf-q-purge"))
        client.call(1, spec.Channel.Close(200, "", 0, 0))
        client.open_channel(1)
        after_requeue = client.call(1, _qdeclare("conf-q-purge", passive=True))
        return {
            "get": got,
            "purge": first,
            "purge_again": second,
            "unacked_came_back": after_requeue,
        }


@scenario()
def scenario_queue_purge_missing(port: int) -> Result:
    """queue.purge of a queue that does not exist."""
    with open_client(port) as client:
        return {"reply": attempt(client, 1, spec.Queue.Purge(queue="conf-q-missing"))}


@scenario(queues=("conf-q-del",))
def scenario_queue_delete_conditions(port: int) -> Result:
    """queue.delete if_unused with a consumer, if_empty with messages, then plain delete."""
    with open_client(port, channels=(1, 2)) as client:
        ok(client, 1, _qdeclare("conf-q-del"))
        fill(client, "conf-q-del", _numbered(2))
        ok(client, 2, spec.Basic.Qos(prefetch_count=1))
        ok(client, 2, spec.Basic.Consume(queue="conf-q-del", consumer_tag="c1"))
        collect(client, 0.3)
        out = {
            "if_unused": attempt(client, 1, spec.Queue.Delete(queue="conf-q-del", if_unused=True)),
            "if_empty": attempt(client, 1, spec.Queue.Delete(queue="conf-q-del", if_empty=True)),
        }
        out["delete"] = attempt(client, 1, spec.Queue.Delete(queue="conf-q-del"))
        out["consumer_channel_after"] = client.drain(0.3)
        return out


@scenario(queues=("conf-q-del-count",))
def scenario_queue_delete_message_count(port: int) -> Result:
    """queue.delete returns the number of ready messages deleted."""
    with open_client(port) as client:
        ok(client, 1, _qdeclare("conf-q-del-count"))
        fill(client, "conf-q-del-count", _numbered(3))
        return {"reply": attempt(client, 1, spec.Queue.Delete(queue="conf-q-del-count"))}


@scenario()
def scenario_queue_delete_missing(port: int) -> Result:
    """queue.delete of a queue that does not exist (also with if_empty / if_unused)."""
    with open_client(port) as client:
        return {
            "plain": attempt(client, 1, spec.Queue.Delete(queue="conf-q-missing")),
            "if_empty": attempt(
                client, 1, spec.Queue.Delete(queue="conf-q-missing", if_empty=True)
            ),
            "if_unused": attempt(
                client, 1, spec.Queue.Delete(queue="conf-q-missing", if_unused=True)
            ),
        }


@scenario(queues=("conf-q-last",))
def scenario_queue_empty_name_is_last_declared(port: int) -> Result:
    """An empty queue name means the channel's last declared queue for bind/get/purge/..."""
    with open_client(port) as client:
        ok(client, 1, _qdeclare("conf-q-last"))
        out: Result = {"bind": attempt(client, 1, _qbind("", "amq.direct", "conf-last-key"))}
        client.publish(1, "amq.direct", "conf-last-key", b"via-binding")
        client.publish(1, "", "conf-q-last", b"direct")
        out["get"] = get(client, 1, "")
        out["purge"] = attempt(client, 1, spec.Queue.Purge(queue=""))
        out["consume"] = attempt(client, 1, spec.Basic.Consume(queue="", consumer_tag="c1"))
        out["cancel"] = attempt(client, 1, spec.Basic.Cancel(consumer_tag="c1"))
        out["unbind"] = attempt(client, 1, _qunbind("", "amq.direct", "conf-last-key"))
        out["delete"] = attempt(client, 1, spec.Queue.Delete(queue=""))
        out["gone"] = attempt(client, 1, _qdeclare("conf-q-last", passive=True))
        return out


@scenario(queues=("conf-q-last-passive",))
def scenario_queue_empty_name_passive_declare(port: int) -> Result:
    """A passive declare of '' does not mean the last declared queue."""
    with open_client(port) as client:
        ok(client, 1, _qdeclare("conf-q-last-passive"))
        return {"passive": attempt(client, 1, _qdeclare("", passive=True))}


@scenario()
def scenario_queue_empty_name_server_named(port: int) -> Result:
    """After declaring a server-named queue, '' refers to it (publish via binding, get)."""
    with open_client(port) as client:
        ok(client, 1, _qdeclare("", exclusive=True))
        ok(client, 1, _qbind("", "amq.fanout"))
        client.publish(1, "amq.fanout", "", b"fan")
        reply = get(client, 1, "")
        ok(client, 1, _qunbind("", "amq.fanout"))
        return {"get": reply}


@scenario()
def scenario_queue_empty_name_without_declare(port: int) -> Result:
    """An empty queue name on a channel that has declared no queue, for each method."""
    with open_client(port) as client:
        return {
            label: attempt(client, 1, method)
            for label, method in (
                ("bind", _qbind("", "amq.direct", "k")),
                ("unbind", _qunbind("", "amq.direct", "k")),
                ("consume", spec.Basic.Consume(queue="")),
                ("get", spec.Basic.Get(queue="")),
                ("purge", spec.Queue.Purge(queue="")),
                ("delete", spec.Queue.Delete(queue="")),
                ("declare_passive", _qdeclare("", passive=True)),
            )
        }


@scenario(queues=("conf-q-last-other",))
def scenario_queue_empty_name_is_per_channel(port: int) -> Result:
    """The last declared queue is remembered per channel, not per connection."""
    with open_client(port, channels=(1, 2)) as client:
        ok(client, 1, _qdeclare("conf-q-last-other"))
        return {"other_channel_purge": attempt(client, 2, spec.Queue.Purge(queue=""))}


@scenario(queues=("conf-q-last-reopen",))
def scenario_queue_empty_name_after_channel_reopen(port: int) -> Result:
    """A reopened channel does not remember the queue declared before it was closed."""
    with open_client(port) as client:
        ok(client, 1, _qdeclare("conf-q-last-reopen"))
        client.call(1, spec.Channel.Close(200, "", 0, 0))
        client.open_channel(1)
        return {"purge": attempt(client, 1, spec.Queue.Purge(queue=""))}


@scenario(queues=("conf-q-autodel",))
def scenario_queue_auto_delete_last_consumer(port: int) -> Result:
    """An auto-delete queue: kept with no consumer ever, kept after one of two cancels,
    deleted when the last consumer cancels."""
    with open_client(port) as client:
        passive = _qdeclare("conf-q-autodel", passive=True)
        ok(client, 1, _qdeclare("conf-q-autodel", auto_delete=True))
        out = {"never_consumed": client.call(1, passive)}
        ok(client, 1, spec.Basic.Consume(queue="conf-q-autodel", consumer_tag="c1"))
        ok(client, 1, spec.Basic.Consume(queue="conf-q-autodel", consumer_tag="c2"))
        ok(client, 1, spec.Basic.Cancel(consumer_tag="c1"))
        out["one_consumer_left"] = client.call(1, passive)
        ok(client, 1, spec.Basic.Cancel(consumer_tag="c2"))
        out["no_consumers_left"] = _once_gone(client, 1, passive)
        return out


@scenario(queues=("conf-q-autodel-close",))
def scenario_queue_auto_delete_on_channel_close(port: int) -> Result:
    """An auto-delete queue is deleted when the channel of its only consumer closes."""
    with open_client(port, channels=(1, 2)) as client:
        ok(client, 1, _qdeclare("conf-q-autodel-close", auto_delete=True))
        ok(client, 2, spec.Basic.Consume(queue="conf-q-autodel-close", consumer_tag="c1"))
        client.call(2, spec.Channel.Close(200, "", 0, 0))
        return {"after": _once_gone(client, 1, _qdeclare("conf-q-autodel-close", passive=True))}


@scenario(queues=("conf-q-excl-gone",))
def scenario_queue_exclusive_deleted_on_close(port: int) -> Result:
    """An exclusive queue is deleted when its connection closes."""
    owner = open_client(port)
    ok(owner, 1, _qdeclare("conf-q-excl-gone", exclusive=True))
    owner.close()
    with open_client(port) as client:
        return {"after": _once_gone(client, 1, _qdeclare("conf-q-excl-gone", passive=True))}


@scenario(queues=("conf-q-excl-chan",))
def scenario_queue_exclusive_survives_channel_close(port: int) -> Result:
    """An exclusive queue outlives the channel that declared it (it belongs to the connection)."""
    with open_client(port, channels=(1, 2)) as client:
        ok(client, 1, _qdeclare("conf-q-excl-chan", exclusive=True))
        client.call(1, spec.Channel.Close(200, "", 0, 0))
        return {"after": attempt(client, 2, _qdeclare("conf-q-excl-chan", passive=True))}


@scenario(queues=("conf-q-ttl",))
def scenario_queue_message_ttl(port: int) -> Result:
    """x-message-ttl 50 ms: a message not consumed in time is gone."""
    with open_client(port) as client:
        ok(client, 1, _qdeclare("conf-q-ttl", arguments={"x-message-ttl": 50}))
        client.publish(1, "", "conf-q-ttl", b"old")
        time.sleep(0.3)
        client.publish(1, "", "conf-q-ttl", b"fresh")
        return {"first": get(client, 1, "conf-q-ttl"), "second": get(client, 1, "conf-q-ttl")}


@scenario(queues=("conf-q-expiration",))
def scenario_queue_per_message_expiration(port: int) -> Result:
    """Per-message expiration '50' (ms) vs a message without expiration."""
    with pika_channel(port) as ch:
        ch.queue_declare("conf-q-expiration")
        ch.basic_publish("", "conf-q-expiration", b"short", pika.BasicProperties(expiration="50"))
        ch.basic_publish("", "conf-q-expiration", b"forever")
        time.sleep(0.3)
        return {"bodies": get_bodies(ch, "conf-q-expiration")}


@scenario(queues=("conf-q-maxlen",))
def scenario_queue_max_length_drop_head(port: int) -> Result:
    """x-max-length 2 (default overflow drop-head): publishing 1,2,3 keeps 2,3."""
    with pika_channel(port) as ch:
        ch.queue_declare("conf-q-maxlen", arguments={"x-max-length": 2})
        for body in (b"1", b"2", b"3"):
            ch.basic_publish("", "conf-q-maxlen", body)
        return {"bodies": get_bodies(ch, "conf-q-maxlen")}


@scenario(queues=("conf-q-maxlen-reject",))
def scenario_queue_max_length_reject_publish(port: int) -> Result:
    """x-overflow reject-publish with confirms: the third message is nacked."""
    with open_client(port) as client:
        args = {"x-max-length": 2, "x-overflow": "reject-publish"}
        ok(client, 1, _qdeclare("conf-q-maxlen-reject", arguments=args))
        ok(client, 1, spec.Confirm.Select())
        for body in (b"1", b"2", b"3"):
            client.publish(1, "", "conf-q-maxlen-reject", body)
        confirms = confirm_outcomes(client, 3)
        ok(client, 1, spec.Basic.Consume(queue="conf-q-maxlen-reject", no_ack=True))
        return {"confirms": confirms, "bodies": bodies(collect(client, 0.3))}


@scenario(queues=("conf-q-prio",))
def scenario_queue_priority(port: int) -> Result:
    """x-max-priority queue: higher priorities first, FIFO within a priority."""
    with pika_channel(port) as ch:
        ch.queue_declare("conf-q-prio", arguments={"x-max-priority": 5})
        for body, prio in (("a1", 1), ("b5", 5), ("c3", 3), ("d5", 5), ("e0", None), ("f9", 9)):
            ch.basic_publish("", "conf-q-prio", body.encode(), pika.BasicProperties(priority=prio))
        return {"bodies": get_bodies(ch, "conf-q-prio")}


@scenario(queues=("conf-q-dlx-src", "conf-q-dlx-dst"))
def scenario_queue_dead_letter_on_reject(port: int) -> Result:
    """reject(requeue=false) dead-letters via x-dead-letter-exchange; x-death is added."""
    with pika_channel(port) as ch:
        ch.queue_declare("conf-q-dlx-dst")
        args = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "conf-q-dlx-dst"}
        ch.queue_declare("conf-q-dlx-src", arguments=args)
        ch.basic_publish("", "conf-q-dlx-src", b"doomed")
        method, _props, _body = ch.basic_get("conf-q-dlx-src")
        ch.basic_reject(method.delivery_tag, requeue=False)

        def dead_letter() -> Any:
            found = ch.basic_get("conf-q-dlx-dst", auto_ack=True)
            return found if found[0] is not None else None

        got = wait_until(dead_letter, 2.0, interval=0.05)  # dead-lettering is async
        if not got:
            return {"dead_lettered": None}
        method, props, body = got
        deaths = [
            {k: plain(v) for k, v in death.items() if k != "time"}
            for death in (props.headers or {}).get("x-death", [])
        ]
        return {
            "dead_lettered": body.decode(),
            "routing_key": method.routing_key,
            "exchange": method.exchange,
            "x_death": deaths,
            "header_keys": sorted(props.headers or {}),
        }


# =============================================================================================
# Routing: topic, direct, fanout, headers
# =============================================================================================

TOPIC_PATTERNS = (
    "#", "a.#", "#.a", "a.*", "*", "*.*", "a.*.b", "a..b", "a.#.b", "#.#", "",
    "a", "*.a", "#.b.#", "a.b.c", "*.#", "#.*", "a.*.#", "A",
)  # fmt: skip
TOPIC_KEYS = (
    "", "a", "a.b", "a..b", "b.a", "a.b.c", ".", "a.", ".a", "a.x.b", "a.b.b", "b", "a.x.y.b",
)  # fmt: skip


def _routing_matrix(
    port: int,
    exchange: str,
    kind: str,
    bindings: dict[str, dict[str, Any]],
    messages: dict[str, dict[str, Any]],
) -> Result:
    """Bind one queue per entry of ``bindings`` (queue.bind kwargs), publish ``messages``
    (basic_publish kwargs, body = label), and report which labels reached each binding."""
    queues = {label: f"conf-q-rt-{i}" for i, label in enumerate(bindings)}
    with pika_channel(port) as ch:
        ch.confirm_delivery()
        ch.exchange_declare(exchange, kind, auto_delete=True)
        for label, bind in bindings.items():
            ch.queue_declare(queues[label], exclusive=True)
            ch.queue_bind(queues[label], exchange, **bind)
        for label, publish in messages.items():
            ch.basic_publish(exchange, body=label.encode(), **publish)
        return {label: get_bodies(ch, queue) for label, queue in queues.items()}


@scenario(exchanges=("conf-ex-topic",), queues=tuple(f"conf-q-rt-{i}" for i in range(20)))
def scenario_topic_matching(port: int) -> Result:
    """Which topic patterns match which routing keys ('#', '*', empty words, case)."""
    bindings = {p: {"routing_key": p} for p in TOPIC_PATTERNS}
    messages = {f"<{k}>": {"routing_key": k} for k in TOPIC_KEYS}
    return _routing_matrix(port, "conf-ex-topic", "topic", bindings, messages)


@scenario(exchanges=("conf-ex-direct2",), queues=("conf-q-direct-a", "conf-q-direct-b"))
def scenario_direct_same_key_two_queues(port: int) -> Result:
    """Two queues bound with the same key on a direct exchange both get the message."""
    with pika_channel(port) as ch:
        ch.confirm_delivery()
        ch.exchange_declare("conf-ex-direct2", "direct")
        for queue in ("conf-q-direct-a", "conf-q-direct-b"):
            ch.queue_declare(queue)
            ch.queue_bind(queue, "conf-ex-direct2", "k")
        ch.queue_bind("conf-q-direct-a", "conf-ex-direct2", "only-a")
        ch.queue_bind("conf-q-direct-a", "conf-ex-direct2", "K")
        for key in ("k", "only-a", "K", "none"):
            ch.basic_publish("conf-ex-direct2", key, key.encode())
        return {q: get_bodies(ch, q) for q in ("conf-q-direct-a", "conf-q-direct-b")}


@scenario(exchanges=("conf-ex-fanout2",), queues=("conf-q-fanout",))
def scenario_fanout_two_bindings_one_copy(port: int) -> Result:
    """A queue bound twice (different keys) to a fanout exchange gets one copy."""
    with pika_channel(port) as ch:
        ch.confirm_delivery()
        ch.exchange_declare("conf-ex-fanout2", "fanout")
        ch.queue_declare("conf-q-fanout")
        ch.queue_bind("conf-q-fanout", "conf-ex-fanout2", "x")
        ch.queue_bind("conf-q-fanout", "conf-ex-fanout2", "y")
        ch.basic_publish("conf-ex-fanout2", "anything", b"once")
        return {"bodies": get_bodies(ch, "conf-q-fanout")}


@scenario(exchanges=("conf-ex-topic2",), queues=("conf-q-topic-multi",))
def scenario_topic_two_matching_bindings_one_copy(port: int) -> Result:
    """A queue with two topic bindings that both match gets one copy."""
    with pika_channel(port) as ch:
        ch.confirm_delivery()
        ch.exchange_declare("conf-ex-topic2", "topic")
        ch.queue_declare("conf-q-topic-multi")
        ch.queue_bind("conf-q-topic-multi", "conf-ex-topic2", "a.*")
        ch.queue_bind("conf-q-topic-multi", "conf-ex-topic2", "#")
        ch.basic_publish("conf-ex-topic2", "a.b", b"once")
        return {"bodies": get_bodies(ch, "conf-q-topic-multi")}


HEADER_BINDINGS: dict[str, dict[str, Any]] = {
    "all": {"x-match": "all", "a": 1, "b": "x"},
    "any": {"x-match": "any", "a": 1, "b": "x"},
    "default": {"a": 1, "b": "x"},
    "all_with_x_key": {"x-match": "all", "a": 1, "x-h": "y"},
    "any_with_x_key": {"x-match": "any", "x-h": "y"},
    "all-with-x": {"x-match": "all-with-x", "a": 1, "x-h": "y"},
    "any-with-x": {"x-match": "any-with-x", "x-h": "y"},
    "all_empty": {"x-match": "all"},
    "any_empty": {"x-match": "any"},
    "no_args": {},
    "string_1": {"a": "1"},
    "bool_true": {"t": True},
    "void": {"v": None},
}
HEADER_MESSAGES: dict[str, dict[str, Any] | None] = {
    "a1_bx": {"a": 1, "b": "x"},
    "a1": {"a": 1},
    "bx": {"b": "x"},
    "a_str1": {"a": "1"},
    "a1_bx_c2": {"a": 1, "b": "x", "c": 2},
    "a1_xh": {"a": 1, "x-h": "y"},
    "xh": {"x-h": "y"},
    "a2_bx": {"a": 2, "b": "x"},
    "t_true": {"t": True},
    "t_int1": {"t": 1},
    "v_void": {"v": None},
    "v_str": {"v": "anything"},
    "empty": {},
    "none": None,
}


@scenario(exchanges=("conf-ex-headers",), queues=tuple(f"conf-q-rt-{i}" for i in range(20)))
def scenario_headers_matching(port: int) -> Result:
    """Headers exchange: x-match all/any/all-with-x/any-with-x, x- keys, value types."""
    bindings = {label: {"arguments": args} for label, args in HEADER_BINDINGS.items()}
    messages = {
        label: {"routing_key": "", "properties": pika.BasicProperties(headers=headers)}
        for label, headers in HEADER_MESSAGES.items()
    }
    return _routing_matrix(port, "conf-ex-headers", "headers", bindings, messages)


@scenario(exchanges=("conf-ex-headers-bad",))
def scenario_headers_invalid_x_match(port: int) -> Result:
    """queue.bind to a headers exchange with x-match 'conf-nonsense' and with x-match 1."""
    with open_client(port) as client:
        ok(client, 1, _xdeclare("conf-ex-headers-bad", "headers"))
        queue = declare_queue(client, 1, "", exclusive=True)
        out = {}
        for label, value in (("string", "conf-nonsense"), ("int", 1)):
            bind = _qbind(queue, "conf-ex-headers-bad", arguments={"x-match": value})
            out[label] = attempt(client, 1, bind)
        return out


@scenario(exchanges=("conf-ex-headers-key",), queues=("conf-q-headers-key",))
def scenario_headers_ignore_routing_key(port: int) -> Result:
    """A headers binding ignores routing keys (binding key and publish key)."""
    with pika_channel(port) as ch:
        ch.confirm_delivery()
        ch.exchange_declare("conf-ex-headers-key", "headers")
        ch.queue_declare("conf-q-headers-key")
        ch.queue_bind("conf-q-headers-key", "conf-ex-headers-key", "rk", arguments={"a": 1})
        props = pika.BasicProperties(headers={"a": 1})
        ch.basic_publish("conf-ex-headers-key", "other", b"other-key", props)
        ch.basic_publish("conf-ex-headers-key", "rk", b"no-headers")
        return {"bodies": get_bodies(ch, "conf-q-headers-key")}


# =============================================================================================
# Basic: publish, consume, get, ack
# =============================================================================================


def _consume(client: RawClient, channel: int, queue: str, tag: str, **kwargs: Any) -> None:
    """basic.consume with an explicit tag; must succeed."""
    ok(client, channel, spec.Basic.Consume(queue=queue, consumer_tag=tag, **kwargs))


def _ack(client: RawClient, channel: int, tag: int, multiple: bool = False) -> None:
    """Send basic.ack (no reply expected)."""
    client.send_method(channel, spec.Basic.Ack(delivery_tag=tag, multiple=multiple))


def _after_async(client: RawClient, channel: int) -> Any:
    """The outcome of asynchronous methods just sent: a close, or a basic.qos round trip."""
    return attempt(client, channel, spec.Basic.Qos(prefetch_count=0))


@scenario()
def scenario_basic_mandatory_unroutable(port: int) -> Result:
    """mandatory publishes: unroutable via amq.direct and '' are returned; routable are not."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        client.publish(1, "amq.direct", "conf-nowhere", b"direct-nowhere", mandatory=True)
        client.publish(1, "", "conf-q-missing", b"default-nowhere", mandatory=True)
        client.publish(1, "", queue, b"routable", mandatory=True)
        client.publish(1, "amq.direct", "conf-nowhere", b"not-mandatory")
        return {"frames": collect(client, 0.4)}


@scenario()
def scenario_basic_immediate(port: int) -> Result:
    """basic.publish with immediate=true."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        client.publish(1, "", queue, b"now", immediate=True)
        return {"reply": outcome(client, client.recv_reply(1))}


@scenario()
def scenario_basic_publish_missing_exchange(port: int) -> Result:
    """basic.publish to an exchange that does not exist."""
    with open_client(port) as client:
        client.publish(1, "conf-ex-missing", "k", b"x")
        return {"reply": outcome(client, client.recv_reply(1))}


@scenario()
def scenario_basic_publish_content_properties_roundtrip(port: int) -> Result:
    """Every basic property (and header field types) comes back as published."""
    headers = {
        "str": "s",
        "int": 42,
        "neg": -7,
        "big": 2**40,
        "bool": True,
        "none": None,
        "list": [1, "two", False],
        "table": {"nested": "yes"},
        "bytes": b"raw",
    }
    props = pika.BasicProperties(
        content_type="text/plain",
        content_encoding="utf-8",
        headers=headers,
        delivery_mode=2,
        priority=3,
        correlation_id="corr",
        reply_to="reply-q",
        expiration="60000",
        message_id="mid",
        timestamp=1700000000,
        type="kind",
        user_id="guest",
        app_id="conf",
        cluster_id="cluster",
    )
    with pika_channel(port) as ch:
        queue = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", queue, b"props", props)
        _method, got, _body = ch.basic_get(queue, auto_ack=True)
        out = {
            key: plain(value)
            for key, value in vars(got).items()
            if not key.startswith("_") and value is not None
        }
        out["headers"] = _typed(got.headers)
        return out


def _typed(value: Any) -> Any:
    """A decoded field value with the Python type of every leaf, e.g. ``["int", 42]``."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return [type(value).__name__, plain(value)]


@scenario()
def scenario_basic_user_id_mismatch(port: int) -> Result:
    """user_id property different from the authenticated user."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        client.publish(1, "", queue, b"x", spec.BasicProperties(user_id="conf-someone"))
        return {"reply": outcome(client, client.recv_reply(1))}


@scenario()
def scenario_basic_consume_duplicate_tag(port: int) -> Result:
    """Two basic.consume with the same consumer tag on one channel."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        _consume(client, 1, queue, "conf-tag")
        return {
            "reply": attempt(client, 1, spec.Basic.Consume(queue=queue, consumer_tag="conf-tag"))
        }


@scenario()
def scenario_basic_consume_same_tag_other_channel(port: int) -> Result:
    """The same consumer tag on two different channels is fine."""
    with open_client(port, channels=(1, 2)) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        _consume(client, 1, queue, "conf-tag")
        return {
            "reply": attempt(client, 2, spec.Basic.Consume(queue=queue, consumer_tag="conf-tag"))
        }


@scenario()
def scenario_basic_consume_server_tag(port: int) -> Result:
    """basic.consume with an empty tag: the server generates 'amq.ctag-...'."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        item = client.rpc(1, spec.Basic.Consume(queue=queue))
        tag = item.method.consumer_tag
        return {"reply": method_name(item), "amq_ctag_prefix": tag.startswith("amq.ctag-")}


@scenario()
def scenario_basic_consume_missing_queue(port: int) -> Result:
    """basic.consume on a queue that does not exist."""
    with open_client(port) as client:
        return {"reply": attempt(client, 1, spec.Basic.Consume(queue="conf-q-missing"))}


@scenario()
def scenario_basic_get_missing_queue(port: int) -> Result:
    """basic.get on a queue that does not exist."""
    with open_client(port) as client:
        return {"reply": attempt(client, 1, spec.Basic.Get(queue="conf-q-missing"))}


@scenario(queues=("conf-q-excl-consume",))
def scenario_basic_consume_exclusive_conflicts(port: int) -> Result:
    """Exclusive consumer vs other consumers, on the same and on another channel."""
    with open_client(port, channels=(1, 2)) as client:
        ok(client, 1, _qdeclare("conf-q-excl-consume"))
        _consume(client, 1, "conf-q-excl-consume", "excl", exclusive=True)
        out = {
            "second_other_channel": attempt(
                client, 2, spec.Basic.Consume(queue="conf-q-excl-consume", consumer_tag="c2")
            ),
            "second_same_channel": attempt(
                client, 1, spec.Basic.Consume(queue="conf-q-excl-consume", consumer_tag="c3")
            ),
        }
        # channel 1 was closed by the last error (if any), dropping the exclusive consumer.
        _consume(client, 2, "conf-q-excl-consume", "plain")
        out["exclusive_when_others_exist"] = attempt(
            client,
            1,
            spec.Basic.Consume(queue="conf-q-excl-consume", consumer_tag="e2", exclusive=True),
        )
        return out


@scenario()
def scenario_basic_get_message_count(port: int) -> Result:
    """basic.get-ok message_count counts down; then get-empty."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        fill(client, queue, _numbered(3))
        return {"gets": [get(client, 1, queue) for _ in range(4)]}


@scenario()
def scenario_basic_ack_unknown_tag(port: int) -> Result:
    """basic.ack of a delivery tag never issued."""
    with open_client(port) as client:
        _ack(client, 1, 5)
        return {"reply": _after_async(client, 1)}


@scenario()
def scenario_basic_ack_twice(port: int) -> Result:
    """Acking the same delivery tag twice."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        fill(client, queue, ["x"])
        got = get(client, 1, queue, no_ack=False)
        _ack(client, 1, 1)
        _ack(client, 1, 1)
        return {"get": got, "reply": _after_async(client, 1)}


@scenario()
def scenario_basic_ack_tag_zero(port: int) -> Result:
    """basic.ack delivery_tag 0: with multiple=false, and with multiple=true (ack all)."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        fill(client, queue, _numbered(2))
        for _ in range(2):
            get(client, 1, queue, no_ack=False)
        _ack(client, 1, 0, multiple=True)
        multiple = _after_async(client, 1)
        client.call(1, spec.Channel.Close(200, "", 0, 0))
        client.open_channel(1)
        left = client.call(1, _qdeclare(queue, passive=True))
        _ack(client, 1, 0)
        return {"multiple": multiple, "left_after_close": left, "single": _after_async(client, 1)}


@scenario()
def scenario_basic_nack_reject_unknown_tag(port: int) -> Result:
    """basic.nack and basic.reject of delivery tags never issued."""
    with open_client(port) as client:
        client.send_method(1, spec.Basic.Nack(delivery_tag=3, multiple=False, requeue=True))
        nack = _after_async(client, 1)
        client.send_method(1, spec.Basic.Reject(delivery_tag=4, requeue=True))
        return {"nack": nack, "reject": _after_async(client, 1)}


@scenario()
def scenario_basic_ack_after_no_ack_delivery(port: int) -> Result:
    """Acking a delivery received by a no-ack consumer."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        fill(client, queue, ["x"])
        _consume(client, 1, queue, "c1", no_ack=True)
        delivered = collect(client, 0.3)
        _ack(client, 1, 1)
        return {"delivered": delivered, "reply": _after_async(client, 1)}


def _unacked_then(port: int, action: Any) -> Result:
    """Get messages 1..3 unacked, apply ``action(client, queue)``, close the channel, report
    the queue content (body, redelivered) as seen from a fresh channel."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        fill(client, queue, _numbered(3))
        for _ in range(3):
            get(client, 1, queue, no_ack=False)
        during = action(client, queue)
        client.call(1, spec.Channel.Close(200, "", 0, 0))
        client.open_channel(2)
        after = []
        for _ in range(5):
            item = get(client, 2, queue)
            if item.get("method") != "Basic.GetOk":
                break
            after.append([item["body"], item["redelivered"]])
        return {"during": during, "queue_after": after}


@scenario()
def scenario_basic_ack_multiple(port: int) -> Result:
    """ack(2, multiple) acks 1 and 2; closing the channel requeues only 3."""

    def action(client: RawClient, queue: str) -> Any:
        _ack(client, 1, 2, multiple=True)
        return _after_async(client, 1)

    return _unacked_then(port, action)


@scenario()
def scenario_basic_nack_multiple_requeue(port: int) -> Result:
    """nack(3, multiple, requeue): all three back in order, redelivered."""

    def action(client: RawClient, queue: str) -> Any:
        client.send_method(1, spec.Basic.Nack(delivery_tag=3, multiple=True, requeue=True))
        return [_after_async(client, 1), get(client, 1, queue, no_ack=False)]

    return _unacked_then(port, action)


@scenario()
def scenario_basic_reject_requeue_order(port: int) -> Result:
    """reject(2, requeue) then nack(1, requeue) while 3 stays unacked: the order they are
    got again, then the order after closing the channel requeues 3 as well."""

    def action(client: RawClient, queue: str) -> Any:
        client.send_method(1, spec.Basic.Reject(delivery_tag=2, requeue=True))
        client.send_method(1, spec.Basic.Nack(delivery_tag=1, multiple=False, requeue=True))
        return [get(client, 1, queue, no_ack=False) for _ in range(3)]

    return _unacked_then(port, action)


@scenario()
def scenario_basic_requeue_position(port: int) -> Result:
    """1..4 published, 1..3 got; nack 3 then 1 with requeue: they go back before 4."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        fill(client, queue, _numbered(4))
        for _ in range(3):
            get(client, 1, queue, no_ack=False)
        client.send_method(1, spec.Basic.Nack(delivery_tag=3, multiple=False, requeue=True))
        client.send_method(1, spec.Basic.Nack(delivery_tag=1, multiple=False, requeue=True))
        return {"order": bodies([get(client, 1, queue) for _ in range(4)])}


@scenario()
def scenario_basic_reject_no_requeue(port: int) -> Result:
    """reject(2, requeue=false) drops message 2."""

    def action(client: RawClient, queue: str) -> Any:
        client.send_method(1, spec.Basic.Reject(delivery_tag=2, requeue=False))
        return _after_async(client, 1)

    return _unacked_then(port, action)


@scenario()
def scenario_basic_unacked_requeued_on_channel_close(port: int) -> Result:
    """Closing a channel with unacked messages requeues them in order, redelivered."""
    return _unacked_then(port, lambda client, queue: None)


@scenario()
def scenario_basic_requeued_delivery_tags(port: int) -> Result:
    """A message requeued by nack is got again on the same channel with a new delivery tag."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        fill(client, queue, ["x"])
        first = get(client, 1, queue, no_ack=False)
        client.send_method(1, spec.Basic.Nack(delivery_tag=1, multiple=False, requeue=True))
        return {"first": first, "again": get(client, 1, queue, no_ack=False)}


@scenario()
def scenario_basic_recover_requeue(port: int) -> Result:
    """basic.recover(requeue=true) redelivers unacked deliveries to the consumer."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        fill(client, queue, _numbered(2))
        _consume(client, 1, queue, "c1")
        first = collect(client, 0.3)
        reply = attempt(client, 1, spec.Basic.Recover(requeue=True))
        return {"first": first, "recover": reply, "redelivered": collect(client, 0.3)}


@scenario()
def scenario_basic_recover_no_requeue(port: int) -> Result:
    """basic.recover(requeue=false)."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        fill(client, queue, ["x"])
        _consume(client, 1, queue, "c1")
        first = collect(client, 0.3)
        reply = attempt(client, 1, spec.Basic.Recover(requeue=False))
        return {"first": first, "recover": reply, "then": collect(client, 0.3)}


@scenario()
def scenario_basic_recover_async(port: int) -> Result:
    """basic.recover-async(requeue=true) (deprecated): any reply?"""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        fill(client, queue, ["x"])
        _consume(client, 1, queue, "c1")
        first = collect(client, 0.3)
        client.send_method(1, spec.Basic.RecoverAsync(requeue=True))
        return {"first": first, "then": collect(client, 0.4)}


@scenario()
def scenario_basic_recover_get_messages(port: int) -> Result:
    """basic.recover(requeue=true) with unacked messages obtained by basic.get."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        fill(client, queue, _numbered(2))
        get(client, 1, queue, no_ack=False)
        reply = attempt(client, 1, spec.Basic.Recover(requeue=True))
        return {"recover": reply, "get_after": get(client, 1, queue, no_ack=False)}


def _prefetch(port: int, qos: list[tuple[int, bool]]) -> Result:
    """Two queues with 5 ready messages each, qos settings applied, then one consumer on
    each queue (same channel): how many deliveries each consumer gets without acking."""
    with open_client(port) as client:
        queues = [declare_queue(client, 1, "", exclusive=True) for _ in range(2)]
        for queue in queues:
            fill(client, queue, _numbered(5))
        for count, is_global in qos:
            ok(client, 1, spec.Basic.Qos(prefetch_count=count, global_qos=is_global))
        out: Result = {}
        for i, queue in enumerate(queues, 1):
            _consume(client, 1, queue, f"c{i}")
            out[f"c{i}"] = len(collect(client, 0.3))
        return out


@scenario()
def scenario_basic_qos_per_consumer(port: int) -> Result:
    """basic.qos(2, global=false): each consumer on the channel gets 2."""
    return _prefetch(port, [(2, False)])


@scenario()
def scenario_basic_qos_global(port: int) -> Result:
    """basic.qos(3, global=true): the channel as a whole gets 3."""
    return _prefetch(port, [(3, True)])


@scenario()
def scenario_basic_qos_both(port: int) -> Result:
    """basic.qos(2, false) and basic.qos(3, true): both limits apply."""
    return _prefetch(port, [(2, False), (3, True)])


@scenario()
def scenario_basic_qos_after_consume(port: int) -> Result:
    """basic.qos(per consumer) only affects consumers created after it."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        fill(client, queue, _numbered(5))
        ok(client, 1, spec.Basic.Qos(prefetch_count=1))
        _consume(client, 1, queue, "c1")
        first = len(collect(client, 0.3))
        ok(client, 1, spec.Basic.Qos(prefetch_count=3))
        after_qos = len(collect(client, 0.3))
        _ack(client, 1, 1)
        after_ack = len(collect(client, 0.3))
        return {"first": first, "after_raising_qos": after_qos, "after_one_ack": after_ack}


@scenario()
def scenario_basic_qos_prefetch_size(port: int) -> Result:
    """basic.qos with prefetch_size != 0."""
    with open_client(port) as client:
        return {"reply": attempt(client, 1, spec.Basic.Qos(prefetch_size=1000, prefetch_count=1))}


@scenario()
def scenario_basic_cancel_unknown_tag(port: int) -> Result:
    """basic.cancel of a consumer tag that does not exist."""
    with open_client(port) as client:
        return {"reply": attempt(client, 1, spec.Basic.Cancel(consumer_tag="conf-none"))}


@scenario()
def scenario_basic_cancel_keeps_unacked(port: int) -> Result:
    """After basic.cancel, unacked deliveries stay unacked; they can still be acked."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        fill(client, queue, _numbered(2))
        _consume(client, 1, queue, "c1")
        delivered = len(collect(client, 0.3))
        ok(client, 1, spec.Basic.Cancel(consumer_tag="c1"))
        _ack(client, 1, 1)
        acked = _after_async(client, 1)
        count = client.call(1, _qdeclare(queue, passive=True))
        return {"delivered": delivered, "ack_after_cancel": acked, "declare_ok": count}


def _cancel_notify(port: int, capabilities: dict[str, Any] | None) -> Result:
    """Consume from a queue, delete it from another channel, report the consumer's channel."""
    with open_client(port, channels=(1, 2), capabilities=capabilities) as client:
        ok(client, 1, _qdeclare("conf-q-cancel-notify"))
        _consume(client, 1, "conf-q-cancel-notify", "c1")
        deleted = client.call(2, spec.Queue.Delete(queue="conf-q-cancel-notify"))
        return {"delete": deleted, "consumer_channel": collect(client, 0.4)}


@scenario(queues=("conf-q-cancel-notify",))
def scenario_basic_cancel_notify_on_queue_delete(port: int) -> Result:
    """A client with consumer_cancel_notify gets basic.cancel when the queue is deleted."""
    return _cancel_notify(port, None)


@scenario(queues=("conf-q-cancel-notify",))
def scenario_basic_cancel_notify_without_capability(port: int) -> Result:
    """A client without consumer_cancel_notify: nothing is sent when the queue goes."""
    return _cancel_notify(port, {})


@scenario(queues=("conf-q-cancel-pika",))
def scenario_basic_cancel_notify_pika(port: int) -> Result:
    """pika: on_cancel callback fires when the consumed queue is deleted elsewhere."""
    cancelled: list[str] = []
    with pika_connection(port) as conn:
        ch = conn.channel()
        ch.queue_declare("conf-q-cancel-pika")
        ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.NAME))
        ch.basic_consume("conf-q-cancel-pika", lambda *a: None, consumer_tag="conf-pika")
        other = conn.channel()
        other.queue_delete("conf-q-cancel-pika")
        pump(conn, lambda: bool(cancelled), 2.0)
        return {"cancelled": cancelled, "consumer_tags": sorted(ch.consumer_tags)}


@scenario()
def scenario_basic_empty_body(port: int) -> Result:
    """An empty body: header with body_size 0 and no body frame, on publish and delivery."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        client.publish(1, "", queue, b"")
        client.send_method(1, spec.Basic.Get(queue=queue, no_ack=True))
        return {"frames": client.drain(0.3)}


@scenario()
def scenario_basic_body_split_by_frame_max(port: int) -> Result:
    """A 10000-byte body delivered with frame_max 4096: body frame sizes."""
    with open_client(port, frame_max=4096) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        client.publish(1, "", queue, b"z" * 10000)
        client.send_method(1, spec.Basic.Get(queue=queue, no_ack=True))
        return {"frames": client.drain(0.3)}


@scenario()
def scenario_basic_body_in_many_small_frames(port: int) -> Result:
    """A body published in 1-byte body frames is reassembled."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        data = method_frame(1, spec.Basic.Publish(exchange="", routing_key=queue))
        data += content_frames(1, b"pieces", frame_max=9)
        client.send(data)
        return {"get": get(client, 1, queue)}


@scenario()
def scenario_basic_round_robin(port: int) -> Result:
    """Two consumers on one queue (same channel) receive messages alternately."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        _consume(client, 1, queue, "c1", no_ack=True)
        _consume(client, 1, queue, "c2", no_ack=True)
        fill(client, queue, _numbered(6))
        got: dict[str, list[str]] = {"c1": [], "c2": []}
        for message in collect(client, 0.3):
            got.setdefault(message.get("consumer_tag", "?"), []).append(message.get("body"))
        return got


@scenario()
def scenario_basic_delivery_tags_shared(port: int) -> Result:
    """Delivery tags count up per channel across basic.get and consumer deliveries."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        fill(client, queue, _numbered(3))
        first = get(client, 1, queue, no_ack=False)
        _consume(client, 1, queue, "c1")
        return {"get": first, "delivered": collect(client, 0.3)}


@scenario()
def scenario_basic_no_local_ignored(port: int) -> Result:
    """basic.consume no_local=true: messages published on the same connection still arrive."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        _consume(client, 1, queue, "c1", no_local=True, no_ack=True)
        client.publish(1, "", queue, b"mine")
        return {"delivered": collect(client, 0.3)}


# =============================================================================================
# Transactions and publisher confirms
# =============================================================================================


@scenario()
def scenario_tx_commit_without_select(port: int) -> Result:
    """tx.commit on a channel that is not transactional."""
    with open_client(port) as client:
        return {"reply": attempt(client, 1, spec.Tx.Commit())}


@scenario()
def scenario_tx_rollback_without_select(port: int) -> Result:
    """tx.rollback on a channel that is not transactional."""
    with open_client(port) as client:
        return {"reply": attempt(client, 1, spec.Tx.Rollback())}


@scenario()
def scenario_tx_select_twice(port: int) -> Result:
    """tx.select on a channel already in tx mode."""
    with open_client(port) as client:
        first = attempt(client, 1, spec.Tx.Select())
        return {"first": first, "second": attempt(client, 1, spec.Tx.Select())}


@scenario()
def scenario_tx_confirm_select_on_tx_channel(port: int) -> Result:
    """confirm.select on a transactional channel."""
    with open_client(port) as client:
        ok(client, 1, spec.Tx.Select())
        return {"reply": attempt(client, 1, spec.Confirm.Select())}


@scenario()
def scenario_tx_select_on_confirm_channel(port: int) -> Result:
    """tx.select on a channel in confirm mode."""
    with open_client(port) as client:
        ok(client, 1, spec.Confirm.Select())
        return {"reply": attempt(client, 1, spec.Tx.Select())}


@scenario(queues=("conf-q-tx",))
def scenario_tx_publish_visible_after_commit(port: int) -> Result:
    """Publishes in a transaction are invisible until commit; rollback discards them."""
    with pika_connection(port) as conn:
        tx, observer = conn.channel(), conn.channel()
        observer.queue_declare("conf-q-tx")
        tx.tx_select()
        tx.basic_publish("", "conf-q-tx", b"a")
        tx.basic_publish("", "conf-q-tx", b"b")
        before = get_bodies(observer, "conf-q-tx")
        tx.tx_commit()
        committed = get_bodies(observer, "conf-q-tx")
        tx.basic_publish("", "conf-q-tx", b"c")
        tx.tx_rollback()
        tx.basic_publish("", "conf-q-tx", b"d")
        tx.tx_commit()
        return {
            "before_commit": before,
            "after_commit": committed,
            "after_rollback_and_commit": get_bodies(observer, "conf-q-tx"),
        }


def _tx_acks(port: int, finish: str) -> Result:
    """Get two messages, ack both in a transaction, then ``finish`` ('commit'/'rollback'),
    close the channel and report what is left in the queue."""
    with open_client(port, channels=(1, 2)) as client:
        queue = declare_queue(client, 2, "", exclusive=True)
        fill(client, queue, _numbered(2))
        ok(client, 1, spec.Tx.Select())
        for _ in range(2):
            get(client, 1, queue, no_ack=False)
        _ack(client, 1, 1)
        _ack(client, 1, 2)
        uncommitted = client.call(2, _qdeclare(queue, passive=True))
        method = spec.Tx.Commit() if finish == "commit" else spec.Tx.Rollback()
        finished = attempt(client, 1, method)
        client.call(1, spec.Channel.Close(200, "", 0, 0))
        left = client.call(2, _qdeclare(queue, passive=True))
        return {"before_finish": uncommitted, "finish": finished, "left_after_close": left}


@scenario()
def scenario_tx_acks_applied_at_commit(port: int) -> Result:
    """Acks inside a transaction take effect at commit."""
    return _tx_acks(port, "commit")


@scenario()
def scenario_tx_acks_discarded_at_rollback(port: int) -> Result:
    """Acks rolled back leave the messages unacked (requeued when the channel closes)."""
    return _tx_acks(port, "rollback")


@scenario()
def scenario_tx_mandatory_return(port: int) -> Result:
    """A mandatory unroutable publish inside a transaction: return relative to commit-ok."""
    with open_client(port) as client:
        ok(client, 1, spec.Tx.Select())
        client.publish(1, "amq.direct", "conf-nowhere", b"tx-lost", mandatory=True)
        before = collect(client, 0.3)
        client.send_method(1, spec.Tx.Commit())
        return {"before_commit": before, "commit": collect(client, 0.3)}


@scenario()
def scenario_confirm_select_reply(port: int) -> Result:
    """confirm.select replies select-ok; a second select too; nowait gives no reply."""
    with open_client(port, channels=(1, 2)) as client:
        first = attempt(client, 1, spec.Confirm.Select())
        second = attempt(client, 1, spec.Confirm.Select())
        client.send_method(2, spec.Confirm.Select(nowait=True))
        return {"first": first, "second": second, "nowait": client.drain(0.3)}


@scenario()
def scenario_confirm_delivery_tags(port: int) -> Result:
    """Five routed publishes in confirm mode: tags 1..5 all acked."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        ok(client, 1, spec.Confirm.Select())
        for body in _numbered(5):
            client.publish(1, "", queue, body.encode())
        return confirm_outcomes(client, 5)


@scenario()
def scenario_confirm_unroutable(port: int) -> Result:
    """An unroutable, non-mandatory publish is still confirmed with basic.ack."""
    with open_client(port) as client:
        ok(client, 1, spec.Confirm.Select())
        client.publish(1, "amq.direct", "conf-nowhere", b"lost")
        return confirm_outcomes(client, 1)


@scenario()
def scenario_confirm_mandatory_unroutable(port: int) -> Result:
    """A mandatory unroutable publish in confirm mode: basic.return, then basic.ack."""
    with open_client(port) as client:
        ok(client, 1, spec.Confirm.Select())
        client.publish(1, "amq.direct", "conf-nowhere", b"lost", mandatory=True)
        return confirm_outcomes(client, 1)


@scenario()
def scenario_confirm_publish_missing_exchange(port: int) -> Result:
    """A publish to a missing exchange in confirm mode: channel error, no nack."""
    with open_client(port) as client:
        ok(client, 1, spec.Confirm.Select())
        client.publish(1, "conf-ex-missing", "k", b"x")
        return {"reply": outcome(client, client.recv_reply(1))}


@scenario()
def scenario_confirm_pika(port: int) -> Result:
    """pika confirm_delivery: routed publish ok; mandatory unroutable raises UnroutableError."""
    with pika_channel(port) as ch:
        queue = ch.queue_declare("", exclusive=True).method.queue
        ch.confirm_delivery()
        ch.basic_publish("", queue, b"ok")
        try:
            ch.basic_publish("amq.direct", "conf-nowhere", b"lost", mandatory=True)
            unroutable = "published"
        except pika.exceptions.UnroutableError as exc:
            unroutable = f"UnroutableError({len(exc.messages)})"
        return {"routed": "published", "unroutable": unroutable}


# =============================================================================================
# More channel-level edge cases
# =============================================================================================


@scenario()
def scenario_content_interleaved_across_channels(port: int) -> Result:
    """Content of a publish on channel 1 interleaved with a whole publish on channel 2."""
    with open_client(port, channels=(1, 2)) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        ok(client, 1, spec.Confirm.Select())
        ok(client, 2, spec.Confirm.Select())
        body_frame = raw_frame(FRAME_BODY, 1, b"one")
        data = method_frame(1, spec.Basic.Publish(exchange="", routing_key=queue))
        data += content_frames(1, b"one")[: -len(body_frame)]
        data += method_frame(2, spec.Basic.Publish(exchange="", routing_key=queue))
        data += content_frames(2, b"two")
        data += body_frame
        client.send(data)
        acks = sorted(m["channel"] for m in collect(client, 0.3) if m["method"] == "Basic.Ack")
        got = bodies([get(client, 1, queue) for _ in range(2)])
        return {"acked_channels": acks, "bodies": sorted(got), "then": get(client, 1, queue)}


@scenario()
def scenario_content_header_on_channel_zero(port: int) -> Result:
    """A content header frame on channel 0."""
    return _framing(port, content_frames(0, b"x"))


@scenario()
def scenario_body_after_empty_content(port: int) -> Result:
    """A body frame after a content header that announced body_size 0."""
    data = method_frame(1, spec.Basic.Publish(exchange="", routing_key="conf-nowhere"))
    data += content_frames(1, b"") + raw_frame(FRAME_BODY, 1, b"extra")
    return _framing(port, data)


@scenario(exchanges=("conf-ex-nowait",), queues=("conf-q-nowait",))
def scenario_nowait_methods(port: int) -> Result:
    """nowait declare/bind send no reply; a nowait error still closes the channel."""
    with open_client(port) as client:
        client.send_method(1, _qdeclare("conf-q-nowait", nowait=True))
        client.send_method(1, _xdeclare("conf-ex-nowait", "fanout", nowait=True))
        client.send_method(1, _qbind("conf-q-nowait", "conf-ex-nowait", nowait=True))
        client.send_method(
            1, spec.Basic.Consume(queue="conf-q-nowait", consumer_tag="c1", nowait=True)
        )
        quiet = _after_async(client, 1)
        client.send_method(1, _qdeclare("conf-q-missing", passive=True, nowait=True))
        return {"no_replies_then_qos": quiet, "nowait_error": _after_async(client, 1)}


@scenario()
def scenario_publish_to_amq_default(port: int) -> Result:
    """basic.publish to exchange 'amq.default' (an alias of '' in some brokers)."""
    with open_client(port) as client:
        queue = declare_queue(client, 1, "", exclusive=True)
        client.publish(1, "amq.default", queue, b"alias")
        return {"reply": _after_async(client, 1)}


@scenario()
def scenario_channel_open_while_server_closing_it(port: int) -> Result:
    """After a server channel.close, channel.open on that channel instead of close-ok."""
    with open_client(port) as client:
        closed = describe(client.rpc(1, _qdeclare("conf-q-missing", passive=True)))
        return {"close": closed, "reopen": attempt(client, 1, spec.Channel.Open())}


@scenario()
def scenario_connection_close_with_open_channels(port: int) -> Result:
    """Client connection.close while channels are open (and one has a consumer)."""
    client = open_client(port, channels=(1, 2, 3))
    try:
        queue = declare_queue(client, 1, "", exclusive=True)
        _consume(client, 2, queue, "c1")
        return {"reply": client.call(0, spec.Connection.Close(200, "bye", 0, 0))}
    finally:
        client.sock.close()


@scenario()
def scenario_pika_channel_error(port: int) -> Result:
    """pika sees a channel-level error (passive declare of a missing queue) and recovers."""
    with pika_connection(port) as conn:
        ch = conn.channel()
        try:
            ch.queue_declare("conf-q-missing", passive=True)
            raised: Result = {"closed": None}
        except pika.exceptions.AMQPError as exc:
            raised = pika_error(exc)
        return {
            "raised": raised,
            "channel_open": ch.is_open,
            "connection_open": conn.is_open,
            "new_channel_works": conn.channel().is_open,
        }


@scenario(exchanges=("conf-ex-pika-bad-type",))
def scenario_pika_connection_error(port: int) -> Result:
    """pika sees a connection-level error (exchange.declare with an unknown type)."""
    with pika_connection(port) as conn:
        ch = conn.channel()
        try:
            ch.exchange_declare("conf-ex-pika-bad-type", "conf-nonsense")
            raised: Result = {"closed": None}
        except pika.exceptions.AMQPError as exc:
            raised = pika_error(exc)
        return {"raised": raised, "connection_open": conn.is_open}
