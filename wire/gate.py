"""``--max-connections``: RabbitMQ 3.10's ``connection_max``, which is Ranch's ``max_connections``.

RabbitMQ 3.10 hands ``connection_max`` to each listener's Ranch instance
(``tcp_listener_sup``: one per address and port, ``connection_max div num_conns_sups`` with one
connections supervisor). Ranch refuses nothing and sends no text: at the limit it stops
accepting, and the clients behind it wait in the listen backlog, unanswered, until a
connection closes. The limit is soft, as ``ranch_conns_sup`` keeps it: each of the listener's
10 acceptors (``num_tcp_acceptors``/``num_ssl_acceptors``) accepts one socket, and only the
acceptor whose connection reaches the limit goes to sleep, so a burst can reach
``limit + 9``; a closing connection wakes one sleeping acceptor only once the count is back
under the limit.

:class:`AcceptGate` is that bookkeeping, pure. :class:`GatedListener` applies it to one
asyncio listener: a socket the gate cannot take yet is held with its reading paused, and the
real protocol is made (handshake timer and all) only when it is taken, so it sees what a
client of a sleeping Ranch listener sees. (RabbitMQ 3.13 changed this: ``connection_max`` is
node-wide and refused at connection.open with 530 "connection refused: node connection limit
(N) is reached"; 3.10 has no such text.)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

__all__ = ["ACCEPTORS", "AcceptGate", "GatedListener"]

#: Ranch acceptors per RabbitMQ listener (``num_tcp_acceptors``, ``num_ssl_acceptors``).
ACCEPTORS = 10


class AcceptGate:
    """One listener's connection count and its awake acceptors, as ``ranch_conns_sup``."""

    def __init__(self, limit: int, acceptors: int = ACCEPTORS) -> None:
        self.limit = limit
        self.acceptors = acceptors
        self.awake = acceptors
        self.active = 0

    def may_accept(self) -> bool:
        """Whether an acceptor is awake to take the next socket."""
        return self.awake > 0

    def accepted(self) -> None:
        """A socket was taken; its acceptor sleeps if that reached the limit."""
        self.active += 1
        if self.active >= self.limit:
            self.awake -= 1

    def closed(self) -> None:
        """A connection ended; a sleeping acceptor wakes if the count was within the limit."""
        within = self.active <= self.limit
        self.active -= 1
        if within and self.awake < self.acceptors:
            self.awake += 1


class GatedListener:
    """A protocol factory for one listener that holds sockets its gate cannot take yet."""

    def __init__(self, gate: AcceptGate, factory: Callable[[], asyncio.Protocol]) -> None:
        self.gate = gate
        self.factory = factory
        self.waiting: deque[_Held] = deque()

    def __call__(self) -> asyncio.Protocol:
        """A protocol for a socket the loop accepted."""
        return _Held(self)

    def _arrived(self, held: _Held) -> None:
        if self.gate.may_accept() and not self.waiting:
            self._take(held)
        else:
            held.hold()
            self.waiting.append(held)

    def _take(self, held: _Held) -> None:
        self.gate.accepted()
        held.start(self.factory())

    def _ended(self, held: _Held) -> None:
        if held.inner is None:
            self.waiting.remove(held)
            return
        self.gate.closed()
        while self.waiting and self.gate.may_accept():
            self._take(self.waiting.popleft())


class _Held(asyncio.Protocol):
    """A socket of a gated listener: held (reading paused) until taken, then a thin
    forwarder to the real protocol."""

    def __init__(self, listener: GatedListener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.inner: asyncio.Protocol | None = None
        self.held = False
        self.early: list[bytes] = []  # read before the pause took effect (uvloop may)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self.transport = transport  # type: ignore[assignment]
        self.listener._arrived(self)

    def hold(self) -> None:
        """Read nothing until taken (the client's bytes wait in the socket)."""
        assert self.transport is not None
        self.transport.pause_reading()
        self.held = True

    def start(self, inner: asyncio.Protocol) -> None:
        """Taken: hand the socket to the real protocol."""
        assert self.transport is not None
        self.inner = inner
        inner.connection_made(self.transport)
        early, self.early = self.early, []
        for data in early:
            inner.data_received(data)
        if self.held and not self.transport.is_closing():
            self.held = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:  # noqa: D102
        if self.inner is None:
            self.early.append(data)
        else:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:  # noqa: D102
        return self.inner.eof_received() if self.inner is not None else False

    def pause_writing(self) -> None:  # noqa: D102
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:  # noqa: D102
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        if self.inner is not None:
            self.inner.connection_lost(exc)
        self.listener._ended(self)
