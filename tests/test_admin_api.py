"""The management API over real HTTP, against a running broker with real pika traffic.

Every test checks values (counts, names, flags, rates), not only status codes.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
import uuid

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from dispatchd.admin.rates import RateTracker
from dispatchd.admin.records import properties_key
from dispatchd.passwords import check_password
from tests.admin_support import (
    AdminClient,
    admin_broker,  # noqa: F401 - fixture
    eventually,
    start_admin_broker,
    vpath,
)
from tests.conftest import BrokerProcess, free_port

NOT_FOUND = {"error": "Object Not Found", "reason": "Not Found"}


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def api(admin_broker: tuple[BrokerProcess, AdminClient]) -> AdminClient:  # noqa: F811
    return admin_broker[1]


@pytest.fixture
def amqp(admin_broker: tuple[BrokerProcess, AdminClient]):  # noqa: F811
    connections: list[pika.BlockingConnection] = []

    def connect(**kwargs: object) -> pika.BlockingConnection:
        connection = admin_broker[0].connect(**kwargs)
        connections.append(connection)
        return connection

    yield connect
    for connection in connections:
        if connection.is_open:
            connection.close()


def queue_record(api: AdminClient, queue: str, **expect: object) -> dict:
    """Wait until the queue's record has the expected values, and return it."""

    def probe() -> dict | None:
        record = api.get(f"/api/queues/{vpath('/', queue)}")
        return record if all(record.get(k) == v for k, v in expect.items()) else None

    return eventually(probe, f"queue {queue} with {expect}")


# ----- queues, consumers, channels


def test_queue_counts_follow_publishes_consumes_and_acks(api, amqp) -> None:
    queue = name("counts")
    channel = amqp().channel()
    channel.queue_declare(queue, arguments={"x-max-length": 100})
    for i in range(5):
        channel.basic_publish("", queue, f"m{i}".encode())
    record = queue_record(api, queue, messages_ready=5)
    assert record["messages"] == 5
    assert record["messages_unacknowledged"] == 0
    assert record["consumers"] == 0
    assert record["arguments"] == {"x-max-length": 100}
    assert (record["durable"], record["exclusive"], record["auto_delete"]) == (False, False, False)
    assert record["vhost"] == "/" and record["state"] == "running"
    assert record["message_stats"]["publish"] == 5
    assert record["mailbox"]["depth"] == 0 and record["mailbox"]["handled"] >= 1

    consumer = amqp().channel()
    consumer.basic_qos(prefetch_count=2)
    tag = consumer.basic_consume(queue, lambda *_: None)
    consumer.connection.process_data_events(0.2)
    record = queue_record(api, queue, messages_unacknowledged=2)
    assert record["messages_ready"] == 3 and record["messages"] == 5
    assert record["consumers"] == 1
    assert record["message_stats"]["deliver_get"] == 2
    [detail] = record["consumer_details"]
    assert detail["consumer_tag"] == tag
    assert detail["ack_required"] is True and detail["prefetch_count"] == 2

    [consumer_record] = [c for c in api.get("/api/consumers") if c["consumer_tag"] == tag]
    assert consumer_record["queue"] == {"name": queue, "vhost": "/"}
    assert consumer_record["channel_details"]["number"] == consumer.channel_number
    assert consumer_record["channel_details"]["user"] == "guest"
    assert re.fullmatch(
        r"127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+",
        consumer_record["channel_details"]["connection_name"],
    )

    [channel_record] = [
        c
        for c in api.get("/api/channels")
        if c["name"] == consumer_record["channel_details"]["name"]
    ]
    assert channel_record["prefetch_count"] == 2
    assert channel_record["consumer_count"] == 1
    assert channel_record["messages_unacknowledged"] == 2
    assert channel_record["message_stats"]["deliver_get"] == 2

    consumer.basic_cancel(tag)  # cancelled: what it holds stays unacknowledged...
    queue_record(api, queue, messages_ready=3, messages_unacknowledged=2, consumers=0)
    consumer.close()  # ...until its channel closes
    queue_record(api, queue, messages_ready=5, messages_unacknowledged=0)
    assert api.get(f"/api/consumers/{vpath('/')}") == [
        c for c in api.get("/api/consumers") if c["queue"]["vhost"] == "/"
    ]


