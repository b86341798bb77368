"""Ready messages of a priority queue (``x-max-priority``), as RabbitMQ 3.10 classic queues.

A priority queue keeps one FIFO per priority level, 0 to its maximum: delivery takes the
highest non-empty level first, and within a level the lowest position first. A message with
no priority property counts as 0, one above the maximum as the maximum. A requeued message
goes back to its level in its original position (ahead of the same level's later messages):
each level is a :class:`~.fifo.FifoReady`, as a plain queue's ready messages are.

Priority queues are never paged: every ready message stays in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatchd.actors.content import Entry, Message
from dispatchd.actors.ready.base import Purged, ReadyMessages
from dispatchd.actors.ready.fifo import FifoReady
from dispatchd.wire.spec import FIRST_BYTE_PRIORITY

__all__ = ["PriorityReady", "max_priority", "message_priority"]


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
    if len(raw) < 2 or not raw[0] & FIRST_BYTE_PRIORITY:  # no parse when the flag is clear
        return 0
    priority = message.properties.priority or 0
    return maximum if priority > maximum else priority


class PriorityReady(ReadyMessages):
    """Ready entries by priority level, then by position."""

    __slots__ = ("high", "levels", "maximum")

    def __init__(self, maximum: int, track_bytes: bool = False) -> None:
        super().__init__(track_bytes)
        self.maximum = maximum
        self.levels = [FifoReady() for _ in range(maximum + 1)]
        self.high = 0  # no level above this one holds an entry

    def push(self, entry: Entry) -> None:
        """Add a newly published (or recovered) entry at the end of its level."""
        priority = message_priority(entry.message, self.maximum)
        self.levels[priority].push(entry)
        self._added(priority, entry)

    def requeue(self, entry: Entry) -> None:
        """Put a requeued entry back in its level, in its original position."""
        priority = message_priority(entry.message, self.maximum)
        self.levels[priority].requeue(entry)
        self._added(priority, entry)

    def _added(self, priority: int, entry: Entry) -> None:
        self.count += 1
        if priority > self.high:
            self.high = priority
        if self.track_bytes:
            self.bytes += len(entry.message.body)

    def _top(self) -> FifoReady:
        """The highest non-empty level (the store must not be empty)."""
        levels, high = self.levels, self.high
        while not levels[high]:
            high -= 1
        self.high = high
        return levels[high]

    def peek(self) -> Entry:
        """The next entry: highest priority, then lowest position."""
        if not self.count:
            raise IndexError("no ready entries")
        return self._top().peek()

    def pop(self) -> Entry:
        """Remove and return the next entry: highest priority, then lowest position."""
        if not self.count:
            raise IndexError("pop from an empty priority queue")
        entry = self._top().pop()
        self.count -= 1
        if self.track_bytes:
            self.bytes -= len(entry.message.body)
        return entry

    def purge(self) -> Purged:
        """Drop every entry; they are returned in delivery order."""
        entries = []
        for level in reversed(self.levels):
            entries += sorted(level.purge().entries)
        self.count = 0
        self.high = 0
        self.bytes = 0
        return Purged(entries, [])

    def last_position(self) -> int:
        """The highest position held."""
        last = [lv.fifo[-1].id for lv in self.levels if lv.fifo]
        last += [max(lv.requeued).id for lv in self.levels if lv.requeued]
        return max(last, default=0)
