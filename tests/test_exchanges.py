"""Exchanges end to end over pika: the four types, the predeclared exchanges, declare, delete,
auto-delete, internal, exchange-to-exchange bindings and alternate exchanges.

Reply codes and texts are RabbitMQ 3.10's; ``DISPATCHD_PEER_PORT=5692 pytest
tests/test_exchanges.py`` runs the same tests against it (see ``tests/routing_support.py``).
"""

from __future__ import annotations

import pika
import pytest
from pika import spec

from tests.routing_support import Net, channel_close, connection_close, declare
from tests.routing_support import net as net
from tests.routing_support import peer as peer

BUILTINS = [
    ("amq.direct", "direct", False),
    ("amq.fanout", "fanout", False),
    ("amq.topic", "topic", False),
    ("amq.headers", "headers", False),
    ("amq.match", "headers", False),
    ("amq.rabbitmq.trace", "topic", True),
]


def where(name: str) -> str:
    return f"exchange '{name}' in vhost '/'"


# ----- the predeclared exchanges


@pytest.mark.parametrize(("name", "kind", "internal"), BUILTINS)
def test_builtin_exchange_exists_with_its_type_and_flags(
    net: Net, name: str, kind: str, internal: bool
) -> None:
    channel = net.peer.admin()
    channel.exchange_declare(name, kind, passive=True)
    channel.exchange_declare(name, kind, durable=True, internal=internal)  # exact: accepted
    wrong = "fanout" if kind != "fanout" else "direct"
    assert net.closes(declare(name, wrong, durable=True, internal=internal)) == channel_close(
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'type' for {where(name)}: "
        f"received '{wrong}' but current is '{kind}'",
        40,
        10,
    )
    assert net.closes(declare(name, kind, internal=internal)) == channel_close(
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'durable' for {where(name)}: "
        "received 'false' but current is 'true'",
        40,
        10,
    )


@pytest.mark.parametrize("name", ["amq.default", "amq.rabbitmq.log", "amq.rabbitmq.event"])
def test_exchanges_rabbitmq_does_not_predeclare(net: Net, name: str) -> None:
    assert not net.exists("exchange", name)


def test_builtin_exchanges_cannot_be_deleted(net: Net) -> None:
    for name, _, _ in BUILTINS:
        assert net.closes(spec.Exchange.Delete(exchange=name)) == channel_close(
            403, f"ACCESS_REFUSED - deletion of system {where(name)} not allowed", 40, 20
        )


def test_default_exchange_routes_by_queue_name_only(net: Net) -> None:
    queue = net.queue()
    assert net.publish("", queue, b"hit", mandatory=True)
    assert not net.publish("", queue.upper(), b"case", mandatory=True)
    assert not net.publish("", queue + "-missing", b"miss", mandatory=True)
    assert net.take(queue) == [b"hit"]


@pytest.mark.parametrize(
    ("step", "class_id", "method_id"),
    [
        (declare("", durable=True), 40, 10),
        (declare("", passive=True), 40, 10),
        (spec.Exchange.Delete(exchange=""), 40, 20),
        (spec.Exchange.Bind(destination="amq.fanout", source=""), 40, 30),
        (spec.Exchange.Bind(destination="", source="amq.fanout"), 40, 30),
        (spec.Exchange.Unbind(destination="amq.fanout", source=""), 40, 40),
        (spec.Queue.Bind(queue="q", exchange="", routing_key="q"), 50, 20),
        (spec.Queue.Unbind(queue="missing", exchange="", routing_key="k"), 50, 50),
    ],
)
def test_default_exchange_refuses_every_operation(
    net: Net, step: object, class_id: int, method_id: int
) -> None:
    assert net.closes(step) == channel_close(
        403, "ACCESS_REFUSED - operation not permitted on the default exchange", class_id, method_id
    )


# ----- the exchange types


