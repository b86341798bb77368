"""Shared plumbing for the conformance scenarios: registry, cleanup, runners and small helpers.

A scenario is a function ``scenario_xxx(port) -> dict`` registered with :func:`scenario`, which
also deletes the ``conf-`` queues and exchanges it names before and after it runs.
:func:`run_scenario` runs one in a forked child with a hard deadline, turning an exception into
``{"error": repr}`` and redacting server-generated names so results can be compared between
brokers and between runs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import select
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pika.exceptions
from pika import frame as pframe
from pika import spec
from pika.adapters.blocking_connection import BlockingChannel

from tests.support import get_all

from .rawclient import EOF, TIMEOUT, RawClient, describe, method_name, open_client

Result = dict[str, Any]
Scenario = Callable[[int], Result]

#: Every registered scenario by name (the function name without its ``scenario_`` prefix).
SCENARIOS: dict[str, Scenario] = {}
#: The queues and exchanges each scenario uses (deleted before and after it runs).
RESOURCES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
#: Hard limit on one scenario's run time (a hung client call is killed, not waited for).
SCENARIO_TIMEOUT = 30.0

_REDACTIONS = [
    (re.compile(r"amq\.gen-[A-Za-z0-9_\-]+"), "amq.gen-*"),
    (re.compile(r"amq\.ctag-[A-Za-z0-9_\-]+"), "amq.ctag-*"),
]


def redact(value: Any) -> Any:
    """Replace server-generated queue names and consumer tags in every string of a result."""
    if isinstance(value, str):
        for pattern, repl in _REDACTIONS:
            value = pattern.sub(repl, value)
        return value
    if isinstance(value, dict):
        return {redact(k): redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def cleanup(port: int, queues: tuple[str, ...] = (), exchanges: tuple[str, ...] = ()) -> None:
    """Delete the named queues and exchanges, tolerating any that do not exist."""
    if not queues and not exchanges:
        return
    with open_client(port) as client:
        methods: list[spec.Queue.Delete | spec.Exchange.Delete] = [
            spec.Queue.Delete(queue=q) for q in queues
        ]
        methods += [spec.Exchange.Delete(exchange=x) for x in exchanges]
        for method in methods:
            item = client.rpc(1, method)
            if method_name(item) == "Channel.Close":
                client.send_method(1, spec.Channel.CloseOk())
                client.open_channel(1)


def scenario(
    queues: tuple[str, ...] = (), exchanges: tuple[str, ...] = ()
) -> Callable[[Scenario], Scenario]:
    """Register a scenario; the queues/exchanges it uses are deleted before and after it."""

    def wrap(fn: Scenario) -> Scenario:
        name = fn.__name__.removeprefix("scenario_")

        @functools.wraps(fn)
        def run(port: int) -> Result:
            cleanup(port, queues, exchanges)
            try:
                return fn(port)
            finally:
                cleanup(port, queues, exchanges)

        SCENARIOS[name] = run
        RESOURCES[name] = (queues, exchanges)
        return run

    return wrap


def run_scenario(name: str, port: int, timeout: float = SCENARIO_TIMEOUT) -> Result:
    """Run one registered scenario in a forked child, killed after ``timeout`` seconds.

    Exceptions become ``{"error": repr}``, a kill ``{"error": "scenario timed out ..."}``
    (pika's blocking calls have no timeout of their own; killing the child also closes its
    sockets). Server-generated names are redacted.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: run, write JSON, exit without running the parent's cleanup
        os.close(read_fd)
        try:
            try:
                result = SCENARIOS[name](port)
            except Exception as exc:  # noqa: BLE001 - any failure is an outcome to compare
                result = {"error": repr(exc)}
            with os.fdopen(write_fd, "wb") as out:
                out.write(json.dumps(result, default=repr).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    data, finished = _read_until(read_fd, time.monotonic() + timeout)
    os.close(read_fd)
    if not finished:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    if not finished:
        with contextlib.suppress(Exception):  # best effort: the broker may be stuck too
            cleanup(port, *RESOURCES[name])
        return {"error": f"scenario timed out after {timeout:g}s"}
    try:
        return redact(json.loads(data))
    except ValueError:
        return {"error": f"scenario process died: {data[:200]!r}"}


def _read_until(fd: int, deadline: float) -> tuple[bytes, bool]:
    """Read a pipe to EOF; returns the data and whether EOF came before the deadline."""
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return b"".join(chunks), False
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


# -- raw-client helpers -----------------------------------------------------------------------


def outcome(client: RawClient, item: Any, reopen: bool = True) -> Any:
    """Describe a reply; acknowledge a server close and record what follows it.

    After a channel.close the channel is closed with close-ok and (``reopen``) opened again,
    recording the reply under ``"reopen"``; after a connection.close, close-ok is sent and
    what the server does next (normally EOF) is recorded under ``"after_close_ok"``.
    """
    out = describe(item)
    if isinstance(item, pframe.Method):
        if item.method.NAME == "Channel.Close":
            client.send_method(item.channel_number, spec.Channel.CloseOk())
            if reopen:
                reply = client.rpc(item.channel_number, spec.Channel.Open())
                name = method_name(reply)
                out["reopen"] = name if name == "Channel.OpenOk" else describe(reply)
        elif item.method.NAME == "Connection.Close":
            out["after_close_ok"] = client.after_connection_close()
    return out


def attempt(client: RawClient, channel: int, method: Any, reopen: bool = True) -> Any:
    """Send a method and return the :func:`outcome` of the reply (waiting as in attempt_raw)."""
    client.send_method(channel, method)
    return outcome(client, client.recv_reply(channel), reopen)


def attempt_raw(client: RawClient, data: bytes) -> Any:
    """Send raw bytes and return the :func:`outcome` of the next method frame.

    If nothing arrives promptly, waits a few seconds more to tell a delayed close from none.
    """
    client.send(data)
    return outcome(client, client.recv_reply())


def declare_queue(client: RawClient, channel: int, queue: str, **kwargs: Any) -> str:
    """Declare a queue and return its name (the server's if ``queue`` is empty)."""
    item = client.rpc(channel, spec.Queue.Declare(queue=queue, **kwargs))
    if method_name(item) != "Queue.DeclareOk":
        raise RuntimeError(f"queue.declare {queue!r} failed: {describe(item)}")
    return item.method.queue


def ok(client: RawClient, channel: int, method: Any) -> None:
    """Send a synchronous method that must succeed; raise with the reply otherwise."""
    item = client.rpc(channel, method)
    expected = type(method).NAME + "Ok"
    if method_name(item) != expected:
        raise RuntimeError(f"{type(method).NAME} failed: {describe(item)}")


def collect(client: RawClient, quiet: float = 0.4, limit: int = 1000) -> list[Any]:
    """Receive methods (deliveries/returns with their bodies) until ``quiet`` s of silence."""
    out: list[Any] = []
    while len(out) < limit:
        message = client.recv_message(quiet)
        if message == TIMEOUT:
            return out
        out.append(message)
        if message == EOF:
            return out
    return out


def bodies(messages: list[Any]) -> list[Any]:
    """The bodies of collected messages (other items as they are)."""
    return [m["body"] if isinstance(m, dict) and "body" in m else m for m in messages]


def get(client: RawClient, channel: int, queue: str, no_ack: bool = True) -> Any:
    """basic.get: the get-ok with its body, or get-empty, or a channel/connection close."""
    client.send_method(channel, spec.Basic.Get(queue=queue, no_ack=no_ack))
    return client.recv_message(channel=channel)


def fill(client: RawClient, queue: str, messages: list[str], channel: int = 9) -> None:
    """Publish messages to a queue (default exchange) and wait until they are confirmed.

    Uses a temporary confirm-mode channel, so counts seen afterwards are settled.
    """
    client.open_channel(channel)
    ok(client, channel, spec.Confirm.Select())
    for body in messages:
        client.publish(channel, "", queue, body.encode())
    settled = confirm_outcomes(client, len(messages), channel=channel)
    ok(client, channel, spec.Channel.Close(200, "", 0, 0))
    if sorted(settled["confirms"].values()) != ["ack"] * len(messages):
        raise RuntimeError(f"fill {queue!r}: not all confirmed: {settled}")


def confirm_outcomes(
    client: RawClient, count: int, timeout: float = 2.0, channel: int | None = None
) -> Result:
    """Wait for publisher confirms of tags 1..count; expand ``multiple`` into per-tag outcomes.

    Returns ``confirms`` ({tag: 'ack'|'nack'}) and ``events``: the sequence of method names
    received (acks/nacks collapsed to one entry each for a run, returns kept), so ordering
    such as basic.return before basic.ack can be checked without depending on batching.
    """
    confirms: dict[str, str] = {}
    events: list[str] = []
    deadline = time.monotonic() + timeout
    while len(confirms) < count and time.monotonic() < deadline:
        item = client.recv_message(max(0.01, deadline - time.monotonic()), channel)
        if isinstance(item, str):
            events.append(item)
            break
        name = item["method"]
        if name in ("Basic.Ack", "Basic.Nack"):
            tag, kind = item["delivery_tag"], "ack" if name == "Basic.Ack" else "nack"
            tags = range(1, tag + 1) if item["multiple"] else [tag]
            for t in tags:
                confirms.setdefault(str(t), kind)
            if not events or events[-1] != name:
                events.append(name)
        else:
            events.append(name)
    return {"confirms": confirms, "events": events}


# -- pika helpers -----------------------------------------------------------------------------


def pika_params(port: int, **kwargs: Any) -> pika.ConnectionParameters:
    """Connection parameters for guest/guest on 127.0.0.1 with bounded timeouts."""
    return pika.ConnectionParameters(
        host="127.0.0.1",
        port=port,
        connection_attempts=1,
        socket_timeout=3,
        stack_timeout=5,
        blocked_connection_timeout=5,
        **kwargs,
    )


@contextlib.contextmanager
def pika_connection(port: int, **kwargs: Any) -> Iterator[pika.BlockingConnection]:
    """A pika BlockingConnection, closed on exit if still open."""
    conn = pika.BlockingConnection(pika_params(port, **kwargs))
    try:
        yield conn
    finally:
        if conn.is_open:
            conn.close()


@contextlib.contextmanager
def pika_channel(port: int) -> Iterator[BlockingChannel]:
    """One channel on a fresh pika connection."""
    with pika_connection(port) as conn:
        yield conn.channel()


def pika_error(exc: BaseException) -> Result:
    """Describe a pika exception: which level closed, reply code and text."""
    if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
        return {"closed": "channel", "reply_code": exc.reply_code, "reply_text": exc.reply_text}
    if isinstance(exc, pika.exceptions.ConnectionClosedByBroker):
        return {
            "closed": "connection",
            "reply_code": exc.reply_code,
            "reply_text": exc.reply_text,
        }
    return {"exception": type(exc).__name__}


def get_bodies(channel: BlockingChannel, queue: str, ack: bool = True) -> list[str]:
    """basic.get every ready message of a queue (auto-ack if ``ack``), returning the bodies."""
    return [body.decode() for _method, _props, body in get_all(channel, queue, auto_ack=ack)]
