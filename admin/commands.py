"""What the admin may change, carried out on the loop as AMQP methods sent to the vhost actor.

Each command is a coroutine run on the loop thread (``Commands.run`` hands it over from the
admin thread and waits, bounded). Queue and exchange work goes through the same ``Request``
messages a channel sends, so the vhost and queue actors apply their usual rules; the reply
comes back to a one-shot ``ReplyCatcher`` actor instead of a channel (``dispatchd.management``).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from dispatchd.access import AccessError
from dispatchd.actors.messages import GetResult, Reply, Settle
from dispatchd.actors.runtime import Describe, LoopActorRef, post
from dispatchd.management import Management
from dispatchd.wire import spec
from dispatchd.wire.errors import AMQPError

if TYPE_CHECKING:
    from dispatchd.actors.content import Entry, Message
    from dispatchd.broker import Broker

__all__ = ["ACK_MODES", "CommandError", "Commands", "NotFound"]

T = TypeVar("T")

REPLY_TIMEOUT = 5.0
"""Seconds a command waits for the vhost or queue to answer."""

#: RabbitMQ's ``ackmode`` values for ``POST /api/queues/{vhost}/{name}/get``, as the
#: ``Settle.requeue`` each one means once the messages were taken (None: acknowledge).
ACK_MODES: dict[str, bool | None] = {
    "ack_requeue_true": True,
    "reject_requeue_true": True,
    "ack_requeue_false": None,
    "reject_requeue_false": False,
}


class NotFound(LookupError):
    """The vhost, queue or connection a command names does not exist (HTTP 404)."""


class CommandError(ValueError):
    """The broker refused a command: a text, and the AMQP reply code and on-the-wire text
    when the refusal was an AMQP error (each API route maps them as RabbitMQ's does)."""

    def __init__(self, text: str, code: int = 406, reply_text: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.reply_text = reply_text if reply_text is not None else text

    @classmethod
    def of(cls, error: AMQPError) -> CommandError:
        """The CommandError for an AMQP error."""
        return cls(error.text, error.code, error.reply_text)


def _check(reply: Any) -> Any:
    """The method of a Reply, or the CommandError of its AMQP error."""
    if isinstance(reply, Reply) and reply.error is not None:
        raise CommandError.of(reply.error)
    return reply.method if isinstance(reply, Reply) else reply


@dataclass(frozen=True, slots=True)
class Taken:
    """A message ``POST .../get`` took from a queue."""

    entry: Entry
    message_count: int


def encode_message(taken: Taken, encoding: str, truncate: int | None) -> dict[str, Any]:
    """One ``/get`` result in RabbitMQ's shape (payload as text when it is UTF-8 and allowed)."""
    message = taken.entry.message
    body = message.body
    shown = body if truncate is None else body[:truncate]
    payload_encoding = "base64"
    payload = base64.b64encode(shown).decode()
    if encoding == "auto":
        try:
            payload = shown.decode("utf-8")
            payload_encoding = "string"
        except UnicodeDecodeError:
            pass
    try:
        props = message.properties
        properties = {name: getattr(props, name) for name in props.FIELDS}
    except Exception:  # noqa: BLE001 - properties the codec cannot read: show the body anyway
        properties = {}
    return {
        "payload_bytes": len(body),
        "redelivered": taken.entry.redelivered,
        "exchange": message.exchange,
        "routing_key": message.routing_key,
        "message_count": taken.message_count,
        # none at all: RabbitMQ's empty property list, which its JSON renders as []
        "properties": {k: v for k, v in properties.items() if v is not None} or [],
        "payload": payload,
        "payload_encoding": payload_encoding,
    }


class Commands:
    """The admin's write operations; call the public methods from the admin thread.

    ``user`` is whose permissions apply (None: the broker's own, no checks), as RabbitMQ's
    management plugin acts with the requesting user's permissions.
    """

    def __init__(self, broker: Broker, timeout: float = REPLY_TIMEOUT + 1.0) -> None:
        self.broker = broker
        self.management = Management(broker)
        self.timeout = timeout

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop and wait (bounded) for its result."""
        loop = self.broker.runtime.loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result(self.timeout)

    def call(
        self, operation: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any
    ) -> T:
        """Run a Management operation; a change it refuses is a CommandError."""
        try:
            return self.run(operation(*args, **kwargs))
        except AccessError as exc:
            raise CommandError(str(exc)) from None

    # ----- loop side helpers

    def _vhost(self, name: str) -> LoopActorRef[Any]:
        ref = self.broker.vhosts.get(name)
        if ref is None:
            raise NotFound(f"no vhost '{name}'")
        return ref  # type: ignore[return-value]

    async def _queue(self, vhost: str, name: str) -> tuple[LoopActorRef[Any], dict[str, Any]]:
        """The vhost's ref and its declaration of the queue (NotFound if either is missing)."""
        ref = self._vhost(vhost)
        described = await ref.ask(Describe(), block=False)
        for queue in described["queues"]:
            if queue["name"] == name:
                return ref, queue
        raise NotFound(f"no queue '{name}' in vhost '{vhost}'")

    async def _on_queue(self, vhost: str, name: str, method: spec.Method, user: str | None) -> Any:
        """Carry out a method on an existing queue, as its exclusive owner if it has one (as
        RabbitMQ's admin may act on any queue); the reply's method."""
        ref, queue = await self._queue(vhost, name)
        owner = queue["exclusive_owner"] or 0
        return _check(await self.management.ask_vhost(ref, method, owner, user))

    def request(self, vhost: str, method: spec.Method, user: str | None) -> Any:
        """Carry out a declare, delete, bind or unbind in ``vhost`` as ``user``."""

        async def ask() -> Any:
            return _check(await self.management.ask_vhost(self._vhost(vhost), method, 0, user))

        return self.run(ask())

    # ----- connections

    def close_connection(self, name: str, reason: str) -> None:
        """``DELETE /api/connections/{name}``: close it with 320 CONNECTION_FORCED."""

        async def close() -> None:
            for protocol in list(self.broker.connections.values()):
                if protocol.connection_name == name:
                    protocol.force_close(reason)
                    return
            raise NotFound(f"no connection '{name}'")

        self.run(close())

    # ----- queues

    def delete_queue(
        self, vhost: str, name: str, if_unused: bool, if_empty: bool, user: str | None
    ) -> None:
        """``DELETE /api/queues/{vhost}/{name}``."""
        method = spec.QueueDelete(queue=name, if_unused=if_unused, if_empty=if_empty)
        self.run(self._on_queue(vhost, name, method, user))

    def purge_queue(self, vhost: str, name: str, user: str | None) -> int:
        """``DELETE /api/queues/{vhost}/{name}/contents``; returns how many were purged."""
        reply = self.run(self._on_queue(vhost, name, spec.QueuePurge(queue=name), user))
        return int(reply.message_count)

    def get_messages(
        self, vhost: str, name: str, count: int, requeue: bool | None, user: str | None
    ) -> list[Taken]:
        """``POST /api/queues/{vhost}/{name}/get``: take up to ``count`` messages, then settle
        them all at once (requeued in place, acknowledged, or rejected) as ``requeue`` says."""

        async def get() -> list[Taken]:
            ref, queue = await self._queue(vhost, name)
            owner = queue["exclusive_owner"] or 0
            taken: list[Taken] = []
            source = None
            for _ in range(count):
                method = spec.BasicGet(queue=name, no_ack=False)
                result = await self.management.ask_vhost(ref, method, owner, user)
                _check(result)
                if not isinstance(result, GetResult) or result.entry is None:
                    break
                source = result.queue
                taken.append(Taken(result.entry, result.message_count))
            if taken and source is not None:
                post(source, Settle([t.entry.id for t in taken], requeue))
            return taken

        return self.run(get())

    # ----- publishing

    def publish(self, vhost: str, message: Message, user: str) -> bool:
        """``POST /api/exchanges/{vhost}/{name}/publish``: route one message as ``user``;
        whether it reached a queue."""
        try:
            return self.run(self.management.publish(self._vhost(vhost), vhost, message, user))
        except AMQPError as error:
            raise CommandError.of(error) from None

    # ----- definitions

    def import_definitions(self, definitions: Mapping[str, Any], vhost: str | None) -> list[str]:
        """``POST /api/definitions[/{vhost}]`` (see ``Management.import_definitions``)."""
        return self.call(self.management.import_definitions, definitions, vhost)
