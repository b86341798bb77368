"""Queue arguments checked on declare (and basic.consume's, :data:`CONSUME_VALIDATORS`), one
validator per argument, as RabbitMQ 3.10 does.

``rabbit_amqqueue:declare_args/0`` pairs each ``x-`` argument with a check; the first that
fails closes the channel with 406 and the Erlang term it returned, printed with ``~p``::

    invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}

The order below is the order RabbitMQ reports errors in (probed on 3.10: ``x-queue-type``
comes first). Before any of them, ``rabbit_channel`` checks that ``x-dead-letter-exchange``
is a string (:func:`dead_letter_exchange_error`). Only new queues are checked; a redeclare
is compared for equivalence instead. Validation (and :func:`integer_argument`, reading back
an integer it let through) is all this module does: the behaviours the arguments ask for are
the queue's business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dispatchd.actors.routing.terms import as_text, field_type

__all__ = [
    "CONSUME_VALIDATORS",
    "VALIDATORS",
    "argument_error",
    "dead_letter_exchange_error",
    "erlang_string",
    "integer_argument",
]

# The field types rabbit_amqqueue accepts as integers (?INTEGER_ARG_TYPES).
INTEGER_TYPES = frozenset(
    {"byte", "short", "signedint", "long", "unsignedbyte", "unsignedshort", "unsignedint"}
)
MAX_EXPIRY = 315_360_000_000  # ten years in milliseconds (rabbit_misc:check_expiry/1)
MAX_PRIORITY = 255
OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")
QUEUE_MODES = ("default", "lazy")
# Queue types RabbitMQ knows; dispatchd has only classic queues and refuses the others with
# the error RabbitMQ gives a type it does not support, rather than pretending.
SUPPORTED_QUEUE_TYPES = ("classic",)

Validator = Callable[[Any, Mapping[str, Any]], "str | None"]

_PRINTABLE_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v", "\b": "\\b",
                       "\f": "\\f", "\x1b": "\\e"}  # fmt: skip


def erlang_string(text: str) -> str:
    """A character list as ``~p`` prints it: quoted if printable (latin-1), else a list."""
    chars = text.encode("utf-8", "surrogatepass").decode("latin-1")  # ~s of a binary
    out = []
    for char in chars:
        code = ord(char)
        if char in _PRINTABLE_CONTROLS:
            out.append(_PRINTABLE_CONTROLS[char])
        elif 32 <= code <= 126 or 160 <= code <= 255:
            out.append("\\" + char if char in '"\\' else char)
        else:
            return "[" + ",".join(str(ord(c)) for c in chars) + "]"
    return '"' + "".join(out) + '"'


# ----- building blocks (rabbit_amqqueue's check_* functions)


def _integer(value: Any) -> str | None:
    kind = field_type(value)
    return None if kind in INTEGER_TYPES else erlang_string(f"expected integer, got {kind}")


def _non_negative(value: Any, _args: Mapping[str, Any]) -> str | None:
    error = _integer(value)
    if error is None and value < 0:
        return f"{{value_negative,{int(value)}}}"
    return error


def _expiry(value: int) -> str | None:
    if value < 0:
        return f"{{value_negative,{int(value)}}}"
    if value > MAX_EXPIRY:
        return f"{{value_too_large,{int(value)}}}"
    return None


def _one_of(choices: tuple[str, ...], invalid: Callable[[str], str]) -> Validator:
    """A longstr argument that must be one of ``choices``."""

    def check(value: Any, _args: Mapping[str, Any]) -> str | None:
        kind = field_type(value)
        if kind != "longstr":
            return f"{{unacceptable_type,{kind}}}"
        text = as_text(value)
        return None if text in choices else invalid(text)

    return check


# ----- one validator per argument


def check_expires(value: Any, _args: Mapping[str, Any]) -> str | None:
    """``x-expires``: a positive integer of milliseconds (0 is refused)."""
    error = _integer(value)
    if error is not None:
        return error
    return f"{{value_zero,{int(value)}}}" if value == 0 else _expiry(value)


def check_message_ttl(value: Any, _args: Mapping[str, Any]) -> str | None:
    """``x-message-ttl``: a non-negative integer of milliseconds (0 is allowed)."""
    error = _integer(value)
    return error if error is not None else _expiry(value)


def check_dead_letter_routing_key(value: Any, args: Mapping[str, Any]) -> str | None:
    """``x-dead-letter-routing-key``: a string, and only with a dead-letter exchange."""
    kind = field_type(value)
    if kind != "longstr":
        return f"{{unacceptable_type,{kind}}}"
    return None if "x-dead-letter-exchange" in args else "routing_key_but_no_dlx_defined"


def check_max_priority(value: Any, args: Mapping[str, Any]) -> str | None:
    """``x-max-priority``: an integer from 0 to 255."""
    error = _non_negative(value, args)
    if error is None and value > MAX_PRIORITY:
        return f"{{max_value_exceeded,{int(value)}}}"
    return error


def check_single_active_consumer(value: Any, _args: Mapping[str, Any]) -> str | None:
    """``x-single-active-consumer`` (and basic.consume's ``x-cancel-on-ha-failover``): a
    boolean."""
    kind = field_type(value)
    return None if kind == "bool" else f"{{unacceptable_type,{kind}}}"


def check_consumer_priority(value: Any, _args: Mapping[str, Any]) -> str | None:
    """basic.consume's ``x-priority``: any integer (negative too)."""
    return _integer(value)


check_overflow = _one_of(OVERFLOW_MODES, lambda _text: "invalid_overflow")
check_queue_mode = _one_of(
    QUEUE_MODES, lambda text: erlang_string(f"unsupported queue mode '{text}'")
)
check_queue_type = _one_of(
    SUPPORTED_QUEUE_TYPES, lambda text: erlang_string(f"unsupported queue type '{text}'")
)

#: (argument, validator) in the order RabbitMQ 3.10 reports the first failure.
VALIDATORS: tuple[tuple[str, Validator], ...] = (
    ("x-queue-type", check_queue_type),
    ("x-expires", check_expires),
    ("x-message-ttl", check_message_ttl),
    ("x-dead-letter-routing-key", check_dead_letter_routing_key),
    ("x-max-length", _non_negative),
    ("x-max-length-bytes", _non_negative),
    ("x-max-priority", check_max_priority),
    ("x-overflow", check_overflow),
    ("x-queue-mode", check_queue_mode),
    ("x-single-active-consumer", check_single_active_consumer),
)


#: basic.consume's arguments (rabbit_amqqueue:consume_args/0), checked once the queue is found
#: (after 404 and 405) and in this order; other keys are ignored, as RabbitMQ does.
CONSUME_VALIDATORS: tuple[tuple[str, Validator], ...] = (
    ("x-priority", check_consumer_priority),
    ("x-cancel-on-ha-failover", check_single_active_consumer),
)


def integer_argument(args: Mapping[str, Any], key: str) -> int | None:
    """A validated integer argument's value, or None when it is absent."""
    value = args.get(key)
    return None if value is None or isinstance(value, bool) else int(value)


def dead_letter_exchange_error(args: Mapping[str, Any]) -> str | None:
    """The type of a non-string ``x-dead-letter-exchange`` (checked by the channel first)."""
    if "x-dead-letter-exchange" not in args:
        return None
    kind = field_type(args["x-dead-letter-exchange"])
    return None if kind == "longstr" else kind


def argument_error(
    args: Mapping[str, Any], validators: tuple[tuple[str, Validator], ...] = VALIDATORS
) -> tuple[str, str] | None:
    """The first invalid argument of a new queue (or of a consume, with CONSUME_VALIDATORS)
    and RabbitMQ's term for it, or None."""
    for key, check in validators:
        if key in args:
            error = check(args[key], args)
            if error is not None:
                return key, error
    return None
