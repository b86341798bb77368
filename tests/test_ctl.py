"""``dispatchd ctl`` against rabbitmqctl: the same verbs print the same thing for the same state.

The expected outputs were recorded from rabbitmqctl 3.10.8; with ``DISPATCHD_PEER_PORT`` the
tests run rabbitmqctl itself against that RabbitMQ. Rows are compared as sets where
RabbitMQ's order is its tables' hash order. The rest is dispatchd's own: the socket, finding
the broker from the daemon's settings, and state that survives a restart and ``kill -9``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pika
import pytest

from tests.access_support import Operator, ctl_command, operator_of, readable_json
from tests.access_support import operator as operator
from tests.basic_support import PEER_PORT_ENV
from tests.conftest import ROOT, BrokerProcess

dispatchd_only = pytest.mark.skipif(
    bool(os.environ.get(PEER_PORT_ENV)), reason="about dispatchd ctl itself"
)


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_add_user_messages_and_exit_codes(operator: Operator) -> None:
    name = "ctl-" + os.urandom(4).hex()
    done = operator.run("add_user", name, "pw")
    operator.users.append(name)
    assert done.stdout == (
        f'Adding user "{name}" ...\n'
        "Done. Don't forget to grant the user permissions to some virtual hosts! "
        "See 'rabbitmqctl help set_permissions' to learn more.\n"
    )
    again = operator.run("add_user", name, "pw", check=False)
    assert (again.returncode, again.stdout, again.stderr) == (
        70,
        f'Adding user "{name}" ...\n',
        f'Error:\nUser "{name}" already exists\n',
    )
    assert operator.run("-q", "add_user", name + "-q", "pw", check=False).stdout == ""
    operator.users.append(name + "-q")
    ok = operator.run("authenticate_user", name, "pw")
    assert ok.stdout == f'Authenticating user "{name}" ...\nSuccess\n'
    bad = operator.run("authenticate_user", name, "wrong", check=False)
    assert (bad.returncode, bad.stderr) == (
        65,
        f'Error:\nError: failed to authenticate user "{name}"\n'
        f"user '{name}' - invalid credentials\n",
    )
    tags = operator.run("set_user_tags", name, "management", "policymaker")
    assert tags.stdout == f'Setting tags for user "{name}" to [management, policymaker] ...\n'
    listed = operator.run("-s", "list_users").stdout
    assert f"{name}\t[management, policymaker]" in lines(listed)
    listed = operator.run("--formatter", "json", "list_users").stdout
    assert listed.startswith("[\n{") and listed.endswith("}\n]\n")
    rows = [json.loads(line.lstrip(",")) for line in lines(listed)[1:-1]]
    assert {"user": name, "tags": ["management", "policymaker"]} in rows


@pytest.mark.parametrize(
    ("args", "code", "stderr"),
    [
        (("delete_user", "nosuch-user"), 67, 'Error:\nUser "nosuch-user" does not exist\n'),
        (
            ("change_password", "nosuch-user", "x"),
            67,
            'Error:\nUser "nosuch-user" does not exist\n',
        ),
        (("clear_password", "nosuch-user"), 69, 'Error:\n{:no_such_user, "nosuch-user"}\n'),
        (("delete_vhost", "nosuch-vhost"), 65, "Virtual host 'nosuch-vhost' does not exist\n"),
        (
            ("set_permissions", "-p", "nosuch-vhost", "guest", ".*", ".*", ".*"),
            69,
            "Error:\nVirtual host nosuch-vhost does not exist\n",
        ),
        (
            ("set_permissions", "nosuch-user", ".*", ".*", ".*"),
            67,
            "Error:\nUser nosuch-user does not exist\n",
        ),
        (
            ("list_permissions", "-p", "nosuch-vhost"),
            65,
            "Virtual host 'nosuch-vhost' does not exist\n",
        ),
        (("list_user_permissions", "nosuch-user"), 69, 'Error:\n{:no_such_user, "nosuch-user"}\n'),
        (
            ("set_vhost_limits", "-p", "/", "notjson"),
            69,
            "Error:\nJSON decoding error. Reason: badarg\n",
        ),
    ],
)
def test_refusals_word_as_rabbitmqctl(operator: Operator, args, code, stderr) -> None:
    done = operator.run(*args, check=False)
    assert (done.returncode, done.stderr) == (code, stderr)


def test_usage_errors(operator: Operator) -> None:
    done = operator.run("add_user", check=False)
    assert done.returncode == 64
    assert lines(done.stderr)[:3] == [
        "Error (argument validation): not enough arguments.",
        "Arguments given:",
        "\tadd_user",
    ]
    done = operator.run("list_queues", "nosuchcolumn", check=False)
    assert done.returncode == 64
    assert lines(done.stderr)[0] == (
        "Error (argument validation): Info key(s) nosuchcolumn are not supported"
    )
    done = operator.run("set_permissions", "-p", "/", "guest", "(", ".*", ".*", check=False)
    assert done.returncode == 69 and "{:invalid_regexp, '('" in done.stderr


def test_permission_listings(operator: Operator) -> None:
    vhost, user = operator.vhost(), operator.user()
    set_ = operator.run("set_permissions", "-p", vhost, user, "^a-.*", "^w-.*", "^r-.*")
    assert set_.stdout == f'Setting permissions for user "{user}" in vhost "{vhost}" ...\n'
    topic = operator.run(
        "set_topic_permissions", "-p", vhost, user, "amq.topic", "^pub\\.{username}", "^sub\\..*"
    )
    assert topic.stdout == (
        f'Setting topic permissions on "amq.topic" for user "{user}" in vhost "{vhost}" ...\n'
    )
    listed = lines(operator.run("list_permissions", "-p", vhost).stdout)
    assert listed[:2] == [
        f'Listing permissions for vhost "{vhost}" ...',
        "user\tconfigure\twrite\tread",
    ]
    assert sorted(listed[2:]) == sorted([f"{user}\t^a-.*\t^w-.*\t^r-.*", "guest\t.*\t.*\t.*"])
    assert lines(operator.run("list_user_permissions", user).stdout) == [
        f'Listing permissions for user "{user}" ...',
        "vhost\tconfigure\twrite\tread",
        f"{vhost}\t^a-.*\t^w-.*\t^r-.*",
    ]
    assert operator.run("-s", "list_topic_permissions", "-p", vhost).stdout == (
        f"{user}\tamq.topic\t^pub\\.{{username}}\t^sub\\..*\n"
    )
    assert operator.run("--formatter", "json", "list_user_permissions", user).stdout == (
        f'[\n{{"vhost":"{vhost}","configure":"^a-.*","write":"^w-.*","read":"^r-.*"}}\n]\n'
    )
    cleared = operator.run("clear_permissions", "-p", vhost, user)
    assert cleared.stdout == f'Clearing permissions for user "{user}" in vhost "{vhost}" ...\n'
    assert operator.run("--formatter", "json", "list_user_permissions", user).stdout == "[]\n"


def test_vhost_listings_and_limits(operator: Operator) -> None:
    name = "ctl-v-" + os.urandom(4).hex()
    added = operator.run("add_vhost", name, "--description", "first", "--tags", "tag-a,tag-b")
    operator.vhosts.append(name)
    assert added.stdout == f'Adding vhost "{name}" ...\n'
    listed = lines(operator.run("list_vhosts", "name", "tracing", "description", "tags").stdout)
    assert listed[:2] == ["Listing vhosts ...", "name\ttracing\tdescription\ttags"]
    assert f"{name}\tfalse\tfirst\ttag-a,tag-b" in listed
    limits = operator.run(
        "set_vhost_limits", "-p", name, '{"max-connections": 10, "max-queues": 5}'
    )
    assert limits.stdout == (
        f'Setting vhost limits to "{{"max-connections": 10, "max-queues": 5}}" '
        f'for vhost "{name}" ...\n'
    )
    assert operator.run("list_vhost_limits", "-p", name).stdout == (
        f'Listing limits for vhost "{name}" ...\n{{"max-connections":10,"max-queues":5}}\n'
    )
    cleared = operator.run("clear_vhost_limits", "-p", name)
    assert cleared.stdout == f'Clearing vhost "{name}" limits ...\n'
    assert operator.run("-q", "list_vhost_limits", "-p", name).stdout == "\n"


def test_object_listings(operator: Operator) -> None:
    vhost = operator.vhost()
    channel = operator.connect(vhost=vhost).channel()
    channel.exchange_declare("ex.orders", "topic", durable=True)
    channel.queue_declare("q.orders", durable=True, arguments={"x-max-length": 1000})
    channel.queue_bind("q.orders", "ex.orders", "orders.#")
    channel.basic_publish("ex.orders", "orders.1", b"x")
    channel.basic_publish("ex.orders", "orders.2", b"y")
    channel.queue_declare("q.orders", passive=True)  # a round trip after the publishes
    queues = operator.run("list_queues", "-p", vhost, "name", "messages", "durable", "arguments")
    assert lines(queues.stdout) == [
        "Timeout: 60.0 seconds ...",
        f"Listing queues for vhost {vhost} ...",
        "name\tmessages\tdurable\targuments",
        'q.orders\t2\ttrue\t[{"x-max-length",1000}]',
    ]
    as_json = operator.run("--formatter", "json", "list_queues", "-p", vhost, "name", "arguments")
    assert as_json.stdout == (
        '[\n{"name":"q.orders","arguments":[["x-max-length","signedint",1000]]}\n]\n'
    )
    exchanges = lines(operator.run("-s", "list_exchanges", "-p", vhost).stdout)
    assert sorted(exchanges) == sorted(
        ["\tdirect", "amq.direct\tdirect", "amq.fanout\tfanout", "amq.headers\theaders",
         "amq.match\theaders", "amq.rabbitmq.trace\ttopic", "amq.topic\ttopic",
         "ex.orders\ttopic"]
    )  # fmt: skip
    bindings = lines(operator.run("list_bindings", "-p", vhost).stdout)
    assert bindings[:2] == [
        f"Listing bindings for vhost {vhost}...",
        "source_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments",
    ]
    assert sorted(bindings[2:]) == [
        "\texchange\tq.orders\tqueue\tq.orders\t[]",
        "ex.orders\texchange\tq.orders\tqueue\torders.#\t[]",
    ]
    purged = operator.run("purge_queue", "-p", vhost, "q.orders")
    assert purged.stdout == f"Purging queue 'q.orders' in vhost '{vhost}' ...\n"
    assert lines(operator.run("-s", "list_queues", "-p", vhost).stdout) == ["q.orders\t0"]


def test_policy_listings(operator: Operator) -> None:
    vhost, empty = operator.vhost(prefix="pol"), operator.vhost(prefix="pol")
    policy = {
        "vhost": vhost,
        "name": "pol-ttl",
        "pattern": "^q\\.",
        "apply-to": "queues",
        "definition": {"message-ttl": 60000, "ha-mode": "all"},
        "priority": 1,
    }
    capped = {"pattern": ".*", "definition": {"max-length": 100}, "priority": 3, "apply-to": "all"}
    operator_policy = {"vhost": vhost, "component": "operator_policy", "name": "pol-cap"}
    doc = {"policies": [policy], "parameters": [{**operator_policy, "value": capped}]}
    with readable_json(doc) as path:
        operator.run("import_definitions", path)
    assert lines(operator.run("list_policies", "-p", vhost).stdout) == [
        f'Listing policies for vhost "{vhost}" ...',
        "vhost\tname\tpattern\tapply-to\tdefinition\tpriority",
        f'{vhost}\tpol-ttl\t^q\\.\tqueues\t{{"ha-mode":"all","message-ttl":60000}}\t1',
    ]
    assert operator.run("--formatter", "json", "list_operator_policies", "-p", vhost).stdout == (
        f'[\n{{"vhost":"{vhost}","name":"pol-cap","pattern":".*","apply-to":"all",'
        '"definition":"{\\"max-length\\":100}","priority":3}\n]\n'
    )
    assert operator.run("-s", "list_operator_policies", "-p", vhost).stdout == (
        f'{vhost}\tpol-cap\t.*\tall\t{{"max-length":100}}\t3\n'
    )
    assert operator.run("list_policies", "-p", empty).stdout == (
        f'Listing policies for vhost "{empty}" ...\n\n'
    )
    assert operator.run("-q", "list_operator_policies", "-p", empty).stdout == "\n"
    assert operator.run("--formatter", "json", "list_policies", "-p", empty).stdout == "[]\n"
    refused = operator.run("list_policies", "-p", "nosuch-vhost", check=False)
    assert (refused.returncode, refused.stderr) == (
        65,
        "Virtual host 'nosuch-vhost' does not exist\n",
    )
    extra = operator.run("list_operator_policies", "extra", check=False)
    assert (extra.returncode, lines(extra.stderr)[0]) == (
        64,
        "Error (argument validation): too many arguments.",
    )


@dispatchd_only
def test_socket_is_private_and_found_from_the_daemon_settings(
    broker: BrokerProcess, tmp_path
) -> None:
    sock = broker.data_dir / "dispatchd.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DISPATCHD_DATA_DIR": str(broker.data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "dispatchd", "ctl", "-q", "list_vhosts"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "/" in lines(done.stdout), done.stderr
    config = tmp_path / "dispatchd.toml"
    config.write_text(f'data_dir = "{broker.data_dir}"\n')
    done = subprocess.run(
        [sys.executable, "-m", "dispatchd", "ctl", "--config", str(config), "await_startup"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    down = subprocess.run(
        [*ctl_command(tmp_path / "nothing-here"), "list_users"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60,
    )  # fmt: skip
    assert down.returncode == 69
    assert down.stderr.startswith("Error: unable to perform an operation on node")


@dispatchd_only
def test_users_vhosts_and_permissions_survive_restart_and_kill(fresh_broker: BrokerProcess) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*ctl_command(fresh_broker.data_dir), *args],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done

    ctl("add_user", "carol", "pw1")
    ctl("add_vhost", "kept", "--description", "survives")
    ctl("set_permissions", "-p", "kept", "carol", "^c-.*", ".*", ".*")
    ctl("set_topic_permissions", "-p", "kept", "carol", "amq.topic", "^t\\.", ".*")
    ctl("set_user_limits", "carol", '{"max-channels": 5}')
    channel = fresh_broker.connect(
        virtual_host="kept", credentials=pika.PlainCredentials("carol", "pw1")
    ).channel()
    channel.queue_declare("c-durable", durable=True)
    channel.basic_publish("", "c-durable", b"kept", pika.BasicProperties(delivery_mode=2))
    channel.confirm_delivery()
    channel.basic_publish("", "c-durable", b"confirmed", pika.BasicProperties(delivery_mode=2))
    ctl("change_password", "carol", "pw2")
    fresh_broker.kill()
    fresh_broker.start()
    assert lines(ctl("-s", "list_user_permissions", "carol").stdout) == ["kept\t^c-.*\t.*\t.*"]
    assert (
        ctl("-s", "list_topic_permissions", "-p", "kept").stdout == "carol\tamq.topic\t^t\\.\t.*\n"
    )
    assert ctl("-q", "list_user_limits", "--user", "carol").stdout == '{"max-channels":5}\n'
    assert ctl("authenticate_user", "carol", "pw2").returncode == 0
    assert "kept\tsurvives" in lines(ctl("-s", "list_vhosts", "name", "description").stdout)
    assert lines(ctl("-s", "list_queues", "-p", "kept").stdout) == ["c-durable\t2"]
    fresh_broker.stop()
    fresh_broker.start()
    assert "guest" in ctl("-s", "list_users").stdout  # the first start's user, never recreated
    ctl("delete_user", "guest")
    fresh_broker.stop()
    fresh_broker.start()
    assert "guest" not in ctl("-s", "list_users").stdout


def test_stop_app_reset_start_app_wipe_the_broker(fresh_broker: BrokerProcess) -> None:
    """CI scripts wipe a broker with stop_app, reset, start_app: the node (and ctl) stays up,
    the AMQP port closes, and the app comes back as at its first start."""
    peer_port = os.environ.get(PEER_PORT_ENV)
    ops = operator_of(fresh_broker)
    params = pika.ConnectionParameters("127.0.0.1", ops.port, connection_attempts=1)
    ops.run("add_user", "wiped-" + os.urandom(3).hex(), "pw")
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.queue_declare("wiped-queue", durable=True)
        channel.basic_publish("", "wiped-queue", b"x", pika.BasicProperties(delivery_mode=2))
    refused = ops.run("reset", check=False)
    assert refused.returncode == 64
    assert lines(refused.stderr)[:3] == [
        "Error: this command requires the 'rabbit' app to be stopped on the target node. "
        "Stop it with 'rabbitmqctl stop_app'.",
        "Arguments given:",
        "\treset",
    ]
    stopped = ops.run("stop_app")
    assert stopped.stdout.startswith("Stopping rabbit application on node ")
    assert ops.run("stop_app").returncode == 0  # already stopped: still fine
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(params)
    listing = ops.run("list_queues", check=False)
    assert listing.returncode == 64
    assert lines(listing.stderr)[0] == (
        "Error: this command requires the 'rabbit' app to be running on the target node. "
        "Start it with 'rabbitmqctl start_app'."
    )
    assert lines(ops.run("ping").stdout)[-1] == "Ping succeeded"
    if not peer_port:  # check_running is rabbitmq-diagnostics' verb there
        down = ops.run("check_running", check=False)
        assert down.returncode == 69 and down.stderr.endswith(
            "is not running or has not fully booted yet (check with is_booting)\n"
        )
    waiting = subprocess.Popen(
        [*ops.command, "await_startup"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ops.env
    )
    assert ops.run("reset").stdout.startswith("Resetting node ")
    assert waiting.poll() is None  # await_startup waits for start_app
    assert ops.run("start_app").stdout.startswith("Starting node ")
    assert waiting.wait(timeout=60) == 0
    assert ops.run("start_app").returncode == 0  # already running: still fine
    assert lines(ops.run("-s", "list_users").stdout) == ["guest\t[administrator]"]
    assert ops.run("-s", "list_queues").stdout == ""
    with pika.BlockingConnection(params) as connection:  # guest/guest again, as at first start
        assert connection.channel().is_open
