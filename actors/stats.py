"""Message totals that outlive the channels that counted them.

Each channel actor counts its own publishes, deliveries and acks (plain integer increments it
already does). When it stops it tells its vhost (:class:`~dispatchd.actors.messages.
ChannelStopped`), which adds them to the vhost's :class:`MessageTotals`; the broker-wide
totals the admin page and ``/metrics`` report are those of the live channels plus every
vhost's, so they only ever grow, as Prometheus counters must, and nothing is added to the hot
path.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MessageTotals"]


@dataclass(slots=True)
class MessageTotals:
    """Messages published to, delivered (or got) from, and acknowledged on channels."""

    published: int = 0
    delivered: int = 0
    acked: int = 0

    def add(self, other: MessageTotals) -> None:
        """Fold other totals in."""
        self.published += other.published
        self.delivered += other.delivered
        self.acked += other.acked