def test_acks_and_rates(api, amqp) -> None:
    queue = name("rates")
    channel = amqp().channel()
    channel.queue_declare(queue)
    channel.basic_qos(prefetch_count=50)
    channel.basic_consume(queue, lambda ch, m, _p, _b: ch.basic_ack(m.delivery_tag))
    api.get(f"/api/queues/{vpath('/', queue)}")  # first sample: rates start at 0
    api.get("/api/overview")
    # Not a wait for a condition: 1.3 s of publishes (and acks) for the rates to measure.
    deadline = time.monotonic() + 1.3
    sent = 0
    while time.monotonic() < deadline:
        for _ in range(50):
            channel.basic_publish("", queue, b"x")
        sent += 50
        channel.connection.process_data_events(0)  # also runs the acking consumer
    # Sampled right away, the window (over a second) holds the publishes and the acks.
    stats = api.get(f"/api/queues/{vpath('/', queue)}")["message_stats"]
    overview = api.get("/api/overview")["message_stats"]
    assert stats["publish_details"]["rate"] > 0 and stats["ack_details"]["rate"] > 0
    assert overview["publish_details"]["rate"] > 0 and overview["ack_details"]["rate"] > 0

    def drained() -> bool:
        channel.connection.process_data_events(0.05)
        return not queue_pending(api, queue)

    eventually(drained, "the consumer to ack everything")
    record = queue_record(api, queue, messages=0)
    stats = record["message_stats"]
    assert stats["publish"] == sent and stats["deliver_get"] == sent and stats["ack"] == sent
    overview = api.get("/api/overview")["message_stats"]
    assert overview["publish"] >= sent and overview["ack"] >= sent


def queue_pending(api: AdminClient, queue: str) -> bool:
    record = api.get(f"/api/queues/{vpath('/', queue)}")
    return bool(record["messages"])


def test_connections_and_delete_connection(api, amqp) -> None:
    label = name("admin-test")
    connection = amqp(client_properties={"connection_name": label})
    first = connection.channel()
    second = connection.channel()
    second.confirm_delivery()

    def mine() -> dict | None:
        for record in api.get("/api/connections"):
            if record["client_properties"].get("connection_name") == label:
                return record
        return None

    record = eventually(mine, "the connection")
    assert record["user"] == "guest" and record["vhost"] == "/"
    assert record["channels"] == 2 and record["state"] == "running"
    assert record["peer_host"] == "127.0.0.1" and record["protocol"] == "AMQP 0-9-1"
    assert record["client_properties"]["product"] == "Pika Python Client Library"
    assert abs(record["connected_at"] / 1000 - time.time()) < 60
    assert api.get(f"/api/connections/{vpath(record['name'])}")["name"] == record["name"]
    channels = api.get(f"/api/connections/{vpath(record['name'])}/channels")
    assert sorted(c["number"] for c in channels) == [first.channel_number, second.channel_number]
    assert [c["confirm"] for c in sorted(channels, key=lambda c: c["number"])] == [False, True]

    answer = api.request("DELETE", f"/api/connections/{vpath(record['name'])}")
    assert answer.status == 204
    with pytest.raises(ConnectionClosedByBroker) as closed:
        while True:
            connection.process_data_events(0.1)
    assert closed.value.reply_code == 320
    eventually(lambda: mine() is None, "the connection to disappear")
    assert api.request("DELETE", f"/api/connections/{vpath(record['name'])}").body == NOT_FOUND


# ----- exchanges and bindings


def test_exchanges_and_bindings(api, amqp) -> None:
    exchange, queue = name("ex"), name("bound")
    channel = amqp().channel()
    channel.exchange_declare(exchange, "topic", durable=True)
    channel.queue_declare(queue)
    channel.queue_bind(queue, exchange, "a.#", arguments={"k": "v"})
    record = api.get(f"/api/exchanges/{vpath('/', exchange)}")
    assert record["type"] == "topic" and record["durable"] is True
    assert record["internal"] is False and record["vhost"] == "/"
    names = {x["name"] for x in api.get(f"/api/exchanges/{vpath('/')}")}
    assert {"", "amq.direct", "amq.fanout", "amq.topic", "amq.headers", exchange} <= names
    assert api.get("/api/exchanges/%2F/amq.default")["type"] == "direct"

    expected = {
        "source": exchange,
        "vhost": "/",
        "destination": queue,
        "destination_type": "queue",
        "routing_key": "a.#",
        "arguments": {"k": "v"},
        "properties_key": properties_key("a.#", {"k": "v"}),
    }
    assert expected in api.get("/api/bindings")
    assert api.get(f"/api/exchanges/{vpath('/', exchange)}/bindings/source") == [expected]
    queue_bindings = api.get(f"/api/queues/{vpath('/', queue)}/bindings")
    assert [b["source"] for b in queue_bindings] == ["", exchange]  # default binding first
    assert queue_bindings[0]["routing_key"] == queue


