"""One client connection: handshake, framing, heartbeats, and hand-off to channel actors.

The protocol object is the thin wire layer of DESIGN.md. It decodes frames, assembles
publishes (method + header + body) into Messages, and tells each channel actor one batch per
``data_received``. Outgoing frames are coalesced and written once per loop turn.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import platform
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actors.content import Message
from actors.messages import ChannelInput, ConnectionGone, Writable
from wire import spec
from wire.errors import AMQPError
from wire.frames import (
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    FrameReader,
    method_frame,
)
from wire.sasl import authenticate

if TYPE_CHECKING:
    from pykka import ActorRef

    from dispatchd.broker import Broker

log = logging.getLogger("dispatchd.connection")

_ids = itertools.count(1)

# Handshake states.
AWAIT_HEADER, AWAIT_START_OK, AWAIT_TUNE_OK, AWAIT_OPEN, OPEN, CLOSING, CLOSED = range(7)

CLOSE_OK_TIMEOUT = 3.0


@dataclass(slots=True)
class ChannelSlot:
    """Per-channel wire state: the actor and any content being assembled."""

    ref: ActorRef[Any]
    publish: spec.BasicPublish | None = None
    raw_properties: bytes = b""
    body_size: int = 0
    body_parts: list[bytes] = field(default_factory=list)
    received: int = 0


class AMQPProtocol(asyncio.Protocol):
    """The asyncio protocol for one AMQP 0-9-1 client connection."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        settings = broker.settings
        self.frame_max = settings.frame_max
        self.channel_max = settings.channel_max
        self.heartbeat = 0
        self.connection_name = "?"
        self.id = next(_ids)
        self.user = ""
        self.vhost = ""
        self.client_properties: dict[str, Any] = {}
        self.connected_at = time.time()
        self.state = AWAIT_HEADER
        self.reader = FrameReader(spec.FRAME_MIN_SIZE)
        self.channels: dict[int, ChannelSlot] = {}
        self.connection_ref: ActorRef[Any] | None = None
        self.transport: asyncio.Transport | None = None
        self._header = b""
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self._timers: list[asyncio.TimerHandle] = []
        self._sent_since_tick = False
        self._received_since_tick = False
        self._silent_ticks = 0
        self.writable = True

    # ----- transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        sock = transport.get_extra_info("sockname") or ("?", 0)
        self.connection_name = f"{peer[0]}:{peer[1]} -> {sock[0]}:{sock[1]}"
        self.peer = peer
        self._timers.append(
            self._loop.call_later(self.broker.settings.handshake_timeout, self._handshake_expired)
        )
        self.broker.connection_opened(self)
        log.debug("accepted connection %s", self.connection_name)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        was_open = self.state in (OPEN, CLOSING)
        self.state = CLOSED
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for slot in self.channels.values():
            slot.ref.tell(ConnectionGone())
        self.channels.clear()
        if self.connection_ref is not None:
            self.connection_ref.tell(ConnectionGone())
        self.broker.connection_closed(self)
        if was_open:
            log.info("closed connection %s (user %s)", self.connection_name, self.user)

    def data_received(self, data: bytes) -> None:  # noqa: D102
        self._received_since_tick = True
        if self.state == AWAIT_HEADER:
            data = self._read_protocol_header(data)
            if not data:
                return
        batches: dict[int, list[Any]] = {}
        try:
            for frame_type, channel, payload in self.reader.feed(data):
                if self.state >= CLOSED:
                    break
                if frame_type == FRAME_METHOD:
                    self._on_method(channel, payload, batches)
                elif frame_type == FRAME_BODY:
                    self._on_body(channel, payload, batches)
                elif frame_type == FRAME_HEADER:
                    self._on_header(channel, payload, batches)
                elif frame_type == FRAME_HEARTBEAT:
                    if channel != 0:
                        raise AMQPError(501, "heartbeat frame on non-zero channel")
                else:
                    raise AMQPError(501, f"unknown frame type {frame_type}")
        except AMQPError as error:
            self._dispatch(batches)
            self.close_connection(error)
            return
        self._dispatch(batches)

    def eof_received(self) -> bool:  # noqa: D102
        return False

    def pause_writing(self) -> None:  # noqa: D102
        self.writable = False

    def resume_writing(self) -> None:  # noqa: D102
        self.writable = True
        for slot in self.channels.values():
            slot.ref.tell(Writable())

    # ----- outgoing

    def write(self, data: bytes) -> None:
        """Queue bytes for the socket; flushed once per loop turn."""
        if self.state >= CLOSING:
            return
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _write_control(self, data: bytes) -> None:
        """Write even while closing (close and close-ok frames)."""
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            self._sent_since_tick = True
        out.clear()

    def send_method(self, channel: int, method: spec.Method) -> None:
        """Encode and queue one method frame."""
        self.write(method_frame(channel, method.encode()))

    # ----- handshake

    def _read_protocol_header(self, data: bytes) -> bytes:
        self._header += data
        if len(self._header) < 8:
            if PROTOCOL_HEADER.startswith(self._header):
                return b""
        header, rest = self._header[:8], self._header[8:]
        if header != PROTOCOL_HEADER:
            log.warning("bad protocol header from %s: %r", self.connection_name, header)
            self._refuse()
            return b""
        self.state = AWAIT_START_OK
        self._write_control(method_frame(0, self._start_method().encode()))
        return rest

    def _refuse(self) -> None:
        """Answer a bad protocol header with ours, then close (AMQP 0-9-1 section 4.2.2)."""
        self.state = CLOSED
        assert self.transport is not None
        self.transport.write(PROTOCOL_HEADER)
        self.transport.close()

    def _start_method(self) -> spec.ConnectionStart:
        from dispatchd import __version__

        return spec.ConnectionStart(
            version_major=0,
            version_minor=9,
            server_properties={
                "product": "dispatchd",
                "version": __version__,
                "platform": f"Python {platform.python_version()}",
                "copyright": "dispatchd contributors",
                "information": "An AMQP 0-9-1 broker built from Pykka actors",
                "capabilities": dict(self.broker.capabilities),
                "cluster_name": self.broker.cluster_name,
            },
            mechanisms=b"PLAIN AMQPLAIN",
            locales=b"en_US",
        )

    def _handshake_expired(self) -> None:
        if self.state < OPEN and self.transport is not None:
            log.warning(
                "closing %s: handshake not finished in %ss",
                self.connection_name,
                self.broker.settings.handshake_timeout,
            )
            self.state = CLOSED
            self.transport.abort()

    def _on_handshake(self, method: spec.Method) -> None:
        if self.state == AWAIT_START_OK and isinstance(method, spec.ConnectionStartOk):
            self.client_properties = method.client_properties
            user = authenticate(self.broker, method.mechanism, method.response)
            if user is None:
                raise AMQPError(
                    403,
                    f"Login was refused using authentication mechanism {method.mechanism}. "
                    "For details see the broker logfile.",
                )
            self.user = user
            self.state = AWAIT_TUNE_OK
            self._write_control(
                method_frame(
                    0,
                    spec.ConnectionTune(
                        channel_max=self.channel_max,
                        frame_max=self.frame_max,
                        heartbeat=self.broker.settings.heartbeat,
                    ).encode(),
                )
            )
        elif self.state == AWAIT_TUNE_OK and isinstance(method, spec.ConnectionTuneOk):
            self._tune(method)
            self.state = AWAIT_OPEN
        elif self.state == AWAIT_OPEN and isinstance(method, spec.ConnectionOpen):
            vhost = self.broker.vhosts.get(method.virtual_host)
            if vhost is None:
                raise AMQPError(530, f"vhost {method.virtual_host} not found")
            self.vhost = method.virtual_host
            self.state = OPEN
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self._start_heartbeats()
            self.connection_ref = self.broker.open_connection(self)
            self._write_control(method_frame(0, spec.ConnectionOpenOk().encode()))
            log.info(
                "accepted connection %s (user %s, vhost %s)",
                self.connection_name,
                self.user,
                self.vhost,
            )
        else:
            raise AMQPError(503, f"unexpected {method.NAME} during the connection handshake").at(
                method.CLASS_ID, method.METHOD_ID
            )

    def _tune(self, method: spec.ConnectionTuneOk) -> None:
        frame_max = method.frame_max or self.frame_max
        if frame_max < spec.FRAME_MIN_SIZE:
            raise AMQPError(530, f"frame_max={frame_max} < {spec.FRAME_MIN_SIZE} min size").at(
                10, 31
            )
        if frame_max > self.frame_max:
            raise AMQPError(530, f"frame_max={frame_max} > {self.frame_max} max size").at(10, 31)
        channel_max = method.channel_max or self.channel_max
        if channel_max > self.channel_max:
            raise AMQPError(530, f"channel_max={channel_max} > {self.channel_max} max").at(10, 31)
        self.frame_max = frame_max
        self.channel_max = channel_max
        self.reader.frame_max = frame_max
        self.heartbeat = method.heartbeat

    # ----- heartbeats

    def _start_heartbeats(self) -> None:
        if self.heartbeat:
            self._timers.append(self._loop.call_later(self.heartbeat / 2, self._heartbeat_tick))

    def _heartbeat_tick(self) -> None:
        if self.state != OPEN or self.transport is None:
            return
        if not self._sent_since_tick:
            self._write_control(HEARTBEAT_FRAME)
        self._sent_since_tick = False
        if self._received_since_tick:
            self._silent_ticks = 0
        else:
            self._silent_ticks += 1
        self._received_since_tick = False
        if self._silent_ticks >= 4:  # two heartbeat intervals without a byte from the peer
            log.warning(
                "missed heartbeats from client %s, timeout: %ss",
                self.connection_name,
                self.heartbeat,
            )
            self.state = CLOSED
            self.transport.abort()
            return
        self._timers = [self._loop.call_later(self.heartbeat / 2, self._heartbeat_tick)]

    # ----- incoming frames

    def _on_method(self, channel: int, payload: bytes, batches: dict[int, list[Any]]) -> None:
        try:
            method = spec.decode_method(payload)
        except spec.UnknownMethod as exc:
            raise AMQPError(540, f"unknown method class {exc.class_id} method {exc.method_id}").at(
                exc.class_id, exc.method_id
            ) from None
        except spec.MethodDecodeError as exc:
            raise AMQPError(502, f"cannot decode method arguments: {exc}").at(
                exc.class_id, exc.method_id
            ) from None
        if self.state != OPEN:
            self._on_closing_or_handshake(channel, method)
            return
        if channel == 0:
            self._on_connection_method(method)
            return
        slot = self.channels.get(channel)
        if slot is None:
            self._open_channel(channel, method)
            return
        if slot.publish is not None:
            raise AMQPError(
                505,
                "expected content header for class 60, got non content header frame instead",
            ).at(method.CLASS_ID, method.METHOD_ID)
        if isinstance(method, spec.BasicPublish):
            if method.immediate:
                raise AMQPError(540, "immediate=true").at(60, 40)
            slot.publish = method
            slot.received = -1  # header expected next
            return
        if isinstance(method, spec.ChannelOpen):
            raise AMQPError(504, "second 'channel.open' seen").at(20, 10)
        batch = batches.get(channel)
        if batch is None:
            batches[channel] = [method]
        else:
            batch.append(method)

    def _on_closing_or_handshake(self, channel: int, method: spec.Method) -> None:
        if self.state == CLOSING:
            if isinstance(method, spec.ConnectionCloseOk) and channel == 0:
                self._finish_close()
            elif isinstance(method, spec.ConnectionClose) and channel == 0:
                self._write_control(method_frame(0, spec.ConnectionCloseOk().encode()))
            return
        if channel != 0:
            raise AMQPError(504, "channel frame before the connection is open").at(
                method.CLASS_ID, method.METHOD_ID
            )
        self._on_handshake(method)

    def _on_connection_method(self, method: spec.Method) -> None:
        if isinstance(method, spec.ConnectionClose):
            self._write_control(method_frame(0, spec.ConnectionCloseOk().encode()))
            self.state = CLOSING
            self._flush()
            self._finish_close()
        elif isinstance(method, spec.ConnectionCloseOk):
            raise AMQPError(503, "connection.close-ok without connection.close").at(10, 51)
        else:
            raise AMQPError(503, f"{method.NAME} is not allowed after connection.open").at(
                method.CLASS_ID, method.METHOD_ID
            )

    def _open_channel(self, channel: int, method: spec.Method) -> None:
        if not isinstance(method, spec.ChannelOpen):
            raise AMQPError(504, f"expected 'channel.open' on channel {channel}").at(
                method.CLASS_ID, method.METHOD_ID
            )
        if channel > self.channel_max:
            raise AMQPError(
                530, f"channel {channel} exceeds negotiated channel_max {self.channel_max}"
            ).at(20, 10)
        assert self.connection_ref is not None
        ref = self.broker.open_channel(self, self.connection_ref, channel)
        self.channels[channel] = ChannelSlot(ref)
        self.write(method_frame(channel, spec.ChannelOpenOk().encode()))

    def _on_header(self, channel: int, payload: bytes, batches: dict[int, list[Any]]) -> None:
        slot = self.channels.get(channel) if self.state == OPEN else None
        if slot is None or slot.publish is None or slot.received != -1:
            if self.state == CLOSING:
                return
            raise AMQPError(505, "unexpected content header frame")
        try:
            class_id, body_size, raw = spec.decode_content_header(payload)
        except (ValueError, spec.MethodDecodeError):
            raise AMQPError(502, "malformed content header frame").at(60, 40) from None
        if class_id != 60:
            raise AMQPError(505, f"content header for class {class_id}, expected 60")
        slot.raw_properties = raw
        slot.body_size = body_size
        slot.received = 0
        if body_size == 0:
            self._complete(channel, slot, b"", batches)

    def _on_body(self, channel: int, payload: bytes, batches: dict[int, list[Any]]) -> None:
        slot = self.channels.get(channel) if self.state == OPEN else None
        if slot is None or slot.publish is None or slot.received < 0:
            if self.state == CLOSING:
                return
            raise AMQPError(505, "unexpected content body frame")
        received = slot.received + len(payload)
        if received > slot.body_size:
            raise AMQPError(501, "content body larger than the size in its header")
        if received == slot.body_size:
            if slot.body_parts:
                slot.body_parts.append(payload)
                payload = b"".join(slot.body_parts)
                slot.body_parts = []
            self._complete(channel, slot, payload, batches)
        else:
            slot.body_parts.append(payload)
            slot.received = received

    def _complete(
        self, channel: int, slot: ChannelSlot, body: bytes, batches: dict[int, list[Any]]
    ) -> None:
        publish = slot.publish
        assert publish is not None
        message = Message(
            publish.exchange, publish.routing_key, slot.raw_properties, body, publish.mandatory
        )
        slot.publish = None
        slot.received = 0
        batch = batches.get(channel)
        if batch is None:
            batches[channel] = [message]
        else:
            batch.append(message)

    def _dispatch(self, batches: dict[int, list[Any]]) -> None:
        for channel, items in batches.items():
            slot = self.channels.get(channel)
            if slot is not None:
                slot.ref.tell(ChannelInput(items))

    # ----- closing

    def channel_closed(self, channel: int) -> None:
        """Free a channel number once its actor has finished closing."""
        self.channels.pop(channel, None)

    def close_connection(self, error: AMQPError) -> None:
        """Send connection.close with a hard error and wait (bounded) for close-ok."""
        if self.state >= CLOSING:
            return
        log.warning("closing connection %s: %s", self.connection_name, error)
        self._write_control(
            method_frame(
                0,
                spec.ConnectionClose(
                    reply_code=error.code,
                    reply_text=error.reply_text,
                    class_id=error.class_id,
                    method_id=error.method_id,
                ).encode(),
            )
        )
        self.state = CLOSING
        for slot in self.channels.values():
            slot.ref.tell(ConnectionGone())
        self.channels.clear()
        self._timers.append(self._loop.call_later(CLOSE_OK_TIMEOUT, self._finish_close))

    def force_close(self, reason: str) -> None:
        """Close with 320 CONNECTION_FORCED (broker shutdown, admin action)."""
        self.close_connection(AMQPError(320, reason))

    def _finish_close(self) -> None:
        self._flush()
        if self.transport is not None:
            self.transport.close()
