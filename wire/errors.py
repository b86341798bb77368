"""AMQP errors as exceptions carrying a reply code and the offending method's ids.

Soft errors (the spec's 'soft-error' constants, ``spec.ChannelReplyCode``) close the channel;
hard errors (``spec.ConnectionReplyCode``) close the connection. RabbitMQ prefixes reply texts
with the reply code's name (``NOT_FOUND - no queue 'x' in vhost '/'``); so do we. Each reply
code has a named constructor (``not_found(text)``, ``precondition_failed(text, 50, 40)``, ...).

Framing errors carry RabbitMQ's exact texts, which print the offending frame the way Erlang
prints a binary (``type 3, all octets = <<"hello">>``); :func:`erlang_binary` renders those.
"""

from __future__ import annotations

import re

from dispatchd.wire.spec import REPLY_NAMES as REPLY_NAMES
from dispatchd.wire.spec import SHORTSTR_MAX as SHORTSTR_MAX
from dispatchd.wire.spec import SOFT_ERRORS as SOFT_ERRORS
from dispatchd.wire.spec import ChannelReplyCode, ConnectionReplyCode

_LINE_BREAK = re.compile(r"\n\s*")


class AMQPError(Exception):
    """An error to report to the client with a close frame."""

    def __init__(self, code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text
        self.class_id = class_id
        self.method_id = method_id

    @property
    def reply_text(self) -> str:
        """The text as sent on the wire: ``NAME - detail``; over 255 bytes, cut to 252 + '...'.

        (RabbitMQ shortens long texts the same way.)
        """
        full = f"{REPLY_NAMES.get(self.code, 'ERROR')} - {self.text}"
        raw = full.encode()
        if len(raw) <= SHORTSTR_MAX:
            return full
        return raw[: SHORTSTR_MAX - 3].decode(errors="ignore") + "..."

    @property
    def hard(self) -> bool:
        """Whether this error closes the whole connection."""
        return self.code not in SOFT_ERRORS

    def at(self, class_id: int, method_id: int) -> AMQPError:
        """Fill in the offending method if not already set; returns self."""
        if not self.class_id:
            self.class_id, self.method_id = class_id, method_id
        return self

    def __str__(self) -> str:
        text = _LINE_BREAK.sub(" ", self.reply_text)  # one log line, even for wrapped terms
        return f"{text} (class {self.class_id} method {self.method_id})"


class FatalFrameError(AMQPError):
    """501 FRAME_ERROR after which the byte stream cannot be parsed any further.

    A frame larger than frame-max or a bad frame-end octet leaves the reader out of step with
    the client, so (as RabbitMQ does) the server sends connection.close, reads nothing more, and
    drops the socket a little later instead of waiting for connection.close-ok.
    """

    def __init__(self, text: str) -> None:
        super().__init__(ConnectionReplyCode.FRAME_ERROR, text)


class DropConnection(Exception):
    """Close the socket at once, without connection.close.

    RabbitMQ's connection process crashes on a method it has no codec for and on field tables it
    cannot parse; the client only sees the socket close. ``reason`` goes to the log.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ----- one constructor per reply code; class_id/method_id name the offending method (0: unknown)


def content_too_large(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """311 CONTENT_TOO_LARGE (soft: closes the channel)."""
    return AMQPError(ChannelReplyCode.CONTENT_TOO_LARGE, text, class_id, method_id)


def no_route(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """312 NO_ROUTE (soft: closes the channel)."""
    return AMQPError(ChannelReplyCode.NO_ROUTE, text, class_id, method_id)


def no_consumers(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """313 NO_CONSUMERS (soft: closes the channel)."""
    return AMQPError(ChannelReplyCode.NO_CONSUMERS, text, class_id, method_id)


def connection_forced(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """320 CONNECTION_FORCED (hard: closes the connection)."""
    return AMQPError(ConnectionReplyCode.CONNECTION_FORCED, text, class_id, method_id)


def invalid_path(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """402 INVALID_PATH (hard: closes the connection)."""
    return AMQPError(ConnectionReplyCode.INVALID_PATH, text, class_id, method_id)


def access_refused(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """403 ACCESS_REFUSED (soft: closes the channel)."""
    return AMQPError(ChannelReplyCode.ACCESS_REFUSED, text, class_id, method_id)


def not_found(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """404 NOT_FOUND (soft: closes the channel)."""
    return AMQPError(ChannelReplyCode.NOT_FOUND, text, class_id, method_id)


def resource_locked(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """405 RESOURCE_LOCKED (soft: closes the channel)."""
    return AMQPError(ChannelReplyCode.RESOURCE_LOCKED, text, class_id, method_id)


def precondition_failed(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """406 PRECONDITION_FAILED (soft: closes the channel)."""
    return AMQPError(ChannelReplyCode.PRECONDITION_FAILED, text, class_id, method_id)


def frame_error(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """501 FRAME_ERROR (hard: closes the connection)."""
    return AMQPError(ConnectionReplyCode.FRAME_ERROR, text, class_id, method_id)


def syntax_error(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """502 SYNTAX_ERROR (hard: closes the connection)."""
    return AMQPError(ConnectionReplyCode.SYNTAX_ERROR, text, class_id, method_id)


def command_invalid(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """503 COMMAND_INVALID (hard: closes the connection)."""
    return AMQPError(ConnectionReplyCode.COMMAND_INVALID, text, class_id, method_id)


def channel_error(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """504 CHANNEL_ERROR (hard: closes the connection)."""
    return AMQPError(ConnectionReplyCode.CHANNEL_ERROR, text, class_id, method_id)


def unexpected_frame_error(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """505 UNEXPECTED_FRAME (hard); :func:`unexpected_frame` gives RabbitMQ's text for a frame."""
    return AMQPError(ConnectionReplyCode.UNEXPECTED_FRAME, text, class_id, method_id)


def resource_error(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """506 RESOURCE_ERROR (hard: closes the connection)."""
    return AMQPError(ConnectionReplyCode.RESOURCE_ERROR, text, class_id, method_id)


def not_allowed(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """530 NOT_ALLOWED (hard: closes the connection)."""
    return AMQPError(ConnectionReplyCode.NOT_ALLOWED, text, class_id, method_id)


def not_implemented(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """540 NOT_IMPLEMENTED (hard: closes the connection, as in RabbitMQ)."""
    return AMQPError(ConnectionReplyCode.NOT_IMPLEMENTED, text, class_id, method_id)


def internal_error(text: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """541 INTERNAL_ERROR (hard: closes the connection)."""
    return AMQPError(ConnectionReplyCode.INTERNAL_ERROR, text, class_id, method_id)


class ChannelCrashed(AMQPError):
    """541 as RabbitMQ closes a connection whose channel process died: the bare
    ``INTERNAL_ERROR`` on the wire, class 0 method 0; the reason goes to our log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(ConnectionReplyCode.INTERNAL_ERROR, reason)

    @property
    def reply_text(self) -> str:  # noqa: D102
        return REPLY_NAMES[ConnectionReplyCode.INTERNAL_ERROR]

    def __str__(self) -> str:
        return f"INTERNAL_ERROR - {self.text}"


# ----- RabbitMQ's texts for framing errors

#: Erlang's pretty printer (``~p``) keeps a term on one line while it ends before this column.
_LINE_END = 81
#: ...and otherwise fills lines up to this column (io_lib_pretty's defaults, as measured).
_FILL_END = 80
#: A 2-tuple that would end past this column has its second element moved to the next line.
_TUPLE_END = 78
#: RabbitMQ prints at most this many octets of a bad frame.
_OCTETS_SHOWN = 16

_ESCAPES = {
    0x22: '\\"',
    0x5C: "\\\\",
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x0B: "\\v",
    0x08: "\\b",
    0x0C: "\\f",
    0x1B: "\\e",
}


def _printable(data: bytes) -> bool:
    """Whether Erlang's ``~p`` shows this binary as a string (latin-1 printable)."""
    return all(32 <= b <= 126 or 160 <= b or b in _ESCAPES for b in data)


def erlang_binary(data: bytes, column: int = 0, pretty: bool = True) -> str:
    """``data`` as Erlang prints a binary starting at ``column``.

    ``pretty`` is ``~p``: a printable binary becomes ``<<"text">>`` and a long one is wrapped
    like io_lib_pretty does; otherwise (``~w``) it is ``<<1,2,3>>`` on one line.
    """
    if not data:
        return "<<>>"
    if pretty and _printable(data):
        try:
            text = data.decode()
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        return '<<"' + "".join(_ESCAPES.get(ord(c), c) for c in text) + '">>'
    flat = "<<" + ",".join(map(str, data)) + ">>"
    if not pretty or column + len(flat) <= _LINE_END:
        return flat
    indent = column + 2  # continuation lines line up after the '<<'
    lines: list[str] = []
    line, start = "<<", column
    for i, byte in enumerate(data):
        item = f"{byte}>>" if i == len(data) - 1 else f"{byte},"
        if line not in ("", "<<") and start + len(line) + len(item) > _FILL_END:
            lines.append(line)
            line, start = "", indent
        line += item
    lines.append(line)
    return ("\n" + " " * indent).join(lines)


def _frame_octets(frame_type: int, payload: bytes) -> str:
    """``type 1, all octets = <<...>>`` (only the first 16 octets of a longer payload)."""
    if len(payload) > _OCTETS_SHOWN:
        prefix = f"type {frame_type}, first {_OCTETS_SHOWN} octets = "
        payload = payload[:_OCTETS_SHOWN]
    else:
        prefix = f"type {frame_type}, all octets = "
    return prefix + erlang_binary(payload, len(prefix))


def _last_line_length(text: str) -> int:
    return len(text) - text.rfind("\n") - 1


def unexpected_frame(frame_type: int, payload: bytes) -> AMQPError:
    """505 for a frame the connection's state does not allow (e.g. a body on channel 0)."""
    return unexpected_frame_error(_frame_octets(frame_type, payload))


def unknown_frame(frame_type: int, payload: bytes) -> AMQPError:
    """501 for a frame that cannot be parsed (unknown type, heartbeat with a payload, ...)."""
    return frame_error(f"{_frame_octets(frame_type, payload)}: unknown_frame")


def frame_too_large(frame_type: int, size: int, frame_max: int) -> FatalFrameError:
    """501 for a frame whose payload exceeds the negotiated frame-max."""
    return FatalFrameError(
        f"type {frame_type}, all octets = <<>>: {{frame_too_large,{size},{frame_max - 8}}}"
    )


def bad_frame_end(frame_type: int, payload: bytes, marker: int) -> FatalFrameError:
    """501 for a frame whose last octet is not 0xCE."""
    text = _frame_octets(frame_type, payload) + ": "
    column = _last_line_length(text)
    term = f"{{invalid_frame_end_marker,{marker}}}"
    if column + len(term) > _TUPLE_END:
        term = "{invalid_frame_end_marker,\n" + " " * (column + 1) + f"{marker}}}"
    return FatalFrameError(text + term)


def cannot_decode(class_id: int, method_id: int, arguments: bytes) -> AMQPError:
    """501 for method arguments that do not parse (RabbitMQ prints them with ``~w``)."""
    text = f"cannot decode {erlang_binary(arguments, pretty=False)}"
    return frame_error(text, class_id, method_id)


#: RabbitMQ's ceiling for max_message_size (``?MAX_MSG_SIZE``, 512 MiB).
MAX_MESSAGE_SIZE = 536870912


def message_too_large(size: int, limit: int) -> AMQPError:
    """406 for a publish larger than max_message_size (``rabbit_channel:check_msg_size``:
    'configured' unless the limit is RabbitMQ's ceiling)."""
    configured = "" if limit == MAX_MESSAGE_SIZE else "configured "
    return precondition_failed(f"message size {size} is larger than {configured}max size {limit}")
