"""What every example shares: where the broker is, named connections, checks, the topology.

``AMQP_URL`` (default ``amqp://guest:guest@localhost:5672/%2F``) says where the broker is;
``DISPATCHD_ADMIN_URL`` (default ``http://localhost:15672``) where its admin API is, or
``none`` to skip printing the actor topology (e.g. when the broker is RabbitMQ). The admin
API is asked with the user and password of ``AMQP_URL``.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from urllib.parse import unquote, urlsplit

import pika
from pika.adapters.blocking_connection import BlockingChannel
from topology import DEFAULT_ADMIN_URL, topology_text

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
ADMIN_URL = os.environ.get("DISPATCHD_ADMIN_URL", DEFAULT_ADMIN_URL)


class ExampleFailed(Exception):
    """An example's own check did not hold."""


def check(condition: bool, what: str) -> None:
    """Print ``what`` as checked, or fail the example with it."""
    if not condition:
        raise ExampleFailed(what)
    print(f"  ok: {what}")


def connect(name: str) -> pika.BlockingConnection:
    """A pika connection to ``AMQP_URL`` that the broker lists under ``name``."""
    params = pika.URLParameters(AMQP_URL)
    params.client_properties = {"connection_name": name}
    return pika.BlockingConnection(params)


class Inbox:
    """Consumes a queue (tag ``<queue>.reader``) and keeps what arrives, acking each message."""

    def __init__(self, channel: BlockingChannel, queue: str) -> None:
        self.bodies: list[str] = []
        self.properties: list[pika.BasicProperties] = []
        channel.basic_consume(queue, self.on_message, consumer_tag=f"{queue}.reader")

    def on_message(
        self,
        channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        """Keep the message and ack it."""
        self.bodies.append(body.decode())
        self.properties.append(properties)
        channel.basic_ack(method.delivery_tag)


def subscribe(
    channel: BlockingChannel,
    exchange: str,
    queue: str,
    keys: Iterable[str] = ("",),
    arguments: dict[str, object] | None = None,
) -> Inbox:
    """Declare an exclusive ``queue``, bind it to ``exchange`` once per key, and consume it."""
    channel.queue_declare(queue, exclusive=True)
    for key in keys:
        channel.queue_bind(queue, exchange, routing_key=key, arguments=arguments)
    return Inbox(channel, queue)


def pump(
    *connections: pika.BlockingConnection, until: Callable[[], bool], timeout: float = 5.0
) -> None:
    """Run the connections' callbacks (one thread, in turn) until ``until()`` holds."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise ExampleFailed(f"timed out after {timeout}s waiting for the broker")
        for connection in connections:
            connection.process_data_events(time_limit=0.01)


def show_topology(prefix: str) -> None:
    """Print the actors the example created (names starting with ``prefix``) as a tree."""
    if ADMIN_URL.lower() == "none":
        print("\n(actor topology skipped: DISPATCHD_ADMIN_URL=none)")
        return
    parts = urlsplit(AMQP_URL)
    user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
    print(f"\nActor topology inside the broker ({ADMIN_URL}/api/actors):")
    print(topology_text(ADMIN_URL, prefix, user, password))


def run(example: Callable[[], None]) -> None:
    """Run the example and exit: 0 if every check held, 1 if not (with the reason)."""
    try:
        example()
    except ExampleFailed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    print("\nOK")