def test_direct_delivers_to_every_binding_with_the_key(net: Net) -> None:
    exchange = net.exchange("direct")
    first, second, other = net.queue(), net.queue(), net.queue()
    net.bind(first, exchange, "k")
    net.bind(second, exchange, "k")
    net.bind(second, exchange, "k2")
    net.bind(other, exchange, "other")
    assert net.publish(exchange, "k", b"k", mandatory=True)
    assert net.publish(exchange, "k2", b"k2", mandatory=True)
    assert not net.publish(exchange, "K", b"case", mandatory=True)
    assert (net.take(first), net.take(second), net.take(other)) == ([b"k"], [b"k", b"k2"], [])


def test_fanout_delivers_to_every_bound_queue_whatever_the_key(net: Net) -> None:
    exchange = net.exchange("fanout")
    queues = [net.queue() for _ in range(3)]
    for i, queue in enumerate(queues):
        net.bind(queue, exchange, f"ignored-{i}")
    assert net.publish(exchange, "anything", b"1")
    assert net.publish(exchange, "", b"2")
    assert [net.take(q) for q in queues] == [[b"1", b"2"]] * 3


# binding key -> the routing keys (of TOPIC_KEYS) it matches, as RabbitMQ routes them
TOPIC_MATCHES = {
    "a.#": ["a", "a.b", "a.b.c", "a..b", "a.x.y.b", "a.", "a.b.b"],
    "#.a": ["a", "b.a", ".a"],
    "a.*": ["a.b", "a."],
    "*": ["a", "a*", "ab"],
    "#": ["", "a", "a.b", "a.b.c", "b.a", "a..b", "a.x.y.b", "a.", ".a", "a*", "ab", "a.b.b"],
    "": [""],
    "a.#.b": ["a.b", "a..b", "a.x.y.b", "a.b.b"],
    "a.*.b": ["a..b", "a.b.b"],
    "*.*": ["a.b", "b.a", "a.", ".a"],
    "a*": ["a*"],
    "#.#": ["", "a", "a.b", "a.b.c", "b.a", "a..b", "a.x.y.b", "a.", ".a", "a*", "ab", "a.b.b"],
    "*.#": ["a", "a.b", "a.b.c", "b.a", "a..b", "a.x.y.b", "a.", ".a", "a*", "ab", "a.b.b"],
    "#.*.#": ["a", "a.b", "a.b.c", "b.a", "a..b", "a.x.y.b", "a.", ".a", "a*", "ab", "a.b.b"],
    "a..b": ["a..b"],
    "a.#.#.b": ["a.b", "a..b", "a.x.y.b", "a.b.b"],
}
TOPIC_KEYS = ["", "a", "a.b", "a.b.c", "b.a", "a..b", "a.x.y.b", "a.", ".a", "a*", "ab", "a.b.b"]


def test_topic_wildcards_and_edge_cases(net: Net) -> None:
    exchange = net.exchange("topic")
    queues = {}
    for pattern in TOPIC_MATCHES:
        queues[pattern] = net.queue()
        net.bind(queues[pattern], exchange, pattern)
    for key in TOPIC_KEYS:
        net.publish(exchange, key, key.encode())
    got = {pattern: [b.decode() for b in net.take(q)] for pattern, q in queues.items()}
    assert got == TOPIC_MATCHES


HEADERS_BINDINGS = {
    "all": {"x-match": "all", "a": 1, "b": "x"},
    "any": {"x-match": "any", "a": 1, "b": "x"},
    "default-all-empty": {},
    "any-empty": {"x-match": "any"},
    "all-ignores-x": {"x-match": "all", "x-k": "v"},
    "all-with-x": {"x-match": "all-with-x", "x-k": "v"},
    "any-with-x": {"x-match": "any-with-x", "x-k": "v", "a": 2},
    "void-means-present": {"a": None},
}
HEADERS_MESSAGES = {
    "a1-bx": {"a": 1, "b": "x"},
    "a1": {"a": 1},
    "xk": {"x-k": "v"},
    "none": None,
    "a2": {"a": 2},
}
HEADERS_MATCHES = {
    "all": ["a1-bx"],
    "any": ["a1-bx", "a1"],
    "default-all-empty": ["a1-bx", "a1", "xk", "none", "a2"],
    "any-empty": [],
    "all-ignores-x": ["a1-bx", "a1", "xk", "none", "a2"],
    "all-with-x": ["xk"],
    "any-with-x": ["xk", "a2"],
    "void-means-present": ["a1-bx", "a1", "a2"],
}