# ----- purge, get, delete


def test_get_purge_and_delete_queue(api, amqp) -> None:
    queue = name("peek")
    channel = amqp().channel()
    channel.queue_declare(queue)
    props = pika.BasicProperties(content_type="text/plain", headers={"h": 1}, delivery_mode=2)
    for body in (b"one", b"two", b"\xff\xfe"):
        channel.basic_publish("", queue, body, props)
    queue_record(api, queue, messages_ready=3)
    path = f"/api/queues/{vpath('/', queue)}"

    got = api.request(
        "POST", f"{path}/get", {"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto"}
    )
    assert got.status == 200
    assert [m["payload"] for m in got.body] == ["one", "two"]
    assert [m["message_count"] for m in got.body] == [2, 1]
    assert got.body[0]["properties"] == {
        "content_type": "text/plain",
        "headers": {"h": 1},
        "delivery_mode": 2,
    }
    assert got.body[0]["payload_encoding"] == "string" and got.body[0]["payload_bytes"] == 3
    assert got.body[0]["exchange"] == "" and got.body[0]["routing_key"] == queue
    queue_record(api, queue, messages_ready=3, messages_unacknowledged=0)

    again = api.request(
        "POST",
        f"{path}/get",
        {"count": 5, "ackmode": "ack_requeue_false", "encoding": "auto", "truncate": 2},
    )
    assert [m["payload"] for m in again.body] == ["on", "tw", "//4="]
    assert [m["redelivered"] for m in again.body] == [True, True, False]
    assert again.body[2]["payload_encoding"] == "base64"
    queue_record(api, queue, messages=0)

    channel.basic_publish("", queue, b"x")
    channel.basic_publish("", queue, b"y")
    queue_record(api, queue, messages_ready=2)
    assert api.request("DELETE", f"{path}/contents").status == 204
    queue_record(api, queue, messages_ready=0)

    assert api.request("DELETE", path).status == 204
    assert api.request("GET", path).body == NOT_FOUND
    with pytest.raises(ChannelClosedByBroker) as closed:
        amqp().channel().queue_declare(queue, passive=True)
    assert closed.value.reply_code == 404


def test_delete_queue_if_unused_and_exclusive(api, amqp) -> None:
    queue = name("busy")
    channel = amqp().channel()
    channel.queue_declare(queue)
    channel.basic_consume(queue, lambda *_: None, auto_ack=True)
    path = f"/api/queues/{vpath('/', queue)}"
    refused = api.request("DELETE", f"{path}?if-unused=true")
    assert refused.status == 400
    assert refused.body["error"] == "bad_request" and "in use" in refused.body["reason"]
    assert api.get(path)["consumers"] == 1

    exclusive = amqp().channel().queue_declare("", exclusive=True).method.queue
    record = api.get(f"/api/queues/{vpath('/', exclusive)}")
    assert record["exclusive"] is True and record["owner_pid_details"]["name"]
    assert api.request("DELETE", f"/api/queues/{vpath('/', exclusive)}").status == 204
    assert api.request("GET", f"/api/queues/{vpath('/', exclusive)}").status == 404


# ----- vhosts, users, definitions


