"""RabbitMQ's access-control table, row by row, allowed and refused, over real sockets.

The user under test may configure ``^a-``, write ``^w-`` and read ``^r-`` names. Every
expected reply code and text was recorded from RabbitMQ 3.10.8 (``DISPATCHD_PEER_PORT=5692``
replays the file against it). Each refusal closes only the channel: the next row runs on a
new channel of the same connection.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from tests.access_support import Operator, refusal
from tests.access_support import operator as operator
from tests.basic_support import PEER_PORT_ENV

Action = Callable[[BlockingChannel], Any]

REFUSED = "ACCESS_REFUSED - access to {kind} '{name}' in vhost '{vhost}' refused for user '{user}'"


def refused(kind: str, name: str) -> tuple[int, str]:
    return 403, REFUSED.replace("{kind}", kind).replace("{name}", name)


def missing(kind: str, name: str) -> tuple[int, str]:
    return 404, f"NOT_FOUND - no {kind} '{name}' in vhost '{{vhost}}'"


def publish(exchange: str, key: str = "k") -> Action:
    def act(ch: BlockingChannel) -> None:
        ch.basic_publish(exchange, key, b"x")
        ch.basic_qos(prefetch_count=0)  # a round trip: the publish's error comes first

    return act


ROWS: list[tuple[str, Action, tuple[int, str] | None]] = [
    ("declare with configure", lambda ch: ch.queue_declare("a-new", auto_delete=True), None),
    ("declare without configure", lambda ch: ch.queue_declare("r-new"), refused("queue", "r-new")),
    ("passive declare needs nothing", lambda ch: ch.queue_declare("other-q", passive=True), None),
    (
        "passive declare of a missing queue",
        lambda ch: ch.queue_declare("nosuch-q", passive=True),
        missing("queue", "nosuch-q"),
    ),
    (
        "reserved name before configure",
        lambda ch: ch.queue_declare("amq.foo"),
        (403, "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'"),
    ),
    ("delete without configure", lambda ch: ch.queue_delete("r-q"), refused("queue", "r-q")),
    (
        "delete of a missing queue without configure",
        lambda ch: ch.queue_delete("nosuch-q"),
        refused("queue", "nosuch-q"),
    ),
    ("delete of a missing queue with configure", lambda ch: ch.queue_delete("a-nosuch"), None),
    ("purge with read", lambda ch: ch.queue_purge("r-q"), None),
    ("purge without read", lambda ch: ch.queue_purge("a-q"), refused("queue", "a-q")),
    (
        "purge of a missing queue",
        lambda ch: ch.queue_purge("r-nosuch"),
        missing("queue", "r-nosuch"),
    ),
    ("bind: write on queue, read on exchange", lambda ch: ch.queue_bind("w-q", "r-ex"), None),
    (
        "bind without write on the queue",
        lambda ch: ch.queue_bind("a-q", "r-ex"),
        refused("queue", "a-q"),
    ),
    (
        "bind without read on the exchange",
        lambda ch: ch.queue_bind("w-q", "a-ex"),
        refused("exchange", "a-ex"),
    ),
    (
        "bind: the queue is checked first",
        lambda ch: ch.queue_bind("a-q", "a-ex"),
        refused("queue", "a-q"),
    ),
    (
        "bind to the default exchange",
        lambda ch: ch.queue_bind("w-q", ""),
        (403, "ACCESS_REFUSED - operation not permitted on the default exchange"),
    ),
    (
        "bind: a missing exchange before a missing queue",
        lambda ch: ch.queue_bind("w-nosuch", "r-nosuch"),
        missing("exchange", "r-nosuch"),
    ),
    (
        "unbind without write on the queue",
        lambda ch: ch.queue_unbind("a-q", "r-ex"),
        refused("queue", "a-q"),
    ),
    ("unbind of nothing", lambda ch: ch.queue_unbind("w-q", "r-ex", "nothing"), None),
    (
        "exchange declare with configure",
        lambda ch: ch.exchange_declare("a-x2", auto_delete=True),
        None,
    ),
    (
        "exchange declare without configure",
        lambda ch: ch.exchange_declare("r-x2"),
        refused("exchange", "r-x2"),
    ),
    (
        "exchange: configure before the reserved name",
        lambda ch: ch.exchange_declare("amq.foo"),
        refused("exchange", "amq.foo"),
    ),
    (
        "passive exchange declare needs nothing",
        lambda ch: ch.exchange_declare("other-ex", passive=True),
        None,
    ),
    (
        "exchange delete without configure",
        lambda ch: ch.exchange_delete("r-ex"),
        refused("exchange", "r-ex"),
    ),
    (
        "exchange delete of a missing one without configure",
        lambda ch: ch.exchange_delete("nosuch-ex"),
        refused("exchange", "nosuch-ex"),
    ),
    ("exchange bind: write dest, read source", lambda ch: ch.exchange_bind("w-dst", "r-src"), None),
    (
        "exchange bind without write on the destination",
        lambda ch: ch.exchange_bind("a-src", "r-src"),
        refused("exchange", "a-src"),
    ),
    (
        "exchange bind without read on the source",
        lambda ch: ch.exchange_bind("w-dst", "a-src"),
        refused("exchange", "a-src"),
    ),
    (
        "exchange bind to the default exchange is checked as amq.default",
        lambda ch: ch.exchange_bind("", "r-src"),
        refused("exchange", "amq.default"),
    ),
    (
        "exchange unbind without read on the source",
        lambda ch: ch.exchange_unbind("w-dst", "a-src"),
        refused("exchange", "a-src"),
    ),
    ("publish with write", publish("w-ex"), None),
    ("publish without write", publish("r-ex"), refused("exchange", "r-ex")),
    ("publish to the default exchange", publish(""), refused("exchange", "amq.default")),
    (
        "publish to a missing exchange with write",
        publish("w-nosuch"),
        missing("exchange", "w-nosuch"),
    ),
    (
        "publish to a missing exchange without write",
        publish("nosuch-ex"),
        refused("exchange", "nosuch-ex"),
    ),
    ("consume with read", lambda ch: ch.basic_consume("r-q", lambda *a: None), None),
    (
        "consume without read",
        lambda ch: ch.basic_consume("a-q", lambda *a: None),
        refused("queue", "a-q"),
    ),
    ("get with read", lambda ch: ch.basic_get("r-q"), None),
    ("get without read", lambda ch: ch.basic_get("a-q"), refused("queue", "a-q")),
    (
        "get from a missing queue without read",
        lambda ch: ch.basic_get("nosuch-q"),
        refused("queue", "nosuch-q"),
    ),
    (
        "a dead-letter exchange needs read on the queue",
        lambda ch: ch.queue_declare("a-dlx1", arguments={"x-dead-letter-exchange": "w-ex"}),
        refused("queue", "a-dlx1"),
    ),
    (
        "an alternate exchange needs read on the exchange",
        lambda ch: ch.exchange_declare("a-ae1", arguments={"alternate-exchange": "w-ex"}),
        refused("exchange", "a-ae1"),
    ),
]


@pytest.fixture
def alice(operator: Operator) -> tuple[pika.BlockingConnection, str, str]:
    """A user who may configure ^a-, write ^w- and read ^r- in a fresh vhost, connected
    to it; the vhost holds the names the rows use, declared by guest."""
    vhost = operator.vhost()
    user = operator.user()
    operator.run("set_permissions", "-p", vhost, user, "^a-.*", "^w-.*", "^r-.*")
    setup = operator.connect(vhost=vhost).channel()
    for name in ("a-ex", "w-ex", "r-ex", "other-ex", "a-src", "w-dst", "r-src"):
        setup.exchange_declare(name)
    for name in ("a-q", "w-q", "r-q", "other-q"):
        setup.queue_declare(name)
    return operator.connect(user, "secret", vhost), user, vhost


@pytest.mark.parametrize(("what", "action", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_access_control_table(alice, what, action, expected) -> None:
    connection, user, vhost = alice
    channel = connection.channel()
    try:
        action(channel)
        outcome = None
    except ChannelClosedByBroker as exc:
        outcome = (exc.reply_code, exc.reply_text)
    if expected is not None:
        expected = (expected[0], expected[1].format(vhost=vhost, user=user))
    assert outcome == expected, what
    assert connection.is_open  # only the channel closed
    connection.channel().close()


def test_server_named_queue_is_named_before_the_check(alice) -> None:
    connection, user, vhost = alice
    with pytest.raises(ChannelClosedByBroker) as caught:
        connection.channel().queue_declare("", exclusive=True)
    assert caught.value.reply_code == 403
    text = caught.value.reply_text
    assert text.startswith("ACCESS_REFUSED - access to queue 'amq.gen-")
    assert text.endswith(f"' in vhost '{vhost}' refused for user '{user}'")


def test_connection_refusals(operator: Operator) -> None:
    user = operator.user()
    vhost = operator.vhost()
    assert refusal(lambda: operator.connect(user, "secret", vhost)) == (
        530,
        f"NOT_ALLOWED - access to vhost '{vhost}' refused for user '{user}'",
    )
    assert refusal(lambda: operator.connect(user, "secret", "nosuch-vhost")) == (
        530,
        "NOT_ALLOWED - vhost nosuch-vhost not found",
    )
    login = (
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
        "For details see the broker logfile."
    )
    for password in ("wrong", ""):
        assert refusal(lambda pw=password: operator.connect(user, pw, "/")) == (403, login)
    operator.run("clear_password", user)
    assert refusal(lambda: operator.connect(user, "secret", "/")) == (403, login)


def test_revoked_permission_applies_at_the_next_operation(operator: Operator) -> None:
    """A deliberate difference (README): RabbitMQ 3.10 caches a channel's recent checks, so
    there a revoked permission can go on working for a while; here it stops at once."""
    if os.environ.get(PEER_PORT_ENV):
        pytest.skip("RabbitMQ caches a channel's recent permission checks")
    vhost, user = operator.vhost(), operator.user()
    operator.run("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    channel = operator.connect(user, "secret", vhost).channel()
    channel.queue_declare("r-pc1")
    channel.basic_publish("", "r-pc1", b"before")
    operator.run("clear_permissions", "-p", vhost, user)
    with pytest.raises(ChannelClosedByBroker) as caught:
        channel.queue_declare("r-pc1")
    assert caught.value.reply_text == (
        f"ACCESS_REFUSED - access to queue 'r-pc1' in vhost '{vhost}' refused for user '{user}'"
    )
    operator.run("set_permissions", "-p", vhost, user, ".*", "^$", ".*")
    channel = operator.connections[-1].channel()
    with pytest.raises(ChannelClosedByBroker) as caught:
        channel.basic_publish("", "r-pc1", b"after")
        channel.basic_qos(prefetch_count=0)
    assert caught.value.reply_text == (
        f"ACCESS_REFUSED - access to exchange 'amq.default' in vhost '{vhost}' "
        f"refused for user '{user}'"
    )


def test_deleting_a_user_or_vhost_closes_its_connections(operator: Operator) -> None:
    vhost, user = operator.vhost(), operator.user()
    operator.run("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    mine = operator.connect(user, "secret", vhost)
    guests = operator.connect(vhost=vhost)
    operator.run("delete_user", user)
    operator.users.remove(user)
    with pytest.raises(ConnectionClosedByBroker) as caught:
        mine.process_data_events(time_limit=5)
        mine.channel()
    assert (caught.value.reply_code, caught.value.reply_text) == (
        320,
        f"CONNECTION_FORCED - user '{user}' is deleted",
    )
    assert guests.is_open
    operator.run("delete_vhost", vhost)
    operator.vhosts.remove(vhost)
    with pytest.raises(ConnectionClosedByBroker) as caught:
        guests.process_data_events(time_limit=5)
        guests.channel()
    # RabbitMQ says 'is down' when the vhost's processes stop before the connection is told
    assert caught.value.reply_code == 320
    assert caught.value.reply_text in (
        f"CONNECTION_FORCED - vhost '{vhost}' is deleted",
        f"CONNECTION_FORCED - vhost '{vhost}' is down",
    )


TOPIC_ROWS = [
    ("publish", "pub.{user}.x", None),
    ("publish", "pub.bob.x", "pub.bob.x"),
    ("publish", "", ""),
    ("publish", "sub.x", "sub.x"),
    ("bind", "sub.#", None),
    ("bind", "pub.{user}.x", "pub.{user}.x"),
]


@pytest.mark.parametrize(("op", "key", "refused_key"), TOPIC_ROWS)
def test_topic_permissions(operator: Operator, op, key, refused_key) -> None:
    vhost, user = operator.vhost(), operator.user()
    operator.run("set_permissions", "-p", vhost, user, "^w-.*", ".*", ".*")
    operator.run(
        "set_topic_permissions", "-p", vhost, user, "amq.topic", "^pub\\.{username}", "^sub\\..*"
    )
    connection = operator.connect(user, "secret", vhost)
    channel = connection.channel()
    channel.queue_declare("w-q")
    key = key.replace("{user}", user)
    try:
        if op == "publish":
            channel.basic_publish("amq.topic", key, b"x")
            channel.basic_qos(prefetch_count=0)
        else:
            channel.queue_bind("w-q", "amq.topic", key)
        outcome = None
    except ChannelClosedByBroker as exc:
        outcome = (exc.reply_code, exc.reply_text)
    if refused_key is None:
        assert outcome is None
    else:
        refused_key = refused_key.replace("{user}", user)
        assert outcome == (
            403,
            f"ACCESS_REFUSED - access to topic '{refused_key}' in exchange 'amq.topic' "
            f"in vhost '{vhost}' refused for user '{user}'",
        )
    # a topic exchange without a topic permission for the user is unrestricted
    channel = connection.channel()
    operator.connect(vhost=vhost).channel().exchange_declare("w-topic", "topic")
    channel.basic_publish("w-topic", "anything", b"x")
    channel.queue_bind("w-q", "w-topic", "anything")


def test_vhost_and_user_limits(operator: Operator) -> None:
    vhost, user = operator.vhost(), operator.user()
    operator.run("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    operator.run("set_vhost_limits", "-p", vhost, '{"max-connections": 1, "max-queues": 1}')
    first = operator.connect(vhost=vhost)
    assert refusal(lambda: operator.connect(user, "secret", vhost)) == (
        530,
        f"NOT_ALLOWED - access to vhost '{vhost}' refused for user '{user}': "
        "connection limit (1) is reached",
    )
    channel = first.channel()
    channel.queue_declare("q1", auto_delete=True)
    channel.queue_declare("q1", auto_delete=True)  # an existing queue is no new queue
    with pytest.raises(ChannelClosedByBroker) as caught:
        channel.queue_declare("q2")
    assert (caught.value.reply_code, caught.value.reply_text) == (
        406,
        f"PRECONDITION_FAILED - cannot declare queue 'q2': queue limit in vhost '{vhost}' "
        "(1) is reached",
    )
    operator.run("clear_vhost_limits", "-p", vhost)
    operator.run("set_user_limits", user, '{"max-connections": 1, "max-channels": 1}')
    mine = operator.connect(user, "secret", vhost)
    assert refusal(lambda: operator.connect(user, "secret", vhost)) == (
        530,
        f"NOT_ALLOWED - connection refused for user '{user}': user connection limit (1) is reached",
    )
    mine.channel()
    with pytest.raises(ConnectionClosedByBroker) as caught:
        mine.channel()
    assert (caught.value.reply_code, caught.value.reply_text) == (
        530,
        f"NOT_ALLOWED - number of channels opened for user '{user}' has reached the "
        "maximum allowed user limit of (1)",
    )
