"""Debian's real ``rabbitmqadmin`` (the one the rabbitmq-server package ships) against our API.

Operators script the management API with it; every verb here must work unchanged against
dispatchd. Its JSON output (``-f raw_json``) is checked where it lists, its own words where it
changes something.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.admin_support import AdminClient, admin_broker  # noqa: F401 - fixture
from tests.conftest import BrokerProcess

RABBITMQADMIN = shutil.which("rabbitmqadmin") or "/usr/bin/rabbitmqadmin"

pytestmark = pytest.mark.skipif(
    not Path(RABBITMQADMIN).exists(),
    reason="rabbitmqadmin is not installed (Debian package rabbitmq-server; .ci/run installs it)",
)


@pytest.fixture
def admin(admin_broker: tuple[BrokerProcess, AdminClient]):  # noqa: F811
    port = admin_broker[1].port

    def run(*args: str, user: str = "guest", password: str = "guest") -> str:
        done = subprocess.run(
            [RABBITMQADMIN, "-H", "127.0.0.1", "-P", str(port), "-u", user, "-p", password, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    return run


def listing(admin: Any, what: str, *args: str) -> list[dict[str, Any]]:
    return json.loads(admin("-f", "raw_json", "list", what, *args))


def test_declare_list_publish_get_delete(admin) -> None:
    assert admin("declare", "queue", "name=ra-q", "durable=true").strip() == "queue declared"
    assert admin("declare", "exchange", "name=ra-x", "type=topic").strip() == "exchange declared"
    declared = admin("declare", "binding", "source=ra-x", "destination=ra-q", "routing_key=a.*")
    assert declared.strip() == "binding declared"
    [queue] = [q for q in listing(admin, "queues") if q["name"] == "ra-q"]
    assert queue["durable"] is True
    [exchange] = [x for x in listing(admin, "exchanges") if x["name"] == "ra-x"]
    assert exchange["type"] == "topic"
    assert {"source": "ra-x", "destination": "ra-q", "routing_key": "a.*"}.items() <= next(
        b for b in listing(admin, "bindings") if b["source"] == "ra-x"
    ).items()
    published = admin("publish", "exchange=ra-x", "routing_key=a.b", "payload=hello")
    assert published.strip() == "Message published"
    unrouted = admin("publish", "exchange=ra-x", "routing_key=b.c", "payload=lost")
    assert unrouted.strip() == "Message published but NOT routed"
    [message] = json.loads(
        admin("-f", "raw_json", "get", "queue=ra-q", "ackmode=ack_requeue_false")
    )
    assert (message["payload"], message["routing_key"], message["exchange"]) == (
        "hello",
        "a.b",
        "ra-x",
    )
    assert (
        admin(
            "delete",
            "binding",
            "source=ra-x",
            "destination=ra-q",
            "destination_type=queue",
            "properties_key=a.*",
        ).strip()
        == "binding deleted"
    )
    assert admin("delete", "queue", "name=ra-q").strip() == "queue deleted"
    assert admin("delete", "exchange", "name=ra-x").strip() == "exchange deleted"
    assert "ra-q" not in [q["name"] for q in listing(admin, "queues")]


def test_users_vhosts_permissions(admin) -> None:
    assert admin("declare", "vhost", "name=ra-v").strip() == "vhost declared"
    declared = admin("declare", "user", "name=ra-u", "password=pw", "tags=monitoring")
    assert declared.strip() == "user declared"
    permitted = admin(
        "declare", "permission", "vhost=ra-v", "user=ra-u", "configure=^$", "write=.*", "read=.*"
    )
    assert permitted.strip() == "permission declared"
    assert {"vhost": "ra-v", "user": "ra-u", "configure": "^$"}.items() <= next(
        p for p in listing(admin, "permissions") if p["user"] == "ra-u"
    ).items()
    [user] = [u for u in listing(admin, "users") if u["name"] == "ra-u"]
    assert user["tags"] == ["monitoring"]
    # the new user's own view: monitoring lists every vhost
    vhosts = json.loads(admin("-f", "raw_json", "list", "vhosts", user="ra-u", password="pw"))
    assert {"/", "ra-v"} <= {v["name"] for v in vhosts}
    [node] = listing(admin, "nodes")
    assert node["running"] is True
    overview = json.loads(admin("-f", "raw_json", "show", "overview"))
    assert overview[0]["rabbitmq_version"] == "3.10.8"
    assert admin("delete", "user", "name=ra-u").strip() == "user deleted"
    assert admin("delete", "vhost", "name=ra-v").strip() == "vhost deleted"


def test_export_and_import(admin, tmp_path) -> None:
    admin("declare", "queue", "name=ra-keep", "durable=true")
    admin("declare", "user", "name=ra-exported", "password=pw", "tags=")
    exported = tmp_path / "defs.json"
    assert "Exported definitions" in admin("export", str(exported))
    definitions = json.loads(exported.read_text())
    assert "ra-keep" in [q["name"] for q in definitions["queues"]]
    assert "ra-exported" in [u["name"] for u in definitions["users"]]
    admin("delete", "queue", "name=ra-keep")
    admin("delete", "user", "name=ra-exported")
    assert "Uploaded definitions" in admin("import", str(exported))
    assert "ra-keep" in [q["name"] for q in listing(admin, "queues")]
    assert "ra-exported" in [u["name"] for u in listing(admin, "users")]
    admin("delete", "queue", "name=ra-keep")
    admin("delete", "user", "name=ra-exported")
