"""Queue arguments are validated on declare, with RabbitMQ 3.10's codes and texts.

Run against RabbitMQ with ``DISPATCHD_PEER_PORT=5692 pytest tests/test_arguments.py``: every
expected text here was probed there. Validation only: what the arguments do is tested with
the features themselves.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pika
import pika.exceptions
import pytest

from tests.basic_support import Peer, pump
from tests.routing_support import peer as peer

__all__ = ["peer"]


def declare_error(peer: Peer, arguments: dict[str, Any], **flags: Any) -> str | None:
    """Declare a fresh queue; None if it worked (it is then deleted), else the 406 text."""
    name = f"argtest-{uuid.uuid4().hex[:10]}"
    channel = peer.channel()
    try:
        channel.queue_declare(name, arguments=arguments, **flags)
    except pika.exceptions.ChannelClosedByBroker as error:
        assert error.reply_code == 406, error
        return error.reply_text.replace(name, "Q")
    channel.queue_delete(name)
    return None


def invalid(key: str, term: str) -> str:
    """RabbitMQ's text for an argument its validator refused."""
    return f"PRECONDITION_FAILED - invalid arg '{key}' for queue 'Q' in vhost '/': {term}"


EXPECTED_INTEGER = '"expected integer, got {}"'

REFUSED = [
    ({"x-message-ttl": -1}, invalid("x-message-ttl", "{value_negative,-1}")),
    ({"x-message-ttl": "a"}, invalid("x-message-ttl", EXPECTED_INTEGER.format("longstr"))),
    ({"x-message-ttl": True}, invalid("x-message-ttl", EXPECTED_INTEGER.format("bool"))),
    ({"x-message-ttl": None}, invalid("x-message-ttl", EXPECTED_INTEGER.format("void"))),
    (
        {"x-message-ttl": Decimal("1.5")},
        invalid("x-message-ttl", EXPECTED_INTEGER.format("decimal")),
    ),
    ({"x-message-ttl": 315360000001}, invalid("x-message-ttl", "{value_too_large,315360000001}")),
    ({"x-expires": 0}, invalid("x-expires", "{value_zero,0}")),
    ({"x-expires": -5}, invalid("x-expires", "{value_negative,-5}")),
    ({"x-expires": "x"}, invalid("x-expires", EXPECTED_INTEGER.format("longstr"))),
    ({"x-expires": 2**40}, invalid("x-expires", "{value_too_large,1099511627776}")),
    ({"x-max-length": -1}, invalid("x-max-length", "{value_negative,-1}")),
    ({"x-max-length": "x"}, invalid("x-max-length", EXPECTED_INTEGER.format("longstr"))),
    ({"x-max-length-bytes": -1}, invalid("x-max-length-bytes", "{value_negative,-1}")),
    ({"x-max-length-bytes": [1]}, invalid("x-max-length-bytes", EXPECTED_INTEGER.format("array"))),
    ({"x-overflow": "bogus"}, invalid("x-overflow", "invalid_overflow")),
    ({"x-overflow": 1}, invalid("x-overflow", "{unacceptable_type,signedint}")),
    ({"x-max-priority": 256}, invalid("x-max-priority", "{max_value_exceeded,256}")),
    ({"x-max-priority": -1}, invalid("x-max-priority", "{value_negative,-1}")),
    ({"x-max-priority": "1"}, invalid("x-max-priority", EXPECTED_INTEGER.format("longstr"))),
    (
        {"x-dead-letter-exchange": 1},
        "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' "
        "in queue 'Q' in vhost '/'",
    ),
    (
        {"x-dead-letter-exchange": {"a": 1}},
        "PRECONDITION_FAILED - invalid type 'table' for arg 'x-dead-letter-exchange' "
        "in queue 'Q' in vhost '/'",
    ),
    (
        {"x-dead-letter-routing-key": "k"},
        invalid("x-dead-letter-routing-key", "routing_key_but_no_dlx_defined"),
    ),
    (
        {"x-dead-letter-routing-key": 1},
        invalid("x-dead-letter-routing-key", "{unacceptable_type,signedint}"),
    ),
    (
        {"x-single-active-consumer": 1},
        invalid("x-single-active-consumer", "{unacceptable_type,signedint}"),
    ),
    (
        {"x-single-active-consumer": "true"},
        invalid("x-single-active-consumer", "{unacceptable_type,longstr}"),
    ),
    ({"x-queue-mode": "bogus"}, invalid("x-queue-mode", "\"unsupported queue mode 'bogus'\"")),
    ({"x-queue-mode": 1}, invalid("x-queue-mode", "{unacceptable_type,signedint}")),
    ({"x-queue-type": "bogus"}, invalid("x-queue-type", "\"unsupported queue type 'bogus'\"")),
    ({"x-queue-type": 1}, invalid("x-queue-type", "{unacceptable_type,signedint}")),
    ({"x-queue-type": b"classic"}, invalid("x-queue-type", "{unacceptable_type,binary}")),
    # Several wrong: the first in RabbitMQ's order is reported.
    ({"x-message-ttl": -1, "x-expires": 0}, invalid("x-expires", "{value_zero,0}")),
    (
        {"x-max-length": -1, "x-dead-letter-exchange": 5},
        "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' "
        "in queue 'Q' in vhost '/'",
    ),
    (
        {"x-queue-type": "bogus", "x-expires": 0},
        invalid("x-queue-type", "\"unsupported queue type 'bogus'\""),
    ),
    ({"x-max-priority": 300, "x-message-ttl": -1}, invalid("x-message-ttl", "{value_negative,-1}")),
    (
        {"x-single-active-consumer": 1, "x-queue-mode": 1, "x-overflow": 1},
        invalid("x-overflow", "{unacceptable_type,signedint}"),
    ),
]

