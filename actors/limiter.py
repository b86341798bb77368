"""A channel's prefetch limits (``basic.qos``), as RabbitMQ's ``rabbit_limiter``.

``prefetch`` (``global=false``) is each new consumer's own limit, enforced by its queue.
``limit`` (``global=true``) bounds the channel's unacknowledged consumer deliveries together,
across queues. The channel owns that limit and lends it out as *window*: a queue whose
windowed consumer could take more asks for some (:meth:`Limiter.want`), the limiter grants
what is left first come first served (:meth:`grants`), a delivery turns lent window into an
unacknowledged delivery (:meth:`delivered`; for a no-ack consumer the window is simply
used up and free again), an ack frees it (:meth:`freed`), and a queue that ran dry gives its
unused window back (:meth:`returned`). Window lent plus deliveries unacknowledged never
exceed the limit, so no queue delivers past it.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Limiter"]


class Limiter:
    """Per-consumer prefetch and the channel-wide window lent to its consumers' queues."""

    __slots__ = ("granted", "limit", "lent", "prefetch", "used", "wanting")

    def __init__(self) -> None:
        self.prefetch = 0  # basic.qos global=false: each new consumer's limit
        self.limit = 0  # basic.qos global=true: 0 for none
        self.used = 0  # unacknowledged consumer deliveries, counted while a limit is set
        self.lent = 0  # window granted to queues, not yet used or returned
        self.granted: dict[str, int] = {}  # consumer tag -> its share of ``lent``
        self.wanting: dict[str, int] = {}  # consumer tag -> window asked for, in ask order

    def set_limit(self, limit: int, unacked: int) -> bool:
        """Set the global limit (``unacked``: the consumer deliveries outstanding now).
        True when it was switched on or off, so the consumers' queues must be told."""
        was, self.limit = self.limit, limit
        if bool(was) == bool(limit):
            return False
        self.lent = 0
        self.granted.clear()
        self.wanting.clear()
        self.used = unacked if limit else 0
        return True

    def want(self, tag: str, count: int) -> None:
        """A consumer's queue asks for ``count`` deliveries' worth of window."""
        self.wanting[tag] = count

    def grants(self, eligible: Callable[[str], bool]) -> list[tuple[str, int]]:
        """Lend what is left of the limit to the ``eligible`` consumers that asked, first
        come first: ``(consumer tag, window)`` to send to their queues."""
        available = self.limit - self.used - self.lent
        wanting = self.wanting
        out = []
        while available > 0 and wanting:
            tag = next(iter(wanting))
            want = wanting.pop(tag)
            if not eligible(tag):
                continue
            count = min(want, available)
            self.granted[tag] = self.granted.get(tag, 0) + count
            self.lent += count
            available -= count
            out.append((tag, count))
        return out

    def delivered(self, tag: str, count: int, no_ack: bool) -> None:
        """``count`` deliveries to a consumer arrived: its lent window was used (and for a
        no-ack consumer it is free again at once)."""
        held = self.granted.get(tag, 0)
        used = min(count, held)
        self.granted[tag] = held - used
        self.lent -= used
        if not no_ack:
            self.used += count

    def returned(self, tag: str, count: int) -> None:
        """A queue gives back window it cannot use."""
        held = self.granted.get(tag, 0)
        count = min(count, held)
        self.granted[tag] = held - count
        self.lent -= count

    def freed(self, count: int) -> None:
        """``count`` consumer deliveries were acknowledged, rejected or requeued."""
        self.used = max(0, self.used - count)

    def forget(self, tag: str) -> None:
        """A consumer is gone: the window it held is free again."""
        self.lent -= self.granted.pop(tag, 0)
        self.wanting.pop(tag, None)

    def clear(self) -> None:
        """The channel closed: nobody waits for window any more."""
        self.wanting.clear()
