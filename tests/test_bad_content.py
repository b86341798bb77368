"""Content headers whose properties are bad, answered as RabbitMQ 3.10 answers them.

Recorded against rabbitmq-server 3.10.8 with the same bytes: properties that do not decode (a
field table with an unknown type tag, a property list cut short) crash RabbitMQ's channel, and
the connection closes with a bare 541 ``INTERNAL_ERROR`` (class 0, method 0); property bytes
that are not UTF-8 pass through untouched; a bad expiration is 406 on the channel. Whatever the
answer, nothing is left behind: the admin's totals come back to where they were.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest
from pika import spec

from tests.admin_support import AdminClient, eventually, start_admin_broker
from tests.amqp_raw import describe, wait_until
from tests.basic_support import Peer
from tests.basic_support import peer as peer
from tests.conformance.rawclient import method_frame, raw_frame
from tests.conftest import BrokerProcess
from tests.support import QUIET


def header(flags: int, properties: bytes, size: int = 5) -> bytes:
    """A content header payload for class 60 with raw ``properties`` after ``flags``."""
    return struct.pack(">HHQH", 60, 0, size, flags) + properties


UNKNOWN_TAG = header(0x2000, struct.pack(">I", 4) + b"\x01kZ\x00")  # headers: {"k": 'Z'...}
TRUNCATED = header(0x8000, b"")  # content-type flagged, no bytes
NOT_UTF8 = header(0x8000, b"\x02\xff\xfe")  # content-type b"\xff\xfe"
BAD_EXPIRATION = header(0x0100, b"\x03abc")

CRASHED = {"method": "Connection.Close", "reply_code": 541, "reply_text": "INTERNAL_ERROR"}


def publish_raw(peer: Peer, content_header: bytes) -> tuple[list[Any], str]:
    """Publish ``hello`` with this content header on a raw connection; what came back, and
    the queue it went to."""
    queue = peer.queue()
    client = peer.raw()
    method = spec.Basic.Publish(exchange="", routing_key=queue)
    client.send(
        method_frame(1, method) + raw_frame(2, 1, content_header) + raw_frame(3, 1, b"hello")
    )
    return client.drain(QUIET * 4), queue


@pytest.mark.parametrize("content_header", [UNKNOWN_TAG, TRUNCATED], ids=["unknown-tag", "cut"])
def test_properties_that_do_not_decode_close_the_connection_with_541(
    peer: Peer, content_header: bytes
) -> None:
    replies, queue = publish_raw(peer, content_header)
    assert replies and {k: replies[0][k] for k in CRASHED} == CRASHED, replies
    assert (replies[0]["class_id"], replies[0]["method_id"]) == (0, 0)
    assert peer.count(queue) == 0


def test_property_bytes_that_are_not_utf8_pass_through(peer: Peer) -> None:
    replies, queue = publish_raw(peer, NOT_UTF8)
    assert replies == []
    client = peer.raw()
    client.send_method(1, spec.Basic.Get(queue=queue, no_ack=True))
    got = [client.recv_frame() for _ in range(3)]
    assert describe(got[0])["method"] == "Basic.GetOk"
    assert got[1].properties.content_type == b"\xff\xfe"  # pika keeps what is not UTF-8 as bytes
    assert got[2].fragment == b"hello"


def test_a_bad_expiration_is_406_on_the_channel(peer: Peer) -> None:
    replies, _ = publish_raw(peer, BAD_EXPIRATION)
    assert replies[0]["method"] == "Channel.Close", replies
    assert (replies[0]["reply_code"], replies[0]["reply_text"]) == (
        406,
        "PRECONDITION_FAILED - invalid expiration 'abc': no_integer",
    )


@pytest.fixture(scope="module")
def admin_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BrokerProcess, AdminClient]]:
    proc, client = start_admin_broker(tmp_path_factory.mktemp("bad-content"))
    yield proc, client
    proc.stop()


def test_nothing_is_left_behind(admin_broker: tuple[BrokerProcess, AdminClient]) -> None:
    broker, api = admin_broker
    before = api.get("/api/overview")["object_totals"]
    target = Peer(broker.port)
    try:
        for content_header in (UNKNOWN_TAG, TRUNCATED, UNKNOWN_TAG):
            replies, _ = publish_raw(target, content_header)
            assert replies[0]["reply_code"] == 541
    finally:
        target.close()

    def settled() -> dict[str, int] | None:
        totals = api.get("/api/overview")["object_totals"]
        keys = ("connections", "channels", "consumers")
        return totals if all(totals[k] == before[k] for k in keys) else None

    eventually(settled, "the connections, channels and consumers to be gone")
    assert wait_until(lambda: api.get("/api/connections") == [])
    assert "Traceback" not in broker.log
    assert "ActorDeadError" not in broker.log
