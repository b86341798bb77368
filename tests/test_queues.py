"""Queues end to end over pika: names, passive declares, flags and their equivalence checks,
exclusive and auto-delete queues, counts, purge, delete and the empty "last queue" name.

Reply codes and texts are RabbitMQ 3.10's; ``DISPATCHD_PEER_PORT=5692 pytest
tests/test_queues.py`` runs the same tests against it (see ``tests/routing_support.py``).
"""

from __future__ import annotations

from typing import Any

import pytest
from pika import spec

from tests.basic_support import Inbox, close_reply
from tests.routing_support import Net, channel_close
from tests.routing_support import net as net
from tests.routing_support import peer as peer

LOCKED = (
    "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{}' in vhost '/'. "
    "It could be originally declared on another connection or the exclusive property value "
    "does not match that of the original declaration."
)
NO_PREVIOUS = "NOT_FOUND - no previously declared queue"


def declare(name: str, **flags: Any) -> spec.Queue.Declare:
    """A queue.declare method (for raw steps)."""
    return spec.Queue.Declare(queue=name, **flags)


def counts(net: Net, queue: str) -> tuple[int, int]:
    """(message_count, consumer_count) of a passive declare."""
    ok = net.peer.admin().queue_declare(queue, passive=True).method
    return ok.message_count, ok.consumer_count


# ----- names and declares


def test_server_named_queue(net: Net) -> None:
    channel = net.peer.channel()
    name = channel.queue_declare("", exclusive=True).method.queue
    assert name.startswith("amq.gen-") and len(name) > len("amq.gen-") + 10
    assert channel.queue_declare("", exclusive=True).method.queue != name
    assert channel.queue_declare(name, passive=True).method.queue == name
    assert net.closes(declare(name)) == channel_close(  # close texts show it as amq.gen-*
        403, "ACCESS_REFUSED - queue name 'amq.gen-*' contains reserved prefix 'amq.*'", 50, 10
    )


def test_reserved_prefix_and_passive_missing(net: Net) -> None:
    name = "amq." + net.unique("q")
    assert net.closes(declare(name)) == channel_close(
        403, f"ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'", 50, 10
    )
    for missing in (name, net.unique("missing"), ""):
        assert net.closes(declare(missing, passive=True)) == channel_close(
            404, f"NOT_FOUND - no queue '{missing}' in vhost '/'", 50, 10
        )


def test_passive_declare_ignores_the_stated_properties(net: Net) -> None:
    queue = net.queue()
    ok = net.peer.admin().queue_declare(
        queue, passive=True, durable=True, arguments={"x-max-length": 1}
    )
    assert ok.method.queue == queue


def args(**arguments: Any) -> dict[str, Any]:
    """Declare flags with these queue arguments (hyphens written as underscores)."""
    return {"arguments": {k.replace("_", "-"): v for k, v in arguments.items()}}


SAME_TTL = args(x_message_ttl=1000)
TRUE_NOT_FALSE = "received 'true' but current is 'false'"
THREE = args(x_max_length=1, x_expires=100000, x_message_ttl=5)