def test_headers_match_modes(net: Net) -> None:
    exchange = net.exchange("headers")
    queues = {}
    for label, arguments in HEADERS_BINDINGS.items():
        queues[label] = net.queue()
        net.bind(queues[label], exchange, "ignored", **arguments)
    for label, headers in HEADERS_MESSAGES.items():
        net.publish(exchange, "", label.encode(), headers=headers)
    got = {label: [b.decode() for b in net.take(q)] for label, q in queues.items()}
    assert got == HEADERS_MATCHES


def test_headers_binding_with_bad_x_match_is_refused(net: Net) -> None:
    queue = net.queue()
    bind = spec.Queue.Bind(queue=queue, exchange="amq.match", arguments={"x-match": "none"})
    assert net.closes(bind) == channel_close(
        406,
        'PRECONDITION_FAILED - Invalid x-match field value <<"none">>; '
        "expected all, any, all-with-x, or any-with-x",
        50,
        20,
    )


# ----- declare


def test_declare_passive_and_redeclare(net: Net) -> None:
    name = net.exchange("topic")
    channel = net.peer.admin()
    channel.exchange_declare(name, "topic")  # same properties
    channel.exchange_declare(name, "fanout", durable=True, passive=True)  # passive: name only
    assert net.closes(declare(net.unique("none"), passive=True))[:2] == ("Channel.Close", 404)


@pytest.mark.parametrize(
    ("kind", "flag", "field", "received", "current"),
    [
        ("fanout", None, "type", "fanout", "direct"),
        ("direct", "durable", "durable", "true", "false"),
        ("direct", "auto_delete", "auto_delete", "true", "false"),
        ("direct", "internal", "internal", "true", "false"),
        ("fanout", "durable", "type", "fanout", "direct"),  # the type is compared first
    ],
)
def test_redeclare_with_other_flags_fails(
    net: Net, kind: str, flag: str | None, field: str, received: str, current: str
) -> None:
    name = net.exchange("direct")
    flags = {flag: True} if flag else {}
    assert net.closes(declare(name, kind, **flags)) == channel_close(
        406,
        f"PRECONDITION_FAILED - inequivalent arg '{field}' for {where(name)}: "
        f"received '{received}' but current is '{current}'",
        40,
        10,
    )


@pytest.mark.parametrize(
    ("first", "second", "detail"),
    [
        ("ae1", "ae2", "received 'ae2' but current is 'ae1'"),
        (None, "ae", "received the value 'ae' of type 'longstr' but current is none"),
        ("ae", None, "received none but current is the value 'ae' of type 'longstr'"),
        (None, 5, "received the value '5' of type 'signedint' but current is none"),
    ],
)
def test_redeclare_with_other_alternate_exchange_fails(
    net: Net, first: str | None, second: object, detail: str
) -> None:
    def arguments(value: object) -> dict[str, object] | None:
        return None if value is None else {"alternate-exchange": value}

    name = net.exchange("direct", arguments=arguments(first))
    assert net.closes(declare(name, arguments=arguments(second))) == channel_close(
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for {where(name)}: {detail}",
        40,
        10,
    )


def test_redeclare_ignores_arguments_rabbitmq_does_not_compare(net: Net) -> None:
    name = net.exchange("direct", arguments={"x-custom": "a"})
    net.peer.admin().exchange_declare(name, "direct", arguments={"x-custom": "b"})


@pytest.mark.parametrize(("value", "type_name"), [(5, "signedint"), (True, "bool"), ({}, "table")])
def test_alternate_exchange_must_be_a_string(net: Net, value: object, type_name: str) -> None:
    name = net.unique("x")
    assert net.closes(declare(name, arguments={"alternate-exchange": value})) == channel_close(
        406,
        f"PRECONDITION_FAILED - invalid type '{type_name}' for arg 'alternate-exchange' "
        f"in {where(name)}",
        40,
        10,
    )


