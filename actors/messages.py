"""Typed messages between actors: small frozen dataclasses, named for what happened or is asked.

Batches travel as lists inside one message (one tell per destination per loop turn); the
lists are handed over, never touched again by the sender.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import re
    from collections.abc import Mapping

    from pykka import ActorRef

    from dispatchd.access import Grant
    from dispatchd.actors.content import Entry, Message
    from dispatchd.actors.routing import RoutingSnapshot
    from dispatchd.actors.stats import MessageTotals
    from dispatchd.wire import spec
    from dispatchd.wire.errors import AMQPError

# ----- wire -> channel / connection


@dataclass(frozen=True, slots=True)
class ChannelInput:
    """Methods and completed publishes that arrived on a channel, in order."""

    items: list[Any]


@dataclass(frozen=True, slots=True)
class OversizedPublish:
    """A basic.publish whose body exceeded ``max_message_size``: the wire read and dropped
    the body; the channel refuses it in its place in the input (406, as RabbitMQ)."""

    CLASS_ID: ClassVar[int] = 60  # the method refused: basic.publish
    METHOD_ID: ClassVar[int] = 40

    size: int
    limit: int


@dataclass(frozen=True, slots=True)
class ConnectionGone:
    """The client's socket is closed (or the connection is being closed): clean up and stop."""


@dataclass(frozen=True, slots=True)
class Writable:
    """The connection's socket drained below its low-water mark: deliveries may resume."""


# ----- channel -> vhost, and replies


@dataclass(frozen=True, slots=True)
class Request:
    """A declare/bind/delete/purge/consume/get method for the vhost to carry out."""

    method: spec.Method
    reply_to: ActorRef[Any]
    connection_id: int
    consumer: ActorRef[Any] | None = None
    user: str | None = None  # whose permissions apply; None: the broker's own request


@dataclass(frozen=True, slots=True)
class Reply:
    """The outcome of a Request: a method to send (None for no-wait) or an error."""

    method: spec.Method | None = None
    error: AMQPError | None = None


@dataclass(frozen=True, slots=True)
class ResolveExchange:
    """Ask the vhost for an exchange's actor, to publish to it as ``user``."""

    name: str
    reply_to: ActorRef[Any]
    user: str | None = None


@dataclass(frozen=True, slots=True)
class ExchangeResolved:
    """The exchange's actor (None when there is no such exchange), whether it is internal,
    and the user's topic write permission on it; or why the user may not publish to it."""

    name: str
    ref: ActorRef[Any] | None
    internal: bool = False
    topic_write: re.Pattern[str] | None = None  # routing keys the user may publish with
    refused: AMQPError | None = None


@dataclass(frozen=True, slots=True)
class ChannelStopped:
    """Channel -> vhost: a channel stopped; what it counted joins the vhost's totals."""

    totals: MessageTotals
    channel: ActorRef[Any] | None = None


@dataclass(frozen=True, slots=True)
class AccessChanged:
    """Broker -> vhost: the permissions or limits in the vhost changed; these are now
    everyone's grants and the vhost's queue limit (None: no limit)."""

    grants: Mapping[str, Grant]
    max_queues: int | None = None


@dataclass(frozen=True, slots=True)
class StopVhost:
    """Broker -> vhost (asked): the vhost is deleted; stop every queue and exchange actor and
    answer with their stop futures."""


@dataclass(frozen=True, slots=True)
class ForgetExchanges:
    """Vhost -> channel: permissions changed; resolve exchanges again before publishing."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """A connection is gone: its exclusive queues go with it."""

    connection_id: int


# ----- routing


@dataclass(frozen=True, slots=True)
class Publish:
    """Messages for an exchange to route. ``seqs`` holds confirm sequence numbers (or 0)."""

    messages: list[Message]
    seqs: list[int]
    reply_to: ActorRef[Any] | None
    dead_letters: bool = False  # DeadLettered messages: each queue checks them for cycles


@dataclass(frozen=True, slots=True)
class RouteResult:
    """What an exchange tells a confirm/mandatory channel: returns, then per-seq queue counts."""

    returned: list[Message]
    routed: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Messages routed to a queue; ``seqs`` are confirm numbers to report as Accepted."""

    messages: list[Message]
    seqs: list[int]
    reply_to: ActorRef[Any] | None
    dead_letters: bool = False


