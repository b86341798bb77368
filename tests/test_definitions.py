"""Definitions round trips with RabbitMQ 3.10.8, over real sockets.

``tests/data/rabbitmq-3.10-definitions.json`` was written by ``rabbitmqctl export_definitions``
on Debian's rabbitmq-server 3.10.8 (alice's password is ``secret``, bob's ``hunter2``). It
imports into dispatchd (API and ``--load-definitions``) with working logins, and its policy,
vhost metadata, limits and global parameter come back out as they went in. With
``DISPATCHD_PEER_PORT`` set (and ``rabbitmqctl`` working), dispatchd's own export is imported
into that RabbitMQ. Policies are stored and exported, not applied (issue 15).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pika
import pytest

from tests.access_support import ctl_command, readable_json
from tests.admin_support import AdminClient, eventually, start_admin_broker
from tests.basic_support import PEER_PORT_ENV
from tests.conftest import ROOT, BrokerProcess

RABBITMQ_EXPORT = ROOT / "tests" / "data" / "rabbitmq-3.10-definitions.json"
OLD_PASSWORDS = {"alice": ("secret", "/"), "bob": ("hunter2", "v1")}


def rabbitmq_export() -> dict[str, Any]:
    return json.loads(RABBITMQ_EXPORT.read_text())


def logs_in(proc: BrokerProcess, user: str, password: str, vhost: str) -> bool:
    credentials = pika.PlainCredentials(user, password)
    with proc.connect(virtual_host=vhost, credentials=credentials) as connection:
        return connection.is_open


def as_set(items: list[dict[str, Any]]) -> set[str]:
    return {json.dumps(item, sort_keys=True) for item in items}


def restart(proc: BrokerProcess, api: AdminClient, kill: bool) -> None:
    """Kill -9 (or stop) the broker, start it again, and wait for its admin."""
    if kill:
        proc.kill()
    else:
        assert proc.stop() == 0
    proc.start()

    def answers() -> bool:
        try:
            return api.request("GET", "/api/overview").status == 200
        except OSError:
            return False

    eventually(answers, "the admin to answer again")


def ctl(proc: BrokerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*ctl_command(proc.data_dir), *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def assert_imported(proc: BrokerProcess, api: AdminClient) -> None:
    """What the RabbitMQ export holds is there, and exports back as it came."""
    source = rabbitmq_export()
    for user, (password, vhost) in OLD_PASSWORDS.items():
        assert logs_in(proc, user, password, vhost)
    v1, v3 = api.get("/api/vhosts/v1"), api.get("/api/vhosts/v3")
    assert (v1["description"], v1["tags"]) == ("first", ["tag-a", "tag-b"])
    assert v3["default_queue_type"] == "quorum"
    exported = api.get("/api/definitions")
    assert exported["policies"] == source["policies"]
    assert api.get("/api/policies/v1") == source["policies"]
    assert api.get("/api/policies/v1/ttl") == source["policies"][0]
    assert exported["parameters"] == source["parameters"]  # v1's vhost limits
    assert exported["global_parameters"] == source["global_parameters"]
    assert {v["name"]: v["limits"] for v in exported["vhosts"]}["v1"] == [
        ["max-connections", 10],
        ["max-queues", 5],
    ]
    v3_metadata = {"description": "", "tags": [], "default_queue_type": "quorum"}
    assert {"name": "v3", "limits": [], "metadata": v3_metadata} in exported["vhosts"]
    for key in ("users", "permissions", "topic_permissions"):
        assert as_set(exported[key]) == as_set(source[key])
    per_vhost = api.get("/api/definitions/v1")
    assert per_vhost["policies"] == source["policies"]
    assert per_vhost["parameters"] == source["parameters"]
    assert ctl(proc, "-s", "list_policies", "-p", "v1").stdout == (
        'v1\tttl\t^q\\.\tqueues\t{"message-ttl":60000}\t0\n'
    )


def test_rabbitmq_export_imports_through_the_api(tmp_path: Path) -> None:
    proc, api = start_admin_broker(tmp_path)
    try:
        answer = api.request("POST", "/api/definitions", rabbitmq_export())
        assert answer.status == 204, answer.body
        assert_imported(proc, api)
    finally:
        assert proc.stop() == 0


def test_rabbitmq_export_loads_at_start_and_survives_restart(tmp_path: Path) -> None:
    proc, api = start_admin_broker(tmp_path, "--load-definitions", str(RABBITMQ_EXPORT))
    try:
        assert_imported(proc, api)
        restart(proc, api, kill=False)
        assert_imported(proc, api)
    finally:
        assert proc.stop() == 0


# ----- bad input: 400 with the reason, and nothing of the document stored

BAD_POLICY = {"vhost": "pol-bad", "name": "p", "pattern": "x", "definition": {"expires": 1}}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"pattern": "("}, "pattern should be regular expression but is invalid"),
        ({"definition": {"foo": 1}}, '[{<<"foo">>,1}] are not recognised policy settings'),
        ({"apply-to": "streams"}, "apply-to 'streams' unrecognised"),
        ({"priority": "high"}, 'priority should be a number, actually was <<"high">>'),
        ({"definition": {"message-ttl": -1}}, "-1 is not a valid message TTL"),
        (None, "runtime parameter component 'shovel' is not supported"),
    ],
)
def test_a_refused_document_stores_nothing(admin_definitions, change, reason) -> None:
    proc, api = admin_definitions
    doc: dict[str, Any] = {
        "users": [{"name": "pol-new", "password_hash": "", "tags": []}],
        "vhosts": [{"name": "pol-bad"}],
        "policies": [{**BAD_POLICY, **(change or {})}],
    }
    if change is None:
        doc["parameters"] = [
            {"component": "shovel", "vhost": "pol-bad", "name": "s", "value": {"src-uri": "x"}}
        ]
    answer = api.request("POST", "/api/definitions", doc)
    assert answer.status == 400 and answer.body["error"] == "bad_request"
    assert reason in answer.body["reason"]
    assert "pol-new" not in [u["name"] for u in api.get("/api/users")]
    assert "pol-bad" not in [v["name"] for v in api.get("/api/vhosts")]
    assert api.get("/api/policies") == [] and api.get("/api/operator-policies") == []


@pytest.fixture(scope="module")
def admin_definitions(tmp_path_factory: pytest.TempPathFactory):
    proc, api = start_admin_broker(tmp_path_factory.mktemp("definitions"))
    yield proc, api
    assert proc.stop() == 0


def test_policies_need_policymaker_and_show_the_users_vhosts(admin_definitions) -> None:
    proc, api = admin_definitions
    doc = {
        "vhosts": [{"name": "pol-mine"}, {"name": "pol-theirs"}],
        "users": [
            {"name": f"pol-{tag}", "password": "pw", "tags": [tag]}
            for tag in ("policymaker", "management")
        ],
        "permissions": [
            {"user": "pol-policymaker", "vhost": "pol-mine", "configure": ".*", "write": ".*",
             "read": ".*"},
        ],
        "policies": [
            {"vhost": v, "name": "p", "pattern": ".*", "definition": {"expires": 9}}
            for v in ("pol-mine", "pol-theirs")
        ],
    }  # fmt: skip
    assert api.request("POST", "/api/definitions", doc).status == 204
    try:
        mine = AdminClient(api.port, user="pol-policymaker", password="pw")
        assert [p["vhost"] for p in mine.get("/api/policies")] == ["pol-mine"]
        assert mine.get("/api/policies/pol-mine/p")["definition"] == {"expires": 9}
        assert mine.request("GET", "/api/policies/pol-theirs").status == 401
        manager = AdminClient(api.port, user="pol-management", password="pw")
        refused = manager.request("GET", "/api/policies")
        assert (refused.status, refused.body["reason"]) == (401, "Not policymaker user")
        assert len(api.get("/api/policies")) == 2  # an administrator sees every vhost's
    finally:
        for vhost in ("pol-mine", "pol-theirs"):
            ctl(proc, "delete_vhost", vhost)
        for user in ("pol-policymaker", "pol-management"):
            ctl(proc, "delete_user", user)


# ----- durability

STORED = {
    "vhosts": [{"name": "kept"}],
    "policies": [
        {"vhost": "kept", "name": "ha", "pattern": "^ha\\.", "apply-to": "queues",
         "definition": {"ha-mode": "exactly", "ha-params": 2}, "priority": 1},
        {"vhost": "kept", "name": "lazy", "pattern": ".*", "apply-to": "all",
         "definition": {"queue-mode": "lazy", "max-length": 10}, "priority": 0.5},
    ],
    "parameters": [
        {"value": {"pattern": "^cap", "definition": {"max-length": 100}, "priority": 3,
                   "apply-to": "queues"},
         "vhost": "kept", "component": "operator_policy", "name": "cap"},
    ],
    "global_parameters": [{"name": "cluster_name", "value": "pol-cluster"}],
}  # fmt: skip


def test_policies_survive_kill_and_restart_and_go_with_their_vhost(tmp_path: Path) -> None:
    proc, api = start_admin_broker(tmp_path)
    try:
        assert api.request("POST", "/api/definitions", STORED).status == 204
        expected = api.get("/api/definitions")
        assert expected["policies"] == STORED["policies"]
        assert expected["parameters"] == STORED["parameters"]
        assert api.get("/api/operator-policies/kept/cap")["priority"] == 3
        assert api.get("/api/overview")["cluster_name"] == "pol-cluster"
        assert api.get("/api/cluster-name") == {"name": "pol-cluster"}
        restart(proc, api, kill=True)
        for key in ("policies", "parameters", "global_parameters"):
            assert api.get("/api/definitions")[key] == expected[key]
        restart(proc, api, kill=False)
        assert api.get("/api/policies/kept") == STORED["policies"]
        assert api.get("/api/overview")["cluster_name"] == "pol-cluster"
        ctl(proc, "delete_vhost", "kept")
        assert api.get("/api/policies") == [] and api.get("/api/operator-policies") == []
        restart(proc, api, kill=True)
        assert api.get("/api/policies") == [] and api.get("/api/operator-policies") == []
        assert api.request("GET", "/api/policies/kept").status == 404
    finally:
        assert proc.stop() == 0


# ----- dispatchd's export imports into RabbitMQ


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.setdefault("RABBITMQ_NODENAME", "rabbit@localhost")
    return subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, env=env, timeout=120
    )


def peer_rabbitmqctl() -> str | None:
    """Why the export cannot be tried against RabbitMQ here (None: it can)."""
    if not os.environ.get(PEER_PORT_ENV):
        return f"{PEER_PORT_ENV} is not set: no RabbitMQ to import into"
    try:
        done = rabbitmqctl("-q", "await_startup")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"rabbitmqctl does not run: {exc}"
    return None if done.returncode == 0 else f"rabbitmqctl failed: {done.stderr.strip()}"


def test_our_export_imports_into_rabbitmq(tmp_path: Path) -> None:
    why = peer_rabbitmqctl()
    if why is not None:
        pytest.skip(why)
    tag = uuid.uuid4().hex[:8]
    user, vhost = f"pol-u-{tag}", f"pol-v-{tag}"
    proc, api = start_admin_broker(tmp_path / "dispatchd")
    try:
        ctl(proc, "add_user", user, "pol-secret")
        ctl(proc, "set_user_tags", user, "policymaker")
        ctl(proc, "add_vhost", vhost, "--description", "from dispatchd")
        ctl(proc, "set_permissions", "-p", vhost, user, "^pol-", ".*", ".*")
        policy = {"vhost": vhost, "name": "pol-ttl", "pattern": "^pol-q", "apply-to": "queues",
                  "definition": {"message-ttl": 5000, "ha-mode": "all"}, "priority": 2}  # fmt: skip
        operator = {"vhost": vhost, "component": "operator_policy", "name": "pol-cap",
                    "value": {"pattern": ".*", "definition": {"max-length": 50}, "priority": 1,
                              "apply-to": "queues"}}  # fmt: skip
        doc = {"policies": [policy], "parameters": [operator]}
        assert api.request("POST", "/api/definitions", doc).status == 204
        credentials = pika.PlainCredentials(user, "pol-secret")
        with proc.connect(virtual_host=vhost, credentials=credentials) as connection:
            channel = connection.channel()
            channel.exchange_declare("pol-x", "topic", durable=True)
            channel.queue_declare("pol-q1", durable=True, arguments={"x-max-length": 7})
            channel.queue_bind("pol-q1", "pol-x", "pol.#")
        target = tmp_path / "export.json"
        ctl(proc, "export_definitions", str(target))
        exported = json.loads(target.read_text())
    finally:
        assert proc.stop() == 0
    # Leave the shared RabbitMQ's own guest and "/" alone: import only what this test made.
    for key in ("users", "vhosts", "permissions", "topic_permissions"):
        exported[key] = [i for i in exported[key] if user in (i.get("user"), i.get("name"))
                         or vhost in (i.get("vhost"), i.get("name"))]  # fmt: skip
    assert exported["global_parameters"] == []  # nothing that would rename the peer's cluster
    with readable_json(exported) as path:
        done = rabbitmqctl("import_definitions", path)
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        listed = eventually(
            lambda: rabbitmqctl("-s", "list_policies", "-p", vhost).stdout.strip(),
            "the policy to be imported into RabbitMQ",
        )
        assert (
            listed == f'{vhost}\tpol-ttl\t^pol-q\tqueues\t{{"ha-mode":"all","message-ttl":5000}}\t2'
        )
        assert rabbitmqctl("-s", "list_operator_policies", "-p", vhost).stdout == (
            f'{vhost}\tpol-cap\t.*\tqueues\t{{"max-length":50}}\t1\n'
        )
        assert f"{user}\t[policymaker]" in rabbitmqctl("-s", "list_users").stdout.splitlines()
        assert rabbitmqctl("authenticate_user", user, "pol-secret").returncode == 0
        assert rabbitmqctl("-s", "list_permissions", "-p", vhost).stdout == (
            f"{user}\t^pol-\t.*\t.*\n"
        )
        assert "pol-q1\t0" in rabbitmqctl("-s", "list_queues", "-p", vhost).stdout.splitlines()
        bindings = rabbitmqctl("-s", "list_bindings", "-p", vhost, "source_name", "routing_key")
        assert "pol-x\tpol.#" in bindings.stdout.splitlines()
    finally:
        rabbitmqctl("delete_vhost", vhost)
        rabbitmqctl("delete_user", user)