@pytest.mark.parametrize(
    ("first", "second", "field", "detail"),
    [
        ({}, {"durable": True}, "durable", TRUE_NOT_FALSE),
        ({}, {"auto_delete": True}, "auto_delete", TRUE_NOT_FALSE),
        ({"auto_delete": True}, {"durable": True}, "durable", TRUE_NOT_FALSE),  # durable first
        (SAME_TTL, args(x_message_ttl=2000), "x-message-ttl",
         "received '2000' but current is '1000'"),
        ({}, args(x_max_length=10), "x-max-length",
         "received the value '10' of type 'signedint' but current is none"),
        (args(x_max_length=10), {}, "x-max-length",
         "received none but current is the value '10' of type 'signedint'"),
        (THREE, args(x_max_length=2, x_expires=100001, x_message_ttl=6), "x-expires",
         "received '100001' but current is '100000'"),
        (args(x_dead_letter_exchange="a"), args(x_dead_letter_exchange="b"),
         "x-dead-letter-exchange", "received 'b' but current is 'a'"),
        (args(x_queue_type="classic"), args(x_queue_type="quorum"), "x-queue-type",
         "received 'quorum' but current is 'classic'"),
        ({}, args(x_queue_type="quorum"), "x-queue-type",
         "received the value 'quorum' of type 'longstr' but current is none"),
    ],
)  # fmt: skip
def test_redeclare_with_other_properties_fails(
    net: Net, first: dict[str, Any], second: dict[str, Any], field: str, detail: str
) -> None:
    queue = net.queue(**first)
    assert net.closes(declare(queue, **second)) == channel_close(
        406,
        f"PRECONDITION_FAILED - inequivalent arg '{field}' for queue '{queue}' in vhost '/': "
        + detail,
        50,
        10,
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (SAME_TTL, SAME_TTL),
        (args(x_custom="a"), args(x_custom="b")),  # not compared
        ({}, args(x_queue_type="classic")),  # classic is the default type
        (args(x_queue_type="classic"), {}),
    ],
)
def test_redeclare_with_equivalent_properties(
    net: Net, first: dict[str, Any], second: dict[str, Any]
) -> None:
    queue = net.queue(**first)
    assert net.peer.admin().queue_declare(queue, **second).method.queue == queue


# ----- exclusive queues


def test_exclusive_queue_is_locked_to_its_connection(net: Net) -> None:
    owner = net.peer.channel()
    queue = net.unique("excl")
    owner.queue_declare(queue, exclusive=True)
    owner.queue_bind(queue, "amq.direct", "bound")
    locked = LOCKED.format(queue)
    for step, class_id, method_id in [
        (declare(queue, exclusive=True), 50, 10),
        (declare(queue), 50, 10),
        (declare(queue, passive=True), 50, 10),
        (spec.Basic.Consume(queue=queue), 60, 20),
        (spec.Basic.Get(queue=queue), 60, 70),
        (spec.Queue.Bind(queue=queue, exchange="amq.direct", routing_key="k"), 50, 20),
        (spec.Queue.Unbind(queue=queue, exchange="amq.direct", routing_key="bound"), 50, 50),
        (spec.Queue.Purge(queue=queue), 50, 30),
        (spec.Queue.Delete(queue=queue), 50, 40),
        (spec.Queue.Delete(queue=queue, if_empty=True), 50, 40),
    ]:
        assert net.closes(step) == channel_close(405, locked, class_id, method_id), step
    other = net.peer.channel()
    other.queue_unbind(queue, "amq.direct", "not-bound")  # nothing to unbind: no check
    other.confirm_delivery()
    other.basic_publish("", queue, b"from-other")  # anyone may publish to it
    method, _properties, body = owner.basic_get(queue, auto_ack=True)
    assert body == b"from-other"


def test_exclusive_queue_belongs_to_the_connection_not_the_channel(net: Net) -> None:
    connection = net.peer.connect()
    first = connection.channel()
    queue = first.queue_declare(net.unique("excl"), exclusive=True).method.queue
    first.close()
    second = connection.channel()
    assert second.queue_declare(queue, exclusive=True).method.queue == queue
    assert net.closes(declare(queue, durable=True)) == channel_close(
        405, LOCKED.format(queue), 50, 10
    )


def test_exclusive_flag_must_match_on_redeclare(net: Net) -> None:
    shared = net.queue()
    raw = net.peer.raw()  # the owner: only the exclusive flag differs
    exclusive = raw.rpc(1, declare(net.unique("excl"), exclusive=True)).method.queue
    assert close_reply(raw, 1, [declare(exclusive)]) == channel_close(
        405, LOCKED.format(exclusive), 50, 10
    )
    assert net.closes(declare(shared, exclusive=True)) == channel_close(
        405, LOCKED.format(shared), 50, 10
    )