def test_vhosts_users_whoami(api) -> None:
    vhosts = api.get("/api/vhosts")
    assert [v["name"] for v in vhosts] == ["/"]
    assert api.get("/api/vhosts/%2F")["name"] == "/"
    [guest] = api.get("/api/users")
    assert guest["name"] == "guest" and guest["tags"] == ["administrator"]
    assert check_password("guest", guest["password_hash"])
    assert guest["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert "guest" not in guest["password_hash"]
    assert api.get("/api/whoami") == {"name": "guest", "tags": ["administrator"]}


def test_definitions_export_and_import(api, amqp, tmp_path) -> None:
    exchange, queue = name("defx"), name("defq")
    channel = amqp().channel()
    channel.exchange_declare(exchange, "fanout", durable=True)
    channel.queue_declare(queue, durable=True, arguments={"x-message-ttl": 60000})
    channel.queue_bind(queue, exchange, "rk")
    channel.queue_declare("", exclusive=True)
    exported = api.get("/api/definitions")
    assert {
        "name": queue,
        "vhost": "/",
        "durable": True,
        "auto_delete": False,
        "arguments": {"x-message-ttl": 60000},
    } in exported["queues"]
    assert not any(q["name"].startswith("amq.gen-") for q in exported["queues"])
    assert not any(x["name"].startswith("amq.") or not x["name"] for x in exported["exchanges"])
    assert {
        "source": exchange,
        "vhost": "/",
        "destination": queue,
        "destination_type": "queue",
        "routing_key": "rk",
        "arguments": {},
    } in exported["bindings"]
    assert [u["name"] for u in exported["users"]] == ["guest"]
    per_vhost = api.get("/api/definitions/%2F")
    assert "users" not in per_vhost and all("vhost" not in q for q in per_vhost["queues"])

    proc, other = start_admin_broker(tmp_path)
    try:
        assert other.request("POST", "/api/definitions", exported).status == 204
        assert other.get(f"/api/exchanges/{vpath('/', exchange)}")["type"] == "fanout"
        imported = other.get(f"/api/queues/{vpath('/', queue)}")
        assert imported["durable"] is True and imported["arguments"] == {"x-message-ttl": 60000}
        assert other.get("/api/definitions")["bindings"] == exported["bindings"]
        with pika.BlockingConnection(proc.params()) as connection:
            ch = connection.channel()
            ch.basic_publish(exchange, "any", b"routed")
            assert (
                eventually(
                    lambda: ch.queue_declare(queue, passive=True).method.message_count,
                    "the imported binding to route",
                )
                == 1
            )
        refused = other.request(
            "POST",
            "/api/definitions",
            {"exchanges": [{"name": "bad", "vhost": "/", "type": "no-such-type"}]},
        )
        assert refused.status == 400 and "bad" in refused.body["reason"]
        assert other.request("POST", "/api/definitions", {"queues": [{"durable": 1}]}).status == 400
        vhost_defs = {
            "vhosts": [{"name": "imported"}],
            "queues": [{"name": "q-in-vhost", "vhost": "imported", "durable": False}],
        }
        assert other.request("POST", "/api/definitions", vhost_defs).status == 204
        assert [v["name"] for v in other.get("/api/vhosts")] == ["/", "imported"]
        assert [q["name"] for q in other.get("/api/queues/imported")] == ["q-in-vhost"]
        assert (
            other.request("POST", "/api/definitions/imported", {"queues": [{"name": "q2"}]}).status
            == 204
        )
        assert other.get("/api/queues/imported/q2")["vhost"] == "imported"
        assert proc.stop() == 0
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()


# ----- actors and metrics


def test_actors_show_mailboxes_and_topology(api, amqp) -> None:
    queue = name("topo")
    channel = amqp().channel()
    channel.queue_declare(queue)
    channel.basic_consume(queue, lambda *_: None, auto_ack=True)
    for _ in range(20):
        channel.basic_publish("", queue, b"x")
    channel.connection.process_data_events(0.2)

    def actors_by_kind() -> dict[str, list[dict]]:
        found: dict[str, list[dict]] = {}
        for actor in api.get("/api/actors"):
            found.setdefault(actor["kind"], []).append(actor)
        return found

    def settled() -> dict[str, list[dict]] | None:
        found = actors_by_kind()
        [q] = [a for a in found["queue"] if a["name"] == queue]
        return found if q["sends_to"] else None

    found = eventually(settled, "the queue to deliver to its consumer")
    [q] = [a for a in found["queue"] if a["name"] == queue]
    assert q["owner"] == "/" and q["mailbox_depth"] == 0 and q["oldest_age"] == 0
    assert set(q) >= {
        "urn",
        "kind",
        "name",
        "owner",
        "mailbox_depth",
        "handled",
        "rate",
        "oldest_age",
        "sends_to",
    }
    by_urn = {a["urn"]: a for kind in found.values() for a in kind}
    # the live topology: channel -> default exchange -> queue -> consumer -> channel
    assert [by_urn[u]["kind"] for u in q["sends_to"]] == ["consumer"]
    consumer = by_urn[q["sends_to"][0]]
    channel_actor = by_urn[consumer["sends_to"][0]]
    assert channel_actor["kind"] == "channel"
    default = next(a for a in found["exchange"] if a["name"] == "amq.default")
    assert default["urn"] in channel_actor["sends_to"]
    assert q["urn"] in default["sends_to"]
    assert {"connection", "channel", "vhost", "exchange", "queue", "consumer"} <= set(found)

    # Watching does not count as work: handled stays put while nothing happens.
    before = api.get(f"/api/actors/{vpath(q['urn'])}")
    assert before["details"]["messages_ready"] == 0 and before["details"]["consumers"]
    for _ in range(3):
        api.get("/api/actors")
    assert api.get(f"/api/actors/{vpath(q['urn'])}")["handled"] == before["handled"]
    assert api.request("GET", "/api/actors/urn:uuid:nope").body == NOT_FOUND


METRIC = re.compile(r"^(dispatchd_\w+)(\{[^}]*\})? (\S+)$")


def scrape(api: AdminClient) -> dict[str, float]:
    answer = AdminClient(api.port, user=None).request("GET", "/metrics")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in answer.body.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) dispatchd_\w+ .+$", line), line
            continue
        match = METRIC.match(line)
        assert match, line
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def test_metrics(api, amqp) -> None:
    queue = name("metrics")
    connection = amqp()
    channel = connection.channel()
    channel.queue_declare(queue)
    for _ in range(3):
        channel.basic_publish("", queue, b"m")
    queue_record(api, queue, messages_ready=3)
    samples = scrape(api)
    label = f'{{vhost="/",queue="{queue}"}}'
    assert samples[f"dispatchd_queue_messages_ready{label}"] == 3
    assert samples[f"dispatchd_queue_messages_unacked{label}"] == 0
    assert samples[f"dispatchd_queue_consumers{label}"] == 0
    assert samples[f"dispatchd_queue_messages_published_total{label}"] == 3
    assert samples["dispatchd_connections"] >= 1 and samples["dispatchd_channels"] >= 1
    assert samples['dispatchd_actors{kind="queue"}'] >= 1
    assert 'dispatchd_mailbox_depth{kind="queue"}' in samples
    assert 'dispatchd_mailbox_oldest_message_age_seconds{kind="channel"}' in samples
    # A durable queue with a persistent message makes the store commit: its latency shows.
    channel.queue_declare(queue + "-durable", durable=True)
    channel.confirm_delivery()
    channel.basic_publish("", queue + "-durable", b"p", pika.BasicProperties(delivery_mode=2))
    stored = scrape(api)
    assert stored["dispatchd_store_commit_seconds_count"] >= 2  # the declare, the message
    assert 0 < stored["dispatchd_store_commit_seconds_sum"] < 60
    assert 0 < stored["dispatchd_store_commit_last_seconds"] < 60
    assert stored["dispatchd_store_rows_written_total"] >= 1
    assert stored["dispatchd_store_commit_failures_total"] == 0
    channel.queue_delete(queue + "-durable")
    published = samples["dispatchd_messages_published_total"]
    assert published >= 3
    connection.close()  # counters outlive the channel that counted
    eventually(
        lambda: scrape(api)["dispatchd_channels"] < samples["dispatchd_channels"],
        "the channel to close",
    )
    assert scrape(api)["dispatchd_messages_published_total"] >= published


