"""Tests for actors.runtime: LoopActors on a uvloop loop running in a background thread."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from time import monotonic
from typing import Any

import pykka
import pytest
import uvloop

from actors import runtime
from actors.runtime import (
    ActorFailed,
    LoopActor,
    LoopBlockingError,
    LoopFuture,
    run_in_loop_threadsafe,
)

TIMEOUT = 10.0


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def loop():
    """A uvloop loop running in its own thread, with the runtime bound to it."""
    loop = uvloop.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        runtime.bind_loop(loop)
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="test-loop", daemon=True)
    thread.start()
    assert ready.wait(TIMEOUT)
    yield loop

    def finish() -> None:
        runtime.unbind_loop()
        loop.stop()

    loop.call_soon_threadsafe(finish)
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    loop.close()


def on_loop(loop, coro):
    """Run a coroutine on the loop thread and return its result."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result(TIMEOUT)


# --------------------------------------------------------------------------- actors


class Collector(LoopActor):
    """Records what it receives; `done` is set once `expected` messages arrived."""

    kind = "collector"

    def __init__(self, expected: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.expected = expected
        self.items: list[Any] = []
        self.done = threading.Event()
        self.stopped_after: list[Any] | None = None

    def on_receive(self, message: Any) -> Any:
        if message == "items":
            return list(self.items)
        self.items.append(message)
        if len(self.items) == self.expected:
            self.done.set()
        return None

    def on_stop(self) -> None:
        self.stopped_after = list(self.items)


class Forwarder(LoopActor):
    """Passes every message on to `target`."""

    kind = "forwarder"

    def __init__(self, target: pykka.ActorRef[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target

    def on_receive(self, message: Any) -> None:
        self.target.tell(message)


class Calculator(LoopActor):
    """Doubles numbers; raises ValueError for anything else."""

    kind = "calculator"

    def on_receive(self, message: Any) -> int:
        if not isinstance(message, int):
            raise ValueError(f"not a number: {message!r}")
        return message * 2

    def triple(self, n: int) -> int:
        return n * 3


class Fragile(LoopActor):
    """Raises on "boom"; records everything else and whether on_failure ran."""

    kind = "fragile"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.items: list[Any] = []
        self.failure: BaseException | None = None

    def on_receive(self, message: Any) -> None:
        if message == "boom":
            raise RuntimeError("kaboom")
        self.items.append(message)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self.failure = exception_value


# --------------------------------------------------------------------------- ordering


def test_tells_arrive_in_order(loop):
    async def scenario():
        ref = Collector.start(1000)
        for i in range(1000):
            ref.tell(i)
        return ref

    ref = on_loop(loop, scenario())
    actor = ref._actor_weakref()
    assert actor.done.wait(TIMEOUT)
    assert actor.items == list(range(1000))


def test_chain_preserves_order(loop):
    async def scenario():
        sink = Collector.start(1000)
        head = sink
        for _ in range(4):
            head = Forwarder.start(head)
        for i in range(1000):
            head.tell(i)
        return sink

    sink = on_loop(loop, scenario())
    actor = sink._actor_weakref()
    assert actor.done.wait(TIMEOUT)
    assert actor.items == list(range(1000))


def test_long_mailbox_does_not_starve_others(loop):
    log: list[str] = []

    class Logger(LoopActor):
        def on_receive(self, message: Any) -> None:
            log.append(message)

    async def scenario():
        busy, quiet = Logger.start(), Logger.start()
        for _ in range(runtime.DRAIN_BATCH * 4):
            busy.tell("busy")
        quiet.tell("quiet")
        await busy.ask("busy", block=False)
        return log.index("quiet")

    # The quiet actor gets its turn after one drain batch of the busy one.
    assert on_loop(loop, scenario()) == runtime.DRAIN_BATCH


# --------------------------------------------------------------------------- ask


def test_ask_awaited_on_loop(loop):
    async def scenario():
        ref = Calculator.start()
        assert await ref.ask(21, block=False) == 42
        with pytest.raises(ValueError, match="not a number"):
            await ref.ask("x", block=False)
        # An exception returned to the asker does not kill the actor.
        assert ref.is_alive()
        assert await ref.ask(5, block=False) == 10
        # Proxies work too and give awaitable futures.
        assert await ref.proxy().triple(4) == 12
        # Awaiting an already completed future returns straight away.
        done = ref.ask(1, block=False)
        await done
        assert await done == 2

    on_loop(loop, scenario())


def test_ask_from_other_thread(loop):
    ref = run_in_loop_threadsafe(Calculator.start, timeout=TIMEOUT)
    assert ref.ask(21, timeout=TIMEOUT) == 42
    assert ref.ask(4, block=False).get(timeout=TIMEOUT) == 8
    with pytest.raises(ValueError, match="not a number"):
        ref.ask("x", timeout=TIMEOUT)
    with pytest.raises(pykka.Timeout):
        LoopFuture().get(timeout=0.01)


def test_blocking_on_loop_thread_raises(loop):
    async def scenario():
        ref = Calculator.start()
        future = ref.ask(1, block=False)
        with pytest.raises(LoopBlockingError):
            future.get()
        with pytest.raises(LoopBlockingError):
            future.get(timeout=1)
        with pytest.raises(LoopBlockingError):
            ref.ask(2)
        with pytest.raises(LoopBlockingError):
            ref.stop()
        assert await future == 2
        with pytest.raises(LoopBlockingError):
            future.get()  # even when done: the rule does not depend on timing
        return ref

    ref = on_loop(loop, scenario())
    assert ref.is_alive()


# --------------------------------------------------------------------------- stop


def test_stop_processes_queued_messages_first(loop):
    async def scenario():
        ref = Collector.start()
        for i in range(10):
            ref.tell(i)
        assert await ref.stop(block=False) is True
        actor = ref._actor_weakref()
        assert actor.stopped_after == list(range(10))
        assert not ref.is_alive()
        with pytest.raises(pykka.ActorDeadError):
            ref.tell(10)
        with pytest.raises(pykka.ActorDeadError):
            await ref.ask(10, block=False)
        assert await ref.stop(block=False) is False
        return ref

    ref = on_loop(loop, scenario())
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(11)  # from another thread too
    assert ref.stop(timeout=TIMEOUT) is False


def test_asks_queued_behind_stop_get_actor_dead(loop):
    async def scenario():
        ref = Calculator.start()
        before = ref.ask(1, block=False)
        stopped = ref.stop(block=False)
        # Queued after the stop message (the actor is still alive when we send).
        after = ref.ask(2, block=False)
        assert await before == 2
        assert await stopped is True
        with pytest.raises(pykka.ActorDeadError):
            await after

    on_loop(loop, scenario())


def test_stop_from_other_thread(loop):
    ref = run_in_loop_threadsafe(Collector.start, timeout=TIMEOUT)
    for i in range(5):
        ref.tell(i)
    assert ref.stop(timeout=TIMEOUT) is True
    assert ref._actor_weakref().stopped_after == list(range(5))
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(5)


def test_stop_all(loop):
    async def scenario():
        refs = [Collector.start() for _ in range(5)]
        for ref in refs:
            ref.tell("x")
        assert runtime.live_count() == 5
        assert await asyncio.gather(*runtime.stop_all()) == [True] * 5
        assert runtime.live_count() == 0
        return [ref._actor_weakref().stopped_after for ref in refs]

    assert on_loop(loop, scenario()) == [["x"]] * 5


# --------------------------------------------------------------------------- failure


def test_failure_stops_actor_and_tells_supervisor(loop, caplog):
    caplog.set_level(logging.ERROR, logger="actors.runtime")

    async def scenario():
        supervisor = Collector.start(1)
        fragile = Fragile.start(name="fragile-1", supervisor=supervisor)
        sibling = Fragile.start(name="sibling", supervisor=supervisor)
        fragile.tell("a")
        fragile.tell("boom")
        fragile.tell("never")
        queued_ask = fragile.ask("never", block=False)
        sibling.tell("b")
        with pytest.raises(pykka.ActorDeadError):
            await queued_ask
        assert await sibling.ask("c", block=False) is None
        return supervisor, fragile, sibling

    supervisor, fragile, sibling = on_loop(loop, scenario())
    sup = supervisor._actor_weakref()
    assert sup.done.wait(TIMEOUT)
    [failed] = sup.items
    assert isinstance(failed, ActorFailed)
    assert failed.ref is fragile
    assert isinstance(failed.exception, RuntimeError)
    assert str(failed.exception) == "kaboom"

    actor = fragile._actor_weakref()
    assert actor.items == ["a"]
    assert actor.failure is failed.exception
    assert not fragile.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        fragile.tell("late")
    assert runtime.lookup(fragile.actor_urn) is None

    # The sibling and the loop carry on.
    assert sibling.is_alive()
    assert sibling._actor_weakref().items == ["b", "c"]
    assert run_in_loop_threadsafe(lambda: 1 + 1, timeout=TIMEOUT) == 2

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "fragile-1" in errors[0].getMessage()
    assert errors[0].exc_info[1] is failed.exception


def test_failure_in_on_start_tells_supervisor(loop):
    class BadStart(LoopActor):
        def on_start(self) -> None:
            raise OSError("no")

    async def scenario():
        supervisor = Collector.start(1)
        ref = BadStart.start(supervisor=supervisor)
        assert not ref.is_alive()
        return supervisor, ref

    supervisor, ref = on_loop(loop, scenario())
    sup = supervisor._actor_weakref()
    assert sup.done.wait(TIMEOUT)
    assert sup.items[0].ref is ref
    assert isinstance(sup.items[0].exception, OSError)


def test_failure_without_supervisor_is_only_logged(loop, caplog):
    async def scenario():
        ref = Fragile.start(name="orphan")
        ref.tell("boom")
        other = Calculator.start()
        assert await other.ask(1, block=False) == 2
        return ref

    ref = on_loop(loop, scenario())
    assert not ref.is_alive()
    assert any("orphan" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


# --------------------------------------------------------------------------- threads


def test_threadsafe_tell_from_four_threads(loop):
    threads, per_thread = 4, 5000
    ref = run_in_loop_threadsafe(Collector.start, threads * per_thread, timeout=TIMEOUT)
    barrier = threading.Barrier(threads)

    def send(tid: int) -> None:
        barrier.wait(TIMEOUT)
        for i in range(per_thread):
            ref.tell((tid, i))

    senders = [threading.Thread(target=send, args=(t,)) for t in range(threads)]
    for t in senders:
        t.start()
    for t in senders:
        t.join(TIMEOUT)
    actor = ref._actor_weakref()
    assert actor.done.wait(TIMEOUT)
    items = ref.ask("items", timeout=TIMEOUT)
    assert len(items) == threads * per_thread
    assert collections.Counter(items) == {
        (t, i): 1 for t in range(threads) for i in range(per_thread)
    }
    # Each thread's messages keep their order.
    for tid in range(threads):
        assert [i for t, i in items if t == tid] == list(range(per_thread))


def test_start_requires_loop_thread(loop):
    with pytest.raises(RuntimeError, match="event loop thread"):
        Collector.start()
    with pytest.raises(RuntimeError, match="event loop thread"):
        runtime.snapshot()


# --------------------------------------------------------------------------- introspection


def test_not_in_pykka_registry_but_indexed(loop):
    async def scenario():
        ref = Collector.start()
        assert runtime.lookup(ref.actor_urn) is ref
        assert ref not in pykka.ActorRegistry.get_all()
        await ref.stop(block=False)
        assert runtime.lookup(ref.actor_urn) is None

    on_loop(loop, scenario())


def test_snapshot_reports_depth_age_handled_and_edges(loop):
    async def scenario():
        sink = Collector.start(5, name="sink", owner="conn-1")
        head = Forwarder.start(sink, name="head", owner="conn-1")
        for i in range(5):
            head.tell(i)
        # Hold the loop so the queued messages wait: no drain can run during this callback.
        waited_from = monotonic()
        while monotonic() - waited_from < 0.02:
            pass
        before = {info.name: info for info in runtime.snapshot()}
        await head.ask("sync", block=False)  # forwarded behind the five numbers
        assert await sink.ask("items", block=False) == [0, 1, 2, 3, 4, "sync"]
        after = {info.name: info for info in runtime.snapshot()}
        return head, sink, before, after

    head, sink, before, after = on_loop(loop, scenario())
    assert before["head"].depth == 5
    assert before["head"].handled == 0
    assert before["head"].oldest_age_s >= 0.02
    assert before["head"].kind == "forwarder"
    assert before["head"].owner == "conn-1"
    assert before["head"].urn == head.actor_urn
    assert before["sink"].depth == 0
    assert before["sink"].oldest_age_s == 0.0
    assert before["head"].sends_to == ()

    assert after["head"].depth == 0
    assert after["head"].handled == 6
    assert after["head"].oldest_age_s == 0.0
    assert after["head"].sends_to == (sink.actor_urn,)
    assert after["sink"].handled == 7  # six tells and the ask
    assert after["sink"].sends_to == ()

    # The same from another thread (as the admin server does), then the edge goes with the sink.
    threaded = {info.name: info for info in runtime.snapshot_threadsafe(TIMEOUT)}
    assert threaded["head"] == after["head"]
    assert sink.stop(timeout=TIMEOUT) is True
    threaded = {info.name: info for info in runtime.snapshot_threadsafe(TIMEOUT)}
    assert "sink" not in threaded
    assert threaded["head"].sends_to == ()


def test_default_name_uses_kind(loop):
    ref = run_in_loop_threadsafe(Calculator.start, timeout=TIMEOUT)
    assert ref._actor_weakref().name.startswith("calculator-")


# --------------------------------------------------------------------------- benchmark


def test_benchmark_smoke():
    """Runs the micro-benchmark briefly; numbers come from `python tests/bench_runtime.py`."""
    from tests import bench_runtime

    rates = bench_runtime.run(messages=2000, rounds=1)
    assert all(rate > 0 for rate in rates.values())
