"""connection.update-secret, as RabbitMQ 3.10 answers it for its internal user database.

RabbitMQ's ``rabbit_access_control:update_state`` only asks backends whose state can expire,
and the internal database's cannot: any new secret (the password, a changed password, a wrong
one, an empty one) gets update-secret-ok, and the connection, its channels and consumers, its
user and permissions stay as they were. Before the connection is open it is an unexpected
method like any other; on a channel other than 0 it is an unimplemented one.

Run against RabbitMQ with ``DISPATCHD_PEER_PORT=5692`` (see tests/basic_support.py).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field

import aiormq
import pika
import pytest
from pika import spec as pika_spec
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

from tests.access_support import Operator, refusal
from tests.access_support import operator as operator
from tests.amqp_raw import EOF, RawClient, client_port, close_frame, describe, wait_until
from tests.basic_support import PEER_PORT_ENV, WAIT, Peer, pump
from tests.basic_support import peer as peer
from tests.conformance.rawclient import plain_response
from tests.conftest import BrokerProcess

LOGIN_REFUSED = (
    403,
    "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
    "For details see the broker logfile.",
)


@dataclass
class Consumer:
    """A channel consuming (auto-ack) from an exclusive queue of its own."""

    connection: pika.BlockingConnection
    channel: BlockingChannel
    queue: str
    seen: list[bytes] = field(default_factory=list)

    @classmethod
    def on(cls, connection: pika.BlockingConnection) -> Consumer:
        """Start one on ``connection``."""
        channel = connection.channel()
        consumer = cls(connection, channel, channel.queue_declare("", exclusive=True).method.queue)
        channel.basic_consume(
            consumer.queue, lambda _ch, _method, _props, body: consumer.seen.append(body), True
        )
        return consumer

    def works(self) -> bool:
        """Whether the channel is open and a message published now reaches the consumer."""
        body = f"after-{time.monotonic_ns()}".encode()
        self.channel.basic_publish("", self.queue, body)
        return self.channel.is_open and bool(pump(self.connection, lambda: body in self.seen))


@pytest.mark.parametrize("secret", ["guest", "wrong", ""], ids=["same", "wrong", "empty"])
def test_pika_update_secret_is_accepted(peer: Peer, secret: str) -> None:
    """The same password, a wrong one, an empty one: update-secret-ok, nothing closes."""
    connection = peer.connect()
    consumer = Consumer.on(connection)
    connection.update_secret(secret, f"rotate-{secret or 'empty'}")
    assert connection.is_open and consumer.works()
    assert connection.channel().is_open  # new channels open as before


def test_new_password_after_change_password(operator: Operator) -> None:
    vhost = operator.vhost()
    user = operator.user("first")
    operator.run("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    connection = operator.connect(user, "first", vhost)
    consumer = Consumer.on(connection)
    operator.run("change_password", user, "second")
    connection.update_secret("second", "rotated")
    assert connection.is_open and consumer.works()
    connection.update_secret("first", "the old one")  # not checked either
    assert connection.is_open and consumer.works()
    # Logins check the stored password as ever; update-secret stored nothing.
    assert operator.connect(user, "second", vhost).is_open
    assert refusal(lambda: operator.connect(user, "first", vhost)) == LOGIN_REFUSED


def test_wrong_secret_changes_nothing_for_later_logins(operator: Operator) -> None:
    user = operator.user("right")
    operator.run("set_permissions", "-p", "/", user, ".*", ".*", ".*")
    connection = operator.connect(user, "right")
    connection.update_secret("wrong", "typo")
    assert connection.is_open
    assert operator.connect(user, "right").is_open
    assert refusal(lambda: operator.connect(user, "wrong")) == LOGIN_REFUSED


def test_permissions_are_not_rechecked(operator: Operator) -> None:
    """Even without any permission left in its vhost, the connection's update-secret is
    accepted and the connection stays open; operations are refused as before."""
    vhost = operator.vhost()
    user = operator.user()
    operator.run("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    connection = operator.connect(user, "secret", vhost)
    operator.run("clear_permissions", "-p", vhost, user)
    connection.update_secret("secret", "after revoke")
    assert connection.is_open
    channel = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as caught:
        channel.queue_declare("us-revoked")
    assert (caught.value.reply_code, caught.value.reply_text) == (
        403,
        f"ACCESS_REFUSED - access to queue 'us-revoked' in vhost '{vhost}' "
        f"refused for user '{user}'",
    )
    assert connection.is_open


async def aiormq_update_secrets(port: int) -> list[str]:
    """update-secret with the password, a wrong one, then a round trip: what came back."""
    connection = await aiormq.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
    try:
        got = [
            type(await connection.update_secret(secret, reason=reason, timeout=WAIT)).__name__
            for secret, reason in (("guest", "same"), ("wrong", "wrong"))
        ]
        channel = await connection.channel()
        declared = await channel.queue_declare("", exclusive=True)
        await channel.basic_publish(b"after", routing_key=declared.queue)
        message = await channel.basic_get(declared.queue, no_ack=True, timeout=WAIT)
        got.append(message.body.decode())
        got.append(str(connection.is_opened))
    finally:
        await connection.close()
    return got


def test_aiormq_update_secret(peer: Peer) -> None:
    assert asyncio.run(aiormq_update_secrets(peer.port)) == [
        "UpdateSecretOk",
        "UpdateSecretOk",
        "after",
        "True",
    ]


# ----- raw frames: where update-secret is not allowed


def _handshake_to(client: RawClient, state: str) -> None:
    """Take a raw client through the handshake up to ``state`` (starting or opening)."""
    client.send(b"AMQP\x00\x00\x09\x01")
    client.recv_method()
    if state == "starting":
        return
    start_ok = pika_spec.Connection.StartOk(
        client_properties={}, mechanism="PLAIN", response=plain_response(), locale="en_US"
    )
    client.send_method(0, start_ok)
    tune = client.recv_method().method
    client.send_method(0, pika_spec.Connection.TuneOk(tune.channel_max, tune.frame_max, 0))


_UPDATE = pika_spec.Connection.UpdateSecret(new_secret="guest", reason="early")


def test_before_tune_ok_the_socket_closes_silently(peer: Peer) -> None:
    """As every handshake error before tune-ok: no word, the socket closes after 3 s."""
    with RawClient(peer.port) as client:
        _handshake_to(client, "starting")
        started = time.monotonic()
        client.send_method(0, _UPDATE)
        assert describe(client.recv_method(6.0)) == EOF
        assert time.monotonic() - started > 2.5


def test_before_connection_open_is_504(peer: Peer) -> None:
    with RawClient(peer.port) as client:
        _handshake_to(client, "opening")
        client.send_method(0, _UPDATE)
        assert close_frame(client.recv_method()) == (
            504,
            "CHANNEL_ERROR - unexpected method in connection state opening",
            10,
            70,
        )
        assert client.after_connection_close() == EOF


def test_on_a_channel_it_is_503(peer: Peer) -> None:
    client = peer.raw((1,))
    client.send_method(1, _UPDATE)
    assert close_frame(client.recv_method()) == (
        503,
        "COMMAND_INVALID - unimplemented method",
        10,
        70,
    )


def test_unsolicited_update_secret_ok_is_504(peer: Peer) -> None:
    client = peer.raw((1,))
    client.send_method(0, pika_spec.Connection.UpdateSecretOk())
    assert close_frame(client.recv_method()) == (
        504,
        "CHANNEL_ERROR - unexpected method in connection state running",
        10,
        71,
    )


def test_any_bytes_and_a_full_reason_are_taken(peer: Peer) -> None:
    """A longstr secret is bytes (not UTF-8 here); the reason fills its shortstr."""
    client = peer.raw((1,))
    client.send_method(0, pika_spec.Connection.UpdateSecret(b"\xff\x00\xfe", "r" * 255))
    assert describe(client.recv_method()) == {"channel": 0, "method": "Connection.UpdateSecretOk"}
    assert client.open_channel(2) == "Channel.OpenOk"


# ----- dispatchd's own: the log line and the broker's hook


def test_the_update_is_logged(broker: BrokerProcess) -> None:
    """RabbitMQ's info line: ``connection <pid> (<name>): user 'guest' updated secret,
    reason: <reason>``; ours names the connection the same way, and stays one line."""
    if os.environ.get(PEER_PORT_ENV):
        pytest.skip("reads dispatchd's log")
    with RawClient(broker.port) as client:
        assert client.handshake()["stage"] == "opened"
        client.send_method(0, pika_spec.Connection.UpdateSecret(b"guest", "token\nrefresh"))
        assert describe(client.recv_method())["method"] == "Connection.UpdateSecretOk"
        name = f"127.0.0.1:{client_port(client)} -> 127.0.0.1:{broker.port}"
        line = f"connection {name}: user 'guest' updated secret, reason: token refresh"
        assert wait_until(lambda: line in broker.log, WAIT)
