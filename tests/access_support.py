"""What the access-control tests share: the operator's command for the broker under test.

With ``DISPATCHD_PEER_PORT`` set, the tests replay against that RabbitMQ and set users up with
its ``rabbitmqctl`` (``RABBITMQ_NODENAME``, default ``rabbit@localhost``); otherwise
``dispatchd ctl`` drives the session's dispatchd. Both take the same verbs, so one test
speaks to either. Users and vhosts get unique names and are deleted after the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
import pytest

from tests.basic_support import PEER_PORT_ENV
from tests.conftest import ROOT, BrokerProcess
from tests.support import WAIT

__all__ = ["Operator", "ctl_command", "operator", "readable_json", "refusal"]


def refusal(connect: Callable[[], Any]) -> tuple[int, str]:
    """The (reply code, text) of the connection.close a connection attempt got; pika wraps
    a refusal during the handshake in ProbableAccessDenied/AuthenticationError."""
    try:
        connect()
    except pika.exceptions.ConnectionClosedByBroker as exc:
        return exc.reply_code, exc.reply_text
    except pika.exceptions.AMQPConnectionError as exc:
        found = re.search(r"\((\d+)\) ([\'\"])(.*)\2", str(exc))
        assert found is not None, repr(exc)
        return int(found.group(1)), found.group(3)
    raise AssertionError("the connection was not refused")


@contextlib.contextmanager
def readable_json(value: Any) -> Iterator[str]:
    """The path of a JSON file holding ``value`` that rabbitmqctl can read: Debian's runs as
    the rabbitmq user, who cannot read a test's tmp_path (and 3.10's import_definitions does
    not read "-")."""
    with tempfile.NamedTemporaryFile("w", prefix="pol-", suffix=".json") as file:
        json.dump(value, file)
        file.flush()
        os.chmod(file.name, 0o644)
        yield file.name


def open_connection(
    port: int, user: str, password: str, vhost: str = "/", name: str = ""
) -> pika.BlockingConnection:
    """A pika connection to 127.0.0.1 (``name``: its client-provided connection name)."""
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            "127.0.0.1",
            port,
            vhost,
            pika.PlainCredentials(user, password),
            connection_attempts=1,
            socket_timeout=WAIT,
            blocked_connection_timeout=WAIT,
            client_properties={"connection_name": name} if name else None,
        )
    )


def close_connections(connections: list[pika.BlockingConnection]) -> None:
    """Close the connections still open (the broker may have closed some already)."""
    for connection in connections:
        if connection.is_open:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - closed by the broker meanwhile
                pass


def ctl_command(data_dir: Any) -> list[str]:
    """``dispatchd ctl`` for the broker whose data dir this is."""
    return [sys.executable, "-m", "dispatchd", "ctl", "--data-dir", str(data_dir)]


@dataclass
class Operator:
    """Runs rabbitmqctl verbs on the broker under test; cleans up what it created."""

    port: int
    command: list[str]
    env: dict[str, str]
    users: list[str] = field(default_factory=list)
    vhosts: list[str] = field(default_factory=list)
    connections: list[pika.BlockingConnection] = field(default_factory=list)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """One verb; with ``check``, a non-zero exit fails the test with its output."""
        done = subprocess.run(
            [*self.command, *args], capture_output=True, text=True, env=self.env, timeout=60
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{args} exited {done.returncode}: {done.stdout}{done.stderr}")
        return done

    def user(self, password: str = "secret", prefix: str = "u") -> str:
        """A fresh user with that password (deleted after the test)."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.run("add_user", name, password)
        self.users.append(name)
        return name

    def vhost(self, prefix: str = "v") -> str:
        """A fresh vhost where guest has every permission (deleted after the test)."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.run("add_vhost", name)
        self.vhosts.append(name)
        self.run("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return name

    def connect(
        self, user: str = "guest", password: str = "guest", vhost: str = "/"
    ) -> pika.BlockingConnection:
        """A pika connection (closed after the test)."""
        connection = open_connection(self.port, user, password, vhost)
        self.connections.append(connection)
        return connection

    def close(self) -> None:
        """Close connections, delete the users and vhosts made."""
        close_connections(self.connections)
        for name in self.users:
            self.run("delete_user", name, check=False)
        for name in self.vhosts:
            self.run("delete_vhost", name, check=False)


def operator_of(broker: BrokerProcess) -> Operator:
    """rabbitmqctl on the peer when ``DISPATCHD_PEER_PORT`` names one, else ``dispatchd ctl``
    on ``broker``."""
    peer_port = os.environ.get(PEER_PORT_ENV)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if peer_port:
        env.setdefault("RABBITMQ_NODENAME", "rabbit@localhost")
        return Operator(int(peer_port), ["rabbitmqctl"], env)
    return Operator(broker.port, ctl_command(broker.data_dir), env)


@pytest.fixture
def operator(broker: BrokerProcess) -> Iterator[Operator]:
    """The broker under test with its operator's command."""
    chosen = operator_of(broker)
    yield chosen
    chosen.close()