ACCEPTED = [
    {"x-message-ttl": 0},
    {"x-message-ttl": 315360000000},
    {"x-expires": 1},
    {"x-max-length": 0},
    {"x-max-length": 2**40},
    {"x-max-length-bytes": 0},
    {"x-overflow": "drop-head"},
    {"x-overflow": "reject-publish"},
    {"x-overflow": "reject-publish-dlx"},
    {"x-max-priority": 0},
    {"x-max-priority": 255},
    {"x-dead-letter-exchange": "no-such-exchange-is-fine"},
    {"x-dead-letter-exchange": "e", "x-dead-letter-routing-key": "k"},
    {"x-single-active-consumer": True},
    {"x-queue-mode": "lazy"},
    {"x-queue-mode": "default"},
    {"x-queue-type": "classic"},
    {"x-unknown-argument": "ignored"},
]


@pytest.mark.parametrize(("arguments", "expected"), REFUSED, ids=lambda v: repr(v)[:60])
def test_invalid_argument_refused(peer: Peer, arguments: dict[str, Any], expected: str) -> None:
    assert declare_error(peer, arguments) == expected


@pytest.mark.parametrize("arguments", ACCEPTED, ids=repr)
def test_valid_argument_accepted(peer: Peer, arguments: dict[str, Any]) -> None:
    assert declare_error(peer, arguments) is None


def test_redeclare_compares_instead_of_validating(peer: Peer) -> None:
    """An existing queue is only compared: an invalid value is reported as inequivalent."""
    name = peer.queue(**{"x-max-length": 10})
    channel = peer.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as raised:
        channel.queue_declare(name, arguments={"x-max-length": -1})
    assert raised.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{name}' in vhost '/': "
        "received '-1' but current is '10'"
    )


def test_refused_declare_creates_nothing(peer: Peer) -> None:
    name = f"argtest-{uuid.uuid4().hex[:10]}"
    channel = peer.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        channel.queue_declare(name, arguments={"x-expires": 0})
    channel = peer.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as raised:
        channel.queue_declare(name, passive=True)
    assert raised.value.reply_code == 404


def test_no_wait_declare_closes_the_channel(peer: Peer) -> None:
    """Validation applies to no-wait declares too: the error closes the channel."""
    connection = peer.connect()
    channel = connection.channel()
    closed: list[pika.exceptions.ChannelClosedByBroker] = []
    channel._impl.add_on_close_callback(lambda _ch, reason: closed.append(reason))
    channel._impl.queue_declare(
        f"argtest-{uuid.uuid4().hex[:10]}", arguments={"x-max-priority": 256}, callback=None
    )
    assert pump(connection, lambda: closed)
    assert closed[0].reply_code == 406
