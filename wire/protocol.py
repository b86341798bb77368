"""One client connection: handshake, framing, heartbeats, and hand-off to channel actors.

The protocol object is the thin wire layer of DESIGN.md. It decodes frames, assembles
publishes (method + header + body) into Messages, and tells each channel actor one batch per
``data_received``. Outgoing frames are coalesced and written once per loop turn.

Errors follow RabbitMQ 3.x (``rabbit_reader``), including how each one ends the connection:

- before tune-ok (states ``starting`` and ``tuning``) a bad frame, method, mechanism or tune-ok
  value closes the socket without a word after :data:`SILENT_CLOSE_DELAY` seconds; only a
  refused login is announced (403), and only to clients with ``authentication_failure_close``;
- afterwards an error sends connection.close and waits (bounded) for close-ok, except that a
  frame the reader cannot get past (too large, bad frame-end) leaves nothing worth reading: the
  socket is dropped :data:`SILENT_CLOSE_DELAY` seconds after the close;
- a method the codec does not know, or a field table it cannot parse, drops the socket at once.

Memory and disk alarms block publishers as ``rabbit_reader``'s ``control_throttle`` does
(3.10): the alarm itself changes nothing; a content header or body frame that arrives while
one is on blocks the connection right after that frame. It is then not read at all (the
rest of what arrived waits in the frame reader; ``pause_reading`` stops the socket), its
heartbeat monitoring pauses, and a client with the ``connection.blocked`` capability gets
``connection.blocked`` with the reason. Once no alarm is left it is read again (the held
frames first), and told ``connection.unblocked`` if it was told it was blocked. A
connection that only consumes or acks is never blocked; its state shows ``blocking``.

connection.update-secret (RabbitMQ's extension) is answered once the connection is running;
before that it is an unexpected method like any other.

Each connection that fails logs exactly one line saying why.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Collection, Container, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from pykka import ActorRef

from dispatchd.actors.content import Message
from dispatchd.actors.messages import (
    ChannelInput,
    ConnectionClosed,
    ConnectionGone,
    OversizedPublish,
    Writable,
)
from dispatchd.actors.runtime import post
from dispatchd.wire import certnames, fields, sasl, spec
from dispatchd.wire.errors import (
    AMQPError,
    ChannelCrashed,
    DropConnection,
    FatalFrameError,
    cannot_decode,
    channel_error,
    command_invalid,
    connection_forced,
    not_allowed,
    not_implemented,
    unexpected_frame,
    unexpected_frame_error,
    unknown_frame,
)
from dispatchd.wire.frames import (
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    FrameReader,
    method_frame,
)
from dispatchd.wire.tls import endpoint, session_info

log = logging.getLogger("dispatchd.connection")

#: RabbitMQ also speaks 0-9-1 to clients that send the AMQP 0-9 header.
AMQP_0_9_HEADER = b"AMQP\x01\x01\x00\x09"
ACCEPTED_HEADERS = frozenset({PROTOCOL_HEADER, AMQP_0_9_HEADER})

#: Seconds before a connection that failed its handshake is dropped (RabbitMQ: 3 s, so that a
#: client cannot hammer the server with failing logins); also how long the socket lingers after
#: a fatal framing error.
SILENT_CLOSE_DELAY = 3.0
#: Seconds to wait for the client's close-ok (after our connection.close), or for the client to
#: close its socket (after our close-ok). RabbitMQ's CLOSING_TIMEOUT.
CLOSE_OK_TIMEOUT = 30.0

_IDS = struct.Struct(">HH")
_CLOSE = _IDS.pack(spec.ConnectionClose.CLASS_ID, spec.ConnectionClose.METHOD_ID)
_CLOSE_OK = _IDS.pack(spec.ConnectionCloseOk.CLASS_ID, spec.ConnectionCloseOk.METHOD_ID)
_CONTENT_HEADER_MIN = 12  # class, weight, body size; RabbitMQ accepts a header without flags
_NO_PROPERTIES = b"\x00\x00"
#: Property lists that always decode (none; delivery-mode alone): no need to check them.
_PLAIN_PROPERTIES = frozenset({_NO_PROPERTIES, b"\x10\x00\x01", b"\x10\x00\x02"})


class Limits(Protocol):
    """The connection limits and login settings of a server (``dispatchd.config.Settings``)."""

    frame_max: int
    channel_max: int
    heartbeat: int
    handshake_timeout: float
    max_message_size: int  # larger publishes are refused, their bodies read and dropped
    tls_verify: str  # EXTERNAL needs "peer"
    tls_cert_login_from: str
    tls_cert_login_san_type: str
    tls_cert_login_san_index: int


class Alarms(Protocol):
    """The broker's resource alarms (``dispatchd.alarms.Alarms``)."""

    active: Collection[str]

    @property
    def reason(self) -> str:
        """connection.blocked's reason."""


