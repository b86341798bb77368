"""The README's "Deploying" commands, with a client on another host.

The other host is a network namespace joined to ours by a veth pair: the broker listens on
``0.0.0.0`` and sees the client's connection come from ``10.213.N.2``, not from loopback. A
created user (or the default user the environment names) logs in from there and works;
``guest`` is refused as RabbitMQ 3.10 refuses a ``loopback_users`` member from a remote address
(``rabbit_reader:auth_fail/5``): connection.close 403 with the "safe" text it sends to clients
with the ``authentication_failure_close`` capability (pika has it), the reason going to the log
only. Creating the namespace needs ``ip`` (iproute2) and CAP_NET_ADMIN; without them the tests
skip."""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.access_support import ctl_command
from tests.conftest import ROOT, BrokerProcess, free_port
from tests.support import WAIT

GUEST_REFUSED = (
    403,
    "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
    "For details see the broker logfile.",
)


@dataclass(frozen=True)
class Namespace:
    """A network namespace whose address ``peer`` reaches ours at ``host``."""

    name: str
    host: str
    peer: str


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def free_subnet() -> int:
    """A third octet N such that no address of ours is in 10.213.N.0/24."""
    taken = ip("-4", "-o", "addr", "show").stdout
    choices = [n for n in range(1, 255) if f" 10.213.{n}." not in taken]
    return random.choice(choices)


@pytest.fixture(scope="module")
def namespace() -> Iterator[Namespace]:
    """A fresh namespace and veth pair with unique names (so parallel or leftover runs do not
    clash), removed afterwards whatever happened."""
    if shutil.which("ip") is None:
        pytest.skip("cannot create a network namespace: no 'ip' command (install iproute2)")
    token = uuid.uuid4().hex[:6]
    name, host_end, peer_end = f"dispatchd-{token}", f"dpd{token}h", f"dpd{token}n"
    subnet = free_subnet()
    ns = Namespace(name, f"10.213.{subnet}.1", f"10.213.{subnet}.2")
    steps = [
        ("netns", "add", name),
        ("link", "add", host_end, "type", "veth", "peer", "name", peer_end),
        ("link", "set", peer_end, "netns", name),
        ("addr", "add", f"{ns.host}/24", "dev", host_end),
        ("link", "set", host_end, "up"),
        ("-n", name, "addr", "add", f"{ns.peer}/24", "dev", peer_end),
        ("-n", name, "link", "set", peer_end, "up"),
        ("-n", name, "link", "set", "lo", "up"),
    ]
    try:
        for step in steps:
            done = ip(*step)
            if done.returncode != 0:
                pytest.skip(f"cannot create a network namespace: {done.stderr.strip()}")
        yield ns
    finally:
        ip("link", "del", host_end)  # takes its peer with it
        ip("netns", "del", name)


def remote_broker(tmp_path: Path) -> BrokerProcess:
    """A broker on 0.0.0.0 (this later ``--bind`` overrides BrokerProcess's loopback one)."""
    return BrokerProcess(
        free_port(), tmp_path / "data", tmp_path / "broker.log", ["--bind", "0.0.0.0"]
    ).start()


@pytest.fixture
def broker_on_all(tmp_path: Path) -> Iterator[BrokerProcess]:
    """``remote_broker``, stopped after the test."""
    proc = remote_broker(tmp_path)
    yield proc
    proc.stop()


def ctl(broker: BrokerProcess, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A ``dispatchd ctl`` verb; with ``check`` it must succeed."""
    done = subprocess.run(
        [*ctl_command(broker.data_dir), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    if check:
        assert done.returncode == 0, f"{args} exited {done.returncode}: {done.stdout}{done.stderr}"
    return done


def read_report(client: subprocess.Popen[str]) -> dict[str, Any]:
    """The client's next JSON line, waiting at most a few seconds for it."""
    assert client.stdout is not None
    ready, _, _ = select.select([client.stdout], [], [], 3 * WAIT)
    line = client.stdout.readline() if ready else ""
    if not line:
        client.kill()
        _, errors = client.communicate()
        raise AssertionError(f"the client said nothing (exit {client.returncode}):\n{errors}")
    return json.loads(line)


@dataclass(frozen=True)
class Visit:
    """What tests/deploy_client.py saw from the namespace, and the broker's connection
    listing (user, peer_host) while its connection was open."""

    opened: dict[str, Any]
    listed: list[dict[str, Any]]
    guest: dict[str, Any]


def visit(namespace: Namespace, broker: BrokerProcess, user: str, password: str) -> Visit:
    """Run the client in the namespace against the broker's address on our side of the pair."""
    client = subprocess.Popen(
        [
            *("ip", "netns", "exec", namespace.name),
            *(sys.executable, "-m", "tests.deploy_client"),
            *(namespace.host, str(broker.port), user, password),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        opened = read_report(client)
        listing = ctl(broker, "-q", "list_connections", "user", "peer_host", "--formatter", "json")
        assert client.stdin is not None
        client.stdin.write("close\n")
        client.stdin.flush()
        guest = read_report(client)
        assert client.wait(3 * WAIT) == 0
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    return Visit(opened, json.loads(listing.stdout), guest)


def test_remote_client_logs_in_as_a_created_user_and_guest_is_refused(
    namespace: Namespace, broker_on_all: BrokerProcess
) -> None:
    ctl(broker_on_all, "add_user", "app", "s3cret")
    ctl(broker_on_all, "set_permissions", "-p", "/", "app", ".*", ".*", ".*")
    ctl(broker_on_all, "set_user_tags", "app", "management")
    seen = visit(namespace, broker_on_all, "app", "s3cret")
    assert seen.opened["step"] == "open"
    assert seen.opened["body"] == "from the namespace"
    assert {"user": "app", "peer_host": namespace.peer} in seen.listed
    assert seen.guest["step"] == "guest"
    assert (seen.guest["code"], seen.guest["text"]) == GUEST_REFUSED
    assert "PLAIN login refused: user 'guest' can only connect via localhost" in broker_on_all.log


def test_default_user_from_the_environment_is_made_once(
    namespace: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCHD_DEFAULT_USER", "app")
    monkeypatch.setenv("DISPATCHD_DEFAULT_PASS", "first")
    broker = remote_broker(tmp_path)
    try:
        seen = visit(namespace, broker, "app", "first")
        assert seen.opened["body"] == "from the namespace"
        assert {"user": "app", "peer_host": namespace.peer} in seen.listed
        assert (seen.guest["code"], seen.guest["text"]) == GUEST_REFUSED  # no guest at all
        assert "PLAIN login refused: user 'guest' - invalid credentials" in broker.log
    finally:
        broker.stop()
    monkeypatch.setenv("DISPATCHD_DEFAULT_PASS", "second")
    broker = remote_broker(tmp_path)
    try:
        assert ctl(broker, "authenticate_user", "app", "first", check=False).returncode == 0
        assert ctl(broker, "authenticate_user", "app", "second", check=False).returncode != 0
        users = json.loads(ctl(broker, "-q", "list_users", "--formatter", "json").stdout)
        assert [user["user"] for user in users] == ["app"]
    finally:
        broker.stop()
