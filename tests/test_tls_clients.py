"""Real clients over AMQPS: pika, aio-pika, py-amqp, kombu and rabbitmq-c's amqp-tools each
publish a message and consume it back, verifying the broker's certificate against the session
CA (as ``localhost``, or ``::1`` by its IP address).

Three brokers per module: ``tls_broker`` (verify none), one with ``--tls-verify peer
--tls-fail-if-no-peer-cert`` that each client passes with ``certs.client`` (still PLAIN login
as guest: mutual TLS, not EXTERNAL), and one on ``--bind 127.0.0.1,::1`` that each client
reaches over IPv6 loopback, plain and TLS. EXTERNAL login, refusals and handshake failures are
tests/test_tls.py's.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import amqp
import kombu
import pika
import pytest

from tests.conftest import BrokerProcess, free_port, tls_args
from tests.support import WAIT, ipv6_loopback
from tests.support.certs import Certs, Pair


@dataclass(frozen=True)
class Endpoint:
    """Where and how a client connects: TLS when ``ca`` is set (verifying the server as
    ``host``), with ``cert`` as its client certificate when given."""

    host: str
    port: int
    ca: Path | None = None
    cert: Pair | None = None

    @property
    def netloc(self) -> str:
        """``host:port`` with an IPv6 address in brackets."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def context(self) -> ssl.SSLContext:
        """A client context trusting ``ca`` (and presenting ``cert``)."""
        context = ssl.create_default_context(cafile=self.ca)
        if self.cert is not None:
            context.load_cert_chain(self.cert.cert, self.cert.key)
        return context

    def ssl_options(self) -> dict[str, object]:
        """py-amqp's (and so kombu's) ``ssl`` dict: py-amqp 5.4 ignores an SSLContext there."""
        options: dict[str, object] = {
            "ca_certs": str(self.ca),
            "cert_reqs": ssl.CERT_REQUIRED,
            "server_hostname": self.host,  # also turns hostname checking on
        }
        if self.cert is not None:
            options.update(certfile=str(self.cert.cert), keyfile=str(self.cert.key))
        return options


def queue_name() -> str:
    """A fresh queue name."""
    return f"dtest-tls-{uuid.uuid4().hex[:12]}"


def pika_round_trip(at: Endpoint, body: bytes) -> bytes:
    """pika BlockingConnection: publish to a fresh exclusive queue, consume it back."""
    tls = pika.SSLOptions(at.context(), at.host) if at.ca else None
    params = pika.ConnectionParameters(
        at.host, at.port, ssl_options=tls, connection_attempts=1, socket_timeout=WAIT
    )
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        queue = channel.queue_declare(queue_name(), exclusive=True).method.queue
        channel.basic_publish("", queue, body)
        for method, _properties, got in channel.consume(queue, inactivity_timeout=WAIT):
            assert method is not None, "nothing delivered"
            channel.basic_ack(method.delivery_tag)
            return got
    raise AssertionError("unreachable")


def aio_pika_round_trip(at: Endpoint, body: bytes) -> bytes:
    """aio-pika (aiormq): an ``amqps://`` URL with ``ssl_context``; confirmed publish."""

    async def run() -> bytes:
        url = f"{'amqps' if at.ca else 'amqp'}://guest:guest@{at.netloc}/"
        context = at.context() if at.ca else None
        connection = await aio_pika.connect(url, ssl_context=context, timeout=WAIT)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            queue = await channel.declare_queue(queue_name(), exclusive=True)
            await channel.default_exchange.publish(aio_pika.Message(body), queue.name)
            async with asyncio.timeout(WAIT), queue.iterator() as messages:
                async for message in messages:
                    await message.ack()
                    return message.body
        raise AssertionError("unreachable")

    return asyncio.run(run())


def py_amqp_round_trip(at: Endpoint, body: bytes) -> bytes:
    """py-amqp with its ``ssl`` options dict; publish, then basic.consume."""
    ssl_options = at.ssl_options() if at.ca else False
    connection = amqp.Connection(at.netloc, ssl=ssl_options, connect_timeout=WAIT)
    connection.connect()
    try:
        channel = connection.channel()
        queue, _, _ = channel.queue_declare(queue_name(), exclusive=True)
        channel.basic_publish(amqp.Message(body), exchange="", routing_key=queue)
        received: list[amqp.Message] = []
        channel.basic_consume(queue, callback=received.append, no_ack=True)
        while not received:
            connection.drain_events(timeout=WAIT)
        return received[0].body
    finally:
        connection.close()


