"""Pykka actors whose mailboxes are drained by an asyncio event loop.

A :class:`Runtime` holds the actors of one broker on one loop: it is made on the thread that
runs (or is about to run) the loop, starts actors there, indexes them by URN and describes
them for the admin page. Nothing here is module-level state, so several brokers (each with
its runtime and loop) can live in one process.

Actors talk with ``ref.tell()`` (cheap: append to a deque, schedule a drain with
``loop.call_soon`` if none is pending) or ``await ref.ask(msg, block=False)``. Other threads
may ``tell`` and ``ask(...).get(timeout=...)`` safely: their messages are handed to the loop
with ``call_soon_threadsafe``. Blocking waits on the loop thread raise
:class:`LoopBlockingError` instead of deadlocking.

An actor class declares what it handles, once, with :func:`handles`; the drain calls the
handler of a message's exact type straight from that table (a handler of a base class takes
its subclasses too, on a slower path). A message no handler takes is a bug: the actor fails
(:class:`UnhandledMessage`), like an actor whose handler raised. A failing actor is stopped,
logged once and reported to its supervisor as :class:`ActorFailed`; an exception raised for
an ask goes back to the asker, and the actor lives on.

Typical use (``tests/test_runtime.py`` runs this example)::

    import asyncio
    from dataclasses import dataclass

    from dispatchd.actors.runtime import Describe, LoopActor, Runtime, handles

    @dataclass(frozen=True, slots=True)
    class Greet:
        name: str

    class Greeter(LoopActor):
        kind = "greeter"

        @handles(Greet)
        def on_greet(self, msg: Greet) -> str:
            return f"hello, {msg.name}"

    async def main() -> None:
        runtime = Runtime(asyncio.get_running_loop())
        greeter = runtime.start(Greeter, name="greeter")
        greeter.tell(Greet("world"))  # fire and forget
        assert await greeter.ask(Greet("you"), block=False) == "hello, you"
        assert (await greeter.ask(Describe(), block=False))["kind"] == "greeter"
        await asyncio.gather(*runtime.stop_all())
        runtime.close()

    asyncio.run(main())

From another thread (the admin server): ``runtime.snapshot_threadsafe(timeout=2.0)``,
``runtime.run_in_loop_threadsafe(runtime.start, Greeter, timeout=2.0)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import re
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, TypeVar, overload

import pykka
from pykka import ActorDeadError, ActorRef, Timeout
from pykka._envelope import Envelope
from pykka.messages import ProxyCall, ProxyGetAttr, ProxySetAttr, _ActorStop

if TYPE_CHECKING:
    from types import TracebackType

    from pykka._types import OptExcInfo

__all__ = [
    "DRAIN_BATCH",
    "ActorFailed",
    "ActorInfo",
    "Describe",
    "LoopActor",
    "LoopActorRef",
    "LoopBlockingError",
    "LoopFuture",
    "Mailbox",
    "Runtime",
    "StopFlag",
    "Timer",
    "UnhandledMessage",
    "handles",
    "post",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A", bound="LoopActor")
F = TypeVar("F", bound=Callable[..., Any])

DRAIN_BATCH = 256
"""Messages one drain handles before it yields the loop to other callbacks."""

_get_ident = threading.get_ident

# Messages that take Pykka's general dispatch path (stop, proxies) instead of a handler.
_SYSTEM_MESSAGES = frozenset({_ActorStop, ProxyCall, ProxyGetAttr, ProxySetAttr})


class LoopBlockingError(RuntimeError):
    """A blocking wait was attempted on the event loop thread, where it would deadlock."""


class UnhandledMessage(TypeError):
    """An actor was sent a message its class declares no handler for (a bug)."""


# ---------------------------------------------------------------------------- handlers


def handles(message_type: type) -> Callable[[F], F]:
    """Declare the decorated method the handler of ``message_type`` messages.

    Handlers are named ``on_`` plus the message type in snake case (``Enqueue`` ->
    ``on_enqueue``); what a handler returns is the reply to an ask.
    """

    def mark(fn: F) -> F:
        fn.__dict__.setdefault("handles", []).append(message_type)
        return fn

    return mark


def handler_name(message_type: type) -> str:
    """The handler name the convention gives a message type: ``WindowGrant`` ->
    ``on_window_grant``."""
    return "on_" + re.sub(r"(?<!^)(?=[A-Z])", "_", message_type.__name__).lower()


# ---------------------------------------------------------------------------- futures


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class LoopFuture(pykka.Future[T]):
    """A Pykka future completed on its runtime's loop: ``await`` it there, ``.get()`` it
    from any other thread.

    ``get()`` on the loop thread raises :class:`LoopBlockingError` instead of deadlocking.
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self._lock = runtime.lock
        self._loop_thread = runtime.thread
        self._done = False
        self._value: Any = None
        self._exc_info: OptExcInfo | None = None
        self._event: threading.Event | None = None
        self._waiters: list[asyncio.Future[None]] | None = None
        self._callbacks: list[Callable[[LoopFuture[T]], None]] | None = None

    def done(self) -> bool:
        """Tell whether a value or an exception has been set."""
        return self._done

    def _result(self) -> T:
        exc_info = self._exc_info
        if exc_info is None:
            return self._value
        exc_type, exc_value, exc_tb = exc_info
        if exc_value is None:
            assert exc_type is not None
            exc_value = exc_type()
        if exc_value.__traceback__ is not exc_tb:
            raise exc_value.with_traceback(exc_tb)
        raise exc_value

    def get(self, *, timeout: float | None = None) -> T:
        """Wait for and return the value (or raise the exception); never on the loop thread."""
        if self._get_hook is not None:
            return super().get(timeout=timeout)
        if _get_ident() == self._loop_thread:
            msg = "blocking get() on the event loop thread would deadlock; await the future"
            raise LoopBlockingError(msg)
        if not self._done:
            with self._lock:
                event = None
                if not self._done:
                    event = self._event
                    if event is None:
                        event = self._event = threading.Event()
            if event is not None and not event.wait(timeout):
                msg = f"{timeout} seconds"
                raise Timeout(msg)
        return self._result()

    def __await__(self) -> Generator[Any, None, T]:
        if self._get_hook is not None:
            msg = "futures built with get hooks (map/join/filter/reduce) cannot be awaited"
            raise TypeError(msg)
        if not self._done:
            waiter = asyncio.get_running_loop().create_future()
            with self._lock:
                if self._done:
                    waiter = None
                elif self._waiters is None:
                    self._waiters = [waiter]
                else:
                    self._waiters.append(waiter)
            if waiter is not None:
                yield from waiter
        return self._result()

    __iter__ = __await__

    def add_done_callback(self, fn: Callable[[LoopFuture[T]], None]) -> None:
        """Call ``fn(self)`` once the future completes (immediately if it already has).

        Callbacks run in the thread that completes the future: the loop thread for actor
        replies.
        """
        with self._lock:
            if not self._done:
                if self._callbacks is None:
                    self._callbacks = [fn]
                else:
                    self._callbacks.append(fn)
                return
        fn(self)

    def _complete(self, value: Any, exc_info: OptExcInfo | None) -> None:
        with self._lock:
            if self._done or self._get_hook is not None:
                raise queue.Full
            self._value = value
            self._exc_info = exc_info
            self._done = True
            event, waiters, callbacks = self._event, self._waiters, self._callbacks
        if event is not None:
            event.set()
        if waiters is not None:
            running = asyncio._get_running_loop()  # noqa: SLF001 - the cheap, non-raising form
            for waiter in waiters:
                wloop = waiter.get_loop()
                if wloop is running:
                    _wake(waiter)
                else:
                    wloop.call_soon_threadsafe(_wake, waiter)
        if callbacks is not None:
            for fn in callbacks:
                try:
                    fn(self)
                except Exception:
                    logger.exception("LoopFuture callback %r failed", fn)

    def set(self, value: Any | None = None) -> None:
        """Set the value; wakes awaiting tasks, blocked getters and callbacks."""
        self._complete(value, None)

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        """Set an exception (default: the one being handled) as the outcome."""
        self._complete(None, sys.exc_info() if exc_info is None else exc_info)

    def set_get_hook(self, func: Callable[[float | None], T]) -> None:
        """Make ``get()`` return ``func(timeout)`` (Pykka's map/join/filter/reduce)."""
        with self._lock:
            if self._done:
                raise queue.Full
            self._get_hook = func


