"""AMQP errors as exceptions carrying a reply code and the offending method's ids.

Soft errors (the spec's 3xx/4xx 'soft-error' constants) close the channel; hard errors close
the connection. RabbitMQ prefixes reply texts with the reply code's name
(``NOT_FOUND - no queue 'x' in vhost '/'``); so do we.

Framing errors carry RabbitMQ's exact texts, which print the offending frame the way Erlang
prints a binary (``type 3, all octets = <<"hello">>``); :func:`erlang_binary` renders those.
"""

from __future__ import annotations

import re

REPLY_NAMES: dict[int, str] = {
    311: "CONTENT_TOO_LARGE",
    312: "NO_ROUTE",
    313: "NO_CONSUMERS",
    320: "CONNECTION_FORCED",
    402: "INVALID_PATH",
    403: "ACCESS_REFUSED",
    404: "NOT_FOUND",
    405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED",
    501: "FRAME_ERROR",
    502: "SYNTAX_ERROR",
    503: "COMMAND_INVALID",
    504: "CHANNEL_ERROR",
    505: "UNEXPECTED_FRAME",
    506: "RESOURCE_ERROR",
    530: "NOT_ALLOWED",
    540: "NOT_IMPLEMENTED",
    541: "INTERNAL_ERROR",
}

SOFT_ERRORS = frozenset({311, 312, 313, 403, 404, 405, 406})

SHORTSTR_MAX = 255
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
        super().__init__(501, text)


class DropConnection(Exception):
    """Close the socket at once, without connection.close.

    RabbitMQ's connection process crashes on a method it has no codec for and on field tables it
    cannot parse; the client only sees the socket close. ``reason`` goes to the log.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
    return AMQPError(505, _frame_octets(frame_type, payload))


def unknown_frame(frame_type: int, payload: bytes) -> AMQPError:
    """501 for a frame that cannot be parsed (unknown type, heartbeat with a payload, ...)."""
    return AMQPError(501, f"{_frame_octets(frame_type, payload)}: unknown_frame")


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
    return AMQPError(501, f"cannot decode {erlang_binary(arguments, pretty=False)}").at(
        class_id, method_id
    )


# ----- shorthands used by the actors


def not_found(text: str) -> AMQPError:
    """404 NOT_FOUND."""
    return AMQPError(404, text)


def precondition_failed(text: str) -> AMQPError:
    """406 PRECONDITION_FAILED."""
    return AMQPError(406, text)


def access_refused(text: str) -> AMQPError:
    """403 ACCESS_REFUSED."""
    return AMQPError(403, text)


def resource_locked(text: str) -> AMQPError:
    """405 RESOURCE_LOCKED."""
    return AMQPError(405, text)


def not_implemented(text: str) -> AMQPError:
    """540 NOT_IMPLEMENTED (a hard error, as in RabbitMQ)."""
    return AMQPError(540, text)
