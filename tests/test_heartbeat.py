"""Heartbeats at the negotiated interval, on a broker offering 1 s to keep the waits short.

RabbitMQ sends a heartbeat every half interval it has nothing else to send, checks the client
every interval, and drops it after two checks without a byte: a client that falls silent right
after the handshake is gone about three intervals later. A client that negotiated 0 is never
timed out, however long it stays quiet. (Waiting for a timeout is inherently a matter of time:
these tests take a few seconds each.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pika import frame as pframe

from tests.amqp_raw import (
    EOF,
    TIMEOUT,
    client_port,
    connection_lines,
    describe,
    open_client,
    started_broker,
    wait_until,
)
from tests.support import quiet

HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A broker offering heartbeat 1 s."""
    with started_broker(tmp_path_factory.mktemp("heartbeat"), "--heartbeat", "1") as proc:
        yield proc


def test_tune_offers_the_configured_heartbeat(quick: Any) -> None:
    with open_client(quick.port, channels=()) as client:
        assert client.tune.heartbeat == 1


def test_silent_client_gets_heartbeats_then_is_dropped(quick: Any) -> None:
    client = open_client(quick.port, channels=(), heartbeat=1)
    try:
        opened = time.monotonic()
        heartbeats: list[float] = []
        while True:
            item = client.recv_frame(6.0)
            if not isinstance(item, pframe.Heartbeat):
                break
            heartbeats.append(time.monotonic() - opened)
        took = time.monotonic() - opened
        assert describe(item) == EOF  # no connection.close: the socket is just closed
        assert 2.0 <= took <= 4.0, took
        # The server, idle, sent a heartbeat every half interval meanwhile.
        assert len(heartbeats) >= 3, heartbeats
        assert heartbeats[0] < 1.0
        lines = wait_until(lambda: connection_lines(quick, client_port(client)))
        assert len(lines) == 1 and "missed heartbeats from client, timeout: 1s" in lines[0]
    finally:
        client.sock.close()


def test_heartbeat_zero_and_talking_clients_stay_connected(quick: Any) -> None:
    """Over 3.5 s (> 3 offered intervals), side by side: a client that disabled heartbeats gets
    none and is not dropped; a pika client with heartbeat 1 is not dropped; nor is a raw client
    whose only traffic is its own heartbeats."""
    results: dict[str, Any] = {}

    def pika_client() -> None:
        connection = quick.connect(heartbeat=1)
        quiet(connection, 3.5)  # its I/O runs meanwhile: pika sends its heartbeats
        results["pika"] = connection.is_open and connection.channel().is_open
        connection.close()

    def heartbeating_client() -> None:
        with open_client(quick.port, channels=(), heartbeat=1) as client:
            # Not a wait for a condition: for 3.5 s, take what comes and send heartbeats.
            deadline = time.monotonic() + 3.5
            received = []
            while time.monotonic() < deadline:
                received.append(client.recv_frame(0.4))
                client.send(HEARTBEAT)
            results["heartbeats only"] = (
                all(describe(item) in (TIMEOUT, {"frame": "heartbeat"}) for item in received)
                and client.open_channel(1) == "Channel.OpenOk"
            )

    threads = [threading.Thread(target=pika_client), threading.Thread(target=heartbeating_client)]
    for thread in threads:
        thread.start()
    with open_client(quick.port, channels=(), heartbeat=0) as client:
        assert describe(client.recv_frame(3.5)) == TIMEOUT  # no heartbeat, no close
        assert client.open_channel(1) == "Channel.OpenOk"
        assert connection_lines(quick, client_port(client)) == []
    for thread in threads:
        thread.join()
    assert results == {"pika": True, "heartbeats only": True}
