"""Shared fixtures: a real dispatchd process on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pika
import pytest

from dispatchd.actors.runtime import Runtime
from tests.support import wait_until
from tests.support.actors import running_runtime
from tests.support.certs import Certs, make_certs

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class BrokerProcess:
    """A dispatchd started by a test; ``log`` has everything it printed."""

    port: int
    data_dir: Path
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    tls_port: int = 0  # the AMQPS port, when the test gave the broker one

    def start(self, timeout: float = 15.0) -> BrokerProcess:
        """Start the process and wait until it accepts connections."""
        args = [
            sys.executable,
            "-m",
            "dispatchd",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--admin-port",
            "0",
            "--log-level",
            "info",
            *self.extra_args,
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        if wait_until(self._listening, timeout, interval=0.05):
            return self
        raise RuntimeError(f"dispatchd did not listen within {timeout}s:\n{self.log}")

    def _listening(self) -> bool:
        """Whether the started process accepts connections (RuntimeError if it exited)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"dispatchd exited with {self.proc.returncode}:\n{self.log}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL (a crash) and reap."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    @property
    def log(self) -> str:
        """What the broker has logged so far."""
        return self.log_path.read_text(errors="replace")

    def params(self, **kwargs: object) -> pika.ConnectionParameters:
        """pika connection parameters for this broker."""
        kwargs.setdefault("connection_attempts", 1)
        return pika.ConnectionParameters("127.0.0.1", self.port, **kwargs)  # type: ignore[arg-type]

    def connect(self, **kwargs: object) -> pika.BlockingConnection:
        """A pika BlockingConnection to this broker."""
        return pika.BlockingConnection(self.params(**kwargs))


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker shared by the tests that only need a working broker."""
    base = tmp_path_factory.mktemp("broker")
    proc = BrokerProcess(free_port(), base / "data", base / "broker.log").start()
    yield proc
    code = proc.stop()
    assert code == 0, f"broker exited with {code}:\n{proc.log}"


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker of the test's own (for restarts, kills, and tests that break things)."""
    proc = BrokerProcess(free_port(), tmp_path / "data", tmp_path / "broker.log").start()
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        proc.stop()


@pytest.fixture
def conn(broker: BrokerProcess) -> Iterator[pika.BlockingConnection]:
    """A pika connection to the shared broker, closed after the test."""
    connection = broker.connect()
    yield connection
    if connection.is_open:
        connection.close()


@pytest.fixture
def ch(conn: pika.BlockingConnection) -> pika.adapters.blocking_connection.BlockingChannel:
    """A channel on ``conn``."""
    return conn.channel()


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    """An actor runtime on a uvloop loop running in its own thread (see tests/support)."""
    yield from running_runtime()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA, server and client certificates made for this session (tests/support/certs.py)."""
    return make_certs(tmp_path_factory.mktemp("certs"))


def tls_args(certs: Certs, tls_port: int, *more: str) -> list[str]:
    """Broker flags for an AMQPS listener on ``tls_port`` with the session's server certificate."""
    return [
        "--tls-port",
        str(tls_port),
        "--tls-cert",
        str(certs.server.cert),
        "--tls-key",
        str(certs.server.key),
        "--tls-ca",
        str(certs.ca),
        *more,
    ]


@pytest.fixture(scope="module")
def tls_broker(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A broker with a plain listener (``port``) and an AMQPS one (``tls_port``), verify none."""
    base = tmp_path_factory.mktemp("tls-broker")
    tls_port = free_port()
    proc = BrokerProcess(free_port(), base / "data", base / "broker.log", tls_args(certs, tls_port))
    proc.tls_port = tls_port
    yield proc.start()
    proc.stop()
