"""Replay the conformance scenarios against dispatchd and compare with RabbitMQ's results.

The expected outcomes were recorded against RabbitMQ 3.10 with
``python -m tests.conformance.record --port 5692 --out tests/conformance/rabbitmq.json``.
Known, accepted differences are listed in :data:`KNOWN_DIFFERENCES` and skipped.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.record import dumps
from tests.conformance.scenarios import SCENARIOS, run_scenario

RECORDED_PATH = Path(__file__).parent / "conformance" / "rabbitmq.json"
RECORDED: dict[str, Any] = json.loads(RECORDED_PATH.read_text(encoding="utf-8"))

#: Scenarios whose dispatchd outcome is allowed to differ from RabbitMQ: name -> reason.
KNOWN_DIFFERENCES: dict[str, str] = {
    "connection_start_contents": (
        "product is 'dispatchd'; capabilities list only what works (no connection.blocked yet)"
    ),
    "header_amqp_0_8": "AMQP 0-8 clients are refused with our 0-9-1 header (RabbitMQ speaks 0-8)",
}


def _params() -> list[Any]:
    params = []
    for name in sorted(SCENARIOS):
        marks = []
        if name in KNOWN_DIFFERENCES:
            marks.append(pytest.mark.skip(reason=KNOWN_DIFFERENCES[name]))
        elif name not in RECORDED:
            marks.append(pytest.mark.skip(reason="no RabbitMQ recording for this scenario"))
        params.append(pytest.param(name, id=name, marks=marks))
    return params


def _diff(expected: Any, actual: Any) -> str:
    """A unified diff of the canonical JSON of both results."""
    lines = difflib.unified_diff(
        dumps({"result": expected}).splitlines(),
        dumps({"result": actual}).splitlines(),
        fromfile="rabbitmq",
        tofile="dispatchd",
        lineterm="",
    )
    return "\n".join(lines)


def test_recording_covers_every_scenario() -> None:
    """Every scenario has a recorded RabbitMQ outcome, and nothing recorded is stale."""
    assert sorted(SCENARIOS) == sorted(RECORDED)


def test_known_differences_are_scenarios() -> None:
    """KNOWN_DIFFERENCES only names existing scenarios."""
    assert set(KNOWN_DIFFERENCES) <= set(SCENARIOS)


@pytest.mark.parametrize("name", _params())
def test_conformance(name: str, broker: Any) -> None:
    """The scenario's outcome on dispatchd equals the one recorded on RabbitMQ."""
    expected = RECORDED[name]
    actual = json.loads(json.dumps(run_scenario(name, broker.port)))
    if actual != expected:
        pytest.fail(f"{name}: dispatchd differs from RabbitMQ\n{_diff(expected, actual)}")
