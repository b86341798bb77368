"""ConsumerActor: one basic.consume, between its queue and its channel.

The queue delivers to the consumer actor, which forwards to its channel for delivery tags and
framing. Replies about the consumer itself (added, cancelled) and its requests for channel
window (global prefetch) travel the same path, so a channel never sees cancel-ok, or a request
for window, before the deliveries that preceded it.
"""

from __future__ import annotations

from typing import Any

from pykka import ActorRef

from dispatchd.actors.messages import (
    ConsumerAdded,
    ConsumerRemoved,
    Deliver,
    Deliveries,
    WindowReturned,
    WindowWanted,
)
from dispatchd.actors.runtime import LoopActor, handles, post


class ConsumerActor(LoopActor):
    """One consumer (consumer tag) on one queue."""

    kind = "consumer"

    def __init__(
        self, channel: ActorRef[Any], tag: str, queue_name: str, no_ack: bool, owner: str
    ) -> None:
        super().__init__(name=tag, owner=owner, supervisor=channel)
        self.channel = channel
        self.tag = tag
        self.queue_name = queue_name
        self.no_ack = no_ack
        self.queue: ActorRef[Any] | None = None
        self.delivered = 0

    @handles(Deliver)
    def on_deliver(self, msg: Deliver) -> None:
        """Deliveries from the queue go to the channel, tagged with the consumer and queue."""
        self.delivered += len(msg.entries)
        assert self.queue is not None
        post(self.channel, Deliveries(self.tag, self.queue, self.no_ack, msg.entries))

    @handles(ConsumerAdded)
    def on_consumer_added(self, msg: ConsumerAdded) -> None:
        """The queue took the consumer: remember it, tell the channel."""
        self.queue = msg.queue
        post(self.channel, msg)

    @handles(WindowWanted)
    def on_window_wanted(self, msg: WindowWanted) -> None:
        """The queue asks the channel for window, behind the deliveries before it."""
        post(self.channel, msg)

    @handles(WindowReturned)
    def on_window_returned(self, msg: WindowReturned) -> None:
        """The queue gives window back to the channel, behind the deliveries before it."""
        post(self.channel, msg)

    @handles(ConsumerRemoved)
    def on_consumer_removed(self, msg: ConsumerRemoved) -> None:
        """The queue let the consumer go: tell the channel, and stop."""
        post(self.channel, msg)
        self.stop()

    def describe(self) -> dict[str, Any]:
        """Tag, queue, ack mode and deliveries for the admin page (prefetch is the queue's)."""
        return {
            **super().describe(),
            "consumer_tag": self.tag,
            "queue": self.queue_name,
            "queue_actor": self.queue.actor_urn if self.queue is not None else None,
            "channel": self.channel.actor_urn,
            "ack_required": not self.no_ack,
            "delivered": self.delivered,
        }