def test_exclusive_queue_is_deleted_when_its_connection_closes(net: Net) -> None:
    connection = net.peer.connect()
    queue = connection.channel().queue_declare("", exclusive=True).method.queue
    connection.close()
    assert not net.exists("queue", queue)


# ----- auto-delete


def test_auto_delete_queue_goes_with_its_last_consumer(net: Net) -> None:
    queue = net.queue(auto_delete=True)
    channel = net.peer.channel()
    assert counts(net, queue) == (0, 0)  # never consumed: kept
    first = channel.basic_consume(queue, Inbox())
    second = channel.basic_consume(queue, Inbox())
    channel.basic_cancel(first)
    assert counts(net, queue) == (0, 1)
    channel.basic_cancel(second)
    assert not net.exists("queue", queue)


def test_exclusive_auto_delete_queue_goes_with_its_last_consumer(net: Net) -> None:
    channel = net.peer.channel()
    queue = channel.queue_declare(net.unique("excl"), exclusive=True, auto_delete=True).method.queue
    channel.basic_cancel(channel.basic_consume(queue, Inbox()))
    closed = channel_close(404, f"NOT_FOUND - no queue '{queue}' in vhost '/'", 50, 10)
    assert net.closes(declare(queue, passive=True)) == closed


def test_auto_delete_queue_goes_when_its_consumers_channel_closes(net: Net) -> None:
    queue = net.queue(auto_delete=True)
    channel = net.peer.channel()
    channel.basic_consume(queue, Inbox())
    channel.close()
    assert not net.exists("queue", queue)


# ----- counts, purge, delete


def test_declare_ok_counts_ready_messages_and_consumers(net: Net) -> None:
    queue = net.queue()
    for body in (b"1", b"2", b"3"):
        net.publish("", queue, body)
    assert counts(net, queue) == (3, 0)
    connection = net.peer.connect()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    inbox = Inbox()
    channel.basic_consume(queue, inbox)
    assert inbox.wait(connection, 1)
    assert counts(net, queue) == (2, 1)  # the unacked delivery is not counted
    ok = net.peer.admin().queue_declare(queue).method  # an active redeclare counts too
    assert (ok.message_count, ok.consumer_count) == (2, 1)


def test_purge_returns_the_ready_count_and_keeps_unacked(net: Net) -> None:
    queue = net.queue()
    for body in (b"1", b"2", b"3", b"4"):
        net.publish("", queue, body)
    channel = net.peer.channel()
    method, _properties, _body = channel.basic_get(queue, auto_ack=False)
    assert method.message_count == 3
    assert channel.queue_purge(queue).method.message_count == 3
    assert channel.queue_purge(queue).method.message_count == 0
    channel.close()  # the unacked message comes back
    assert counts(net, queue) == (1, 0)


def test_purge_of_a_missing_queue(net: Net) -> None:
    name = net.unique("missing")
    assert net.closes(spec.Queue.Purge(queue=name)) == channel_close(
        404, f"NOT_FOUND - no queue '{name}' in vhost '/'", 50, 30
    )


def test_delete_returns_the_ready_count(net: Net) -> None:
    queue = net.queue()
    for body in (b"1", b"2", b"3"):
        net.publish("", queue, body)
    assert net.peer.admin().queue_delete(queue).method.message_count == 3
    assert not net.exists("queue", queue)


def test_delete_of_a_missing_queue_succeeds(net: Net) -> None:
    channel = net.peer.admin()
    for flags in ({}, {"if_empty": True}, {"if_unused": True}):
        assert channel.queue_delete(net.unique("missing"), **flags).method.message_count == 0


