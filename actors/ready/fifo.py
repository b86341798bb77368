"""The ready messages of a plain queue: position order, requeued messages back in place.

New entries append to a deque; a requeued entry goes into a heap by position that is merged
ahead of the deque, so it is delivered before every later message, as RabbitMQ's classic
queues do.
"""

from __future__ import annotations

import heapq
from collections import deque

from dispatchd.actors.content import Entry
from dispatchd.actors.ready.base import Purged, ReadyMessages

__all__ = ["FifoReady"]


class FifoReady(ReadyMessages):
    """Ready entries in position order."""

    __slots__ = ("fifo", "requeued")

    def __init__(self, track_bytes: bool = False) -> None:
        super().__init__(track_bytes)
        self.fifo: deque[Entry] = deque()
        self.requeued: list[Entry] = []  # heap by position, merged ahead of `fifo`

    def push(self, entry: Entry) -> None:  # noqa: D102
        self.fifo.append(entry)
        self.count += 1
        if self.track_bytes:
            self.bytes += len(entry.message.body)

    def extend(self, entries: list[Entry]) -> None:  # noqa: D102
        self.fifo.extend(entries)
        self.count += len(entries)
        if self.track_bytes:
            self.bytes += sum(len(entry.message.body) for entry in entries)

    def requeue(self, entry: Entry) -> None:  # noqa: D102
        heapq.heappush(self.requeued, entry)
        self.count += 1
        if self.track_bytes:
            self.bytes += len(entry.message.body)

    def peek(self) -> Entry:  # noqa: D102
        requeued, fifo = self.requeued, self.fifo
        if requeued and (not fifo or requeued[0].id < fifo[0].id):
            return requeued[0]
        return fifo[0]

    def pop(self) -> Entry:  # noqa: D102
        requeued, fifo = self.requeued, self.fifo
        if requeued and (not fifo or requeued[0].id < fifo[0].id):
            entry = heapq.heappop(requeued)
        else:
            entry = fifo.popleft()
        self.count -= 1
        if self.track_bytes:
            self.bytes -= len(entry.message.body)
        return entry

    def purge(self) -> Purged:  # noqa: D102
        entries = [*self.fifo, *self.requeued]
        self.fifo.clear()
        self.requeued.clear()
        self.bytes = self.count = 0
        return Purged(entries, [])

    def last_position(self) -> int:  # noqa: D102
        return self.fifo[-1].id if self.fifo else 0
