"""Which consumers a queue delivers to, and in what order: consumer priorities and single
active consumer, as RabbitMQ 3.10 classic queues do them.

A :class:`Rotation` is the list of round-robin groups the queue's delivery loop walks,
highest priority first. The loop serves the first group round-robin and moves on to the next
only once every consumer in it is blocked (prefetch, flow credit or channel window), so a
lower-priority consumer gets messages only while all higher ones are full. Without
``x-priority`` on any consumer there is one group: the plain queue's loop is what it was.
(A consumer under a global prefetch is served only once its channel has lent it window, an
asynchronous ask: lower-priority consumers may take what arrives meanwhile, where RabbitMQ's
synchronous limiter would hold it for the higher one.)

With ``x-single-active-consumer`` there is at most one group of one, the active consumer; the
others wait. As probed on RabbitMQ 3.10.8, the first consumer registered becomes active
whatever the priorities; when it goes (cancelled, or its channel closed), the waiting
consumer with the highest priority takes over, the first registered among equals, and is
served at once. (RabbitMQ 3.10.8 serves it only at the next requeue or new consumer after a
basic.cancel, so ready messages can sit idle until then; that stall is not copied here.)

The list is empty while no consumer can be delivered to, so ``if rotation:`` stays C-speed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Ranked", "Rotation", "consumer_priority"]


def consumer_priority(arguments: Mapping[str, Any]) -> int:
    """basic.consume's ``x-priority`` (validated by the vhost: an integer), 0 without it."""
    return int(arguments.get("x-priority", 0))


class Ranked(Protocol):
    """A consumer as a rotation sees it: only its priority matters."""

    priority: int


R = TypeVar("R", bound=Ranked)


class Rotation(list[deque[R]], Generic[R]):
    """A queue's consumers as round-robin groups, highest priority first (see the module)."""

    def __init__(self, single_active: bool = False) -> None:
        super().__init__()
        self.single_active = single_active
        self.active: R | None = None  # single active consumer mode: the one delivered to
        self.waiting: list[R] = []  # single active consumer mode: the others, in order
        self._groups: dict[int, deque[R]] = {}  # by priority (not in single active mode)

    def join(self, record: R) -> bool:
        """Register a consumer (at the back of its priority); True if it can take messages."""
        if self.single_active:
            if self.active is not None:
                self.waiting.append(record)
                return False
            self._activate(record)
            return True
        group = self._groups.get(record.priority)
        if group is None:
            group = self._groups[record.priority] = deque()
            self[:] = [self._groups[p] for p in sorted(self._groups, reverse=True)]
        group.append(record)
        return True

    def leave(self, record: R) -> bool:
        """Forget a consumer; True if another one became active in its place."""
        if not self.single_active:
            group = self._groups[record.priority]
            group.remove(record)
            if not group:
                del self._groups[record.priority]
                self._drop_group(group)
            return False
        if record is not self.active:
            self.waiting.remove(record)
            return False
        self.active = None
        self.clear()
        if not self.waiting:
            return False
        successor = max(self.waiting, key=_priority)  # the first of the highest priority
        self.waiting.remove(successor)
        self._activate(successor)
        return True

    def _drop_group(self, group: deque[R]) -> None:
        """Drop an emptied group (by identity: empty groups all compare equal)."""
        for index, candidate in enumerate(self):
            if candidate is group:
                del self[index]
                return

    def reset(self) -> None:
        """Forget every consumer (the queue is deleted)."""
        self.clear()
        self._groups.clear()
        self.active = None
        self.waiting.clear()

    def is_active(self, record: R) -> bool:
        """Whether the consumer may be delivered to (always, unless single active waits it)."""
        return not self.single_active or record is self.active

    def status(self, record: R) -> str:
        """RabbitMQ management's ``activity_status``: ``up``, ``single_active`` or ``waiting``."""
        if not self.single_active:
            return "up"
        return "single_active" if record is self.active else "waiting"

    def _activate(self, record: R) -> None:
        self.active = record
        self.append(deque((record,)))


def _priority(record: Ranked) -> int:
    return record.priority
