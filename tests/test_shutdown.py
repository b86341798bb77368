"""Start-up banner and clean shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest
from pika import spec

from dispatchd import __version__
from tests.amqp_raw import EOF, RawClient, close_frame, describe, open_client
from tests.conformance.rawclient import PROTOCOL_HEADER

FORCED = (320, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'", 0, 0)


def test_banner_names_version_listener_and_data_dir(fresh_broker: Any) -> None:
    log = fresh_broker.log
    assert f"dispatchd {__version__}" in log
    assert f"listening on 127.0.0.1:{fresh_broker.port}" in log
    assert f"data dir {Path(fresh_broker.data_dir).resolve()}" in log


def _closed_by_broker(connection: pika.BlockingConnection, timeout: float = 5.0) -> Any:
    """Process pika I/O until the broker closes the connection; the exception it raised."""
    # A loop of its own rather than tests.support.pump: the awaited event is an exception
    # out of process_data_events, not a condition to poll.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection.process_data_events(time_limit=0.05)
        except pika.exceptions.ConnectionClosedByBroker as exc:
            return exc
    return None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_closes_clients_with_320_and_exits_0(fresh_broker: Any, sig: int) -> None:
    connection = fresh_broker.connect()
    channel = connection.channel()
    channel.queue_declare("", exclusive=True)
    fresh_broker.proc.send_signal(sig)
    closed = _closed_by_broker(connection)
    assert closed is not None, "pika never saw connection.close"
    assert (closed.reply_code, closed.reply_text) == FORCED[:2]
    assert fresh_broker.proc.wait(10) == 0
    assert "stopped" in fresh_broker.log


def test_shutdown_reaches_clients_in_every_state(fresh_broker: Any) -> None:
    """An open raw client gets the exact close frame; a client still in its handshake and one
    lingering after close-ok are simply disconnected; the broker exits promptly with 0."""
    running = open_client(fresh_broker.port, channels=(1,))
    handshaking = RawClient(fresh_broker.port)
    handshaking.send(PROTOCOL_HEADER)
    assert handshaking.recv_method().method.NAME == "Connection.Start"
    lingering = open_client(fresh_broker.port, channels=())
    assert lingering.rpc(0, spec.Connection.Close(200, "", 0, 0)).method.NAME == (
        "Connection.CloseOk"
    )
    started = time.monotonic()
    fresh_broker.proc.send_signal(signal.SIGTERM)
    try:
        assert close_frame(running.recv_method()) == FORCED
        running.send_method(0, spec.Connection.CloseOk())
        assert describe(running.recv_frame()) == EOF
        assert describe(handshaking.recv_frame()) == EOF
        assert describe(lingering.recv_frame()) == EOF
        assert fresh_broker.proc.wait(10) == 0
        assert time.monotonic() - started < 3.0
    finally:
        for client in (running, handshaking, lingering):
            client.sock.close()


def test_unanswered_close_does_not_hold_shutdown_forever(fresh_broker: Any) -> None:
    """A client that never answers connection.close is cut off after the shutdown grace."""
    silent = open_client(fresh_broker.port, channels=())
    try:
        fresh_broker.proc.send_signal(signal.SIGTERM)
        assert close_frame(silent.recv_method()) == FORCED
        try:
            assert fresh_broker.proc.wait(10) == 0
        except subprocess.TimeoutExpired:
            pytest.fail("the broker waited for close-ok forever")
        assert describe(silent.recv_frame(1.0)) == EOF
    finally:
        silent.sock.close()
