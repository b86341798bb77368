"""ConsumerActor: one basic.consume, between its queue and its channel.

The queue delivers to the consumer actor, which forwards to its channel for delivery tags and
framing. Replies about the consumer itself (added, cancelled) and its requests for channel
window (global prefetch) travel the same path, so a channel never sees cancel-ok, or a request
for window, before the deliveries that preceded it.
"""

from __future__ import annotations

from typing import Any

from pykka import ActorRef

from actors.messages import (
    ConsumerAdded,
    ConsumerRemoved,
    Deliver,
    Deliveries,
    WindowReturned,
    WindowWanted,
)
from actors.runtime import LoopActor, post


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

    def on_receive(self, message: Any) -> None:  # noqa: D102
        if type(message) is Deliver:
            self.delivered += len(message.entries)
            assert self.queue is not None
            post(self.channel, Deliveries(self.tag, self.queue, self.no_ack, message.entries))
        elif type(message) is ConsumerAdded:
            self.queue = message.queue
            post(self.channel, message)
        elif type(message) is WindowWanted or type(message) is WindowReturned:
            post(self.channel, message)
        elif type(message) is ConsumerRemoved:
            post(self.channel, message)
            self.stop()
        else:
            raise TypeError(f"consumer cannot handle {message!r}")

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
