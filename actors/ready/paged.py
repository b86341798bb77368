"""The ready messages of a durable queue: past its memory limit, only references in memory.

:class:`PagedReady` is a :class:`~.fifo.FifoReady` for the first ``limit`` ready messages.
Later ones go to ``spill``, whole, until the store has committed them (``stored``); then a
:class:`Backlog` keeps only their position, store id and redelivered flag (three machine
words in arrays, not Python objects). When consumers catch up (``wants_refill``) the next
bodies are read back from the store, in order (``refill`` / ``loaded``). Entries that cannot
be paged (transient, with an expiry, or their commit failed) stay whole, in their place.
"""

from __future__ import annotations

from array import array
from collections import deque

from dispatchd.actors.content import Entry, Message
from dispatchd.actors.ready.base import LoadRequest, Purged
from dispatchd.actors.ready.fifo import FifoReady

__all__ = ["DEFAULT_MEMORY_LIMIT", "Backlog", "PagedReady"]

DEFAULT_MEMORY_LIMIT = 10_000  # the --queue-memory-limit default
LOAD_BATCH = 2_000  # most messages one read from the store brings back
_COMPACT_AT = 4_096  # consumed slots kept before the arrays are shifted down


class Backlog:
    """Ready messages past a queue's in-memory limit, in position order.

    A paged message is a slot in ``positions``/``store_ids`` (a negative store id marks it
    redelivered); a whole entry has store id 0 in its slot and lives in ``whole``.
    """

    __slots__ = ("positions", "store_ids", "head", "whole")

    def __init__(self) -> None:
        self.positions = array("q")
        self.store_ids = array("q")
        self.head = 0
        self.whole: dict[int, Entry] = {}

    def __len__(self) -> int:
        return len(self.positions) - self.head

    def page(self, position: int, store_id: int, redelivered: bool) -> None:
        """Append a committed message by reference only: its body is in the store."""
        self.positions.append(position)
        self.store_ids.append(-store_id if redelivered else store_id)

    def keep(self, entry: Entry) -> None:
        """Append an entry that must stay whole (not in the store, or not known to be)."""
        self.positions.append(entry.id)
        self.store_ids.append(0)
        self.whole[entry.id] = entry

    def _slots(self, end: int | None = None) -> zip[tuple[int, int]]:
        """(position, signed store id) from the head up to ``end`` (default: all)."""
        head = self.head
        return zip(self.positions[head:end], self.store_ids[head:end], strict=True)

    def take(self, count: int) -> tuple[list[Entry | tuple[int, int, bool]], list[int]]:
        """Remove the first ``count``: whole entries or (position, store id, redelivered),
        and the store ids whose bodies must be read back."""
        head = self.head
        end = min(head + count, len(self.positions))
        taken: list[Entry | tuple[int, int, bool]] = []
        ids: list[int] = []
        whole = self.whole
        for position, sid in self._slots(end):
            if sid == 0:
                taken.append(whole.pop(position))
            else:
                taken.append((position, abs(sid), sid < 0))
                ids.append(abs(sid))
        self.head = end
        if end == len(self.positions):
            self.clear()
        elif end >= _COMPACT_AT and end * 2 >= len(self.positions):
            del self.positions[:end]
            del self.store_ids[:end]
            self.head = 0
        return taken, ids

    def put_back(self, taken: list[Entry | tuple[int, int, bool]]) -> None:
        """Return what ``take`` removed to the front (a read that failed)."""
        rest = list(self._slots())
        whole = dict(self.whole)
        self.clear()
        for item in taken:
            if isinstance(item, Entry):
                self.keep(item)
            else:
                self.page(*item)
        for position, sid in rest:
            if sid:
                self.page(position, abs(sid), sid < 0)
            else:
                self.keep(whole[position])

    def stored(self) -> list[tuple[int, int]]:
        """(position, store id) of every paged message (whole ones are the caller's)."""
        return [(p, abs(s)) for p, s in self._slots() if s]

    def clear(self) -> None:
        """Forget everything (purged or consumed)."""
        self.positions = array("q")
        self.store_ids = array("q")
        self.head = 0
        self.whole.clear()


def restore(
    taken: list[Entry | tuple[int, int, bool]], bodies: dict[int, Message]
) -> tuple[list[Entry], list[int]]:
    """Entries for what ``take`` returned, with the bodies read back; and missing positions."""
    entries: list[Entry] = []
    missing: list[int] = []
    for item in taken:
        if isinstance(item, Entry):
            entries.append(item)
            continue
        position, sid, redelivered = item
        message = bodies.get(sid)
        if message is None:
            missing.append(position)
        else:
            entries.append(Entry(position, message, redelivered))
    return entries, missing