# ----- access and bad input


def test_credentials(api) -> None:
    anonymous = AdminClient(api.port, user=None).request("GET", "/api/overview")
    assert anonymous.status == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="RabbitMQ Management"'
    assert anonymous.body == ""  # as RabbitMQ 3.10.8
    wrong = AdminClient(api.port, password="nope").request("GET", "/api/queues")
    assert wrong.status == 401
    assert wrong.body == {"error": "not_authorized", "reason": "Login failed"}  # sic, with z
    assert wrong.headers["WWW-Authenticate"] == 'Basic realm="RabbitMQ Management"'
    page = AdminClient(api.port, user=None).request("GET", "/")  # the login form: anyone
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "<svg" in page.body and "http://" not in page.body.replace("http://www.w3.org", "")


def test_bad_input_answers_json_and_the_admin_survives(api) -> None:
    assert api.request("GET", "/api/queues/no-such-vhost").body == NOT_FOUND
    assert api.request("GET", "/api/queues/no-such-vhost").status == 404
    assert api.request("GET", "/api/queues/%2F/no-such-queue").body == NOT_FOUND
    assert api.request("GET", "/api/exchanges/%2F/no-such-exchange").status == 404
    assert api.request("DELETE", "/api/queues/%2F/no-such-queue").status == 404
    assert api.request("GET", "/api/no-such-thing").body == NOT_FOUND
    assert api.request("GET", "/api/connections/nope").status == 404
    bad_json = api.request("POST", "/api/queues/%2F/x/get", raw=b"{not json")
    assert bad_json.status == 400 and bad_json.body["reason"] == "not_json"
    bad_mode = api.request("POST", "/api/definitions", raw=b"[1, 2]")
    assert bad_mode.status == 400 and bad_mode.body["error"] == "bad_request"
    queue = name("bad")
    assert (
        api.request("POST", f"/api/queues/{vpath('/', queue)}/get", {"ackmode": "x"}).status == 400
    )
    assert api.request("PUT", "/api/overview").status == 405
    with socket.create_connection(("127.0.0.1", api.port), timeout=2) as sock:
        sock.sendall(b"\x16\x03\x01garbage that is not HTTP\r\n\r\n")
        sock.recv(1024)
    assert api.get("/api/overview")["product_name"] == "dispatchd"


