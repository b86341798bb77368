"""Sender-selected distribution: CC and BCC headers route to extra keys, as RabbitMQ 3.10.

Run against RabbitMQ with ``DISPATCHD_PEER_PORT=5692 pytest tests/test_cc_bcc.py``.
"""

from __future__ import annotations

from typing import Any

import pika
import pika.exceptions
import pytest

from tests.routing_support import Net, channel_close, net, peer
from tests.support import get_all

__all__ = ["net", "peer"]


def received(net: Net, queue: str) -> list[tuple[str, dict[str, Any] | None]]:
    """(routing key, headers) of every message in the queue."""
    return [
        (method.routing_key, properties.headers)
        for method, properties, _body in get_all(net.peer.admin(), queue)
    ]


@pytest.fixture
def abc(net: Net) -> tuple[str, str, str]:
    """Three queues on the default exchange."""
    return net.queue(), net.queue(), net.queue()


def test_cc_routes_to_extra_keys_and_stays(net: Net, abc: tuple[str, str, str]) -> None:
    a, b, c = abc
    headers = {"CC": [b, c]}
    assert net.publish("", a, headers=headers)
    for queue in abc:
        assert received(net, queue) == [(a, headers)]


def test_bcc_routes_and_is_stripped(net: Net, abc: tuple[str, str, str]) -> None:
    a, b, c = abc
    assert net.publish("", a, headers={"BCC": [b], "x": 1, "CC": [c]})
    for queue in abc:
        assert received(net, queue) == [(a, {"x": 1, "CC": [c]})]


def test_bcc_alone_leaves_an_empty_table(net: Net, abc: tuple[str, str, str]) -> None:
    a, b, _ = abc
    assert net.publish("", "nowhere", headers={"BCC": [a, b]})
    assert received(net, a) == [("nowhere", {})]
    assert received(net, b) == [("nowhere", {})]


def test_each_queue_gets_one_copy(net: Net, abc: tuple[str, str, str]) -> None:
    a, b, _ = abc
    assert net.publish("", a, headers={"CC": [a, b, b], "BCC": [a, b]})
    assert len(received(net, a)) == 1
    assert len(received(net, b)) == 1


def test_non_string_elements_are_ignored(net: Net, abc: tuple[str, str, str]) -> None:
    a, b, c = abc
    assert net.publish("", a, headers={"CC": [5, b, {"k": c}]})
    assert [len(received(net, q)) for q in abc] == [1, 1, 0]


def test_header_names_are_case_sensitive(net: Net, abc: tuple[str, str, str]) -> None:
    a, b, _ = abc
    assert net.publish("", a, headers={"cc": [b]})
    assert received(net, b) == []


def test_cc_through_a_topic_exchange_and_exchange_bindings(net: Net) -> None:
    topic = net.exchange("topic")
    inner = net.exchange("direct")
    net.peer.admin().exchange_bind(inner, topic, "k.*")
    q1, q2 = net.queue(), net.queue()
    net.bind(q1, topic, "a.#")
    net.bind(q2, inner, "k.x")
    assert net.publish(topic, "a.b", headers={"BCC": ["k.x"]})
    assert received(net, q1) == [("a.b", {})]
    assert received(net, q2) == [("a.b", {})]


def test_unroutable_with_bcc_is_returned_without_it(net: Net) -> None:
    channel = net.peer.admin()
    with pytest.raises(pika.exceptions.UnroutableError) as raised:
        channel.basic_publish(
            "", "nowhere", b"m", pika.BasicProperties(headers={"BCC": ["no"], "CC": ["x"]}), True
        )
    assert raised.value.messages[0].properties.headers == {"CC": ["x"]}


@pytest.mark.parametrize(
    ("headers", "term"),
    [
        ({"CC": "q"}, '"CC",longstr'),
        ({"BCC": "q"}, '"BCC",longstr'),
        ({"CC": 5}, '"CC",signedint'),
        ({"CC": None}, '"CC",void'),
        ({"CC": {"a": "q"}}, '"CC",table'),
        ({"CC": "q", "BCC": 5}, '"CC",longstr'),
    ],
    ids=repr,
)
def test_routing_header_must_be_an_array(net: Net, headers: dict[str, Any], term: str) -> None:
    def publish(client: Any, channel: int) -> None:
        client.publish(channel, "", "q", b"m", properties=pika.BasicProperties(headers=headers))

    assert net.closes(publish) == channel_close(
        406,
        f"PRECONDITION_FAILED - invalid message: {{unacceptable_type_in_header,{term}}}",
        60,
        40,
    )


def test_empty_array_routes_as_usual(net: Net, abc: tuple[str, str, str]) -> None:
    a = abc[0]
    assert net.publish("", a, headers={"CC": []})
    assert received(net, a) == [(a, {"CC": []})]
