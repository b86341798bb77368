"""A tiny blocking AMQP 0-9-1 client over a raw socket, for framing-level scenarios.

It uses :mod:`pika.spec` only to marshal and unmarshal well-formed method and content frames;
everything else (the protocol header, the handshake, malformed frames) is done by hand, so a
scenario can send arbitrary bytes at any point and observe exactly what comes back: method
frames, content, heartbeats, the socket being closed, or nothing at all within a timeout.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable
from typing import Any

from pika import frame as pframe
from pika import spec
from pika.amqp_object import Method

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = b"\xce"

#: Capabilities a modern client (pika, the Java client) announces in connection.start-ok.
CLIENT_CAPABILITIES: dict[str, Any] = {
    "authentication_failure_close": True,
    "basic.nack": True,
    "connection.blocked": True,
    "consumer_cancel_notify": True,
    "publisher_confirms": True,
}

CONTENT_METHODS = frozenset({"Basic.Deliver", "Basic.GetOk", "Basic.Return"})

EOF = "eof"
TIMEOUT = "timeout"
#: The socket was closed, but only after a pause (RabbitMQ waits 3 s on handshake errors).
DELAYED_EOF = "eof-after-delay"


def plain_response(user: str = "guest", password: str = "guest") -> bytes:
    """The SASL PLAIN response: ``\\0user\\0password``."""
    return b"\x00" + user.encode() + b"\x00" + password.encode()


def amqplain_response(user: str = "guest", password: str = "guest") -> bytes:
    """The AMQPLAIN response: a field table without its length prefix."""
    out = b""
    for key, value in (("LOGIN", user), ("PASSWORD", password)):
        out += bytes([len(key)]) + key.encode() + b"S" + struct.pack(">I", len(value))
        out += value.encode()
    return out


def raw_frame(frame_type: int, channel: int, payload: bytes, end: bytes = FRAME_END) -> bytes:
    """Marshal one frame by hand (so the size, the payload and the end octet can be wrong)."""
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + end


def method_payload(class_id: int, method_id: int, args: bytes = b"") -> bytes:
    """The payload of a method frame: class id, method id, then raw argument bytes."""
    return struct.pack(">HH", class_id, method_id) + args


def shortstr(value: str) -> bytes:
    """Encode an AMQP short string."""
    data = value.encode()
    return bytes([len(data)]) + data


def method_frame(channel: int, method: Method) -> bytes:
    """Marshal a well-formed method frame."""
    return pframe.Method(channel, method).marshal()


def content_frames(
    channel: int,
    body: bytes,
    properties: spec.BasicProperties | None = None,
    frame_max: int = 131072,
) -> bytes:
    """Marshal a content header and the body frames, split to fit ``frame_max``."""
    props = properties or spec.BasicProperties()
    out = pframe.Header(channel, len(body), props).marshal()
    chunk = frame_max - 8
    for start in range(0, len(body), chunk):
        out += pframe.Body(channel, body[start : start + chunk]).marshal()
    return out


def plain(value: Any) -> Any:
    """Make a decoded field value JSON-friendly (bytes to str, recursively)."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


#: Per-method argument names worth reporting (the rest are often server-generated).
REPORTED_ARGS: dict[str, tuple[str, ...]] = {
    "Connection.Close": ("reply_code", "reply_text", "class_id", "method_id"),
    "Channel.Close": ("reply_code", "reply_text", "class_id", "method_id"),
    "Channel.Flow": ("active",),
    "Channel.FlowOk": ("active",),
    "Queue.DeclareOk": ("message_count", "consumer_count"),
    "Queue.PurgeOk": ("message_count",),
    "Queue.DeleteOk": ("message_count",),
    "Basic.Return": ("reply_code", "reply_text", "exchange", "routing_key"),
    "Basic.GetOk": ("delivery_tag", "redelivered", "exchange", "routing_key", "message_count"),
    "Basic.Deliver": ("consumer_tag", "delivery_tag", "redelivered", "exchange", "routing_key"),
    "Basic.ConsumeOk": ("consumer_tag",),
    "Basic.Cancel": ("consumer_tag",),
    "Basic.CancelOk": ("consumer_tag",),
    "Basic.Ack": ("delivery_tag", "multiple"),
    "Basic.Nack": ("delivery_tag", "multiple", "requeue"),
    "Connection.Blocked": ("reason",),
}


def describe(item: object) -> Any:
    """Summarise a received frame (or ``EOF`` / ``TIMEOUT``) as a JSON-friendly value."""
    if isinstance(item, str):
        return item
    if isinstance(item, pframe.Method):
        out: dict[str, Any] = {"channel": item.channel_number, "method": item.method.NAME}
        for arg in REPORTED_ARGS.get(item.method.NAME, ()):
            out[arg] = plain(getattr(item.method, arg))
        return out
    if isinstance(item, pframe.Header):
        return {"channel": item.channel_number, "frame": "header", "body_size": item.body_size}
    if isinstance(item, pframe.Body):
        return {"channel": item.channel_number, "frame": "body", "size": len(item.fragment)}
    if isinstance(item, pframe.Heartbeat):
        return {"frame": "heartbeat"}
    if isinstance(item, pframe.ProtocolHeader):
        return {"frame": "protocol-header", "version": [item.major, item.minor, item.revision]}
    return repr(item)


