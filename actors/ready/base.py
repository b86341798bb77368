"""The interface of a queue's ready messages, after RabbitMQ's backing queue.

A queue actor keeps its ready messages (published or requeued, not delivered) in one
:class:`ReadyMessages`, in delivery order; what the queue does with them (deliver, expire,
drop over a length limit, purge) goes through this interface. The implementations differ in
order and in where the messages live: :class:`~.fifo.FifoReady` (position order, requeued
messages back in their place), :class:`~.priority.PriorityReady` (``x-max-priority``:
highest priority first) and :class:`~.paged.PagedReady` (a durable queue: past its memory
limit only references stay in memory; bodies are read back from the store).

The paging hooks at the end (overridable) do nothing unless a store pages; the queue calls
them all the same, so it never asks which kind it holds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from dispatchd.actors.content import Entry, Message

__all__ = ["LoadRequest", "Purged", "ReadyMessages"]


@dataclass(frozen=True, slots=True)
class LoadRequest:
    """Bodies a paged store wants read back from the store: by store id, with the token
    its answer must carry (a purge in between makes the answer stale)."""

    store_ids: list[int]
    token: int


@dataclass(frozen=True, slots=True)
class Purged:
    """What a purge removed: whole entries, and (position, store id) of paged-out ones."""

    entries: list[Entry]
    paged: list[tuple[int, int]]


class ReadyMessages(ABC):
    """A queue's ready messages in delivery order.

    ``count`` (also ``len()``) is what is in memory and can be delivered now, a plain
    attribute for the delivery loop; :attr:`total` counts paged-out messages too. ``bytes`` is
    the body size of the ready messages when the queue tracks it (``track_bytes``, for length
    limits).
    """

    __slots__ = ("bytes", "count", "track_bytes")

    memory_limit: int | None = None
    """Ready messages kept in memory (None: all of them)."""

    def __init__(self, track_bytes: bool = False) -> None:
        self.track_bytes = track_bytes
        self.bytes = 0
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    @property
    def total(self) -> int:
        """Every ready message, paged-out ones included (``message_count``)."""
        return len(self)

    @property
    def in_memory(self) -> int:
        """Ready messages whose bodies are in memory."""
        return len(self)

    @abstractmethod
    def push(self, entry: Entry) -> None:
        """Add a newly published entry at the end."""

    def extend(self, entries: list[Entry]) -> None:
        """Add newly published entries at the end, in order."""
        for entry in entries:
            self.push(entry)

    @abstractmethod
    def requeue(self, entry: Entry) -> None:
        """Put a requeued entry back in its original place."""

    @abstractmethod
    def peek(self) -> Entry:
        """The next entry to deliver (the store must not be empty)."""

    @abstractmethod
    def pop(self) -> Entry:
        """Remove and return the next entry to deliver."""

    @abstractmethod
    def purge(self) -> Purged:
        """Remove every ready message; what was removed."""

    @abstractmethod
    def last_position(self) -> int:
        """The highest position held (0 when empty)."""

    def recover(self, entries: list[Entry]) -> None:
        """Take a durable queue's recovered entries, in position order."""
        for entry in entries:
            self.push(entry)

    # ----- paging: only a paged store does anything here

    @property
    def paging(self) -> bool:
        """Whether ready messages wait outside memory (or are being read back)."""
        return False

    @property
    def reading(self) -> bool:
        """Whether a read of paged-out bodies is on its way."""
        return False

    def wants_refill(self) -> bool:
        """Whether memory ran low while messages wait outside it."""
        return False

    def refill(self) -> LoadRequest | None:
        """Bring the next paged-out entries in; the bodies to read back, if any."""
        return None

    def loaded(self, token: int, bodies: dict[int, Message]) -> list[int] | None:
        """A read came back: positions whose bodies were missing (None: a stale read)."""
        return None

    def load_failed(self, token: int) -> None:  # noqa: B027 - overridable hook
        """A read failed: what it was for waits to be read again."""

    def stored(self, last_position: int) -> None:  # noqa: B027 - overridable hook
        """Entries up to ``last_position`` are committed to the store."""

    def store_failed(self, last_position: int) -> None:  # noqa: B027 - overridable hook
        """The write of entries up to ``last_position`` failed: they stay whole."""