@dataclass(frozen=True, slots=True)
class Accepted:
    """A queue has taken these confirm sequence numbers."""

    seqs: list[int]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A queue refused these confirm sequence numbers (full, x-overflow reject-publish):
    the publisher is sent basic.nack."""

    seqs: list[int]


@dataclass(frozen=True, slots=True)
class DeadLetters:
    """Queue -> vhost: dead-lettered messages to publish to the exchange named ``exchange``
    (dropped if it does not exist, as RabbitMQ does)."""

    exchange: str
    messages: list[Message]


@dataclass(frozen=True, slots=True)
class RoutingChanged:
    """Vhost -> exchange: route by this snapshot from now on (see actors/routing/snapshot.py)."""

    routing: RoutingSnapshot


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    """Queue -> vhost: whether a queue.delete went ahead, and the reply for the channel."""

    name: str
    deleted: bool
    reply: Reply
    reply_to: ActorRef[Any] | None


# ----- queue <-> consumer <-> channel


@dataclass(frozen=True, slots=True)
class Deliver:
    """Entries a queue hands to one consumer."""

    entries: list[Entry]


@dataclass(frozen=True, slots=True)
class Deliveries:
    """A consumer's deliveries, forwarded to its channel for tags and framing."""

    consumer_tag: str
    queue: ActorRef[Any]
    no_ack: bool
    entries: list[Entry]


@dataclass(frozen=True, slots=True)
class ConsumerAdded:
    """The queue accepted the consumer (sent through the consumer actor, keeping order)."""

    consumer_tag: str
    queue: ActorRef[Any]
    nowait: bool


@dataclass(frozen=True, slots=True)
class ConsumerRemoved:
    """The consumer is gone: ``notify`` when the server cancels it (queue deleted)."""

    consumer_tag: str
    notify: bool
    nowait: bool = False


@dataclass(frozen=True, slots=True)
class AddConsumer:
    """Channel -> vhost -> queue: register a consumer actor on a queue."""

    queue: str
    consumer: ActorRef[Any]
    channel: ActorRef[Any]
    connection_id: int
    consumer_tag: str
    no_ack: bool
    exclusive: bool
    prefetch: int
    nowait: bool
    arguments: dict[str, Any]
    windowed: bool = False  # the channel has a global prefetch: deliver only within WindowGrants
    user: str | None = None  # whose read permission applies


@dataclass(frozen=True, slots=True)
class CancelConsumer:
    """Channel -> queue: remove a consumer (the reply goes through the consumer actor)."""

    consumer: ActorRef[Any]
    nowait: bool
    channel_closed: bool = False  # then no reply, and its in-flight deliveries are requeued


@dataclass(frozen=True, slots=True)
class Settle:
    """Channel -> queue: delivered entries are acked (``requeue`` None), requeued or dropped."""

    entry_ids: list[int]
    requeue: bool | None


@dataclass(frozen=True, slots=True)
class Credit:
    """Channel -> queue: the consumer's deliveries were written; it may take ``count`` more."""

    consumer: ActorRef[Any]
    count: int


@dataclass(frozen=True, slots=True)
class GetResult:
    """basic.get's answer: one entry (None when empty) and how many remain."""

    entry: Entry | None
    message_count: int
    queue: ActorRef[Any]
    no_ack: bool


# ----- direct reply-to (see actors/reply_to.py)


@dataclass(frozen=True, slots=True)
class ReplyDeliveries:
    """Reply destination -> channel: replies for the channel's reply consumer."""

    name: str
    messages: list[Message]


@dataclass(frozen=True, slots=True)
class AddReplyName:
    """Channel -> vhost: bind a reply name to its destination on the default exchange; the
    ``reply`` (consume-ok, or None for no-wait) goes to ``channel`` once bound."""

    name: str
    dest: ActorRef[Any]
    channel: ActorRef[Any]
    reply: spec.Method | None


@dataclass(frozen=True, slots=True)
class RemoveReplyName:
    """Channel -> vhost: the reply consumer was cancelled or its channel closed."""

    name: str


# ----- channel-wide prefetch (basic.qos global=true): the channel lends its window to queues


@dataclass(frozen=True, slots=True)
class WindowWanted:
    """Queue -> consumer -> channel: the consumer could take ``count`` more but has no window."""

    consumer_tag: str
    consumer: ActorRef[Any]
    count: int


@dataclass(frozen=True, slots=True)
class WindowReturned:
    """Queue -> consumer -> channel: window the consumer was granted but the queue cannot use."""

    consumer_tag: str
    consumer: ActorRef[Any]
    count: int


@dataclass(frozen=True, slots=True)
class WindowGrant:
    """Channel -> queue: the consumer may take ``count`` more deliveries."""

    consumer: ActorRef[Any]
    count: int


@dataclass(frozen=True, slots=True)
class WindowLimit:
    """Channel -> queue: the channel's global prefetch was switched on (window 0) or off."""

    consumer: ActorRef[Any]
    limited: bool
