"""The management API's writes and its tag and permission rules, as RabbitMQ 3.10.8 has them.

Every test talks HTTP to the broker's API and AMQP (pika) to its port. With
``DISPATCHD_PEER_ADMIN_PORT`` (and ``DISPATCHD_PEER_PORT``) set, the same tests replay against
that RabbitMQ's management plugin (``guest`` must be an administrator there), which is how the
expected codes and texts below were checked. Users and vhosts get unique names and are removed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
import pytest

from tests.access_support import close_connections, open_connection
from tests.admin_support import AdminClient, admin_broker, eventually, vpath  # noqa: F401
from tests.basic_support import PEER_PORT_ENV
from tests.conftest import BrokerProcess
from tests.support import WAIT

PEER_ADMIN_PORT_ENV = "DISPATCHD_PEER_ADMIN_PORT"
NOT_FOUND = {"error": "Object Not Found", "reason": "Not Found"}
ACCESS_REFUSED = {"error": "not_authorised", "reason": "Access refused."}
VHOST_REFUSED = {"error": "not_authorised", "reason": "User not authorised to access virtual host"}
ALL = {"configure": ".*", "write": ".*", "read": ".*"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Site:
    """The broker under test: its API (as guest), its AMQP port, and what a test made."""

    api: AdminClient
    port: int
    users: list[str] = field(default_factory=list)
    vhosts: list[str] = field(default_factory=list)
    connections: list[pika.BlockingConnection] = field(default_factory=list)

    def as_user(self, user: str, password: str = "pw") -> AdminClient:
        return AdminClient(self.api.port, user=user, password=password)

    def user(self, tags: str = "", password: str = "pw", permit: str | None = "/") -> str:
        """A fresh user with those tags (and every permission on ``permit``)."""
        name = unique("mu")
        answer = self.api.request("PUT", f"/api/users/{name}", {"password": password, "tags": tags})
        assert answer.status == 201, answer
        self.users.append(name)
        if permit is not None:
            self.permit(permit, name)
        return name

    def permit(self, vhost: str, user: str, **perms: str) -> None:
        answer = self.api.request("PUT", f"/api/permissions/{vpath(vhost, user)}", ALL | perms)
        assert answer.status in (201, 204), answer

    def vhost(self, **body: Any) -> str:
        """A fresh vhost where guest has every permission."""
        name = unique("mv")
        answer = self.api.request("PUT", f"/api/vhosts/{vpath(name)}", body)
        assert answer.status == 201, answer
        self.vhosts.append(name)
        self.permit(name, "guest")
        return name

    def connect(
        self, user: str = "guest", password: str = "guest", vhost: str = "/", name: str = ""
    ) -> pika.BlockingConnection:
        connection = open_connection(self.port, user, password, vhost, name)
        self.connections.append(connection)
        return connection

    def connection_named(self, client_name: str) -> dict[str, Any]:
        """The API's record of the connection opened with that client-provided name."""

        def probe() -> dict[str, Any] | None:
            for record in self.api.get("/api/connections"):
                if (record.get("client_properties") or {}).get("connection_name") == client_name:
                    return record
            return None

        return eventually(probe, f"connection {client_name}")

    def close(self) -> None:
        close_connections(self.connections)
        for name in self.users:
            self.api.request("DELETE", f"/api/users/{name}")
        for name in self.vhosts:
            self.api.request("DELETE", f"/api/vhosts/{vpath(name)}")


@pytest.fixture
def site(admin_broker: tuple[BrokerProcess, AdminClient]) -> Iterator[Site]:  # noqa: F811
    admin_port = os.environ.get(PEER_ADMIN_PORT_ENV)
    if admin_port:
        chosen = Site(AdminClient(int(admin_port)), int(os.environ[PEER_PORT_ENV]))
    else:
        chosen = Site(admin_broker[1], admin_broker[0].port)
    yield chosen
    chosen.close()


def refused_login(site: Site, user: str, password: str, vhost: str = "/") -> bool:
    try:
        site.connect(user, password, vhost)
    except pika.exceptions.AMQPConnectionError:
        return True
    return False


# ----- users