def frame_channel(item: object) -> int:
    """The channel number of a decoded frame (0 for heartbeats and protocol headers)."""
    return getattr(item, "channel_number", 0)


def method_name(item: object) -> str:
    """The method name of a received frame, or the frame kind / ``EOF`` / ``TIMEOUT``."""
    if isinstance(item, pframe.Method):
        return item.method.NAME
    if isinstance(item, str):
        return item
    return type(item).__name__


class RawClient:
    """A blocking AMQP connection on a plain socket, driven step by step by a scenario.

    Every receive is bounded by ``timeout`` seconds; an expired wait yields ``TIMEOUT`` and a
    closed socket yields ``EOF`` instead of raising, so scenarios can record them as outcomes.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 3.0) -> None:
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.held: list[Any] = []
        self.eof = False
        self.frame_max = 131072
        self.channel_max = 0
        self.start: spec.Connection.Start | None = None
        self.tune: spec.Connection.Tune | None = None

    # -- bytes ------------------------------------------------------------------------------

    def send(self, data: bytes) -> bool:
        """Send raw bytes; False if the peer already closed the socket."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def _fill(self, deadline: float) -> bool:
        """Read more bytes into the buffer; False on EOF or when the deadline passes."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def recv_bytes(self, timeout: float | None = None) -> bytes | str:
        """Everything the server sends until it closes the socket (or ``TIMEOUT``)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while self._fill(deadline):
            pass
        data, self.buf = self.buf, b""
        if not self.eof:
            return TIMEOUT if not data else data
        return data

    # -- frames -----------------------------------------------------------------------------

    def recv_frame(self, timeout: float | None = None, channel: int | None = None) -> Any:
        """The next frame from the server, or ``EOF`` / ``TIMEOUT``.

        With ``channel``, only frames on that channel or channel 0 are returned; frames for
        other channels (say, deliveries racing an RPC reply) are kept, in order, for later
        calls, so results do not depend on how the server interleaves channels.
        """
        for i, held in enumerate(self.held):
            if channel is None or frame_channel(held) in (channel, 0):
                return self.held.pop(i)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if self.buf:
                used, item = pframe.decode_frame(self.buf)
                if item is not None:
                    self.buf = self.buf[used:]
                    if channel is None or frame_channel(item) in (channel, 0):
                        return item
                    self.held.append(item)
                    continue
            if not self._fill(deadline):
                return EOF if self.eof else TIMEOUT

    def recv_method(self, timeout: float | None = None, channel: int | None = None) -> Any:
        """The next method frame, skipping heartbeats (or ``EOF`` / ``TIMEOUT``)."""
        while True:
            item = self.recv_frame(timeout, channel)
            if not isinstance(item, pframe.Heartbeat):
                return item

    def recv_reply(
        self, channel: int | None = None, quick: float = 1.0, patience: float = 4.5
    ) -> Any:
        """The next method frame (on ``channel`` or 0), telling a prompt EOF from a late one.

        Waits ``quick`` seconds; if nothing came, waits up to ``patience`` more and returns
        ``DELAYED_EOF`` if the socket was closed then (or a late frame, or ``TIMEOUT``).
        """
        item = self.recv_method(quick, channel)
        if not (isinstance(item, str) and item == TIMEOUT):
            return item
        item = self.recv_method(patience, channel)
        if isinstance(item, str) and item == EOF:
            return DELAYED_EOF
        return item

    def send_method(self, channel: int, method: Method) -> bool:
        """Send one well-formed method frame."""
        return self.send(method_frame(channel, method))

    def send_frame(
        self, frame_type: int, channel: int, payload: bytes, end: bytes = FRAME_END
    ) -> bool:
        """Send one hand-made frame."""
        return self.send(raw_frame(frame_type, channel, payload, end))

    def rpc(self, channel: int, method: Method, timeout: float | None = None) -> Any:
        """Send a method and return the next method frame received on that channel (or 0)."""
        self.send_method(channel, method)
        return self.recv_method(timeout, channel)

    def call(self, channel: int, method: Method, timeout: float | None = None) -> Any:
        """Like :meth:`rpc` but summarised with :func:`describe`."""
        return describe(self.rpc(channel, method, timeout))

    def publish(
        self,
        channel: int,
        exchange: str,
        routing_key: str,
        body: bytes = b"",
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
        immediate: bool = False,
    ) -> bool:
        """Send basic.publish and its content in one write."""
        method = spec.Basic.Publish(
            exchange=exchange, routing_key=routing_key, mandatory=mandatory, immediate=immediate
        )
        data = method_frame(channel, method)
        data += content_frames(channel, body, properties, self.frame_max)
        return self.send(data)

    def drain(self, timeout: float = 0.5) -> list[Any]:
        """Every frame received until a quiet period of ``timeout`` (or EOF), described."""
        out: list[Any] = []
        while True:
            item = self.recv_frame(timeout)
            if isinstance(item, str):
                if item == EOF:
                    out.append(EOF)
                return out
            out.append(describe(item))

    def recv_message(self, timeout: float | None = None, channel: int | None = None) -> Any:
        """The next method, described; for deliver/get-ok/return also its ``body`` (text).

        Returns ``EOF`` / ``TIMEOUT`` as such; other methods are returned described.
        """
        item = self.recv_method(timeout, channel)
        out = describe(item)
        if not isinstance(item, pframe.Method) or item.method.NAME not in CONTENT_METHODS:
            return out
        channel = item.channel_number
        header = self.recv_frame(timeout, channel)
        if not isinstance(header, pframe.Header):
            out["content"] = describe(header)
            return out
        body = b""
        while len(body) < header.body_size:
            part = self.recv_frame(timeout, channel)
            if not isinstance(part, pframe.Body):
                out["content"] = describe(part)
                return out
            body += part.fragment
        out["body"] = body.decode(errors="replace")
        return out

    # -- handshake --------------------------------------------------------------------------

    def handshake(
        self,
        mechanism: str = "PLAIN",
        response: bytes | None = None,
        vhost: str = "/",
        frame_max: int | None = None,
        channel_max: int | None = None,
        heartbeat: int = 0,
        capabilities: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run the opening handshake; the outcome dict says how far it got.

        ``frame_max`` / ``channel_max`` default to the values the server offers in
        connection.tune. The outcome has ``stage`` ('opened' on success) and, on failure,
        the described frame (or EOF / TIMEOUT) that ended it: ``stage`` is 'start' when no
        connection.start came, 'tune' when start-ok got no connection.tune, and 'open' when
        connection.open got no open-ok.
        """
        caps = CLIENT_CAPABILITIES if capabilities is None else capabilities
        self.send(PROTOCOL_HEADER)
        start = self.recv_method()
        if not (isinstance(start, pframe.Method) and start.method.NAME == "Connection.Start"):
            return self._failed("start", start)
        self.start = start.method
        props = {"product": "dispatchd-conformance", "capabilities": caps}
        self.send_method(
            0,
            spec.Connection.StartOk(
                client_properties=props,
                mechanism=mechanism,
                response=plain_response() if response is None else response,
                locale="en_US",
            ),
        )
        tune = self.recv_reply()
        if not (isinstance(tune, pframe.Method) and tune.method.NAME == "Connection.Tune"):
            return self._failed("tune", tune)
        self.tune = tune.method
        self.frame_max = frame_max if frame_max is not None else tune.method.frame_max
        self.channel_max = channel_max if channel_max is not None else tune.method.channel_max
        self.send_method(
            0,
            spec.Connection.TuneOk(
                channel_max=self.channel_max, frame_max=self.frame_max, heartbeat=heartbeat
            ),
        )
        self.send_method(0, spec.Connection.Open(virtual_host=vhost))
        opened = self.recv_reply()
        if not (isinstance(opened, pframe.Method) and opened.method.NAME == "Connection.OpenOk"):
            return self._failed("open", opened)
        return {"stage": "opened"}

    def _failed(self, stage: str, item: object) -> dict[str, Any]:
        """The outcome of a failed handshake step (answering a connection.close)."""
        out: dict[str, Any] = {"stage": stage, "got": describe(item)}
        if method_name(item) == "Connection.Close":
            out["after_close_ok"] = self.after_connection_close()
        return out

    def open_channel(self, channel: int = 1) -> str:
        """Open a channel; returns the name of the reply method (normally Channel.OpenOk)."""
        return method_name(self.rpc(channel, spec.Channel.Open()))

    def after_connection_close(self) -> str:
        """Answer a server connection.close with close-ok and report what follows (EOF?)."""
        self.send_method(0, spec.Connection.CloseOk())
        return method_name(self.recv_frame(1.0))

    def close(self) -> None:
        """Close politely if still open (best effort), then drop the socket."""
        try:
            if not self.eof:
                self.send_method(0, spec.Connection.Close(200, "bye", 0, 0))
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    item = self.recv_frame(max(0.01, deadline - time.monotonic()))
                    if isinstance(item, str) or method_name(item) == "Connection.CloseOk":
                        break
        finally:
            self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_client(port: int, channels: Iterable[int] = (1,), **handshake: Any) -> RawClient:
    """Connect, complete the handshake and open the given channels; raises if that fails."""
    client = RawClient(port)
    outcome = client.handshake(**handshake)
    if outcome["stage"] != "opened":
        client.sock.close()
        raise RuntimeError(f"handshake failed: {outcome}")
    for channel in channels:
        reply = client.open_channel(channel)
        if reply != "Channel.OpenOk":
            client.close()
            raise RuntimeError(f"channel.open {channel} failed: {reply}")
    return client