def _dead_exc_info(ref: ActorRef[Any], what: str) -> OptExcInfo:
    exc = ActorDeadError(f"{ref} {what}")
    return (ActorDeadError, exc, None)


# ---------------------------------------------------------------------------- mailbox


class StopFlag:
    """Pykka's ``actor_stopped`` flag without threading.Event's weight (~1.2 KiB per actor).

    Set only on the loop thread; ``wait()`` works from other threads.
    """

    __slots__ = ("_event", "_lock", "_set")

    def __init__(self, lock: threading.Lock) -> None:
        self._set = False
        self._lock = lock
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        """Tell whether the actor has stopped."""
        return self._set

    def set(self) -> None:
        """Mark the actor stopped and wake any ``wait()``."""
        with self._lock:
            self._set = True
            event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the actor stops or ``timeout`` passes; return whether it stopped."""
        with self._lock:
            if self._set:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)


class Mailbox:
    """A LoopActor's inbox: a deque of ``(message, reply_to, enqueued_at)`` plus stats.

    Also implements Pykka's inbox protocol (``put(envelope)``, ``get()``, ``empty()``), so
    the base ``pykka.ActorRef`` methods keep working.
    """

    __slots__ = (
        "_drain_cb",
        "actor",
        "closed",
        "described",
        "handled",
        "queue",
        "runtime",
        "scheduled",
        "senders",
        "sends_to",
        "urn",
    )

    def __init__(self, actor: LoopActor, runtime: Runtime) -> None:
        self.actor = actor
        self.runtime = runtime
        self.urn = actor.actor_urn
        self.queue: deque[tuple[Any, LoopFuture[Any] | None, float]] = deque()
        self.scheduled = False
        self.closed = False
        self.handled = 0
        self.described = 0  # Describe asks answered: the admin's own traffic, not work
        # Send edges, both ways so a dead actor can unlink itself; sets made on first edge.
        self.sends_to: set[Mailbox] | frozenset[Mailbox] = _NO_EDGES
        self.senders: set[Mailbox] | frozenset[Mailbox] = _NO_EDGES
        self._drain_cb = self.drain

    # Pykka's ActorInbox protocol -------------------------------------------------

    def put(self, envelope: Envelope[Any], /) -> None:
        """Enqueue a Pykka envelope (from the loop thread or any other)."""
        self.deliver(envelope.message, envelope.reply_to)

    def get(self) -> Envelope[Any]:
        """Pop the oldest message as an envelope (Pykka protocol; the drain bypasses it)."""
        message, reply_to, _ = self.queue.popleft()
        return Envelope(message, reply_to)

    def empty(self) -> bool:
        """Tell whether no message is waiting."""
        return not self.queue

    # Delivery ----------------------------------------------------------------------

    def deliver(self, message: Any, reply_to: LoopFuture[Any] | None) -> None:
        """Enqueue ``message`` from any thread; raise ActorDeadError if the actor is dead."""
        if self.closed:
            raise ActorDeadError(f"{self.actor.actor_ref} not found")
        runtime = self.runtime
        if _get_ident() == runtime.thread:
            self.queue.append((message, reply_to, monotonic()))
            if not self.scheduled:
                self.scheduled = True
                runtime.loop.call_soon(self._drain_cb)
            sender = runtime.current
            if sender is not None and self not in sender.sends_to:
                _link(sender, self)
        else:
            runtime.loop.call_soon_threadsafe(self.put_local, message, reply_to, monotonic())

    def put_local(self, message: Any, reply_to: LoopFuture[Any] | None, enqueued_at: float) -> None:
        """Enqueue on the loop thread a message handed over by another thread."""
        if self.closed:
            if reply_to is not None:
                reply_to.set_exception(_dead_exc_info(self.actor.actor_ref, "not found"))
            return
        self.queue.append((message, reply_to, enqueued_at))
        if not self.scheduled:
            self.scheduled = True
            self.runtime.loop.call_soon(self._drain_cb)

    def drain(self) -> None:
        """Handle up to DRAIN_BATCH messages, then reschedule if more are waiting."""
        actor = self.actor
        runtime = self.runtime
        q = self.queue
        popleft = q.popleft
        handlers = actor.handlers
        batch = DRAIN_BATCH
        previous = runtime.current
        runtime.current = self
        n = 0
        try:
            while q and n < batch:
                message, reply_to, _ = popleft()
                n += 1
                if reply_to is None:
                    handler = handlers.get(type(message))
                    if handler is not None:
                        try:
                            handler(actor, message)
                        except Exception:
                            actor._fail(sys.exc_info())
                            break
                        continue
                actor._dispatch(message, reply_to)
                if self.closed:
                    break
        except BaseException:
            # SystemExit, KeyboardInterrupt, or a bug above: stop this actor, let it propagate.
            if not self.closed:
                self.close()
                self.teardown()
            raise
        finally:
            runtime.current = previous
            self.handled += n
        if q and not self.closed:
            runtime.loop.call_soon(self._drain_cb)
        else:
            self.scheduled = False

    def close(self) -> None:
        """Mark the actor dead: refuse new messages, make ``ref.is_alive()`` false."""
        self.closed = True
        self.actor.actor_stopped.set()

    def teardown(self) -> None:
        """Answer or fail the waiting asks, drop the tells, unlink send edges, leave the index.

        A ``Describe`` still waiting is answered with the actor's last state, so that what
        it reported (totals it handed on as it stopped, say) is seen exactly once.
        """
        q = self.queue
        actor = self.actor
        while q:
            message, reply_to, _ = q.popleft()
            if reply_to is None:
                continue
            if isinstance(message, _ActorStop):
                reply_to.set(None)
            elif type(message) is Describe:
                try:
                    reply_to.set(actor.describe())
                except Exception:  # noqa: BLE001 - handed to the asker
                    reply_to.set_exception()
            else:
                reply_to.set_exception(
                    _dead_exc_info(actor.actor_ref, "stopped before handling the message")
                )
        for receiver in self.sends_to:
            receiver.senders.discard(self)  # type: ignore[union-attr]
        for sender in self.senders:
            sender.sends_to.discard(self)  # type: ignore[union-attr]
        self.sends_to = self.senders = _NO_EDGES
        self.runtime.actors.pop(self.urn, None)


_NO_EDGES: frozenset[Mailbox] = frozenset()


def _link(sender: Mailbox, receiver: Mailbox) -> None:
    if sender.closed or receiver.closed:
        return
    if not sender.sends_to:
        sender.sends_to = set()
    sender.sends_to.add(receiver)  # type: ignore[union-attr]
    if not receiver.senders:
        receiver.senders = set()
    receiver.senders.add(sender)  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- refs


class LoopActorRef(ActorRef[A]):
    """An ActorRef with a fast ``tell``, loop-aware ``ask`` and ``stop`` for LoopActors.

    From the loop thread: ``tell()``, ``await ref.ask(msg, block=False)``,
    ``await ref.stop(block=False)``. From other threads anything goes, blocking included.
    """

    actor_inbox: Mailbox

    def tell(self, message: Any) -> None:
        """Send ``message`` without waiting; raise ActorDeadError if the actor is dead."""
        # Mailbox.deliver(message, None), inlined: this is the hot path.
        mailbox = self.actor_inbox
        if mailbox.closed:
            raise ActorDeadError(f"{self} not found")
        runtime = mailbox.runtime
        if _get_ident() == runtime.thread:
            mailbox.queue.append((message, None, monotonic()))
            if not mailbox.scheduled:
                mailbox.scheduled = True
                runtime.loop.call_soon(mailbox._drain_cb)  # noqa: SLF001
            sender = runtime.current
            if sender is not None and mailbox not in sender.sends_to:
                _link(sender, mailbox)
        else:
            runtime.loop.call_soon_threadsafe(mailbox.put_local, message, None, monotonic())

    @overload
    def ask(
        self, message: Any, *, block: Literal[False], timeout: float | None = None
    ) -> LoopFuture[Any]: ...

    @overload
    def ask(self, message: Any, *, block: Literal[True], timeout: float | None = None) -> Any: ...

    @overload
    def ask(
        self, message: Any, *, block: bool = True, timeout: float | None = None
    ) -> Any | LoopFuture[Any]: ...

    def ask(
        self, message: Any, *, block: bool = True, timeout: float | None = None
    ) -> Any | LoopFuture[Any]:
        """Send ``message`` and return its reply (block=True) or a LoopFuture for it.

        On the loop thread ``block=True`` raises LoopBlockingError before sending.
        """
        runtime = self.actor_inbox.runtime
        if block and _get_ident() == runtime.thread:
            msg = "blocking ask() on the event loop thread; use await ref.ask(msg, block=False)"
            raise LoopBlockingError(msg)
        future: LoopFuture[Any] = LoopFuture(runtime)
        try:
            self.actor_inbox.deliver(message, future)
        except ActorDeadError:
            future.set_exception()
        if block:
            return future.get(timeout=timeout)
        return future

    @overload
    def stop(self, *, block: Literal[True], timeout: float | None = None) -> bool: ...

    @overload
    def stop(self, *, block: Literal[False], timeout: float | None = None) -> LoopFuture[bool]: ...

    @overload
    def stop(
        self, *, block: bool = True, timeout: float | None = None
    ) -> bool | LoopFuture[bool]: ...

    def stop(self, *, block: bool = True, timeout: float | None = None) -> bool | LoopFuture[bool]:
        """Ask the actor to stop after the messages already queued.

        The result is True if this stopped (or was stopping) the actor, False if it was
        already dead. On the loop thread pass ``block=False`` and await.
        """
        runtime = self.actor_inbox.runtime
        if block and _get_ident() == runtime.thread:
            msg = "blocking stop() on the event loop thread; use await ref.stop(block=False)"
            raise LoopBlockingError(msg)
        stopped: LoopFuture[bool] = LoopFuture(runtime)

        def convert(done: LoopFuture[Any]) -> None:
            exc_info = done._exc_info  # noqa: SLF001
            stopped.set(exc_info is None or not isinstance(exc_info[1], ActorDeadError))

        self.ask(_ActorStop(), block=False).add_done_callback(convert)
        if block:
            return stopped.get(timeout=timeout)
        return stopped


# ---------------------------------------------------------------------------- actors


@dataclass(frozen=True, slots=True)
class ActorFailed:
    """Told to a supervisor when one of its actors raised and was stopped."""

    ref: ActorRef[Any]
    exception: BaseException


@dataclass(frozen=True, slots=True)
class Describe:
    """Ask any LoopActor for ``describe()``: its own view of itself, for the admin page."""


@dataclass(frozen=True, slots=True)
class ActorInfo:
    """One live actor as the admin page sees it."""

    urn: str
    kind: str
    name: str
    owner: str | None
    depth: int
    handled: int
    oldest_age_s: float
    sends_to: tuple[str, ...]


class LoopActor(pykka.Actor):
    """A Pykka actor run by its runtime's asyncio loop instead of a thread.

    Subclass it, set ``kind``, declare handlers with :func:`handles`; pass ``name``,
    ``owner`` and ``supervisor`` to ``__init__``, and start it with ``runtime.start(cls,
    ...)`` on the loop thread. Unhandled exceptions from a tell stop the actor, are logged
    once, and are told to ``supervisor`` as ``ActorFailed``; exceptions from an ask go back
    to the asker and the actor lives on, except :class:`UnhandledMessage`, which fails it
    either way.
    """

    kind: ClassVar[str] = "actor"
    handlers: ClassVar[dict[type, Callable[[Any, Any], Any]]] = {}
    """Message type -> handler function, built from the ``@handles`` methods of the class
    and its bases."""

    name: str
    owner: str | None
    supervisor: ActorRef[Any] | None
    runtime: Runtime
    actor_inbox: Mailbox
    _actor_ref: LoopActorRef[Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "on_receive" in cls.__dict__:
            msg = f"{cls.__name__}: declare message handlers with @handles, not on_receive()"
            raise TypeError(msg)
        cls.handlers = _handler_table(cls)

    def __init__(
        self,
        *,
        name: str | None = None,
        owner: str | None = None,
        supervisor: ActorRef[Any] | None = None,
    ) -> None:
        # pykka.Actor.__init__ would build a plain ActorRef we would discard; set its fields
        # here. The mailbox and the ref come with the runtime, in Runtime.start().
        self.actor_urn = uuid.uuid4().urn
        self.name = name if name is not None else f"{self.kind}-{self.actor_urn[9:17]}"
        self.owner = owner
        self.supervisor = supervisor

    @property
    def actor_ref(self) -> LoopActorRef[Self]:
        """The actor's LoopActorRef."""
        return self._actor_ref

    def __str__(self) -> str:
        return f"{self.__class__.__name__} {self.name!r} ({self.actor_urn})"

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> LoopActorRef[Self]:
        """LoopActors are started by their runtime: ``runtime.start(cls, ...)``."""
        msg = f"start {cls.__name__} with runtime.start({cls.__name__}, ...)"
        raise TypeError(msg)

    @staticmethod
    def _create_actor_inbox() -> Mailbox:
        msg = "LoopActor gets its Mailbox from Runtime.start()"
        raise NotImplementedError(msg)

    def _create_future(self) -> LoopFuture[Any]:  # type: ignore[override]
        return LoopFuture(self.runtime)

    def _attach(self, runtime: Runtime) -> None:
        """Give the actor its runtime, mailbox and ref (Runtime.start)."""
        self.runtime = runtime
        self.actor_inbox = Mailbox(self, runtime)
        self.actor_stopped = StopFlag(runtime.lock)  # type: ignore[assignment]
        self._actor_ref = LoopActorRef(self)

    def _start_actor_loop(self) -> None:
        """Run on_start() right away; the mailbox drains itself when messages arrive."""
        runtime = self.runtime
        previous = runtime.current
        runtime.current = self.actor_inbox
        try:
            self.on_start()
        except Exception:
            exc_info = sys.exc_info()
            self._handle_failure(*exc_info)
            self.actor_inbox.teardown()
            self._notify_supervisor(exc_info[1])
        finally:
            runtime.current = previous

    def describe(self) -> dict[str, Any]:
        """What the admin page shows of this actor (JSON-ready); subclasses add their state."""
        return {"kind": self.kind, "name": self.name, "owner": self.owner}

    @handles(Describe)
    def on_describe(self, _msg: Describe) -> dict[str, Any]:
        """Answer the admin's ``Describe`` (counted apart from the actor's own work)."""
        self.actor_inbox.described += 1
        return self.describe()

    def _handle_receive(self, message: Any) -> Any:
        handlers = self.handlers
        handler = handlers.get(type(message))
        if handler is not None:
            return handler(self, message)
        if type(message) in _SYSTEM_MESSAGES:
            return super()._handle_receive(message)
        for base in type(message).__mro__[1:]:  # a handler of a base class takes subclasses
            handler = handlers.get(base)
            if handler is not None:
                return handler(self, message)
        msg = f"{self.kind} actor {self.name!r} has no handler for {message!r}"
        raise UnhandledMessage(msg)

    def _dispatch(self, message: Any, reply_to: LoopFuture[Any] | None) -> None:
        """Handle a system message, an ask or an unknown message (the drain's slow path)."""
        try:
            result = self._handle_receive(message)
        except Exception as exc:
            if reply_to is None or isinstance(exc, UnhandledMessage):
                if reply_to is not None:
                    reply_to.set_exception()
                self._fail(sys.exc_info())
                return
            logger.debug("exception returned from %s to its asker", self, exc_info=True)
            reply_to.set_exception()
            return
        if reply_to is not None:
            reply_to.set(result)

    def _stop(self) -> None:
        """Stop now: run on_stop(), then answer or fail what is still queued."""
        mailbox = self.actor_inbox
        if mailbox.closed:
            return
        mailbox.close()
        logger.debug("stopped %s", self)
        try:
            self.on_stop()
        except Exception:
            self._handle_failure(*sys.exc_info())
        mailbox.teardown()

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Log an unexpected failure and mark the actor dead."""
        logger.error(
            "%s actor %r (%s) failed",
            self.kind,
            self.name,
            self.actor_urn,
            exc_info=(exception_type, exception_value, traceback),  # type: ignore[arg-type]
        )
        self.actor_inbox.close()

    def _fail(self, exc_info: OptExcInfo) -> None:
        """Stop after a handler raised: log, on_failure(), settle queued asks, tell the
        supervisor."""
        self._handle_failure(*exc_info)
        try:
            self.on_failure(*exc_info)
        except Exception:
            logger.exception("on_failure() of %s raised", self)
        self.actor_inbox.teardown()
        self._notify_supervisor(exc_info[1])

    def _notify_supervisor(self, exception: BaseException | None) -> None:
        supervisor = self.supervisor
        if supervisor is None or exception is None:
            return
        try:
            supervisor.tell(ActorFailed(self.actor_ref, exception))
        except ActorDeadError:
            logger.warning("supervisor of %s is dead; failure not reported", self)


def _handler_table(cls: type[LoopActor]) -> dict[type, Callable[[Any, Any], Any]]:
    """The handlers of ``cls``: its bases' (first base last, so it wins), then its own."""
    table: dict[type, Callable[[Any, Any], Any]] = {}
    for base in reversed(cls.__bases__):
        table.update(getattr(base, "handlers", {}))
    for attribute in cls.__dict__.values():
        for message_type in getattr(attribute, "handles", ()):
            table[message_type] = attribute
    return table


