"""What many tests share: waiting for a condition, running a client's I/O, emptying a queue.

Tests never sleep for a fixed time to let the broker catch up: they wait for the condition
itself, with a deadline, through these helpers.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

__all__ = ["QUIET", "WAIT", "get_all", "ipv6_loopback", "pump", "quiet", "wait_until"]

WAIT = 5.0
"""Seconds a test waits for the broker before it gives up."""

QUIET = 0.25
"""Seconds of silence that show nothing more is coming."""


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` passes
    (then its last, falsy, result is returned)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def pump(
    connection: pika.BlockingConnection, done: Callable[[], Any], timeout: float = WAIT
) -> Any:
    """Run the connection's I/O until ``done()`` is truthy (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = done()
        remaining = deadline - time.monotonic()
        if result or remaining <= 0:
            return result
        connection.process_data_events(time_limit=min(0.02, remaining))


def quiet(connection: pika.BlockingConnection, seconds: float = QUIET) -> None:
    """Let ``seconds`` of I/O pass (to show that nothing more arrives)."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        connection.process_data_events(time_limit=remaining)


def get_all(channel: BlockingChannel, queue: str, auto_ack: bool = True) -> list[Any]:
    """basic.get until the queue is empty: ``(method, properties, body)`` in queue order."""
    out = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=auto_ack)
        if method is None:
            return out
        out.append((method, properties, body))


def ipv6_loopback() -> bool:
    """Whether this host can listen on ``::1`` (IPv6 may be turned off in a container)."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True
