"""A queue's consumers: what each may take, and the order the queue serves them in.

Each consumer has a :class:`ConsumerRecord`: its prefetch (``basic.qos global=false``) and
deliveries in flight, its flow credit (renewed by its channel as deliveries are written), and
for a channel with a global prefetch its *window* (lent by the channel, see
``actors/limiter.py``). :class:`QueueConsumers` holds the records by consumer actor and the
:class:`~dispatchd.actors.rotation.Rotation` the delivery loop walks.
"""

from __future__ import annotations

from typing import Any

from pykka import ActorRef

from dispatchd.actors.messages import AddConsumer
from dispatchd.actors.rotation import Rotation, consumer_priority

__all__ = ["FLOW_CREDIT", "UNLIMITED", "ConsumerRecord", "QueueConsumers"]

FLOW_CREDIT = 500  # deliveries a consumer may have between two Credit grants from its channel
UNLIMITED = 1 << 62  # the window of a consumer whose channel has no global prefetch


class ConsumerRecord:
    """A consumer as its queue sees it: where to deliver and how much it may take."""

    __slots__ = (
        "arguments",
        "asking",
        "channel",
        "credit",
        "exclusive",
        "in_flight",
        "no_ack",
        "prefetch",
        "priority",
        "ref",
        "tag",
        "window",
        "windowed",
    )

    def __init__(self, add: AddConsumer) -> None:
        self.ref = add.consumer
        self.channel = add.channel
        self.tag = add.consumer_tag
        self.no_ack = add.no_ack
        self.prefetch = 0 if add.no_ack else add.prefetch
        self.in_flight = 0
        self.credit = FLOW_CREDIT
        self.exclusive = add.exclusive
        self.windowed = add.windowed
        self.window = 0 if add.windowed else UNLIMITED
        self.asking = False  # a WindowWanted is out and not yet answered
        self.priority = consumer_priority(add.arguments)
        self.arguments = add.arguments

    def set_limited(self, limited: bool) -> None:
        """Switch the channel window on (empty until granted) or off (unlimited)."""
        self.windowed = limited
        self.window = 0 if limited else UNLIMITED
        self.asking = False

    def room(self) -> int:
        """How many deliveries it could take if the channel window allowed (0: none)."""
        room = self.credit
        if self.prefetch:
            room = min(room, self.prefetch - self.in_flight)
        return max(room, 0)


class QueueConsumers:
    """The consumers of one queue by actor, in delivery order, and who has ever consumed."""

    __slots__ = ("had_consumer", "records", "rotation", "windowed")

    def __init__(self, single_active: bool) -> None:
        self.records: dict[ActorRef[Any], ConsumerRecord] = {}
        # Consumers in delivery order: round-robin groups by x-priority, or the single active.
        self.rotation: Rotation[ConsumerRecord] = Rotation(single_active)
        self.windowed = 0  # how many are windowed (global prefetch on their channel)
        self.had_consumer = False  # for auto-delete: only a queue that had one goes

    def __len__(self) -> int:
        return len(self.records)

    def get(self, ref: ActorRef[Any]) -> ConsumerRecord | None:
        """The record of a consumer actor, if it is one of ours."""
        return self.records.get(ref)

    def refuses(self, exclusive: bool) -> bool:
        """Whether a new consumer (``exclusive`` or not) is refused: someone holds the queue
        exclusively, or it wants to while others (or single-active mode) share it."""
        return any(r.exclusive for r in self.records.values()) or (
            exclusive and (bool(self.records) or self.rotation.single_active)
        )

    def add(self, record: ConsumerRecord) -> bool:
        """Register a consumer; True if it can take messages now."""
        self.records[record.ref] = record
        self.windowed += record.windowed
        self.had_consumer = True
        return self.rotation.join(record)

    def remove(self, record: ConsumerRecord) -> bool:
        """Forget a consumer; True if a waiting single active consumer took its place."""
        del self.records[record.ref]
        self.windowed -= record.windowed
        return self.rotation.leave(record)

    def set_limited(self, record: ConsumerRecord, limited: bool) -> bool:
        """Its channel's global prefetch was switched on or off; False if nothing changed."""
        if record.windowed == limited:
            return False
        self.windowed += 1 if limited else -1
        record.set_limited(limited)
        return True

    def clear(self) -> list[ConsumerRecord]:
        """Forget every consumer (the queue is deleted); the records."""
        records = list(self.records.values())
        self.records.clear()
        self.rotation.reset()
        self.windowed = 0
        return records

    def room(self) -> int:
        """How many messages the consumers could take at once (within their windows)."""
        return sum(min(r.room(), r.window) for group in self.rotation for r in group)