class Server(Protocol):
    """What a connection asks of the broker it belongs to (``dispatchd.broker.Broker``).

    The wire layer knows the broker only through this: it never imports the broker, its
    actors, the store or the admin.
    """

    settings: Limits
    server_properties: Mapping[str, Any]  # connection.start's, capabilities included
    alarms: Alarms  # the resource alarms on (memory, disk)
    loopback_users: Container[str]  # users who may only log in from a loopback address
    auth_mechanisms: Sequence[str]  # the SASL mechanisms configured, in order

    def check_password(self, user: str, password: str) -> bool:
        """Whether the credentials match a known user."""

    def check_user(self, user: str) -> bool:
        """Whether ``user`` exists (EXTERNAL logins need no password)."""

    def vhost_refusal(self, vhost: str, user: str) -> str | None:
        """Why ``user`` may not open ``vhost`` (None: they may)."""

    def channel_refusal(self, user: str) -> str | None:
        """Why ``user`` may not open another channel (None: they may)."""

    def connection_opened(self, protocol: AMQPProtocol) -> int:
        """A socket was accepted; returns the connection's id."""

    def connection_closed(self, protocol: AMQPProtocol) -> None:
        """The socket is gone."""

    def open_connection(self, protocol: AMQPProtocol) -> ActorRef[Any]:
        """connection.open succeeded: the connection's actor."""

    def open_channel(
        self, protocol: AMQPProtocol, connection: ActorRef[Any], number: int
    ) -> ActorRef[Any]:
        """channel.open: the channel's actor."""


class State(IntEnum):
    """Where a connection is in its life; the names are RabbitMQ's connection states."""

    HANDSHAKE = 0  # waiting for the protocol header
    STARTING = 1  # connection.start sent, waiting for start-ok
    TUNING = 2  # connection.tune sent, waiting for tune-ok
    OPENING = 3  # tuned, waiting for connection.open
    RUNNING = 4
    CLOSING = 5  # connection.close sent, waiting for close-ok
    CLOSED = 6  # nothing more is read; the socket is closed or about to be


# Module-level names for the states: an enum attribute lookup costs ~70 ns, a global ~10 ns.
HANDSHAKE, STARTING, TUNING, OPENING, RUNNING, CLOSING, CLOSED = State


class LoginRefused(AMQPError):
    """403 ACCESS_REFUSED for a failed login.

    The client gets RabbitMQ's fixed text; the reason (as RabbitMQ logs it) stays in our log.
    """

    def __init__(self, mechanism: str, reason: str) -> None:
        super().__init__(
            spec.ChannelReplyCode.ACCESS_REFUSED,
            f"Login was refused using authentication mechanism {mechanism}. "
            "For details see the broker logfile.",
        )
        self.reason = f"{mechanism} login refused: {reason}"

    def __str__(self) -> str:
        return f"ACCESS_REFUSED - {self.reason}"


# Errors of the content assembler, with RabbitMQ's texts; all point at basic.publish.
def _expected_header() -> AMQPError:
    return unexpected_frame_error(
        "expected content header for class 60, got non content header frame instead", 60, 40
    )


def _expected_body() -> AMQPError:
    return unexpected_frame_error(
        "expected content body, got non content body frame instead", 60, 40
    )


def _expected_method() -> AMQPError:
    return unexpected_frame_error("expected method frame, got non method frame instead")


@dataclass(slots=True)
class ChannelSlot:
    """Per-channel wire state: the actor and any content being assembled."""

    ref: ActorRef[Any]
    closing: bool = False  # the server sent channel.close and awaits the client's close-ok
    publish: spec.BasicPublish | None = None
    awaiting_header: bool = False
    raw_properties: bytes = b""
    properties: spec.BasicProperties | None = None  # decoded when checked at the header
    body_size: int = 0
    body_parts: list[bytes] = field(default_factory=list)
    received: int = 0
    oversized: bool = False  # body_size > max_message_size: its frames are counted, not kept