def test_reserved_prefix(net: Net) -> None:
    name = "amq." + net.unique("x")
    assert net.closes(declare(name)) == channel_close(
        403, f"ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'", 40, 10
    )
    assert net.closes(declare(name, passive=True)) == channel_close(
        404, f"NOT_FOUND - no {where(name)}", 40, 10
    )


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("nonsense", "unknown exchange type 'nonsense'"),
        ("DIRECT", "unknown exchange type 'DIRECT'"),
        ("", "invalid exchange type ''"),
        ("queue", "invalid exchange type 'queue'"),
    ],
)
def test_unknown_exchange_type_closes_the_connection(net: Net, kind: str, text: str) -> None:
    expected = connection_close(503, f"COMMAND_INVALID - {text}", 40, 10)
    assert net.closes(declare(net.unique("x"), kind)) == expected
    assert net.closes(declare("amq.direct", kind, durable=True)) == expected  # checked first


def test_passive_declare_does_not_check_the_type(net: Net) -> None:
    name = net.unique("x")
    assert net.closes(declare(name, "nonsense", passive=True)) == channel_close(
        404, f"NOT_FOUND - no {where(name)}", 40, 10
    )


# ----- delete, auto-delete, internal


def test_delete(net: Net) -> None:
    channel = net.peer.admin()
    channel.exchange_delete(net.unique("missing"))  # no such exchange: fine
    name = net.exchange("direct")
    channel.exchange_delete(name)
    assert not net.exists("exchange", name)


def test_publishing_to_a_deleted_exchange_fails_until_it_is_declared_again(net: Net) -> None:
    channel = net.peer.channel()
    channel.confirm_delivery()
    exchange, queue = net.exchange("fanout"), net.queue()
    net.bind(queue, exchange)
    channel.basic_publish(exchange, "", b"before")  # the channel now knows the exchange
    channel.exchange_delete(exchange)
    channel.exchange_declare(exchange, "fanout")
    net.bind(queue, exchange)
    channel.basic_publish(exchange, "", b"after")
    net.peer.admin().exchange_delete(exchange)
    assert net.take(queue) == [b"before", b"after"]
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        channel.basic_publish(exchange, "", b"gone")
    assert (closed.value.reply_code, closed.value.reply_text) == (
        404,
        f"NOT_FOUND - no {where(exchange)}",
    )


def test_delete_if_unused(net: Net) -> None:
    source, dest = net.exchange("direct"), net.exchange("fanout")
    queue = net.queue()
    net.bind(queue, source, "k")
    channel = net.peer.admin()
    channel.exchange_bind(dest, source, "k")
    assert net.closes(spec.Exchange.Delete(exchange=source, if_unused=True)) == channel_close(
        406, f"PRECONDITION_FAILED - {where(source)} in use", 40, 20
    )
    channel.exchange_delete(dest, if_unused=True)  # only a destination: unused
    channel.queue_unbind(queue, source, "k")
    channel.exchange_delete(source, if_unused=True)  # its last binding went with dest
    assert not net.exists("exchange", source)


def test_auto_delete_goes_with_its_last_binding(net: Net) -> None:
    exchange = net.exchange("direct", auto_delete=True)
    queue = net.queue()
    assert net.exists("exchange", exchange)  # never bound: stays
    net.bind(queue, exchange, "a")
    net.bind(queue, exchange, "b")
    channel = net.peer.admin()
    channel.queue_unbind(queue, exchange, "a")
    assert net.exists("exchange", exchange)
    channel.queue_unbind(queue, exchange, "b")
    assert not net.exists("exchange", exchange)


def test_auto_delete_when_the_bound_queue_is_deleted(net: Net) -> None:
    exchange = net.exchange("fanout", auto_delete=True)
    queue = net.queue()
    net.bind(queue, exchange)
    net.peer.admin().queue_delete(queue)
    assert not net.exists("exchange", exchange)


