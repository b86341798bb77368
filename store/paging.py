"""Paging: a durable queue's backlog beyond its in-memory limit keeps no bodies in RAM.

Once a persistent message's commit is done, a queue holding more than its limit keeps only
its position, store id and redelivered flag here (three machine words in arrays, not Python
objects); the body is read back from the store, in order, when consumers catch up. Entries
that cannot be paged (transient, or their commit failed) stay whole, in their place.
"""

from __future__ import annotations

from array import array

from dispatchd.actors.content import Entry, Message

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
