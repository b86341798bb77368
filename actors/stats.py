"""Broker-wide message totals that outlive the channels that counted them.

Each channel actor counts its own publishes, deliveries and acks (plain integer increments it
already does). The broker-wide totals the admin page and ``/metrics`` report are those of the
live channels plus :data:`CLOSED_CHANNELS`, to which a channel adds its counts when it stops:
so the totals only ever grow, as Prometheus counters must, and nothing is added to the hot
path. Loop thread only, like the actors.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLOSED_CHANNELS", "MessageTotals"]


@dataclass(slots=True)
class MessageTotals:
    """Messages published to, delivered (or got) from, and acknowledged on channels."""

    published: int = 0
    delivered: int = 0
    acked: int = 0

    def add(self, published: int, delivered: int, acked: int) -> None:
        """Fold one channel's counts in."""
        self.published += published
        self.delivered += delivered
        self.acked += acked


CLOSED_CHANNELS = MessageTotals()
"""The counts of every channel that has stopped since the broker started."""