def test_auto_delete_cascades_through_exchange_bindings(net: Net) -> None:
    top = net.exchange("fanout", auto_delete=True)
    middle = net.exchange("fanout", auto_delete=True)
    bottom = net.exchange("fanout")
    channel = net.peer.admin()
    channel.exchange_bind(middle, top)
    channel.exchange_bind(bottom, middle)
    channel.exchange_delete(bottom)  # middle loses its only binding, then top its own
    assert not net.exists("exchange", middle)
    assert not net.exists("exchange", top)


def test_auto_delete_ignores_bindings_where_it_is_the_destination(net: Net) -> None:
    source = net.exchange("fanout")
    dest = net.exchange("fanout", auto_delete=True)
    channel = net.peer.admin()
    channel.exchange_bind(dest, source)
    channel.exchange_unbind(dest, source)
    assert net.exists("exchange", dest)
    assert net.exists("exchange", source)


def test_internal_exchange_refuses_publishes_but_routes_from_exchanges(net: Net) -> None:
    internal = net.exchange("fanout", internal=True)
    front = net.exchange("direct")
    queue = net.queue()
    net.bind(queue, internal)
    net.peer.admin().exchange_bind(internal, front, "k")
    assert net.publish(front, "k", b"via-front", mandatory=True)
    assert net.take(queue) == [b"via-front"]
    publish = lambda client, channel: client.publish(channel, internal, "k", b"x")  # noqa: E731
    assert net.closes(publish) == channel_close(
        403, f"ACCESS_REFUSED - cannot publish to internal {where(internal)}", 60, 40
    )


# ----- exchange-to-exchange bindings


def test_exchange_binding_routes_until_unbound(net: Net) -> None:
    source, dest = net.exchange("direct"), net.exchange("fanout")
    queue = net.queue()
    net.bind(queue, dest)
    channel = net.peer.admin()
    channel.exchange_bind(dest, source, "k")
    assert net.publish(source, "k", b"k1", mandatory=True)
    assert not net.publish(source, "other", b"other", mandatory=True)
    channel.exchange_unbind(dest, source, "k")
    assert not net.publish(source, "k", b"k2", mandatory=True)
    assert net.take(queue) == [b"k1"]


def test_exchange_chain_through_every_type(net: Net) -> None:
    direct, topic, headers = net.exchange("direct"), net.exchange("topic"), net.exchange("headers")
    fanout = net.exchange("fanout")
    queue = net.queue()
    channel = net.peer.admin()
    channel.exchange_bind(topic, direct, "a.b")
    channel.exchange_bind(headers, topic, "a.*")
    channel.exchange_bind(fanout, headers, arguments={"h": 1})
    net.bind(queue, fanout)
    assert net.publish(direct, "a.b", b"through", headers={"h": 1}, mandatory=True)
    assert not net.publish(direct, "a.b", b"stopped", headers={"h": 2}, mandatory=True)
    assert net.take(queue) == [b"through"]


def test_exchange_binding_loops_deliver_one_copy(net: Net) -> None:
    a, b = net.exchange("fanout"), net.exchange("fanout")
    channel = net.peer.admin()
    channel.exchange_bind(b, a)
    channel.exchange_bind(a, b)
    channel.exchange_bind(a, a)
    queue = net.queue()
    net.bind(queue, b)
    assert net.publish(a, "", b"via-a")
    net.bind(queue, a)
    assert net.publish(a, "", b"via-a-both")
    assert net.publish(b, "", b"via-b-both")
    assert net.take(queue) == [b"via-a", b"via-a-both", b"via-b-both"]


def test_queue_reached_by_two_paths_gets_one_copy(net: Net) -> None:
    x, y, z = net.exchange("direct"), net.exchange("fanout"), net.exchange("topic")
    queue = net.queue()
    channel = net.peer.admin()
    net.bind(queue, x, "k")
    channel.exchange_bind(y, x, "k")
    channel.exchange_bind(z, x, "k")
    net.bind(queue, y)
    net.bind(queue, z, "#")
    assert net.publish(x, "k", b"one")
    assert net.take(queue) == [b"one"]