def test_delete_if_unused_and_if_empty(net: Net) -> None:
    queue = net.queue()
    net.publish("", queue, b"1")
    connection = net.peer.connect()
    consumer = connection.channel()
    consumer.basic_qos(prefetch_count=1)
    inbox = Inbox()
    consumer.basic_consume(queue, inbox)
    assert inbox.wait(connection, 1)
    net.publish("", queue, b"2")
    where = f"queue '{queue}' in vhost '/'"
    assert net.closes(spec.Queue.Delete(queue=queue, if_unused=True)) == channel_close(
        406, f"PRECONDITION_FAILED - {where} in use", 50, 40
    )
    assert net.closes(spec.Queue.Delete(queue=queue, if_empty=True)) == channel_close(
        406, f"PRECONDITION_FAILED - {where} not empty", 50, 40
    )
    assert net.peer.admin().queue_delete(queue).method.message_count == 1


# ----- the empty queue name: the channel's last declared queue


def test_empty_name_means_the_last_declared_queue(net: Net) -> None:
    queue = net.queue()
    channel = net.peer.channel()
    channel.confirm_delivery()
    channel.queue_declare(queue)
    channel.queue_bind("", "amq.direct", "last-key")
    channel.basic_publish("amq.direct", "last-key", b"via-binding")
    channel.basic_publish("", queue, b"direct")
    method, _properties, body = channel.basic_get("", auto_ack=True)
    assert (body, method.message_count) == (b"via-binding", 1)
    assert channel.queue_purge("").method.message_count == 1
    tag = channel.basic_consume("", Inbox())
    channel.basic_cancel(tag)
    channel.queue_unbind("", "amq.direct", "last-key")
    channel.basic_publish("amq.direct", "last-key", b"unbound")
    assert channel.queue_delete("").method.message_count == 0
    assert not net.exists("queue", queue)


def test_empty_name_after_a_server_named_declare(net: Net) -> None:
    channel = net.peer.channel()
    channel.confirm_delivery()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind("", "amq.fanout")
    channel.basic_publish("amq.fanout", "", b"fan")
    channel.queue_unbind("", "amq.fanout")
    assert channel.basic_get("", auto_ack=True)[2] == b"fan"
    assert channel.queue_declare(queue, passive=True).method.message_count == 0


@pytest.mark.parametrize(
    ("step", "class_id", "method_id"),
    [
        (spec.Queue.Bind(queue="", exchange="amq.direct", routing_key="k"), 50, 20),
        (spec.Queue.Unbind(queue="", exchange="amq.direct", routing_key="k"), 50, 50),
        (spec.Queue.Purge(queue=""), 50, 30),
        (spec.Queue.Delete(queue=""), 50, 40),
        (spec.Basic.Consume(queue=""), 60, 20),
        (spec.Basic.Get(queue=""), 60, 70),
    ],
)
def test_empty_name_without_a_declared_queue(
    net: Net, step: object, class_id: int, method_id: int
) -> None:
    assert net.closes(step) == channel_close(404, NO_PREVIOUS, class_id, method_id)


def test_last_declared_queue_is_per_channel(net: Net) -> None:
    queue = net.queue()
    raw = net.peer.raw(channels=(1, 2))
    assert raw.call(1, declare(queue, passive=True))["method"] == "Queue.DeclareOk"
    assert close_reply(raw, 2, [spec.Queue.Purge(queue="")]) == channel_close(
        404, NO_PREVIOUS, 50, 30
    )


def test_declares_binds_and_deletes_drop_cr_and_lf_from_names(net: Net) -> None:
    queue, exchange = net.unique("crlf-q"), net.unique("crlf-x")
    net.exchanges.append(exchange)

    def mangled(name: str) -> str:
        return name[:6] + "\r\n" + name[6:] + "\n"

    raw = net.peer.raw()
    assert raw.rpc(1, declare(mangled(queue), exclusive=True)).method.queue == queue
    raw.call(1, spec.Exchange.Declare(exchange=mangled(exchange), type="fanout"))
    raw.call(1, spec.Queue.Bind(queue=mangled(queue), exchange=mangled(exchange)))
    raw.publish(1, exchange, "", b"crlf")
    assert raw.rpc(1, spec.Queue.Delete(queue=mangled(queue))).method.message_count == 1
    assert net.exists("exchange", exchange)
    assert not net.exists("queue", queue)