LoopActor.handlers = _handler_table(LoopActor)


def post(ref: ActorRef[Any], message: Any) -> bool:
    """Tell ``ref`` a message; False (and nothing raised) if the actor has already stopped.

    Actors use this where the receiver may legitimately be gone (a deleted queue, a closed
    channel): the message is dropped, as a message to a dead Erlang process would be.
    """
    try:
        ref.tell(message)
    except ActorDeadError:
        return False
    return True


class Timer:
    """One message told to an actor after a delay, at most one pending at a time (a queue's
    TTL and x-expires timers). ``due`` is the caller's label for when it fires."""

    __slots__ = ("_handle", "_message", "_ref", "due")

    def __init__(self, ref: LoopActorRef[Any], message: Any) -> None:
        self._ref = ref
        self._message = message
        self._handle: asyncio.TimerHandle | None = None
        self.due = 0

    @property
    def pending(self) -> bool:
        """Whether the timer is set and has not fired."""
        return self._handle is not None

    def start(self, delay: float, due: int = 0) -> None:
        """Fire in ``delay`` seconds (a pending firing is replaced)."""
        self.cancel()
        self.due = due
        loop = self._ref.actor_inbox.runtime.loop
        self._handle = loop.call_later(delay, self._fire)

    def cancel(self) -> None:
        """Do not fire."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        post(self._ref, self._message)


# ---------------------------------------------------------------------------- runtime


class Runtime:
    """The live actors of one broker, all run by one event loop on one thread.

    Make it on the thread that runs (or is about to run) ``loop``. ``current`` is the
    mailbox whose drain is running (its sends become the admin page's edges).
    """

    __slots__ = ("actors", "current", "lock", "loop", "thread")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.thread = _get_ident()
        self.actors: dict[str, LoopActor] = {}
        self.current: Mailbox | None = None
        self.lock = threading.Lock()  # guards LoopFuture completion against other threads

    def __repr__(self) -> str:
        return f"<Runtime {len(self.actors)} actors on {self.loop!r}>"

    def on_loop_thread(self) -> bool:
        """Tell whether the caller runs on this runtime's loop thread."""
        return _get_ident() == self.thread

    def _require_loop_thread(self, what: str) -> None:
        if _get_ident() != self.thread:
            msg = f"{what} must be called on the event loop thread"
            raise RuntimeError(msg)

    def start(self, cls: type[A], *args: Any, **kwargs: Any) -> LoopActorRef[A]:
        """Create an actor of ``cls``, index it, run its on_start() now, return its ref.

        Must run on the loop thread, or on any thread before the loop runs. The actor is
        not registered in Pykka's ActorRegistry.
        """
        if _get_ident() != self.thread and self.loop.is_running():
            msg = f"start {cls.__name__} on the event loop thread (see call_in_loop())"
            raise RuntimeError(msg)
        actor = cls(*args, **kwargs)
        assert isinstance(actor.actor_urn, str), "LoopActor.__init__() was not called"
        actor._attach(self)  # noqa: SLF001
        self.actors[actor.actor_urn] = actor
        actor._start_actor_loop()  # noqa: SLF001
        return actor.actor_ref

    def call_in_loop(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args)`` on the loop thread soon; safe from any thread.

        Returns a ``concurrent.futures.Future`` with the call's result or exception.
        """
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not result.set_running_or_notify_cancel():
                return
            try:
                result.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                result.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return result

    def run_in_loop_threadsafe(
        self, fn: Callable[..., T], *args: Any, timeout: float | None = None
    ) -> T:
        """Run ``fn(*args)`` on the loop thread and wait for its result (from another
        thread); on the loop thread itself ``fn`` is simply called. Raises
        ``TimeoutError`` if the loop does not run it within ``timeout`` seconds."""
        if _get_ident() == self.thread:
            return fn(*args)
        return self.call_in_loop(fn, *args).result(timeout)

    def lookup(self, urn: str) -> LoopActorRef[Any] | None:
        """Return the ref of the live actor with this URN, or None (loop thread only)."""
        actor = self.actors.get(urn)
        return None if actor is None else actor.actor_ref

    def __len__(self) -> int:
        """Number of live actors."""
        return len(self.actors)

    def snapshot(self) -> list[ActorInfo]:
        """Describe every live actor; call on the loop thread."""
        self._require_loop_thread("snapshot()")
        now = monotonic()
        infos = []
        for actor in self.actors.values():
            mailbox = actor.actor_inbox
            q = mailbox.queue
            infos.append(
                ActorInfo(
                    urn=actor.actor_urn,
                    kind=actor.kind,
                    name=actor.name,
                    owner=actor.owner,
                    depth=len(q),
                    handled=mailbox.handled - mailbox.described,
                    oldest_age_s=now - q[0][2] if q else 0.0,
                    sends_to=tuple(sorted(m.urn for m in mailbox.sends_to)),
                )
            )
        return infos

    def snapshot_threadsafe(self, timeout: float | None = 5.0) -> list[ActorInfo]:
        """:meth:`snapshot` from any thread: runs it on the loop, waits up to ``timeout``."""
        return self.run_in_loop_threadsafe(self.snapshot, timeout=timeout)

    def stop_all(self) -> list[LoopFuture[bool]]:
        """Ask every live actor to stop (after its queued messages); loop thread only.

        Returns the stop futures; ``await asyncio.gather(*runtime.stop_all())`` waits.
        """
        self._require_loop_thread("stop_all()")
        return [actor.actor_ref.stop(block=False) for actor in list(self.actors.values())]

    def close(self) -> None:
        """Mark the actors still alive dead without running on_stop(), and forget them.

        Meant for the very end of a broker's shutdown (after ``stop_all()``) and for tests;
        call it on the loop thread.
        """
        for actor in list(self.actors.values()):
            mailbox = actor.actor_inbox
            mailbox.close()
            mailbox.teardown()
        self.actors.clear()
        self.current = None
