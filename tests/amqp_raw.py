"""Helpers for the wire-level tests: brokers with extra flags, log lines, raw clients.

The raw AMQP client itself is :mod:`tests.conformance.rawclient`; this module adds what the
connection, bad-input, heartbeat and shutdown tests share (``wait_until`` is
:mod:`tests.support`'s, re-exported).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pika
from pika import frame as pframe

from tests.conformance.rawclient import EOF, TIMEOUT, RawClient, describe, open_client
from tests.conftest import BrokerProcess, free_port
from tests.support import wait_until

__all__ = [
    "EOF",
    "TIMEOUT",
    "RawClient",
    "client_port",
    "close_frame",
    "connection_lines",
    "describe",
    "open_client",
    "raw_header",
    "started_broker",
    "wait_until",
    "witness_works",
]


@contextmanager
def started_broker(base: Path, *args: str) -> Iterator[BrokerProcess]:
    """A broker of its own with extra flags (``--heartbeat 1``...), stopped afterwards."""
    base.mkdir(parents=True, exist_ok=True)
    proc = BrokerProcess(free_port(), base / "data", base / "broker.log", list(args)).start()
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()


def client_port(client: RawClient | socket.socket) -> int:
    """The local port of a raw client's socket (it names the connection in the broker log)."""
    sock = client.sock if isinstance(client, RawClient) else client
    return sock.getsockname()[1]


def connection_lines(
    broker: BrokerProcess, port: int, level: str = "WARNING", since: int = 0
) -> list[str]:
    """The broker's log lines at ``level`` about the connection from local ``port``, from
    offset ``since`` of its log on (an earlier connection may have had the same port)."""
    needle = f"127.0.0.1:{port} ->"
    lines = broker.log[since:].splitlines()
    return [line for line in lines if needle in line and f" {level} " in line]


def close_frame(item: Any) -> tuple[int, str, int, int] | None:
    """(code, text, class id, method id) of a received connection.close, else None."""
    if isinstance(item, pframe.Method) and item.method.NAME == "Connection.Close":
        m = item.method
        return m.reply_code, m.reply_text, m.class_id, m.method_id
    return None


def witness_works(connection: pika.BlockingConnection) -> bool:
    """Whether an already-open pika connection can still open a channel and round-trip a
    message through a queue of its own."""
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"still here")
    method, _props, body = channel.basic_get(queue, auto_ack=True)
    channel.queue_delete(queue)
    channel.close()
    return method is not None and body == b"still here"


def raw_header(frame_type: int, channel: int, size: int) -> bytes:
    """A frame header claiming ``size`` payload octets (the payload itself is up to the test)."""
    return struct.pack(">BHI", frame_type, channel, size)