class AMQPProtocol(asyncio.Protocol):
    """The asyncio protocol for one AMQP 0-9-1 client connection."""

    def __init__(self, broker: Server) -> None:
        self.broker = broker
        settings = broker.settings
        self.frame_max = settings.frame_max
        self.channel_max = settings.channel_max
        self.heartbeat = 0
        self.connection_name = "?"
        self.peer_host = ""
        self.id = 0  # given by the broker once the socket is accepted
        self.user = ""
        self.vhost = ""
        self.client_properties: dict[str, Any] = {}
        self.auth_mechanism = ""  # the mechanism of the start-ok that logged in
        self.tls: dict[str, Any] | None = None  # the TLS session (wire.tls.session_info), if any
        self.connected_at = time.time()
        self.state = HANDSHAKE
        self.reader = FrameReader(spec.FRAME_MIN_SIZE)
        self.channels: dict[int, ChannelSlot] = {}
        self.connection_ref: ActorRef[Any] | None = None
        self.transport: asyncio.Transport | None = None
        self.writable = True
        self.cancel_notify = False  # the client's consumer_cancel_notify capability
        self.blocked_notify = False  # the client's connection.blocked capability
        self.blocked = False  # a publish arrived during an alarm: nothing is read
        self._blocked_sent = False  # connection.blocked was sent, unblocked is owed
        self._header = b""
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._batches: dict[int, list[Any]] = {}
        self._retired: dict[int, int] = {}  # channel_closed calls still due from retired actors
        self._loop = asyncio.get_running_loop()
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._heartbeat_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._failure_close = False  # the client announced authentication_failure_close
        self._sent = False  # bytes written since the last heartbeat tick
        self._received = False  # bytes read since the last heartbeat check
        self._ticks = 0
        self._missed = 0

    # ----- transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        sock = transport.get_extra_info("sockname") or ("?", 0)
        self.peer_host = str(peer[0])
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:
            self.tls = session_info(tls)
        self.connection_name = f"{endpoint(peer)} -> {endpoint(sock)}"
        self._handshake_timer = self._loop.call_later(
            self.broker.settings.handshake_timeout, self._handshake_expired
        )
        self.id = self.broker.connection_opened(self)
        log.debug("accepted TCP connection %s", self.connection_name)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        if STARTING <= self.state <= RUNNING:
            log.warning(
                "closing connection %s (%s): client unexpectedly closed TCP connection",
                self.connection_name,
                self.state.name.lower(),
            )
        self.state = CLOSED
        for timer in (self._handshake_timer, self._heartbeat_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        try:
            self._release()
        finally:
            self.broker.connection_closed(self)  # whatever failed, the connection is gone

    def data_received(self, data: bytes) -> None:  # noqa: D102
        self._received = True
        if self.blocked:  # arrived before pause_reading took effect: keep it for later
            self.reader.hold(data)
            return
        if self.state is HANDSHAKE:
            data = self._read_protocol_header(data)
            if not data:
                return
        if self.state is CLOSED:
            return
        try:
            for frame_type, channel, payload in self.reader.feed(data):
                try:
                    self._on_frame(frame_type, channel, payload)
                except (AMQPError, DropConnection) as error:
                    self._fail(error)
                if self.state is CLOSED or self.blocked:
                    break
        except FatalFrameError as error:
            self._fail(error)
        except Exception:  # a bug must cost this connection, never the broker
            log.exception("closing connection %s: internal error", self.connection_name)
            self._close_now()
        self._dispatch()

    def eof_received(self) -> bool:  # noqa: D102
        return False

    def pause_writing(self) -> None:  # noqa: D102
        self.writable = False

    def resume_writing(self) -> None:  # noqa: D102
        self.writable = True
        for slot in self.channels.values():
            post(slot.ref, Writable())

    # ----- outgoing

    def write(self, data: bytes) -> None:
        """Queue bytes for the socket; flushed once per loop turn. Dropped once closing."""
        if self.state >= CLOSING:
            return
        self._write_control(data)

    def _write_control(self, data: bytes) -> None:
        """Queue bytes even while closing (connection.close and close-ok)."""
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            self._sent = True
        out.clear()

    def send_method(self, channel: int, method: spec.Method) -> None:
        """Encode and queue one method frame."""
        self.write(method_frame(channel, method.encode()))

    # ----- handshake

    def _read_protocol_header(self, data: bytes) -> bytes:
        """Wait for the 8-byte protocol header; answer it; return the bytes after it."""
        self._header += data
        if len(self._header) < len(PROTOCOL_HEADER):
            return b""
        header, rest = self._header[:8], self._header[8:]
        self._header = b""
        if header not in ACCEPTED_HEADERS:
            log.warning(
                "refused connection %s: bad protocol header %r", self.connection_name, header
            )
            self._refuse()
            return b""
        self.state = STARTING
        self._write_control(method_frame(0, self._start_method().encode()))
        return rest

    def _refuse(self) -> None:
        """Answer a bad protocol header with ours, then close (AMQP 0-9-1 section 4.2.2)."""
        self.state = CLOSED
        assert self.transport is not None
        self.transport.write(PROTOCOL_HEADER)
        self.transport.close()

    def _offered(self) -> list[str]:
        return sasl.offered(self.broker.auth_mechanisms, self.tls is not None)

    def _start_method(self) -> spec.ConnectionStart:
        return spec.ConnectionStart(
            version_major=0,
            version_minor=9,
            server_properties=dict(self.broker.server_properties),
            mechanisms=" ".join(self._offered()).encode(),
            locales=b"en_US",
        )

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if self.state < RUNNING:
            log.warning(
                "closing connection %s: handshake_timeout (%ss) in state %s",
                self.connection_name,
                self.broker.settings.handshake_timeout,
                self.state.name.lower(),
            )
            self._close_now()

    def _on_handshake(self, method: spec.Method) -> None:
        state = self.state
        if state is STARTING and isinstance(method, spec.ConnectionStartOk):
            self._start_ok(method)
        elif state is TUNING and isinstance(method, spec.ConnectionTuneOk):
            self._tune_ok(method)
        elif state is OPENING and isinstance(method, spec.ConnectionOpen):
            self._open(method)
        elif isinstance(method, spec.ConnectionClose):
            log.info(
                "closing connection %s: client closed it during the handshake", self.connection_name
            )
            self._close_after(SILENT_CLOSE_DELAY)
        else:
            raise channel_error(
                f"unexpected method in connection state {state.name.lower()}",
                method.CLASS_ID,
                method.METHOD_ID,
            )

    def _start_ok(self, method: spec.ConnectionStartOk) -> None:
        self.client_properties = method.client_properties
        capabilities = method.client_properties.get("capabilities")
        self._failure_close = (
            isinstance(capabilities, dict)
            and capabilities.get("authentication_failure_close") is True
        )
        self.cancel_notify = isinstance(capabilities, dict) and bool(
            capabilities.get("consumer_cancel_notify")
        )
        self.blocked_notify = (
            isinstance(capabilities, dict) and capabilities.get("connection.blocked") is True
        )
        try:
            sasl.check_mechanism(method.mechanism, self._offered())
            if method.mechanism == sasl.EXTERNAL:
                user = self._certificate_user()
                known = self.broker.check_user(user)
            else:
                user, password = sasl.credentials(method.mechanism, method.response)
                known = self.broker.check_password(user, password)
        except sasl.SaslError as exc:
            raise command_invalid(str(exc), 10, 11) from None
        if not known:
            raise LoginRefused(method.mechanism, f"user '{user}' - invalid credentials")
        if not sasl.loopback_allowed(user, self.peer_host, self.broker.loopback_users):
            raise LoginRefused(method.mechanism, f"user '{user}' can only connect via localhost")
        self.user = user
        self.auth_mechanism = method.mechanism
        self.state = TUNING
        tune = spec.ConnectionTune(
            channel_max=self.channel_max,
            frame_max=self.frame_max,
            heartbeat=self.broker.settings.heartbeat,
        )
        self._write_control(method_frame(0, tune.encode()))

    def _certificate_user(self) -> str:
        """EXTERNAL's user, named after the verified client certificate, or LoginRefused with
        ``rabbit_auth_mechanism_ssl``'s reasons."""
        assert self.transport is not None
        tls = self.transport.get_extra_info("ssl_object")
        settings = self.broker.settings
        if tls is None:
            raise LoginRefused(sasl.EXTERNAL, "not a TLS-enabled connection")
        cert = tls.getpeercert()
        if settings.tls_verify != "peer":
            log.warning(
                "TLS peer verification (authentication) is disabled, --tls-verify %s",
                settings.tls_verify,
            )
            raise LoginRefused(sasl.EXTERNAL, "TLS configuration is unsafe")
        if not cert:
            raise LoginRefused(
                sasl.EXTERNAL, "connection peer presented no TLS (x.509) certificate"
            )
        try:
            return certnames.user_name(
                cert,
                tls.getpeercert(binary_form=True) or b"",
                settings.tls_cert_login_from,
                settings.tls_cert_login_san_type,
                settings.tls_cert_login_san_index,
            )
        except certnames.NoName as exc:
            raise LoginRefused(sasl.EXTERNAL, str(exc)) from None

    def _tune_ok(self, method: spec.ConnectionTuneOk) -> None:
        """Take the client's limits, which may not exceed ours (0 means 'none' and exceeds any)."""
        frame_max, channel_max = method.frame_max, method.channel_max
        if self.frame_max and not 0 < frame_max <= self.frame_max:
            raise not_allowed(f"frame_max={frame_max} > {self.frame_max} max size", 10, 31)
        if frame_max and frame_max < spec.FRAME_MIN_SIZE:
            raise not_allowed(f"frame_max={frame_max} < {spec.FRAME_MIN_SIZE} min size", 10, 31)
        if self.channel_max and not 0 < channel_max <= self.channel_max:
            raise not_allowed(f"channel_max={channel_max} > {self.channel_max} max", 10, 31)
        self.reader.frame_max = frame_max
        self.frame_max = frame_max or 0xFFFFFFFF
        self.channel_max = channel_max
        self.heartbeat = method.heartbeat
        self.state = OPENING
        self._start_heartbeats()

    def _open(self, method: spec.ConnectionOpen) -> None:
        vhost = method.virtual_host
        refusal = self.broker.vhost_refusal(vhost, self.user)
        if refusal is not None:
            raise not_allowed(refusal, 10, 40)
        self.vhost = vhost
        self.state = RUNNING
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self.connection_ref = self.broker.open_connection(self)
        self._write_control(method_frame(0, spec.ConnectionOpenOk().encode()))
        log.info(
            "accepted connection %s (user %s, vhost %s)", self.connection_name, self.user, vhost
        )

    # ----- heartbeats

    def _start_heartbeats(self) -> None:
        """Send a heartbeat every half interval we have been quiet; check the client every
        interval, and drop it after two intervals without a byte from it (as RabbitMQ does)."""
        if self.heartbeat:
            self._received = True  # the handshake counts as having heard from the client
            self._heartbeat_timer = self._loop.call_later(self.heartbeat / 2, self._heartbeat_tick)

    def _heartbeat_tick(self) -> None:
        self._heartbeat_timer = None
        if not OPENING <= self.state <= RUNNING or self.transport is None:
            return
        if not self._sent and not self._out:
            self.transport.write(HEARTBEAT_FRAME)
        self._sent = False
        self._ticks += 1
        if self._ticks % 2 == 0:
            # a blocked connection is not read, so its silence proves nothing (pause_monitor)
            self._missed = 0 if self._received or self.blocked else self._missed + 1
            self._received = False
            if self._missed >= 2:
                log.warning(
                    "closing connection %s: missed heartbeats from client, timeout: %ss",
                    self.connection_name,
                    self.heartbeat,
                )
                self._close_now()
                return
        self._heartbeat_timer = self._loop.call_later(self.heartbeat / 2, self._heartbeat_tick)

    # ----- resource alarms

    @property
    def throttle_state(self) -> str:
        """The state as RabbitMQ lists it: ``blocked``, ``blocking`` (an alarm is on, nothing
        published since), or the connection state."""
        if self.state is RUNNING:
            if self.blocked:
                return "blocked"
            if self.broker.alarms.active:
                return "blocking"
        return self.state.name.lower()

    def _block(self) -> None:
        """A publish frame arrived during an alarm: stop reading after it (maybe_block)."""
        if self.blocked:
            return
        self.blocked = True
        if self.transport is not None:
            self.transport.pause_reading()
        if self.blocked_notify and not self._blocked_sent:
            self._blocked_sent = True
            reason = self.broker.alarms.reason
            self._write_control(method_frame(0, spec.ConnectionBlocked(reason=reason).encode()))

    def alarms_changed(self) -> None:
        """The broker's alarms changed: with none left, read again (maybe_unblock)."""
        if not self.blocked or self.broker.alarms.active or self.state is not RUNNING:
            return
        self.blocked = False
        self._received = True  # the monitor resumes afresh
        if self._blocked_sent:
            self._blocked_sent = False
            self._write_control(method_frame(0, spec.ConnectionUnblocked().encode()))
        if self.transport is not None:
            self.transport.resume_reading()
        self.data_received(b"")  # the frames held since the block

    # ----- incoming frames

    def _on_frame(self, frame_type: int, channel: int, payload: bytes) -> None:
        state = self.state
        if state is RUNNING:
            if frame_type == FRAME_METHOD:
                self._on_method(channel, payload)
                return
            if frame_type == FRAME_BODY:
                self._on_body(channel, payload)
                if self.broker.alarms.active:
                    self._block()
                return
            if frame_type == FRAME_HEADER:
                self._on_header(channel, payload)
                if self.broker.alarms.active:
                    self._block()
                return
        elif state is CLOSING:
            self._on_frame_while_closing(frame_type, channel, payload)
            return
        elif frame_type == FRAME_METHOD and channel == 0:
            self._on_handshake(self._decode(payload))
            return
        if frame_type == FRAME_HEARTBEAT:
            if payload:
                raise unknown_frame(frame_type, payload)
            if channel:
                raise unexpected_frame(frame_type, payload)
            return
        if frame_type not in (FRAME_METHOD, FRAME_HEADER, FRAME_BODY):
            raise unknown_frame(frame_type, payload)
        raise unexpected_frame(frame_type, payload)  # a channel frame before the connection opened

    def _decode(self, payload: bytes) -> spec.Method:
        """Decode a method frame payload, with RabbitMQ's reaction to what does not decode."""
        if len(payload) < 4:
            raise unknown_frame(FRAME_METHOD, payload)
        try:
            return spec.decode_method(payload)
        except spec.UnknownMethod as exc:
            raise DropConnection(
                f"unknown method: class {exc.class_id} method {exc.method_id}"
            ) from None
        except spec.MethodDecodeError as exc:
            assert exc.class_id is not None and exc.method_id is not None
            if _inside_field_table(exc):
                raise DropConnection(
                    f"cannot parse a field table in method {exc.class_id}/{exc.method_id}: "
                    f"{exc.__cause__}"
                ) from None
            raise cannot_decode(exc.class_id, exc.method_id, payload[4:]) from None

    def _on_method(self, channel: int, payload: bytes) -> None:
        if channel == 0:
            self._on_connection_method(self._decode(payload))
            return
        slot = self.channels.get(channel)
        if slot is not None and slot.publish is not None:
            raise _expected_header() if slot.awaiting_header else _expected_body()
        method = self._decode(payload)
        if slot is None:
            self._open_channel(channel, method)
        elif isinstance(method, spec.BasicPublish):
            if method.immediate:
                raise not_implemented("immediate=true", 60, 40)
            slot.publish = method
            slot.awaiting_header = True
        elif method.CLASS_ID == spec.ConnectionClose.CLASS_ID:
            raise command_invalid("unimplemented method", method.CLASS_ID, method.METHOD_ID)
        elif isinstance(method, spec.ChannelOpen):
            raise channel_error("second 'channel.open' seen", 20, 10)
        elif slot.closing and isinstance(method, spec.ChannelCloseOk):
            self._retire(channel, slot, method)
        else:
            self._enqueue(channel, method)

    def _on_connection_method(self, method: spec.Method) -> None:
        if isinstance(method, spec.ConnectionUpdateSecret):
            self._update_secret(method)
            return
        if not isinstance(method, spec.ConnectionClose):
            raise channel_error(
                "unexpected method in connection state running", method.CLASS_ID, method.METHOD_ID
            )
        log.info(
            "closing connection %s (user %s, vhost %s): client sent connection.close",
            self.connection_name,
            self.user,
            self.vhost,
        )
        self._write_control(method_frame(0, spec.ConnectionCloseOk().encode()))
        self._close_after(CLOSE_OK_TIMEOUT)  # the client closes the socket once it has close-ok

    def _update_secret(self, method: spec.ConnectionUpdateSecret) -> None:
        """Accept the new secret and change nothing, as RabbitMQ 3.10 does for its internal
        user database: ``rabbit_access_control:update_state`` asks only backends whose state
        can expire, and that one's cannot, whatever the mechanism (EXTERNAL included); the
        secret is not checked or stored, the user's tags and permissions are not re-read."""
        self.send_method(0, spec.ConnectionUpdateSecretOk())
        log.info(
            "connection %s: user '%s' updated secret, reason: %s",
            self.connection_name,
            self.user,
            " ".join(method.reason.splitlines()),  # one log line, whatever the client sent
        )

    def _open_channel(self, channel: int, method: spec.Method) -> None:
        if not isinstance(method, spec.ChannelOpen):
            raise channel_error("expected 'channel.open'", method.CLASS_ID, method.METHOD_ID)
        if self.channel_max and len(self.channels) >= self.channel_max:
            raise not_allowed(
                f"number of channels opened ({len(self.channels)}) has reached the "
                f"negotiated channel_max ({self.channel_max})",
            )
        refusal = self.broker.channel_refusal(self.user)
        if refusal is not None:
            raise not_allowed(refusal)
        assert self.connection_ref is not None
        ref = self.broker.open_channel(self, self.connection_ref, channel)
        self.channels[channel] = ChannelSlot(ref)
        self.write(method_frame(channel, spec.ChannelOpenOk().encode()))

    def _on_header(self, channel: int, payload: bytes) -> None:
        if channel == 0:
            raise unexpected_frame(FRAME_HEADER, payload)
        slot = self.channels.get(channel)
        if slot is None or slot.publish is None:
            raise _expected_method()
        if not slot.awaiting_header:
            raise _expected_body()
        if len(payload) == _CONTENT_HEADER_MIN:
            payload += _NO_PROPERTIES
        try:
            class_id, body_size, raw = spec.decode_content_header(payload)
        except spec.ContentHeaderDecodeError:
            raise unknown_frame(FRAME_HEADER, payload) from None
        if class_id != 60:
            raise unexpected_frame_error(
                f"expected content header for class 60, got one for class {class_id} instead",
                60,
                40,
            )
        slot.raw_properties = raw
        slot.properties = None if raw in _PLAIN_PROPERTIES else _checked_properties(raw)
        slot.body_size = body_size
        slot.received = 0
        slot.awaiting_header = False
        slot.oversized = body_size > self.broker.settings.max_message_size
        if body_size == 0:
            self._complete(channel, slot, b"")

    def _on_body(self, channel: int, payload: bytes) -> None:
        if channel == 0:
            raise unexpected_frame(FRAME_BODY, payload)
        slot = self.channels.get(channel)
        if slot is None or slot.publish is None:
            raise _expected_method()
        if slot.awaiting_header:
            raise _expected_header()
        received = slot.received + len(payload)
        if received > slot.body_size:
            raise _expected_body()
        if slot.oversized:
            self._skip_body(channel, slot, received)
        elif received == slot.body_size:
            if slot.body_parts:
                slot.body_parts.append(payload)
                payload = b"".join(slot.body_parts)
                slot.body_parts = []
            self._complete(channel, slot, payload)
        else:
            slot.body_parts.append(payload)
            slot.received = received

    def _skip_body(self, channel: int, slot: ChannelSlot, received: int) -> None:
        """Count an oversized publish's body without keeping it; once it is all read, the
        channel refuses the publish (RabbitMQ reads the whole body, then answers 406)."""
        if received < slot.body_size:
            slot.received = received
            return
        slot.publish = None
        slot.received = 0
        slot.oversized = False
        limit = self.broker.settings.max_message_size
        self._enqueue(channel, OversizedPublish(slot.body_size, limit))

    def _complete(self, channel: int, slot: ChannelSlot, body: bytes) -> None:
        publish = slot.publish
        assert publish is not None
        message = Message(
            publish.exchange,
            publish.routing_key,
            slot.raw_properties,
            body,
            publish.mandatory,
            slot.properties,
        )
        slot.publish = None
        slot.received = 0
        self._enqueue(channel, message)

    def _enqueue(self, channel: int, item: Any) -> None:
        batch = self._batches.get(channel)
        if batch is None:
            self._batches[channel] = [item]
        else:
            batch.append(item)

    def _dispatch(self) -> None:
        """Tell each channel actor what arrived for it, one message per channel."""
        if not self._batches:
            return
        for channel, items in self._batches.items():
            slot = self.channels.get(channel)
            if slot is not None:
                post(slot.ref, ChannelInput(items))
        self._batches = {}

    def _on_frame_while_closing(self, frame_type: int, channel: int, payload: bytes) -> None:
        """Ignore everything but connection.close-ok (and a crossing connection.close)."""
        if frame_type != FRAME_METHOD or channel != 0:
            return
        if payload[:4] == _CLOSE_OK:
            self._close_now()
        elif payload[:4] == _CLOSE:
            self._write_control(method_frame(0, spec.ConnectionCloseOk().encode()))
            self._close_now()

    # ----- closing

    def channel_closing(self, channel: int) -> None:
        """The server is sending channel.close on ``channel``.

        The client's close-ok then frees the number at once, as RabbitMQ's reader does, so a
        channel.open right behind it is not taken for a second open.
        """
        slot = self.channels.get(channel)
        if slot is not None:
            slot.closing = True

    def _retire(self, channel: int, slot: ChannelSlot, close_ok: spec.ChannelCloseOk) -> None:
        """Hand the client's close-ok to a closing channel's actor and free its number."""
        items = self._batches.pop(channel, [])
        items.append(close_ok)
        post(slot.ref, ChannelInput(items))
        del self.channels[channel]
        self._retired[channel] = self._retired.get(channel, 0) + 1

    def channel_closed(self, channel: int) -> None:
        """Free a channel number once its actor has finished closing."""
        retired = self._retired.get(channel)
        if retired:  # the number was freed already; it may be in use again
            if retired == 1:
                del self._retired[channel]
            else:
                self._retired[channel] = retired - 1
            return
        self.channels.pop(channel, None)

    def _fail(self, error: AMQPError | DropConnection) -> None:
        """End the connection the way RabbitMQ does for this error in this state."""
        if self.state >= CLOSING:  # a broken frame while waiting for close-ok
            self._close_after(SILENT_CLOSE_DELAY)
        elif isinstance(error, DropConnection):
            log.warning("closing connection %s: %s", self.connection_name, error.reason)
            self._close_now()
        elif self.state < OPENING and not (isinstance(error, LoginRefused) and self._failure_close):
            log.warning(
                "closing connection %s (%s): %s",
                self.connection_name,
                self.state.name.lower(),
                error,
            )
            self._close_after(SILENT_CLOSE_DELAY)
        else:
            self.close_connection(error)

    def close_connection(self, error: AMQPError, level: int = logging.WARNING) -> None:
        """Send connection.close with a hard error and wait (bounded) for close-ok."""
        if self.state >= CLOSING:
            return
        log.log(level, "closing connection %s: %s", self.connection_name, error)
        close = spec.ConnectionClose(
            reply_code=error.code,
            reply_text=error.reply_text,
            class_id=error.class_id,
            method_id=error.method_id,
        )
        self._write_control(method_frame(0, close.encode()))
        if isinstance(error, FatalFrameError):
            self._close_after(SILENT_CLOSE_DELAY)  # nothing after a broken frame can be read
            return
        timeout = SILENT_CLOSE_DELAY if self.state is STARTING else CLOSE_OK_TIMEOUT
        self.state = CLOSING
        if self.blocked:  # read again, for the close-ok (RabbitMQ's closing state reads)
            self.blocked = False
            if self.transport is not None:
                self.transport.resume_reading()
        self._release()
        self._close_later(timeout)

    def force_close(self, text: str) -> None:
        """Close with 320 CONNECTION_FORCED and ``text`` (broker shutdown, admin action).

        A connection still in its handshake is simply disconnected.
        """
        if OPENING <= self.state <= RUNNING:
            self.close_connection(connection_forced(text), logging.INFO)
        elif self.state is not CLOSING:
            self._close_now()

    def _release(self) -> None:
        """Hand over what has arrived, then stop the channel and connection actors and the
        heartbeats (idempotent)."""
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
            self._heartbeat_timer = None
        self._dispatch()  # what arrived before the close is still processed, as in RabbitMQ
        channels = list(self.channels.values())
        self.channels.clear()
        for slot in channels:
            post(slot.ref, ConnectionGone())  # a crashed channel is gone already
        ref, self.connection_ref = self.connection_ref, None
        if ref is not None and not post(ref, ConnectionGone()):
            # The connection actor crashed: do its last job, so exclusive queues still go.
            post(self.broker.vhosts[self.vhost], ConnectionClosed(self.id))

    def _close_after(self, delay: float) -> None:
        """Read nothing more and close the socket after ``delay`` seconds."""
        self.state = CLOSED
        self.reader.discard()
        self._release()
        self._close_later(delay)

    def _close_later(self, delay: float) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._close_timer = self._loop.call_later(delay, self._close_now)

    def _close_now(self) -> None:
        """Send what is queued and close the socket."""
        self.state = CLOSED
        self._release()
        self._flush()
        if self.transport is not None:
            self.transport.close()


def _checked_properties(raw: bytes) -> spec.BasicProperties:
    """A publish's properties, decoded as RabbitMQ's channel decodes every publish's: ones that
    do not decode (a bad field table, a truncated list) crash its channel, which closes the
    connection with a bare 541 INTERNAL_ERROR; here that error, before any actor sees them.
    (Bytes that are not UTF-8 pass, as in RabbitMQ.)"""
    try:
        return spec.BasicProperties.decode(raw, 0)
    except spec.ContentHeaderDecodeError as exc:
        raise ChannelCrashed(f"content properties do not decode: {exc}") from None


def _inside_field_table(error: spec.MethodDecodeError) -> bool:
    """Whether decoding failed inside a field table (RabbitMQ's reader then crashes) rather
    than on the method's own layout (which RabbitMQ reports as 501 'cannot decode')."""
    cause = error.__cause__
    return isinstance(cause, fields.FieldDecodeError) and "past the end of the buffer" not in str(
        cause
    )
