"""The admin over HTTPS (``--admin-tls-cert``) and on every ``--bind`` address, real processes.

The TLS handshake runs in the request's own thread under ``--tls-handshake-timeout``: a client
that connects and sends nothing, or sends plain HTTP, loses its own socket (one log line) and
never holds up anybody else. A certificate that cannot be loaded stops start-up in one line.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.admin_support import AdminClient, eventually, start_admin_broker
from tests.conftest import BrokerProcess, free_port
from tests.support import WAIT, ipv6_loopback
from tests.support.certs import Certs

HANDSHAKE_TIMEOUT = 3.0


def trusting(certs: Certs, **versions: ssl.TLSVersion) -> ssl.SSLContext:
    """A client context that trusts only the test CA (``maximum_version=...`` to limit it)."""
    context = ssl.create_default_context(cafile=str(certs.ca))
    for name, version in versions.items():
        setattr(context, name, version)
    return context


@pytest.fixture(scope="module")
def https(
    certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[BrokerProcess, AdminClient]]:
    """A broker whose admin serves HTTPS with the test server certificate."""
    proc, client = start_admin_broker(
        tmp_path_factory.mktemp("admin-https"),
        *("--admin-tls-cert", str(certs.server.cert), "--admin-tls-key", str(certs.server.key)),
        *("--tls-handshake-timeout", str(HANDSHAKE_TIMEOUT)),
        tls=trusting(certs),
    )
    yield proc, client
    code = proc.stop()
    assert code == 0, f"broker exited with {code}:\n{proc.log}"
    assert "Traceback" not in proc.log, proc.log


def lines_about(log: str, peer: tuple[str, int]) -> list[str]:
    """The log lines naming the client socket ``peer``."""
    named = re.compile(rf"{re.escape(peer[0])}:{peer[1]}(?!\d)")
    return [line for line in log.splitlines() if named.search(line)]


def closed_by_broker(sock: socket.socket, timeout: float = WAIT) -> bool:
    """Whether the broker closes ``sock`` within ``timeout`` without sending anything."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_overview_over_https_lists_the_https_listener(
    https: tuple[BrokerProcess, AdminClient],
) -> None:
    proc, client = https
    assert client.url.startswith("https://")
    overview = client.get("/api/overview")
    admin = [x for x in overview["listeners"] if x["port"] == client.port]
    assert admin == [
        {
            "node": overview["node"],
            "protocol": "https",
            "ip_address": "127.0.0.1",
            "port": client.port,
        }
    ]
    assert f"admin page and management API on https://127.0.0.1:{client.port}/" in proc.log
    assert "(certificate " in proc.log and "subject O=dispatchd,CN=localhost" in proc.log
    assert "expires 20" in proc.log


