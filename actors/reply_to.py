"""ReplyToActor: the destination of one direct reply-to consumer (``amq.rabbitmq.reply-to``).

A channel that consumes from ``amq.rabbitmq.reply-to`` gets a reply name
(``amq.rabbitmq.reply-to.<suffix>``), which the vhost binds on the default exchange to this
actor. Replies published to that name reach it as ordinary Enqueues: it hands the messages to
its channel at once (no queue, no acks: the reply consumer is no-ack) and accepts their
confirm numbers, so publisher confirms work as for a queue. Once its channel cancels the
consumer or closes, the binding goes and replies to the name are unroutable (dropped, or
returned when mandatory), as in RabbitMQ.
"""

from __future__ import annotations

from typing import Any

from pykka import ActorRef

from dispatchd.actors.messages import Accepted, Enqueue, ReplyDeliveries
from dispatchd.actors.runtime import LoopActor, handles, post

REPLY_TO = "amq.rabbitmq.reply-to"
REPLY_PREFIX = REPLY_TO + "."


class ReplyToActor(LoopActor):
    """The reply destination of one channel's direct reply-to consumer."""

    kind = "reply-to"

    def __init__(self, channel: ActorRef[Any], name: str, owner: str) -> None:
        super().__init__(name=name, owner=owner, supervisor=channel)
        self.channel = channel
        self.reply_name = name
        self.delivered = 0

    @handles(Enqueue)
    def on_enqueue(self, msg: Enqueue) -> None:
        """Replies routed here go straight to the channel; their confirms are accepted."""
        self.delivered += len(msg.messages)
        post(self.channel, ReplyDeliveries(self.reply_name, msg.messages))
        if msg.seqs and msg.reply_to is not None:
            post(msg.reply_to, Accepted(msg.seqs))

    def describe(self) -> dict[str, Any]:
        """The reply name, its channel and how many replies went through."""
        return {
            **super().describe(),
            "reply_name": self.reply_name,
            "channel": self.channel.actor_urn,
            "delivered": self.delivered,
        }