def kombu_round_trip(at: Endpoint, body: bytes) -> bytes:
    """kombu (py-amqp transport): a SimpleQueue put and get."""
    ssl_options = at.ssl_options() if at.ca else False
    url = f"amqp://guest:guest@{at.netloc}//"
    with kombu.Connection(url, ssl=ssl_options, connect_timeout=WAIT) as connection:
        name = queue_name()
        queue = connection.SimpleQueue(name)
        try:
            queue.put(body)
            message = queue.get(timeout=WAIT)
            message.ack()
            return message.body
        finally:
            queue.close()  # cancels its consumer first: a deleted queue would cancel it
            connection.default_channel.queue_delete(name)


def amqp_tools_round_trip(at: Endpoint, body: bytes) -> bytes:
    """rabbitmq-c's amqp-declare-queue, amqp-publish, amqp-get, amqp-delete-queue."""
    if shutil.which("amqp-get") is None:
        pytest.skip("amqp-tools is not installed (apt-get install amqp-tools)")
    flags = ["-u", f"{'amqps' if at.ca else 'amqp'}://guest:guest@{at.netloc}"]
    if at.ca:
        flags += ["--ssl", "--cacert", str(at.ca)]
    if at.cert:
        flags += ["--cert", str(at.cert.cert), "--key", str(at.cert.key)]

    def tool(*args: str) -> bytes:
        done = subprocess.run([*args, *flags], capture_output=True, timeout=WAIT)
        assert done.returncode == 0, f"{args[0]} exited {done.returncode}: {done.stderr!r}"
        return done.stdout

    queue = queue_name()
    tool("amqp-declare-queue", "-q", queue)
    try:
        tool("amqp-publish", "-r", queue, "-b", body.decode())
        return tool("amqp-get", "-q", queue)
    finally:
        tool("amqp-delete-queue", "-q", queue)


CLIENTS: dict[str, Callable[[Endpoint, bytes], bytes]] = {
    "pika": pika_round_trip,
    "aio-pika": aio_pika_round_trip,
    "py-amqp": py_amqp_round_trip,
    "kombu": kombu_round_trip,
    "amqp-tools": amqp_tools_round_trip,
}


def check(client: str, at: Endpoint) -> None:
    """``client`` gets back the body it published."""
    body = f"{client} via {at.netloc} {uuid.uuid4().hex[:8]}".encode()
    assert CLIENTS[client](at, body) == body


@pytest.fixture(scope="module")
def mtls_broker(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A broker whose AMQPS listener requires a client certificate signed by ``certs.ca``."""
    base = tmp_path_factory.mktemp("mtls-broker")
    tls_port = free_port()
    more = tls_args(certs, tls_port, "--tls-verify", "peer", "--tls-fail-if-no-peer-cert")
    proc = BrokerProcess(free_port(), base / "data", base / "broker.log", more)
    proc.tls_port = tls_port
    yield proc.start()
    proc.stop()


@pytest.fixture(scope="module")
def dual_broker(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A broker listening, plain and AMQPS, on both 127.0.0.1 and ::1."""
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback on this host")
    base = tmp_path_factory.mktemp("dual-broker")
    tls_port = free_port()
    more = [*tls_args(certs, tls_port), "--bind", "127.0.0.1,::1"]  # the last --bind wins
    proc = BrokerProcess(free_port(), base / "data", base / "broker.log", more)
    proc.tls_port = tls_port
    yield proc.start()
    proc.stop()


@pytest.mark.parametrize("client", CLIENTS)
def test_round_trip_over_tls(client: str, tls_broker: BrokerProcess, certs: Certs) -> None:
    check(client, Endpoint("localhost", tls_broker.tls_port, certs.ca))


@pytest.mark.parametrize("client", CLIENTS)
def test_mutual_tls_with_client_certificate(
    client: str, mtls_broker: BrokerProcess, certs: Certs
) -> None:
    check(client, Endpoint("localhost", mtls_broker.tls_port, certs.ca, certs.client))


@pytest.mark.parametrize("client", CLIENTS)
def test_ipv6_loopback_plain(client: str, dual_broker: BrokerProcess) -> None:
    check(client, Endpoint("::1", dual_broker.port))


# amqp-tools is left out: rabbitmq-c 0.11 matches the host only against DNS names, so it
# refuses a certificate for an IP literal (127.0.0.1 too) although the IP SAN matches, and
# no name resolves to ::1 alone here.
@pytest.mark.parametrize("client", [c for c in CLIENTS if c != "amqp-tools"])
def test_ipv6_loopback_tls(client: str, dual_broker: BrokerProcess, certs: Certs) -> None:
    check(client, Endpoint("::1", dual_broker.tls_port, certs.ca))


def test_dual_broker_listens_on_both_loopbacks(dual_broker: BrokerProcess) -> None:
    for port in (dual_broker.port, dual_broker.tls_port):
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            with socket.socket(family) as sock:
                sock.settimeout(WAIT)
                sock.connect((host, port))