def test_plain_http_to_the_https_port_is_closed_with_one_log_line(
    https: tuple[BrokerProcess, AdminClient],
) -> None:
    proc, client = https
    with pytest.raises(OSError):  # the broker hangs up: no HTTP answer at all
        AdminClient(client.port).request("GET", "/api/overview")
    with socket.create_connection(("127.0.0.1", client.port)) as sock:
        sock.sendall(b"GET /api/overview HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert closed_by_broker(sock)
        peer = sock.getsockname()
    lines = eventually(lambda: lines_about(proc.log, peer), "the handshake's log line")
    assert len(lines) == 1, lines
    assert "WARNING" in lines[0] and "http request" in lines[0], lines[0]
    assert client.get("/api/whoami")["name"] == "guest"


def test_an_idle_tcp_client_blocks_nobody_and_times_out(
    https: tuple[BrokerProcess, AdminClient],
) -> None:
    proc, client = https
    with socket.create_connection(("127.0.0.1", client.port)) as idle:
        peer = idle.getsockname()
        started = time.monotonic()
        assert client.get("/api/whoami")["name"] == "guest"
        assert time.monotonic() - started < 2.0  # the idle socket is still open: timeout 3 s
        assert closed_by_broker(idle, HANDSHAKE_TIMEOUT + WAIT)
    lines = eventually(lambda: lines_about(proc.log, peer), "the timeout's log line")
    assert len(lines) == 1 and f"no handshake within {HANDSHAKE_TIMEOUT}s" in lines[0], lines


def test_login_cookie_is_secure_over_https(
    certs: Certs, https: tuple[BrokerProcess, AdminClient]
) -> None:
    _, client = https
    login = AdminClient(client.port, user=None, tls=trusting(certs))
    answer = login.request("POST", "/login", {"username": "guest", "password": "guest"})
    assert answer.status == 200, answer.body
    attributes = [a.strip() for a in answer.headers["Set-Cookie"].split(";")]
    assert "Secure" in attributes and "HttpOnly" in attributes, attributes


def test_tls_versions_apply_to_the_admin(certs: Certs, tmp_path: Path) -> None:
    proc, client = start_admin_broker(
        tmp_path,
        *("--admin-tls-cert", str(certs.server.cert), "--admin-tls-key", str(certs.server.key)),
        *("--tls-versions", "tlsv1.3"),
        tls=trusting(certs),
    )
    try:
        assert client.get("/api/whoami")["name"] == "guest"
        old = AdminClient(client.port, tls=trusting(certs, maximum_version=ssl.TLSVersion.TLSv1_2))
        with pytest.raises(OSError):
            old.request("GET", "/api/whoami")
        eventually(lambda: "unsupported protocol" in proc.log, "the refused version's log line")
    finally:
        assert proc.stop() == 0, proc.log


def test_admin_certificate_in_the_cert_file(certs: Certs, tmp_path: Path) -> None:
    both = tmp_path / "server-and-key.pem"
    both.write_bytes(certs.server.cert.read_bytes() + certs.server.key.read_bytes())
    proc, client = start_admin_broker(tmp_path, "--admin-tls-cert", str(both), tls=trusting(certs))
    try:
        assert client.get("/api/whoami")["name"] == "guest"
    finally:
        assert proc.stop() == 0, proc.log


MISSING = Path("/nonexistent")
#: Certificate and key files that cannot work, and what the start-up line says of them.
BAD_FILES: dict[str, tuple[Callable[[Certs], tuple[Path, Path | str]], str]] = {
    "wrong-key": (lambda c: (c.server.cert, c.client.key), "key values mismatch"),
    "missing-key": (lambda c: (c.server.cert, MISSING / "server.key"), "No such file"),
    "missing-cert": (lambda c: (MISSING / "server.pem", c.server.key), "No such file"),
    "key-not-in-cert": (lambda c: (c.server.cert, ""), "no private key"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_certificate_that_cannot_load_stops_start_up(
    certs: Certs, tmp_path: Path, case: str
) -> None:
    files, reason = BAD_FILES[case]
    cert, key = files(certs)
    unreadable = next((p for p in (cert, key) if p and str(p).startswith(str(MISSING))), None)
    verb = f"read {unreadable}: " if unreadable else f"load certificate {cert}"
    proc = BrokerProcess(
        free_port(),
        tmp_path / "data",
        tmp_path / "broker.log",
        extra_args=[
            *("--admin-port", str(free_port())),
            *("--admin-tls-cert", str(cert), "--admin-tls-key", str(key)),
        ],
    )
    with contextlib.suppress(RuntimeError):  # AMQP may be listening before the admin fails
        proc.start()
    assert proc.proc is not None and proc.proc.wait(WAIT) != 0
    lines = [x for x in proc.log.splitlines() if x.startswith("dispatchd: cannot ")]
    assert len(lines) == 1, proc.log
    assert lines[0].startswith(f"dispatchd: cannot {verb}"), lines[0]
    assert reason in lines[0], lines[0]
    assert "Traceback" not in proc.log, proc.log


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_admin_listens_on_every_bind_address(tmp_path: Path) -> None:
    proc, client = start_admin_broker(tmp_path, "--bind", "127.0.0.1,::1")
    try:
        over_ipv6 = AdminClient(client.port, host="[::1]")
        overview = over_ipv6.get("/api/overview")
        admin = {(x["protocol"], x["ip_address"]) for x in overview["listeners"]}
        assert {("http", "127.0.0.1"), ("http", "::1")} <= admin, overview["listeners"]
        assert client.get("/api/whoami")["name"] == "guest"
        answer = AdminClient(client.port, host="[::1]", user=None).request(
            "POST", "/login", {"username": "guest", "password": "guest"}
        )
        assert answer.status == 200, answer.body
        assert "Secure" not in answer.headers["Set-Cookie"]  # plain HTTP: no Secure
    finally:
        assert proc.stop() == 0, proc.log