class PagedReady(FifoReady):
    """A durable queue's ready messages: ``limit`` of them in memory, the rest paged."""

    __slots__ = ("backlog", "limit", "load_token", "loading", "spill", "spilling")

    def __init__(self, limit: int, track_bytes: bool = False) -> None:
        super().__init__(track_bytes)
        self.limit = max(limit, 1)
        self.spill: deque[Entry] = deque()  # past the limit, whole until committed
        self.backlog = Backlog()
        self.loading: list[Entry | tuple[int, int, bool]] | None = None  # a read in flight
        self.load_token = 0
        self.spilling = False  # spill, backlog or loading is not empty

    @property
    def memory_limit(self) -> int:  # type: ignore[override]
        """Ready messages kept in memory."""
        return self.limit

    @property
    def total(self) -> int:  # noqa: D102
        count = self.count
        if self.spilling:
            count += len(self.spill) + len(self.backlog) + len(self.loading or ())
        return count

    @property
    def in_memory(self) -> int:  # noqa: D102
        count = self.count + len(self.spill)
        loading = self.loading or ()
        return count + len(self.backlog.whole) + sum(isinstance(e, Entry) for e in loading)

    @property
    def paging(self) -> bool:  # noqa: D102
        return self.spilling

    @property
    def reading(self) -> bool:  # noqa: D102
        return self.loading is not None

    def push(self, entry: Entry) -> None:
        """A new entry: in memory while within the limit, else spilled (paged once
        committed)."""
        if self.spilling or len(self.fifo) >= self.limit:
            self.spilling = True
            self.spill.append(entry)
            if self.track_bytes:
                self.bytes += len(entry.message.body)
        else:
            super().push(entry)

    def extend(self, entries: list[Entry]) -> None:  # noqa: D102
        if self.spilling or len(self.fifo) + len(entries) > self.limit:
            for entry in entries:
                self.push(entry)
        else:
            super().extend(entries)

    def recover(self, entries: list[Entry]) -> None:
        """Recovered entries: the first ``limit`` whole ones are ready, the rest paged (an
        entry whose body recovery left in the store has its store id as its message)."""
        fifo, backlog, limit = self.fifo, self.backlog, self.limit
        for entry in entries:
            message = entry.message
            if isinstance(message, int):  # recovery left the body in the store
                backlog.page(entry.id, message, entry.redelivered)
            elif entry.expires and (len(backlog) or len(fifo) >= limit):
                backlog.keep(entry)  # an expiry is kept in memory only: not paged
            elif len(backlog) or len(fifo) >= limit:
                backlog.page(entry.id, message.store_id, entry.redelivered)
            else:
                fifo.append(entry)
                self.count += 1
            if self.track_bytes and not isinstance(message, int):
                self.bytes += len(message.body)
        self.spilling = bool(len(backlog))

    def purge(self) -> Purged:
        """Every ready message, the paged ones as (position, store id)."""
        loading = self.loading or []
        entries = [*super().purge().entries, *self.spill]
        entries += [e for e in loading if isinstance(e, Entry)]
        entries += self.backlog.whole.values()
        paged = self.backlog.stored()
        paged += [(e[0], e[1]) for e in loading if not isinstance(e, Entry)]
        self.spill.clear()
        self.backlog.clear()
        self.loading = None
        self.load_token += 1
        self.spilling = False
        return Purged(entries, paged)

    def last_position(self) -> int:  # noqa: D102
        last = self.backlog.positions[-1] if len(self.backlog) else 0
        return max(last, super().last_position())

    def wants_refill(self) -> bool:  # noqa: D102
        return self.spilling and self.loading is None and len(self.fifo) < self.limit // 2 + 1

    def refill(self) -> LoadRequest | None:
        """Bring the next entries past the limit into memory: paged ones are read back
        (the request returned), spilled or kept ones are whole and move at once."""
        backlog = self.backlog
        if len(backlog):
            taken, ids = backlog.take(min(LOAD_BATCH, max(self.limit // 2, 1)))
            if ids:
                self.loading = taken
                return LoadRequest(ids, self.load_token)
            self._take_in(restore(taken, {})[0])
        else:
            spill, fifo = self.spill, self.fifo
            while spill and len(fifo) < self.limit:
                fifo.append(spill.popleft())
                self.count += 1
        self.spilling = bool(self.spill or len(backlog))
        return None

    def loaded(self, token: int, bodies: dict[int, Message]) -> list[int] | None:
        """The bodies read back: the entries join memory in order (missing ones are
        returned); None for a stale read (purged meanwhile)."""
        if token != self.load_token or self.loading is None:
            return None
        entries, missing = restore(self.loading, bodies)
        self.loading = None
        self._take_in(entries)
        self.spilling = bool(self.spill or len(self.backlog))
        return missing

    def _take_in(self, entries: list[Entry]) -> None:
        """Entries from the backlog join memory, in order."""
        self.fifo.extend(entries)
        self.count += len(entries)

    def load_failed(self, token: int) -> None:
        """A read failed: its entries go back to the front of the backlog; the next trigger
        (a delivery or a get) reads them again."""
        if token == self.load_token:
            self.backlog.put_back(self.loading or [])
            self.loading = None
            self.load_token += 1

    def stored(self, last_position: int) -> None:
        """Spilled entries up to ``last_position`` are committed: keep only references."""
        spill, backlog = self.spill, self.backlog
        while spill and spill[0].id <= last_position:
            entry = spill.popleft()
            if entry.message.store_id and entry.message.persistent and not entry.expires:
                backlog.page(entry.id, entry.message.store_id, entry.redelivered)
            else:
                backlog.keep(entry)

    def store_failed(self, last_position: int) -> None:
        """The write failed, so the spilled entries up to ``last_position`` are not on
        disk: they stay whole."""
        spill = self.spill
        while spill and spill[0].id <= last_position:
            self.backlog.keep(spill.popleft())