def test_guest_only_from_loopback(tmp_path) -> None:
    """As RabbitMQ: guest may not log in from another address unless loopback_users allows."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        address = probe.getsockname()[0]
    except OSError:
        address = "127.0.0.1"
    finally:
        probe.close()
    if address.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address")
    for loopback_users, expected in (("guest", 401), ("", 200)):
        proc, client = start_admin_broker(
            tmp_path / (loopback_users or "none"),
            "--bind",
            "0.0.0.0",
            "--loopback-users",
            loopback_users,
        )
        try:
            remote = AdminClient(client.port, host=address).request("GET", "/api/overview")
            assert remote.status == expected, remote.body
            login = AdminClient(client.port, host=address, user=None).request(
                "POST", "/login", {"username": "guest", "password": "guest"}
            )
            assert login.status == expected, login.body
            if expected == 401:
                assert remote.body["reason"] == "User can only log in via localhost"
                assert login.body["reason"] == "User can only log in via localhost"
            assert client.request("GET", "/api/overview").status == 200
        finally:
            proc.stop()


def test_busy_admin_port_fails_start_up(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = BrokerProcess(
            free_port(),
            tmp_path / "data",
            tmp_path / "log",
            extra_args=["--admin-port", str(taken.getsockname()[1])],
        )
        with contextlib.suppress(RuntimeError):  # it may exit before or after AMQP listens
            proc.start(timeout=10)
        assert proc.proc is not None
        assert proc.proc.wait(10) != 0
    assert "cannot listen" in proc.log and "for the admin page" in proc.log


def test_rate_tracker() -> None:
    rates = RateTracker(min_interval=1.0)
    assert rates.rate("k", 0.0, 10) == 0.0
    assert rates.rate("k", 0.5, 20) == 0.0  # too soon: the window stays open
    assert rates.rate("k", 2.0, 40) == 15.0
    assert rates.rate("k", 2.1, 90) == 15.0
    assert rates.rate("k", 3.0, 5) == 0.0  # went down: a new entity under the same key


def test_dashboard_is_everything_the_page_shows(api, amqp) -> None:
    queue = name("dash")
    amqp().channel().queue_declare(queue)
    dashboard = api.get("/api/dashboard")
    assert set(dashboard) == {
        "overview",
        "queues",
        "connections",
        "channels",
        "exchanges",
        "consumers",
        "actors",
    }
    assert queue in [q["name"] for q in dashboard["queues"]]
    assert dashboard["overview"]["object_totals"]["queues"] == len(dashboard["queues"])
    assert dashboard["overview"]["actor_totals"]["actors"] == len(dashboard["actors"])
    assert [x["name"] for x in dashboard["exchanges"]] == [
        x["name"] for x in api.get("/api/exchanges")
    ]
