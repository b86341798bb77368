"""Publisher confirms of one channel: which publishes wait for which queues (``rabbit_confirms``).

A confirm-mode channel numbers its publishes 1, 2, 3... (:meth:`Confirms.number`). A number
stays unconfirmed until every queue its message was routed to has taken it: the exchange
reports how many queues each message went to (:meth:`routed`, a message routed nowhere is
confirmed at once), each queue reports the numbers it took (:meth:`accepted`) or refused
(:meth:`rejected`). The two reports can arrive in either order, so a number whose routing is
not known yet counts -1. Transactions number their publishes the same way at commit, to know
when commit-ok may go out.

:func:`acks` turns confirmed numbers into the fewest ``basic.ack`` frames RabbitMQ would send:
one ``multiple`` ack for everything below the lowest number still unconfirmed, single acks
above it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["Confirms", "acks"]

_UNROUTED = -1  # routing not reported yet


class Confirms:
    """The numbers a channel handed out and the ones still waiting for their queues."""

    __slots__ = ("next_seq", "unconfirmed")

    def __init__(self) -> None:
        self.next_seq = 1
        self.unconfirmed: OrderedDict[int, int] = OrderedDict()  # number -> queues still due

    def __len__(self) -> int:
        return len(self.unconfirmed)

    def __contains__(self, seq: object) -> bool:
        return seq in self.unconfirmed

    def number(self) -> int:
        """The next publish's number, now unconfirmed."""
        seq = self.next_seq
        self.next_seq = seq + 1
        self.unconfirmed[seq] = _UNROUTED
        return seq

    def number_many(self, count: int) -> list[int]:
        """Numbers for ``count`` publishes at once (a transaction's, at commit)."""
        start = self.next_seq
        self.next_seq = start + count
        seqs = list(range(start, start + count))
        self.unconfirmed.update(dict.fromkeys(seqs, _UNROUTED))
        return seqs

    def routed(self, routed: Iterable[tuple[int, int]]) -> list[int]:
        """The exchange's report, ``(number, queues reached)``: the numbers now confirmed
        (those that reached no queue). Queues that answered first are not counted twice:
        their acceptance waits for the count (see :meth:`accepted`)."""
        done = []
        unconfirmed = self.unconfirmed
        for seq, count in routed:
            if count == 0:
                done.append(seq)
            elif seq in unconfirmed:
                unconfirmed[seq] = count
        return self._remove(done)

    def accepted(self, seqs: Iterable[int]) -> list[int]:
        """A queue took these numbers: the ones it was the last queue for, now confirmed."""
        unconfirmed = self.unconfirmed
        done = []
        for seq in seqs:
            left = unconfirmed.get(seq)
            if left is None:
                continue
            if left <= 1:  # the last queue, or the routing report has not come yet
                done.append(seq)
            else:
                unconfirmed[seq] = left - 1
        return self._remove(done)

    def rejected(self, seqs: Iterable[int]) -> list[int]:
        """A queue refused these numbers: those still unconfirmed, now settled (nacked)."""
        return self._remove([seq for seq in seqs if seq in self.unconfirmed])

    def _remove(self, seqs: list[int]) -> list[int]:
        unconfirmed = self.unconfirmed
        for seq in seqs:
            unconfirmed.pop(seq, None)
        return seqs

    def lowest(self) -> int | None:
        """The lowest number still unconfirmed."""
        return next(iter(self.unconfirmed)) if self.unconfirmed else None


def acks(confirmed: list[int], lowest: int | None) -> list[tuple[int, bool]]:
    """``(delivery_tag, multiple)`` of the basic.acks for ``confirmed`` numbers, given the
    lowest number still unconfirmed: one multiple ack below it, single acks above it."""
    top = max(confirmed)
    if lowest is None or top < lowest:
        return [(top, len(confirmed) > 1)]
    out = []
    below = [s for s in confirmed if s < lowest]
    if below:
        out.append((max(below), len(below) > 1))
    out += [(seq, False) for seq in sorted(s for s in confirmed if s > lowest)]
    return out