def test_users_put_get_delete(site: Site) -> None:
    api, name = site.api, unique("mu")
    site.users.append(name)
    body = {"password": "secret", "tags": "management"}
    assert api.request("PUT", f"/api/users/{name}", body).status == 201
    assert api.request("PUT", f"/api/users/{name}", body).status == 204
    record = api.get(f"/api/users/{name}")
    assert record["tags"] == ["management"] and record["limits"] == {}
    assert record["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    site.permit("/", name)
    assert site.connect(name, "secret").is_open
    assert site.as_user(name, "secret").get("/api/whoami") == {
        "name": name,
        "tags": ["management"],
    }
    # tags only, on an existing user: the password goes (as RabbitMQ 3.10.8)
    assert api.request("PUT", f"/api/users/{name}", {"tags": "a, b,,c"}).status == 204
    assert api.get(f"/api/users/{name}")["tags"] == ["a", "b", "c"]
    assert refused_login(site, name, "secret")
    assert name in [u["name"] for u in api.get("/api/users")]
    assert api.request("DELETE", f"/api/users/{name}").status == 204
    assert api.request("DELETE", f"/api/users/{name}").body == NOT_FOUND
    assert api.request("GET", f"/api/users/{name}").status == 404


def test_user_with_a_hash_logs_in_with_its_password(site: Site) -> None:
    # base64(salt + sha256(salt + "hashpw")) for salt 00 01 02 03
    salt = bytes([0, 1, 2, 3])
    digest = base64.b64encode(salt + hashlib.sha256(salt + b"hashpw").digest()).decode()
    name = unique("mu")
    site.users.append(name)
    body = {
        "password_hash": digest,
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": [],
    }
    assert site.api.request("PUT", f"/api/users/{name}", body).status == 201
    assert site.api.get(f"/api/users/{name}")["password_hash"] == digest
    site.permit("/", name)
    assert site.connect(name, "hashpw").is_open


def test_user_bad_input(site: Site) -> None:
    api, name = site.api, unique("mu")
    site.users.append(name)
    missing = api.request("PUT", f"/api/users/{name}", {"password": "x"})
    assert (missing.status, missing.body) == (
        400,
        {"error": "bad_request", "reason": "tags_not_present"},
    )
    both = api.request(
        "PUT", f"/api/users/{name}", {"password": "x", "password_hash": "", "tags": ""}
    )
    assert both.body == {
        "error": "bad_request",
        "reason": "both_password_and_password_hash_are_provided",
    }
    not_json = api.request("PUT", f"/api/users/{name}", raw=b"{nope")
    assert (not_json.status, not_json.body) == (400, {"error": "bad_request", "reason": "not_json"})
    array = api.request("PUT", f"/api/users/{name}", raw=b"[1]")
    assert array.body == {"error": "bad_request", "reason": "not_json"}
    assert api.request("GET", f"/api/users/{name}").status == 404  # nothing stored


def test_bulk_delete_stops_at_the_first_unknown_user(site: Site) -> None:
    first, second = site.user(permit=None), site.user(permit=None)
    gone = unique("nobody")
    answer = site.api.request("POST", "/api/users/bulk-delete", {"users": [first, gone, second]})
    assert answer.status == 400
    assert answer.body == {"error": "bad_request", "reason": ["no_such_user", gone]}
    assert site.api.request("GET", f"/api/users/{first}").status == 404
    assert site.api.request("GET", f"/api/users/{second}").status == 200
    assert site.api.request("POST", "/api/users/bulk-delete", {"users": [second]}).status == 204
    assert site.api.request("POST", "/api/users/bulk-delete", {}).body == {
        "error": "bad_request",
        "reason": "[{key_missing,users}]",
    }


# ----- vhosts


def test_vhosts_put_get_delete(site: Site) -> None:
    api = site.api
    vhost = site.vhost(description="first", tags="a,b", defaultqueuetype="quorum")
    record = api.get(f"/api/vhosts/{vpath(vhost)}")
    assert record["description"] == "first" and record["tags"] == ["a", "b"]
    assert record["default_queue_type"] == "quorum"
    assert record["metadata"] == {
        "description": "first",
        "tags": ["a", "b"],
        "default_queue_type": "quorum",
    }
    # everything the body leaves out is reset
    assert api.request("PUT", f"/api/vhosts/{vpath(vhost)}", {}).status == 204
    record = api.get(f"/api/vhosts/{vpath(vhost)}")
    assert (record["description"], record["tags"]) == ("", [])
    assert vhost in [v["name"] for v in api.get("/api/vhosts")]
    connection = site.connect(vhost=vhost)
    assert api.request("DELETE", f"/api/vhosts/{vpath(vhost)}").status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        connection.process_data_events(time_limit=WAIT)
        connection.sleep(WAIT)
    assert closed.value.reply_code == 320
    assert api.request("DELETE", f"/api/vhosts/{vpath(vhost)}").body == NOT_FOUND
    assert api.request("GET", f"/api/vhosts/{vpath(vhost)}").status == 404


# ----- permissions


def test_permissions(site: Site) -> None:
    api = site.api
    vhost, user = site.vhost(), site.user(permit=None)
    path = f"/api/permissions/{vpath(vhost, user)}"
    assert api.request("PUT", path, ALL).status == 201
    assert api.request("PUT", path, ALL | {"configure": "^a"}).status == 204
    expect = {"user": user, "vhost": vhost, "configure": "^a", "write": ".*", "read": ".*"}
    assert api.get(path) == expect
    assert expect in api.get("/api/permissions")
    assert api.get(f"/api/users/{user}/permissions") == [expect]
    assert {p["user"] for p in api.get(f"/api/vhosts/{vpath(vhost)}/permissions")} == {
        "guest",
        user,
    }
    assert api.request("PUT", path, {"configure": ".*"}).body == {
        "error": "bad_request",
        "reason": "[{key_missing,write},{key_missing,read}]",
    }
    nobody = api.request("PUT", f"/api/permissions/{vpath(vhost, unique('x'))}", ALL)
    assert nobody.body == {"error": "bad_request", "reason": "vhost_or_user_not_found"}
    invalid = api.request("PUT", path, ALL | {"read": "("})
    assert invalid.status == 400 and invalid.body["error"] == "bad_request"
    assert api.get(path)["read"] == ".*"  # nothing stored
    assert api.request("DELETE", path).status == 204
    assert api.request("DELETE", path).body == NOT_FOUND
    assert api.request("GET", path).body == NOT_FOUND


def test_topic_permissions(site: Site) -> None:
    api = site.api
    vhost, user = site.vhost(), site.user(permit=None)
    path = f"/api/topic-permissions/{vpath(vhost, user)}"
    assert api.request("GET", path).body == NOT_FOUND
    first = {"exchange": "amq.topic", "write": "^a", "read": ".*"}
    assert api.request("PUT", path, first).status == 201
    assert api.request("PUT", path, first | {"exchange": "other"}).status == 204
    assert sorted(t["exchange"] for t in api.get(path)) == ["amq.topic", "other"]
    assert api.request("PUT", path, {"write": "", "read": ""}).body == {
        "error": "bad_request",
        "reason": "[{key_missing,exchange}]",
    }
    assert api.request("DELETE", f"{path}?exchange=other").status == 204  # all of them go
    assert api.request("GET", path).body == NOT_FOUND
    assert api.request("DELETE", path).body == NOT_FOUND


def test_vhost_limits(site: Site) -> None:
    api, vhost = site.api, site.vhost()
    path = f"/api/vhost-limits/{vpath(vhost)}"
    assert api.request("PUT", f"{path}/max-queues", {"value": 1}).status == 204
    assert api.get(path) == [{"vhost": vhost, "value": {"max-queues": 1}}]
    assert api.request("PUT", f"{path}/max-queues", {}).body == {
        "error": "bad_request",
        "reason": "[{key_missing,value}]",
    }
    channel = site.connect(vhost=vhost).channel()
    channel.queue_declare("one")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        channel = site.connections[-1].channel()
        channel.queue_declare("two")
    assert refused.value.reply_code == 406
    assert api.request("DELETE", f"{path}/max-queues").status == 204
    assert api.request("DELETE", f"{path}/max-queues").status == 204  # not set: 204 too
    missing = api.request("PUT", f"/api/vhost-limits/{unique('x')}/max-queues", {"value": 1})
    assert missing.body == {"error": "not_found", "reason": "vhost_not_found"}


# ----- exchanges, queues, bindings, publish, get


def test_exchanges(site: Site) -> None:
    api, vhost = site.api, site.vhost()
    path = f"/api/exchanges/{vpath(vhost, 'x')}"
    assert api.request("PUT", path, {"type": "direct", "durable": True}).status == 201
    assert api.request("PUT", path, {"type": "direct", "durable": True}).status == 204
    record = api.get(path)
    assert (record["type"], record["durable"], record["internal"]) == ("direct", True, False)
    inequivalent = api.request("PUT", path, {"type": "fanout", "durable": True})
    assert inequivalent.body == {
        "error": "bad_request",
        "reason": f"inequivalent arg 'type' for exchange 'x' in vhost '{vhost}': "
        "received 'fanout' but current is 'direct'",
    }
    assert api.request("PUT", f"/api/exchanges/{vpath(vhost, 'y')}", {}).status == 201
    defaults = api.get(f"/api/exchanges/{vpath(vhost, 'y')}")
    assert (defaults["type"], defaults["durable"]) == ("direct", False)
    reserved = api.request("PUT", f"/api/exchanges/{vpath(vhost, 'amq.foo')}", {"type": "direct"})
    assert (reserved.status, reserved.body) == (401, ACCESS_REFUSED)
    assert (
        api.request("DELETE", f"/api/exchanges/{vpath(vhost, 'amq.direct')}").body == ACCESS_REFUSED
    )
    bad = api.request("PUT", path, {"type": "direct", "durable": "yes"})
    assert bad.body == {"error": "bad_request", "reason": ["not_boolean", "yes"]}
    missing = api.request("PUT", f"/api/exchanges/{unique('v')}/x", {"type": "direct"})
    assert (missing.status, missing.body) == (
        404,
        {"error": "not_found", "reason": "vhost_not_found"},
    )
    assert api.request("DELETE", path).status == 204
    assert api.request("DELETE", path).body == NOT_FOUND


def test_queues_bindings_publish_get(site: Site) -> None:
    api, vhost = site.api, site.vhost()
    qpath = f"/api/queues/{vpath(vhost, 'q')}"
    assert api.request("PUT", qpath, {"durable": True, "arguments": {}}).status == 201
    assert api.request("PUT", qpath, {"durable": True}).status == 204
    inequivalent = api.request("PUT", qpath, {"durable": False})
    assert inequivalent.body == {
        "error": "bad_request",
        "reason": f"inequivalent arg 'durable' for queue 'q' in vhost '{vhost}': "
        "received 'false' but current is 'true'",
    }
    reserved = api.request("PUT", f"/api/queues/{vpath(vhost, 'amq.q')}", {})
    assert reserved.body == ACCESS_REFUSED
    api.request("PUT", f"/api/exchanges/{vpath(vhost, 'x')}", {"type": "direct"})
    bindings = f"/api/bindings/{vpath(vhost)}/e/x/q/q"
    for key, location in (("k", "q/k"), ("", "q/~"), ("a/b c~d%e", "q/a%252Fb%2Bc%257Ed%2525e")):
        created = api.request("POST", bindings, {"routing_key": key, "arguments": {}})
        assert (created.status, created.headers["Location"]) == (201, location)
    assert api.request("POST", bindings, {"routing_key": "k"}).status == 201  # again: 201 too
    keys = {b["routing_key"]: b["properties_key"] for b in api.get(bindings)}
    assert keys == {"k": "k", "": "~", "a/b c~d%e": "a%2Fb+c%7Ed%25e"}
    assert api.get(f"{bindings}/~")["routing_key"] == ""
    assert api.get(f"{bindings}/{vpath(keys['a/b c~d%e'])}")["routing_key"] == "a/b c~d%e"
    with_args = api.request("POST", bindings, {"routing_key": "h", "arguments": {"x-a": "1"}})
    props = next(b["properties_key"] for b in api.get(bindings) if b["arguments"])
    assert with_args.headers["Location"] == f"q/{vpath(props)}" and props.startswith("h~")
    missing_x = api.request("POST", f"/api/bindings/{vpath(vhost)}/e/nope/q/q", {})
    assert missing_x.body == {
        "error": "not_found",
        "reason": f"no exchange 'nope' in vhost '{vhost}'",
    }
    default = api.request("POST", f"/api/bindings/{vpath(vhost)}/e/amq.default/q/q", {})
    assert default.body == ACCESS_REFUSED

    publish = f"/api/exchanges/{vpath(vhost, 'x')}/publish"
    message = {"properties": {}, "routing_key": "k", "payload": "hi", "payload_encoding": "string"}
    assert api.get_post(publish, message) == {"routed": True}
    assert api.get_post(publish, message | {"routing_key": "nowhere"}) == {"routed": False}
    with_props = message | {
        "properties": {"delivery_mode": 2, "headers": {"h": "v"}, "message_id": "m1"},
        "payload": "AAFiaW7/",
        "payload_encoding": "base64",
    }
    assert api.get_post(publish, with_props) == {"routed": True}
    for body, reason in (
        (message | {"payload_encoding": "bogus"}, ["unsupported_encoding", "bogus"]),
        (message | {"payload_encoding": "base64", "payload": "!!!"}, ["not_base64", "!!!"]),
        ({k: v for k, v in message.items() if k != "properties"}, "[{key_missing,properties}]"),
        (message | {"properties": {"delivery_mode": "x"}}, ["not_int", "delivery_mode"]),
    ):
        assert api.request("POST", publish, body).body == {"error": "bad_request", "reason": reason}
    nowhere = api.request("POST", f"/api/exchanges/{vpath(vhost, 'nope')}/publish", message)
    assert nowhere.body == {
        "error": "bad_request",
        "reason": f"404 NOT_FOUND - no exchange 'nope' in vhost '{vhost}'",
    }

    get = f"{qpath}/get"
    taken = api.get_post(get, {"count": 5, "ackmode": "ack_requeue_false", "encoding": "auto"})
    assert [m["payload"] for m in taken] == ["hi", "AAFiaW7/"]
    assert taken[0]["properties"] == [] and taken[0]["payload_encoding"] == "string"
    assert taken[1]["properties"]["headers"] == {"h": "v"}
    assert taken[1]["payload_encoding"] == "base64" and taken[1]["payload_bytes"] == 6
    assert api.request("POST", get, {}).body == {
        "error": "bad_request",
        "reason": "[{key_missing,ackmode},{key_missing,count},{key_missing,encoding}]",
    }
    missing_q = api.request(
        "POST",
        f"/api/queues/{vpath(vhost, 'nope')}/get",
        {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"},
    )
    assert missing_q.body == {
        "error": "not_found",
        "reason": f"NOT_FOUND - no queue 'nope' in vhost '{vhost}'",
    }

    assert api.request("DELETE", f"{bindings}/k").status == 204
    assert api.request("DELETE", f"{bindings}/k").body == NOT_FOUND
    busy = api.request("DELETE", f"/api/exchanges/{vpath(vhost, 'x')}?if-unused=true")
    assert busy.body == {
        "error": "bad_request",
        "reason": f"exchange 'x' in vhost '{vhost}' in use",
    }
    assert api.request("DELETE", qpath).status == 204
    assert api.request("DELETE", qpath).body == NOT_FOUND


# ----- tags and permissions


def test_what_each_tag_reaches(site: Site) -> None:
    other = site.vhost()  # only guest has permissions there
    api = site.api
    api.request("PUT", f"/api/queues/{vpath(other, 'hidden')}", {})
    users = {
        tag: site.user(tags=tag)
        for tag in ("administrator", "monitoring", "policymaker", "management", "", "impersonator")
    }
    expect = {
        "administrator": (200, 200, 200, 200),
        "monitoring": (200, 401, 200, 401),
        "policymaker": (200, 401, 401, 401),
        "management": (200, 401, 401, 401),
        "": (401, 401, 401, 401),
        "impersonator": (401, 401, 401, 401),
    }
    for tag, user in users.items():
        client = site.as_user(user)
        got = tuple(
            client.request("GET", path).status
            for path in ("/api/overview", "/api/users", "/api/nodes", f"/api/vhosts/{vpath(other)}")
        )
        assert got == expect[tag], (tag, got)
        vhosts = client.request("GET", "/api/vhosts")
        if tag in ("", "impersonator"):
            assert vhosts.body == {"error": "not_authorised", "reason": "Not management user"}
            continue
        names = [v["name"] for v in vhosts.body]
        assert (other in names) == (tag in ("administrator", "monitoring")), tag
        queues = [q["name"] for q in client.get("/api/queues")]
        assert ("hidden" in queues) == (tag == "administrator"), tag
        per_vhost = client.request("GET", f"/api/queues/{vpath(other)}")
        assert per_vhost.status == (200 if tag == "administrator" else 401), tag
    assert site.as_user(users["management"]).request("GET", "/api/users").body == {
        "error": "not_authorised",
        "reason": "Not administrator user",
    }
    assert site.as_user(users["management"]).request("GET", "/api/nodes").body == {
        "error": "not_authorised",
        "reason": "Not monitor user",
    }
    overview = site.as_user(users["management"]).get("/api/overview")
    assert "listeners" not in overview and "node" not in overview
    assert "listeners" in site.as_user(users["monitoring"]).get("/api/overview")


def test_changes_take_the_users_permissions(site: Site) -> None:
    other = site.vhost()
    manager = site.user(tags="management")
    narrow = site.user(tags="management", permit=None)
    site.permit("/", narrow, configure="^$", write="^$", read="^$")
    admin = site.user(tags="administrator")
    queue = unique("mq")
    path = f"/api/queues/{vpath('/', queue)}"
    assert site.as_user(manager).request("PUT", path, {}).status == 201
    assert site.as_user(narrow).request("PUT", f"{path}-2", {}).body == ACCESS_REFUSED
    assert site.as_user(narrow).request("DELETE", path).body == ACCESS_REFUSED
    assert (
        site.as_user(manager).request("PUT", f"/api/queues/{vpath(other, 'q')}", {}).body
        == VHOST_REFUSED
    )
    assert (
        site.as_user(admin).request("PUT", f"/api/queues/{vpath(other, 'q')}", {}).body
        == ACCESS_REFUSED
    )
    message = {"properties": {}, "routing_key": queue, "payload": "x", "payload_encoding": "string"}
    refused = site.as_user(narrow).request(
        "POST", "/api/exchanges/%2F/amq.default/publish", message
    )
    assert refused.body == {
        "error": "bad_request",
        "reason": f"403 ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' "
        f"refused for user '{narrow}'",
    }
    get = {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}
    no_read = site.as_user(narrow).request("POST", f"{path}/get", get)
    assert no_read.body == {
        "error": "not_authorised",
        "reason": f"ACCESS_REFUSED - access to queue '{queue}' in vhost '/' "
        f"refused for user '{narrow}'",
    }
    assert site.as_user(manager).request("DELETE", path).status == 204


def test_connections_are_seen_and_closed_by_their_own_user(site: Site) -> None:
    manager = site.user(tags="management")
    monitor = site.user(tags="monitoring")
    own_name, guest_name = unique("own"), unique("guest")
    own = site.connect(manager, "pw", name=own_name)
    site.connect(name=guest_name)
    guests = site.connection_named(guest_name)["name"]
    mine = site.connection_named(own_name)["name"]
    as_manager = site.as_user(manager)
    assert [c["name"] for c in as_manager.get("/api/connections")] == [mine]
    assert as_manager.request("GET", f"/api/connections/{vpath(guests)}").body == {
        "error": "not_authorised",
        "reason": "User not authorised to access object",
    }
    assert site.as_user(monitor).request("GET", f"/api/connections/{vpath(guests)}").status == 200
    assert (
        site.as_user(monitor).request("DELETE", f"/api/connections/{vpath(guests)}").status == 401
    )
    closed = as_manager.request(
        "DELETE", f"/api/connections/{vpath(mine)}", headers={"X-Reason": "bye"}
    )
    assert closed.status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as gone:
        own.process_data_events(time_limit=WAIT)
        own.sleep(WAIT)
    assert (gone.value.reply_code, gone.value.reply_text) == (320, "CONNECTION_FORCED - bye")


# ----- node, health, identity, errors


def test_nodes_health_checks_and_aliveness(site: Site) -> None:
    api = site.api
    [node] = api.get("/api/nodes")
    assert node["running"] is True and node["type"] == "disc"
    assert isinstance(node["os_pid"], str) and node["mem_used"] > 0 and node["fd_used"] > 0
    assert api.get(f"/api/nodes/{vpath(node['name'])}")["name"] == node["name"]
    for check in ("alarms", "local-alarms", "virtual-hosts"):
        assert api.get(f"/api/health/checks/{check}") == {"status": "ok"}
    assert api.get(f"/api/health/checks/port-listener/{site.port}") == {
        "status": "ok",
        "port": site.port,
    }
    down = api.request("GET", "/api/health/checks/port-listener/1")
    assert down.status == 503
    assert (down.body["status"], down.body["reason"], down.body["missing"]) == (
        "failed",
        "No active listener",
        1,
    )
    assert site.port in down.body["ports"]
    assert api.get("/api/aliveness-test/%2F") == {"status": "ok"}
    assert api.request("GET", f"/api/aliveness-test/{unique('v')}").status == 404
    overview = api.get("/api/overview")
    assert overview["rabbitmq_version"] == "3.10.8"
    if not os.environ.get(PEER_ADMIN_PORT_ENV):
        assert overview["product_name"] == "dispatchd"


def test_generic_error_shapes(site: Site) -> None:
    api = site.api
    wrong = api.request("PUT", "/api/overview", {})
    assert wrong.status == 405 and wrong.body == "" and "GET" in wrong.headers["Allow"]
    assert api.request("GET", "/api/no-such-thing").body == NOT_FOUND
    assert AdminClient(api.port, user=None).request("GET", "/api/no-such-thing").body == NOT_FOUND
    doubly = api.request("PUT", f"/api/vhosts/{unique('v')}", raw=b'"{}"')
    assert doubly.body["reason"].startswith(
        "invalid payload: the request body JSON-decoded to a string"
    )
