"""What the admin tests share: a broker with its admin port open, and a small HTTP client."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest

from tests.conftest import BrokerProcess, free_port
from tests.support import WAIT, wait_until

T = TypeVar("T")


@dataclass
class Answer:
    """An HTTP answer: status, headers, and the body (parsed when it is JSON)."""

    status: int
    headers: Any
    body: Any


@dataclass
class AdminClient:
    """HTTP client for the admin port (basic auth as guest by default; HTTPS with ``tls``)."""

    port: int
    host: str = "127.0.0.1"  # an IPv6 address in brackets: [::1]
    user: str | None = "guest"
    password: str = "guest"
    tls: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        return f"{'http' if self.tls is None else 'https'}://{self.host}:{self.port}/"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method)
        if self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=WAIT, context=self.tls) as res:
                status, res_headers, payload = res.status, res.headers, res.read()
        except urllib.error.HTTPError as err:
            status, res_headers, payload = err.code, err.headers, err.read()
        content_type = res_headers.get("Content-Type", "")
        parsed: Any = payload.decode(errors="replace")
        if payload and content_type.startswith("application/json"):
            parsed = json.loads(payload)
        return Answer(status, res_headers, parsed)

    def get(self, path: str) -> Any:
        """GET a JSON resource that must exist (asserts 200)."""
        answer = self.request("GET", path)
        assert answer.status == 200, (path, answer.status, answer.body)
        return answer.body

    def get_post(self, path: str, body: Any) -> Any:
        """POST a JSON body to a resource that answers 200 (asserted); its JSON answer."""
        answer = self.request("POST", path, body)
        assert answer.status == 200, (path, answer.status, answer.body)
        return answer.body


def vpath(*parts: str) -> str:
    """Percent-encode path segments as RabbitMQ's API wants them ('/' -> %2F)."""
    return "/".join(quote(part, safe="") for part in parts)


def eventually(probe: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    """Call ``probe`` until it returns something truthy (returned) or the deadline passes
    (then fail with what it last returned, or the assertion it last failed). A failed
    assertion in ``probe`` counts as not yet."""
    last: list[Any] = [None]

    def attempt() -> T | None:
        try:
            last[0] = probe()
        except AssertionError as exc:
            last[0] = exc
            return None
        return last[0]

    found = wait_until(attempt, timeout, interval=0.05)
    if found:
        return found
    raise AssertionError(f"timed out waiting for {what}; last: {last[0]!r}")


def start_admin_broker(
    base: Path, *extra: str, tls: ssl.SSLContext | None = None
) -> tuple[BrokerProcess, AdminClient]:
    """A dispatchd with its admin server on a free port; returns it and a client for it
    (an HTTPS one with the client context ``tls`` when given)."""
    base.mkdir(parents=True, exist_ok=True)
    admin_port = free_port()
    proc = BrokerProcess(
        free_port(),
        base / "data",
        base / "broker.log",
        extra_args=["--admin-port", str(admin_port), *extra],
    ).start()
    client = AdminClient(admin_port, tls=tls)
    eventually(lambda: _answers(client), "the admin port to answer")
    return proc, client


def _answers(client: AdminClient) -> bool:
    try:
        return client.request("GET", "/api/overview").status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def admin_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BrokerProcess, AdminClient]]:
    """One broker with the admin open, shared by a test module."""
    proc, client = start_admin_broker(tmp_path_factory.mktemp("admin"))
    yield proc, client
    code = proc.stop()
    assert code == 0, f"broker exited with {code}:\n{proc.log}"
    assert "Traceback" not in proc.log, proc.log
