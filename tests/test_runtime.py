"""Tests for actors.runtime: LoopActors on a uvloop loop running in a background thread."""

from __future__ import annotations

import asyncio
import collections
import logging
import textwrap
import threading
from time import monotonic
from typing import Any

import pykka
import pytest

from dispatchd.actors.runtime import (
    DRAIN_BATCH,
    ActorFailed,
    Describe,
    LoopActor,
    LoopBlockingError,
    LoopFuture,
    UnhandledMessage,
    handler_name,
    handles,
)
from tests.support.actors import ITEMS, TIMEOUT, Collector, on_loop

# --------------------------------------------------------------------------- actors


class Forwarder(LoopActor):
    """Passes every message on to `target`."""

    kind = "forwarder"

    def __init__(self, target: pykka.ActorRef[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target

    @handles(object)
    def on_object(self, message: Any) -> None:
        self.target.tell(message)


class Calculator(LoopActor):
    """Doubles numbers; raises ValueError for anything else."""

    kind = "calculator"

    @handles(int)
    def on_int(self, message: int) -> int:
        return message * 2

    @handles(str)
    def on_str(self, message: str) -> int:
        raise ValueError(f"not a number: {message!r}")

    def triple(self, n: int) -> int:
        return n * 3


class Fragile(LoopActor):
    """Raises on "boom"; records everything else and whether on_failure ran."""

    kind = "fragile"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.items: list[Any] = []
        self.failure: BaseException | None = None

    @handles(str)
    def on_str(self, message: str) -> None:
        if message == "boom":
            raise RuntimeError("kaboom")
        self.items.append(message)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self.failure = exception_value


# --------------------------------------------------------------------------- ordering


def test_tells_arrive_in_order(runtime):
    async def scenario():
        ref = runtime.start(Collector, 1000)
        for i in range(1000):
            ref.tell(i)
        return ref

    ref = on_loop(runtime, scenario())
    actor = ref._actor_weakref()
    assert actor.done.wait(TIMEOUT)
    assert actor.items == list(range(1000))


def test_chain_preserves_order(runtime):
    async def scenario():
        sink = runtime.start(Collector, 1000)
        head = sink
        for _ in range(4):
            head = runtime.start(Forwarder, head)
        for i in range(1000):
            head.tell(i)
        return sink

    sink = on_loop(runtime, scenario())
    actor = sink._actor_weakref()
    assert actor.done.wait(TIMEOUT)
    assert actor.items == list(range(1000))


def test_long_mailbox_does_not_starve_others(runtime):
    log: list[str] = []

    class Logger(LoopActor):
        @handles(str)
        def on_str(self, message: str) -> None:
            log.append(message)

    async def scenario():
        busy, quiet = runtime.start(Logger), runtime.start(Logger)
        for _ in range(DRAIN_BATCH * 4):
            busy.tell("busy")
        quiet.tell("quiet")
        await busy.ask("busy", block=False)
        return log.index("quiet")

    # The quiet actor gets its turn after one drain batch of the busy one.
    assert on_loop(runtime, scenario()) == DRAIN_BATCH


# --------------------------------------------------------------------------- ask


def test_ask_awaited_on_loop(runtime):
    async def scenario():
        ref = runtime.start(Calculator)
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

    on_loop(runtime, scenario())


def test_ask_from_other_thread(runtime):
    ref = runtime.run_in_loop_threadsafe(runtime.start, Calculator, timeout=TIMEOUT)
    assert ref.ask(21, timeout=TIMEOUT) == 42
    assert ref.ask(4, block=False).get(timeout=TIMEOUT) == 8
    with pytest.raises(ValueError, match="not a number"):
        ref.ask("x", timeout=TIMEOUT)
    with pytest.raises(pykka.Timeout):
        LoopFuture(runtime).get(timeout=0.01)


def test_blocking_on_loop_thread_raises(runtime):
    async def scenario():
        ref = runtime.start(Calculator)
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

    ref = on_loop(runtime, scenario())
    assert ref.is_alive()


# --------------------------------------------------------------------------- stop


def test_stop_processes_queued_messages_first(runtime):
    async def scenario():
        ref = runtime.start(Collector)
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

    ref = on_loop(runtime, scenario())
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(11)  # from another thread too
    assert ref.stop(timeout=TIMEOUT) is False


def test_asks_queued_behind_stop_get_actor_dead(runtime):
    async def scenario():
        ref = runtime.start(Calculator)
        before = ref.ask(1, block=False)
        stopped = ref.stop(block=False)
        # Queued after the stop message (the actor is still alive when we send).
        after = ref.ask(2, block=False)
        assert await before == 2
        assert await stopped is True
        with pytest.raises(pykka.ActorDeadError):
            await after

    on_loop(runtime, scenario())


def test_stop_from_other_thread(runtime):
    ref = runtime.run_in_loop_threadsafe(runtime.start, Collector, timeout=TIMEOUT)
    for i in range(5):
        ref.tell(i)
    assert ref.stop(timeout=TIMEOUT) is True
    assert ref._actor_weakref().stopped_after == list(range(5))
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(5)


def test_stop_all(runtime):
    async def scenario():
        refs = [runtime.start(Collector) for _ in range(5)]
        for ref in refs:
            ref.tell("x")
        assert len(runtime) == 5
        assert await asyncio.gather(*runtime.stop_all()) == [True] * 5
        assert len(runtime) == 0
        return [ref._actor_weakref().stopped_after for ref in refs]

    assert on_loop(runtime, scenario()) == [["x"]] * 5


# --------------------------------------------------------------------------- failure


def test_failure_stops_actor_and_tells_supervisor(runtime, caplog):
    caplog.set_level(logging.ERROR, logger="dispatchd.actors.runtime")

    async def scenario():
        supervisor = runtime.start(Collector, 1)
        fragile = runtime.start(Fragile, name="fragile-1", supervisor=supervisor)
        sibling = runtime.start(Fragile, name="sibling", supervisor=supervisor)
        fragile.tell("a")
        fragile.tell("boom")
        fragile.tell("never")
        queued_ask = fragile.ask("never", block=False)
        sibling.tell("b")
        with pytest.raises(pykka.ActorDeadError):
            await queued_ask
        assert await sibling.ask("c", block=False) is None
        return supervisor, fragile, sibling

    supervisor, fragile, sibling = on_loop(runtime, scenario())
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
    assert runtime.run_in_loop_threadsafe(lambda: 1 + 1, timeout=TIMEOUT) == 2

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "fragile-1" in errors[0].getMessage()
    assert errors[0].exc_info[1] is failed.exception


def test_failure_in_on_start_tells_supervisor(runtime):
    class BadStart(LoopActor):
        def on_start(self) -> None:
            raise OSError("no")

    async def scenario():
        supervisor = runtime.start(Collector, 1)
        ref = runtime.start(BadStart, supervisor=supervisor)
        assert not ref.is_alive()
        return supervisor, ref

    supervisor, ref = on_loop(runtime, scenario())
    sup = supervisor._actor_weakref()
    assert sup.done.wait(TIMEOUT)
    assert sup.items[0].ref is ref
    assert isinstance(sup.items[0].exception, OSError)


def test_failure_without_supervisor_is_only_logged(runtime, caplog):
    async def scenario():
        ref = runtime.start(Fragile, name="orphan")
        ref.tell("boom")
        other = runtime.start(Calculator)
        assert await other.ask(1, block=False) == 2
        return ref

    ref = on_loop(runtime, scenario())
    assert not ref.is_alive()
    assert any("orphan" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


# --------------------------------------------------------------------------- threads


def test_threadsafe_tell_from_four_threads(runtime):
    threads, per_thread = 4, 5000
    ref = runtime.run_in_loop_threadsafe(
        runtime.start, Collector, threads * per_thread, timeout=TIMEOUT
    )
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
    items = ref.ask(ITEMS, timeout=TIMEOUT)
    assert len(items) == threads * per_thread
    assert collections.Counter(items) == {
        (t, i): 1 for t in range(threads) for i in range(per_thread)
    }
    # Each thread's messages keep their order.
    for tid in range(threads):
        assert [i for t, i in items if t == tid] == list(range(per_thread))


def test_start_requires_loop_thread(runtime):
    with pytest.raises(RuntimeError, match="event loop thread"):
        runtime.start(Collector)
    with pytest.raises(RuntimeError, match="event loop thread"):
        runtime.snapshot()


# --------------------------------------------------------------------------- introspection


def test_not_in_pykka_registry_but_indexed(runtime):
    async def scenario():
        ref = runtime.start(Collector)
        assert runtime.lookup(ref.actor_urn) is ref
        assert ref not in pykka.ActorRegistry.get_all()
        await ref.stop(block=False)
        assert runtime.lookup(ref.actor_urn) is None

    on_loop(runtime, scenario())


def test_snapshot_reports_depth_age_handled_and_edges(runtime):
    async def scenario():
        sink = runtime.start(Collector, 5, name="sink", owner="conn-1")
        head = runtime.start(Forwarder, sink, name="head", owner="conn-1")
        for i in range(5):
            head.tell(i)
        # Hold the loop so the queued messages wait: no drain can run during this callback.
        waited_from = monotonic()
        while monotonic() - waited_from < 0.02:
            pass
        before = {info.name: info for info in runtime.snapshot()}
        await head.ask("sync", block=False)  # forwarded behind the five numbers
        assert await sink.ask(ITEMS, block=False) == [0, 1, 2, 3, 4, "sync"]
        after = {info.name: info for info in runtime.snapshot()}
        return head, sink, before, after

    head, sink, before, after = on_loop(runtime, scenario())
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


def test_default_name_uses_kind(runtime):
    ref = runtime.run_in_loop_threadsafe(runtime.start, Calculator, timeout=TIMEOUT)
    assert ref._actor_weakref().name.startswith("calculator-")


# --------------------------------------------------------------------------- benchmark


def test_benchmark_smoke():
    """Runs the micro-benchmark briefly; numbers come from `python tests/bench_runtime.py`."""
    from tests import bench_runtime

    rates = bench_runtime.run(messages=2000, rounds=1)
    assert all(rate > 0 for rate in rates.values())


# --------------------------------------------------------------------------- dispatch


def test_unknown_message_fails_the_actor_through_supervision(runtime, caplog):
    """A message no handler takes is a bug: told or asked, the actor fails, is logged and
    its supervisor hears of it; the asker gets the error."""
    caplog.set_level(logging.ERROR, logger="dispatchd.actors.runtime")

    async def scenario():
        supervisor = runtime.start(Collector, 2)
        told = runtime.start(Calculator, name="told", supervisor=supervisor)
        asked = runtime.start(Calculator, name="asked", supervisor=supervisor)
        told.tell(2.5)
        with pytest.raises(UnhandledMessage, match="no handler for b'x'"):
            await asked.ask(b"x", block=False)
        return supervisor, told, asked

    supervisor, told, asked = on_loop(runtime, scenario())
    sup = supervisor._actor_weakref()
    assert sup.done.wait(TIMEOUT)
    assert {failed.ref for failed in sup.items} == {told, asked}
    assert all(isinstance(failed.exception, UnhandledMessage) for failed in sup.items)
    assert not told.is_alive() and not asked.is_alive()
    failed = {r.getMessage() for r in caplog.records if r.levelno == logging.ERROR}
    assert any("'told'" in line for line in failed) and any("'asked'" in line for line in failed)


def test_handlers_are_declared_not_written_in_on_receive():
    with pytest.raises(TypeError, match="@handles"):

        class Old(LoopActor):
            def on_receive(self, message: Any) -> None:
                pass


def test_base_class_handler_takes_subclasses_and_subclass_tables_inherit(runtime):
    class Base(LoopActor):
        @handles(int)
        def on_int(self, message: int) -> str:
            return "base int"

    class Child(Base):
        @handles(str)
        def on_str(self, message: str) -> str:
            return "child str"

    async def scenario():
        ref = runtime.start(Child)
        return [
            await ref.ask(1, block=False),
            await ref.ask(True, block=False),
            await ref.ask("s", block=False),
        ]

    assert on_loop(runtime, scenario()) == ["base int", "base int", "child str"]


def test_broker_handlers_follow_the_naming_convention():
    """Every actor of the broker names each handler ``on_`` + its message type in snake case."""
    import dispatchd.actors.channel
    import dispatchd.actors.connection
    import dispatchd.actors.vhost
    import dispatchd.admin.commands  # noqa: F401 - with vhost, imports every actor class

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    checked = set()
    for cls in subclasses(LoopActor):
        if not cls.__module__.startswith("dispatchd."):
            continue
        for message_type, handler in cls.handlers.items():
            assert handler.__name__ == handler_name(message_type), (cls, message_type)
        checked.add(cls.__name__)
    assert checked >= {
        "ChannelActor",
        "ConnectionActor",
        "ConsumerActor",
        "ExchangeActor",
        "QueueActor",
        "ReplyToActor",
        "VhostActor",
    }


def test_describe_queued_behind_a_stop_is_answered_with_the_last_state(runtime):
    async def scenario():
        ref = runtime.start(Collector, name="last")
        ref.tell("x")
        stopped = ref.stop(block=False)
        described = ref.ask(Describe(), block=False)
        await stopped
        return await described

    assert on_loop(runtime, scenario())["name"] == "last"


def test_the_module_docstring_example_runs():
    from dispatchd.actors import runtime as module

    doc = module.__doc__
    example = doc[doc.index("::\n") + 3 : doc.index("\nFrom another thread")]
    exec(compile(textwrap.dedent(example), "runtime example", "exec"), {})  # noqa: S102
