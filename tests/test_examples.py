"""Every program in examples/ runs to success against a real dispatchd and prints its actors.

One broker (admin port open) serves the module; the examples use disjoint name prefixes and
clean up after themselves, so they run one after the other on it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.admin_support import admin_broker  # noqa: F401 - fixture
from tests.conftest import ROOT

EXAMPLES = ROOT / "examples"

# example -> (its name prefix, lines its printed topology must contain)
EXPECTED: dict[str, tuple[str, list[str]]] = {
    "work_queue": (
        "ex-workq",
        [
            "queue ex-workq.tasks",
            *(
                f"consumer ex-workq.worker-{n}  ─► channel 1 of 'ex-workq worker-{n}'"
                for n in (1, 2, 3)
            ),
            "connection 'ex-workq producer'",
        ],
    ),
    "pubsub_fanout": (
        "ex-pubsub",
        [
            "exchange ex-pubsub.news (fanout)",
            *(f"queue ex-pubsub.sub-{n} (exclusive)" for n in (1, 2, 3)),
            *(f"consumer ex-pubsub.sub-{n}" for n in (1, 2, 3)),
            "connection 'ex-pubsub publisher' (aiormq)",
        ],
    ),
    "routing_direct": (
        "ex-routing",
        [
            "exchange ex-routing.logs (direct)",
            "[error, info, warning] queue ex-routing.all",
            "[error] queue ex-routing.errors",
            "consumer ex-routing.errors.reader",
        ],
    ),
    "topics": (
        "ex-topics",
        [
            "exchange ex-topics.events (topic)",
            "[order.#] queue ex-topics.orders",
            "[*.eu.*] queue ex-topics.europe",
            "[#.failed] queue ex-topics.failures",
            "consumer ex-topics.orders.",
            "connection 'ex-topics app' (py-amqp)",
        ],
    ),
    "headers": (
        "ex-headers",
        [
            "exchange ex-headers.docs (headers)",
            '"x-match": "all"}] queue ex-headers.pdf-reports',
            '"x-match": "any"}] queue ex-headers.archives',
        ],
    ),
    "rpc_reply_to": (
        "ex-rpc",
        [
            "[ex-rpc.requests] queue ex-rpc.requests",
            "consumer ex-rpc.server  ─► channel 1 of 'ex-rpc server'",
            "reply-to  ─► channel 1 of 'ex-rpc client'",
        ],
    ),
    "publisher_confirms": (
        "ex-confirms",
        [
            "exchange ex-confirms.orders (direct)",
            "[new] queue ex-confirms.orders (durable)",
            "consumer ex-confirms.orders.reader",
        ],
    ),
    "retry_dead_letter": (
        "ex-retry",
        [
            "exchange ex-retry.work (direct)",
            "exchange ex-retry.retry (fanout)",
            '[task] queue ex-retry.work {"x-dead-letter-exchange": "ex-retry.retry"}',
            "queue ex-retry.wait",
            "consumer ex-retry.worker",
        ],
    ),
    "priority_queue": (
        "ex-priority",
        [
            'queue ex-priority.jobs {"x-max-priority": 10}',
            "consumer ex-priority.jobs.reader",
        ],
    ),
    "single_active_consumer": (
        "ex-sac",
        [
            'queue ex-sac.orders {"x-single-active-consumer": true}',
            "─► channel 1 of 'ex-sac consumer-a'",
            "─► channel 1 of 'ex-sac consumer-b'",
        ],
    ),
}


def run_example(name: str, amqp_port: int, admin_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{amqp_port}/%2F",
        "DISPATCHD_ADMIN_URL": admin_url,
    }
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_every_example_is_tested() -> None:
    programs = {p.stem for p in EXAMPLES.glob("*.py")} - {"common", "topology"}
    assert programs == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_example(name: str, admin_broker) -> None:  # noqa: F811
    broker, api = admin_broker
    done = run_example(name, broker.port, f"http://127.0.0.1:{api.port}")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.rstrip().endswith("OK"), output
    prefix, wanted = EXPECTED[name]
    topology = output[output.index("\nvhost /") :]
    for line in wanted:
        assert line in topology, f"{line!r} missing from:\n{topology}"
    names = set(re.findall(r"\bex-[a-z]+\b", topology))
    assert names == {prefix}, f"the topology shows others' actors: {names}\n{topology}"


def test_topology_can_be_skipped(admin_broker) -> None:  # noqa: F811
    done = run_example("headers", admin_broker[0].port, "none")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "actor topology skipped" in done.stdout
    assert "vhost /" not in done.stdout


def test_an_unreachable_admin_api_fails_the_example(admin_broker) -> None:  # noqa: F811
    """A broker the admin URL does not reach is a failure, not a silent skip."""
    done = run_example("headers", admin_broker[0].port, "http://127.0.0.1:9")
    assert done.returncode == 1
    assert "Connection refused" in done.stderr or "URLError" in done.stderr, done.stderr
