"""A queue's ready messages: one interface (``base.py``) and its implementations.

:func:`ready_messages` picks the implementation once, when the queue is made: per-priority
FIFOs for an ``x-max-priority`` queue (never paged), a paged FIFO for a durable queue with a
store (unlimited in memory when it has length limits, which need every message at hand), a
plain FIFO otherwise.
"""

from __future__ import annotations

from dispatchd.actors.ready.base import LoadRequest, Purged, ReadyMessages
from dispatchd.actors.ready.fifo import FifoReady
from dispatchd.actors.ready.paged import DEFAULT_MEMORY_LIMIT, PagedReady
from dispatchd.actors.ready.priority import PriorityReady, max_priority

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "FifoReady",
    "LoadRequest",
    "PagedReady",
    "PriorityReady",
    "Purged",
    "ReadyMessages",
    "max_priority",
    "ready_messages",
]

UNLIMITED = 1 << 62


def ready_messages(
    priorities: int, stored: bool, length_limited: bool, memory_limit: int
) -> ReadyMessages:
    """The ready store for a queue with ``priorities`` levels (0: none), whose persistent
    messages are ``stored`` or not, with or without length limits (which also need the
    ready bytes counted)."""
    if priorities:
        return PriorityReady(priorities, track_bytes=length_limited)
    if stored:
        return PagedReady(UNLIMITED if length_limited else memory_limit, length_limited)
    return FifoReady(track_bytes=length_limited)
