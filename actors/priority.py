"""Ready messages of a priority queue (``x-max-priority``), as RabbitMQ 3.10 classic queues.

A priority queue keeps one FIFO per priority level, 0 to its maximum: delivery takes the
highest non-empty level first, and within a level the lowest position first. A message with
no priority property counts as 0, one above the maximum as the maximum. A requeued message
goes back to its level in its original position (ahead of the same level's later messages),
through a per-level heap merged by position with the level's FIFO, as the plain queue does.

:class:`PriorityReady` offers the few ``deque`` operations :class:`actors.queue.QueueActor`
uses on its ``ready`` store, so a plain queue keeps its bare ``deque`` (the hot path is
untouched) and a priority queue swaps this in once, at creation.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from dispatchd.actors.content import Entry, Message

PRIORITY_FLAG = 0x08  # the priority bit of the first property-flags byte (bit 11)


def max_priority(arguments: Mapping[str, Any]) -> int:
    """The queue's ``x-max-priority`` (validated on declare), or 0: not a priority queue."""
    value = arguments.get("x-max-priority")
    if value is None or isinstance(value, bool):
        return 0
    try:
        return max(0, min(int(value), 255))
    except (TypeError, ValueError):
        return 0


def message_priority(message: Message, maximum: int) -> int:
    """The message's priority level: 0 without the property, capped at ``maximum``."""
    raw = message.raw_properties
    if len(raw) < 2 or not raw[0] & PRIORITY_FLAG:  # no parse when the flag is clear
        return 0
    priority = message.properties.priority or 0
    return maximum if priority > maximum else priority


class _Level:
    """One priority level: entries in arrival order, and requeued ones by position."""

    __slots__ = ("fifo", "requeued")

    def __init__(self) -> None:
        self.fifo: deque[Entry] = deque()
        self.requeued: list[Entry] = []  # heap by position, merged ahead of `fifo`

    def __len__(self) -> int:
        return len(self.fifo) + len(self.requeued)

    def peek(self) -> Entry:
        """The level's next entry (lowest position), without removing it."""
        requeued, fifo = self.requeued, self.fifo
        if requeued and (not fifo or requeued[0].id < fifo[0].id):
            return requeued[0]
        return fifo[0]

    def pop(self) -> Entry:
        """Remove and return the level's next entry."""
        requeued, fifo = self.requeued, self.fifo
        if requeued and (not fifo or requeued[0].id < fifo[0].id):
            return heapq.heappop(requeued)
        return fifo.popleft()


class PriorityReady:
    """Per-priority FIFOs behind the ``deque`` interface the queue uses for ``ready``."""

    __slots__ = ("maximum", "levels", "count", "high")

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.levels = [_Level() for _ in range(maximum + 1)]
        self.count = 0
        self.high = 0  # no level above this one holds an entry

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __iter__(self) -> Iterator[Entry]:
        """Every entry, in delivery order."""
        for level in reversed(self.levels):
            yield from sorted([*level.fifo, *level.requeued])

    def __getitem__(self, index: int) -> Entry:
        """``[0]``: the next entry to deliver; ``[-1]``: the one with the highest position."""
        if not self.count:
            raise IndexError("no ready entries")
        if index == 0:
            return self._top().peek()
        if index == -1:
            last = [lv.fifo[-1] for lv in self.levels if lv.fifo]
            last += [max(lv.requeued) for lv in self.levels if lv.requeued]
            return max(last)
        raise IndexError("only the first and last entries can be indexed")

    def append(self, entry: Entry) -> None:
        """Add a newly published (or recovered) entry at the end of its level."""
        priority = message_priority(entry.message, self.maximum)
        self.levels[priority].fifo.append(entry)
        self.count += 1
        if priority > self.high:
            self.high = priority

    def extend(self, entries: Iterable[Entry]) -> None:
        """Append each entry, in order."""
        for entry in entries:
            self.append(entry)

    def requeue(self, entry: Entry) -> None:
        """Put a requeued entry back in its level, in its original position."""
        priority = message_priority(entry.message, self.maximum)
        heapq.heappush(self.levels[priority].requeued, entry)
        self.count += 1
        if priority > self.high:
            self.high = priority

    def _top(self) -> _Level:
        """The highest non-empty level (the store must not be empty)."""
        levels, high = self.levels, self.high
        while not levels[high]:
            high -= 1
        self.high = high
        return levels[high]

    def popleft(self) -> Entry:
        """Remove and return the next entry: highest priority, then lowest position."""
        if not self.count:
            raise IndexError("pop from an empty priority queue")
        entry = self._top().pop()
        self.count -= 1
        return entry

    def clear(self) -> None:
        """Drop every entry."""
        for level in self.levels:
            level.fifo.clear()
            level.requeued.clear()
        self.count = 0
        self.high = 0
