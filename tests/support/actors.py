"""Actors in the test process: a runtime on a uvloop loop in its own thread, a collector."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import uvloop

from dispatchd.actors.runtime import LoopActor, Runtime, handles

__all__ = ["ITEMS", "TIMEOUT", "Collector", "on_loop", "running_runtime"]

T = TypeVar("T")

TIMEOUT = 10.0

ITEMS = "items"
"""Asked this, a :class:`Collector` answers with (a copy of) what it has collected."""


class Collector(LoopActor):
    """Keeps every message it is told, in order.

    ``done`` (a threading.Event) is set once ``expected`` messages arrived, and ``arrived``
    (an asyncio future on the actor's loop, if given) gets the list then.
    """

    kind = "collector"

    def __init__(
        self,
        expected: int = 0,
        arrived: asyncio.Future[list[Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.expected = expected
        self.arrived = arrived
        self.items: list[Any] = []
        self.done = threading.Event()
        self.stopped_after: list[Any] | None = None

    @handles(object)
    def on_object(self, message: Any) -> Any:
        """Any message at all: kept (or, for :data:`ITEMS`, answered with what is kept)."""
        if message == ITEMS:
            return list(self.items)
        self.items.append(message)
        if len(self.items) == self.expected:
            self.done.set()
            if self.arrived is not None and not self.arrived.done():
                self.arrived.set_result(list(self.items))
        return None

    def on_stop(self) -> None:  # noqa: D102
        self.stopped_after = list(self.items)


def running_runtime() -> Iterator[Runtime]:
    """A Runtime whose uvloop loop runs in a thread of its own (a fixture's body)."""
    loop = uvloop.new_event_loop()
    ready = threading.Event()
    made: list[Runtime] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        made.append(Runtime(loop))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="test-loop", daemon=True)
    thread.start()
    assert ready.wait(TIMEOUT)
    yield made[0]

    def finish() -> None:
        made[0].close()
        loop.stop()

    loop.call_soon_threadsafe(finish)
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    loop.close()


def on_loop(runtime: Runtime, coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the runtime's loop thread and return its result."""
    return asyncio.run_coroutine_threadsafe(coro, runtime.loop).result(TIMEOUT)