def test_message_routed_through_exchanges_is_there_for_the_next_get(net: Net) -> None:
    """No confirms: a basic.get after the publish on the same channel must see the message."""
    x, y = net.exchange("direct"), net.exchange("fanout")
    queue = net.queue()
    net.peer.admin().exchange_bind(y, x, "k")
    net.bind(queue, y)
    channel = net.peer.channel()
    channel.basic_publish(x, "k", b"hop")
    method, _properties, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None and body == b"hop"


# ----- alternate exchanges


def test_alternate_exchange_takes_only_unroutable_messages(net: Net) -> None:
    alternate = net.exchange("fanout")
    main = net.exchange("direct", arguments={"alternate-exchange": alternate})
    routed, spare = net.queue(), net.queue()
    net.bind(routed, main, "a")
    net.bind(spare, alternate)
    assert net.publish(main, "a", b"routed", mandatory=True)
    assert net.publish(main, "b", b"to-ae", mandatory=True)  # no basic.return
    assert (net.take(routed), net.take(spare)) == ([b"routed"], [b"to-ae"])


def test_alternate_exchange_chain(net: Net) -> None:
    last = net.exchange("fanout")
    middle = net.exchange("direct", arguments={"alternate-exchange": last})
    main = net.exchange("direct", arguments={"alternate-exchange": middle})
    queue = net.queue()
    net.bind(queue, last)
    assert net.publish(main, "nowhere", b"twice-alternated", mandatory=True)
    assert net.take(queue) == [b"twice-alternated"]


@pytest.mark.parametrize("alternate", ["missing", "loop", "default"])
def test_unusable_alternate_exchange_returns_mandatory_messages(net: Net, alternate: str) -> None:
    if alternate == "loop":
        first, second = net.unique("loop-1"), net.unique("loop-2")
        net.exchanges += [first, second]
        channel = net.peer.admin()
        channel.exchange_declare(first, "direct", arguments={"alternate-exchange": second})
        channel.exchange_declare(second, "direct", arguments={"alternate-exchange": first})
        main = first
    else:
        name = net.unique("missing") if alternate == "missing" else ""
        main = net.exchange("direct", arguments={"alternate-exchange": name})
        net.queue()  # the default exchange has a binding for it, yet routes nothing here
    assert not net.publish(main, "nowhere", mandatory=True)


def test_alternate_exchange_is_found_by_name_when_routing(net: Net) -> None:
    alternate = net.unique("late")
    net.exchanges.append(alternate)
    main = net.exchange("direct", arguments={"alternate-exchange": alternate})
    queue = net.queue()
    assert not net.publish(main, "k", b"before", mandatory=True)
    channel = net.peer.admin()
    channel.exchange_declare(alternate, "fanout")
    channel.exchange_delete(alternate)
    channel.exchange_declare(alternate, "fanout")
    net.bind(queue, alternate)
    assert net.publish(main, "k", b"after", mandatory=True)
    assert net.take(queue) == [b"after"]


def test_alternate_of_the_exchange_that_routed_nothing_is_used(net: Net) -> None:
    """X routes to Y by an exchange binding; Y matches nothing: Y's alternate, not X's."""
    y_alternate, x_alternate = net.exchange("fanout"), net.exchange("fanout")
    y = net.exchange("direct", arguments={"alternate-exchange": y_alternate})
    x = net.exchange("direct", arguments={"alternate-exchange": x_alternate})
    net.peer.admin().exchange_bind(y, x, "k")
    via_y, via_x = net.queue(), net.queue()
    net.bind(via_y, y_alternate)
    net.bind(via_x, x_alternate)
    assert net.publish(x, "k", b"m", mandatory=True)
    assert (net.take(via_y), net.take(via_x)) == ([b"m"], [])


def test_confirms_count_queues_reached_through_alternates(net: Net) -> None:
    alternate = net.exchange("fanout")
    main = net.exchange("direct", arguments={"alternate-exchange": alternate})
    queues = [net.queue() for _ in range(3)]
    for queue in queues:
        net.bind(queue, alternate)
    channel = net.peer.channel()
    channel.confirm_delivery()
    for i in range(20):
        channel.basic_publish(main, "x", str(i).encode(), pika.BasicProperties(), True)
    assert [net.count(q) for q in queues] == [20, 20, 20]
