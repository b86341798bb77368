"""A channel's delivery tags and the deliveries that wait for an ack (``unacked_message_q``).

Tags count up from 1 over every delivery and get-ok of the channel (acked or not). A delivery
that needs an ack is remembered by its tag until ``basic.ack``, ``nack`` or ``reject`` names
it (:meth:`UnackedMessages.take`, RabbitMQ's ``collect_acks``): where it came from (queue
actor and entry position) and, for a consumer's delivery, the consumer tag (deliveries to
consumers count against a global prefetch; basic.get ones do not).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pykka import ActorRef

from dispatchd.actors.content import Entry
from dispatchd.wire.errors import AMQPError, precondition_failed

__all__ = ["Unacked", "UnackedMessages"]


@dataclass(frozen=True, slots=True)
class Unacked:
    """A delivery awaiting ack: where it came from."""

    queue: ActorRef[Any]
    entry_id: int
    consumer_tag: str | None


def _unknown_tag(delivery_tag: int) -> AMQPError:
    return precondition_failed(f"unknown delivery tag {delivery_tag}")


class UnackedMessages:
    """Delivery tags handed out, and the deliveries not yet acknowledged, by tag."""

    __slots__ = ("last_tag", "records")

    def __init__(self) -> None:
        self.last_tag = 0
        self.records: OrderedDict[int, Unacked] = OrderedDict()  # ascending tags

    def __len__(self) -> int:
        return len(self.records)

    def deliver(
        self, queue: ActorRef[Any], consumer_tag: str | None, entries: list[Entry], no_ack: bool
    ) -> int:
        """Tag the entries in order (remembering them unless ``no_ack``); the first tag."""
        first = self.last_tag + 1
        tag = self.last_tag
        if no_ack:
            tag += len(entries)
        else:
            records = self.records
            for entry in entries:
                tag += 1
                records[tag] = Unacked(queue, entry.id, consumer_tag)
        self.last_tag = tag
        return first

    def tags(self, count: int) -> int:
        """``count`` tags for no-ack deliveries (replies to direct reply-to); the first."""
        first = self.last_tag + 1
        self.last_tag += count
        return first

    def take(self, delivery_tag: int, multiple: bool) -> list[tuple[int, Unacked]]:
        """Remove and return the deliveries an ack, nack or reject names (``collect_acks``).

        ``multiple`` with tag 0 takes everything; otherwise the tag itself must be
        outstanding (406 ``unknown delivery tag``), whatever lies below it.
        """
        records = self.records
        if not multiple:
            record = records.pop(delivery_tag, None)
            if record is None:
                raise _unknown_tag(delivery_tag)
            return [(delivery_tag, record)]
        if delivery_tag == 0:
            return self.take_all()
        if delivery_tag not in records:
            raise _unknown_tag(delivery_tag)
        tags = []
        for tag in records:  # ascending
            if tag > delivery_tag:
                break
            tags.append(tag)
        return [(tag, records.pop(tag)) for tag in tags]

    def take_all(self) -> list[tuple[int, Unacked]]:
        """Remove and return every outstanding delivery."""
        taken = list(self.records.items())
        self.records.clear()
        return taken

    def restore(self, taken: Iterable[tuple[int, Unacked]]) -> None:
        """Put deliveries back under their tags (a rolled-back transaction's acks)."""
        merged = [*self.records.items(), *taken]
        self.records = OrderedDict(sorted(merged, key=lambda item: item[0]))

    def consumer_deliveries(self) -> int:
        """How many outstanding deliveries went to consumers (not basic.get)."""
        return sum(1 for record in self.records.values() if record.consumer_tag is not None)
