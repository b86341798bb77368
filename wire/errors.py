"""AMQP errors as exceptions carrying a reply code and the offending method's ids.

Soft errors (the spec's 3xx/4xx 'soft-error' constants) close the channel; hard errors close
the connection. RabbitMQ prefixes reply texts with the reply code's name
(``NOT_FOUND - no queue 'x' in vhost '/'``); so do we.
"""

from __future__ import annotations

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
        """The text as sent on the wire: ``NAME - detail``, at most 255 bytes."""
        full = f"{REPLY_NAMES.get(self.code, 'ERROR')} - {self.text}"
        return full.encode()[:255].decode(errors="ignore")

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
        return f"{self.reply_text} (class {self.class_id} method {self.method_id})"


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
