"""Queue length limits: ``x-max-length``, ``x-max-length-bytes`` and ``x-overflow``.

As RabbitMQ 3.10 classic queues: only ready messages count (not unacknowledged ones), bytes
are body bytes. With ``drop-head`` (the default) a queue over a limit after a publish or a
requeue drops (or dead-letters, reason ``maxlen``) from its head until it is within both;
with ``reject-publish`` a message that would take it over a limit is refused — the publisher
gets basic.nack if it uses confirms — and ``reject-publish-dlx`` also dead-letters it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dispatchd.actors.arguments import integer_argument
from dispatchd.actors.routing.terms import as_text

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """A queue's length limits (validated on declare) and what happens past them."""

    max_length: int | None
    max_bytes: int | None
    overflow: str

    @classmethod
    def of(cls, arguments: Mapping[str, Any]) -> Limits | None:
        """The queue's limits, or None when it has neither."""
        max_length = integer_argument(arguments, "x-max-length")
        max_bytes = integer_argument(arguments, "x-max-length-bytes")
        if max_length is None and max_bytes is None:
            return None
        return cls(max_length, max_bytes, as_text(arguments.get("x-overflow", "drop-head")))

    @property
    def rejects(self) -> bool:
        """Full queues refuse publishes (rather than dropping their head)."""
        return self.overflow != "drop-head"

    def over(self, count: int, size: int) -> bool:
        """Whether ``count`` ready messages of ``size`` body bytes are past a limit."""
        return (self.max_length is not None and count > self.max_length) or (
            self.max_bytes is not None and size > self.max_bytes
        )
