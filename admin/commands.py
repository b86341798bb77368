"""What the admin may change, carried out on the loop as AMQP methods sent to the vhost actor.

Each command is a coroutine run on the loop thread (``Commands.run`` hands it over from the
admin thread and waits, bounded). Queue and exchange work goes through the same ``Request``
messages a channel sends, so the vhost and queue actors apply their usual rules; the reply
comes back to a one-shot :class:`ReplyCatcher` actor instead of a channel.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from dispatchd.actors.messages import GetResult, Reply, Request, Settle
from dispatchd.actors.runtime import Describe, LoopActor, LoopActorRef, handles, post
from dispatchd.wire import spec

if TYPE_CHECKING:
    from dispatchd.actors.content import Entry
    from dispatchd.broker import Broker

__all__ = ["ACK_MODES", "CommandError", "Commands", "NotFound", "ReplyCatcher"]

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
    """The broker refused a command (HTTP 400, with the AMQP error's text as the reason)."""


class ReplyCatcher(LoopActor):
    """A one-shot actor that stands in for a channel: hands its first message to a future."""

    kind = "admin"

    def __init__(self, future: asyncio.Future[Any]) -> None:
        super().__init__(name="admin request")
        self.future = future

    @handles(Reply)
    def on_reply(self, msg: Reply) -> None:
        """A vhost's or queue's answer to the request."""
        self._catch(msg)

    @handles(GetResult)
    def on_get_result(self, msg: GetResult) -> None:
        """A queue's answer to basic.get."""
        self._catch(msg)

    def _catch(self, message: Any) -> None:
        if not self.future.done():
            self.future.set_result(message)
        self.stop()


def _check(reply: Any) -> Any:
    """The method of a Reply, or CommandError with the AMQP error's text."""
    if isinstance(reply, Reply) and reply.error is not None:
        raise CommandError(reply.error.reply_text)
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
        "properties": {k: v for k, v in properties.items() if v is not None},
        "payload": payload,
        "payload_encoding": payload_encoding,
    }


class Commands:
    """The admin's write operations; call the public methods from the admin thread."""

    def __init__(self, broker: Broker, timeout: float = REPLY_TIMEOUT + 1.0) -> None:
        self.broker = broker
        self.timeout = timeout

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop and wait (bounded) for its result."""
        loop = self.broker.runtime.loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result(self.timeout)

    # ----- loop side helpers

    def _vhost(self, name: str) -> LoopActorRef[Any]:
        ref = self.broker.vhosts.get(name)
        if ref is None:
            raise NotFound(f"no vhost '{name}'")
        return ref  # type: ignore[return-value]

    async def _ask_vhost(
        self, vhost: LoopActorRef[Any], method: spec.Method, connection_id: int
    ) -> Any:
        """Send ``method`` to the vhost as a channel would and return the reply message."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        catcher = self.broker.runtime.start(ReplyCatcher, future)
        try:
            if not post(vhost, Request(method, catcher, connection_id)):
                raise NotFound("vhost is gone")
            return await asyncio.wait_for(future, REPLY_TIMEOUT)
        finally:
            catcher.stop(block=False)

    async def _queue(self, vhost: str, name: str) -> tuple[LoopActorRef[Any], dict[str, Any]]:
        """The vhost's ref and its declaration of the queue (NotFound if either is missing)."""
        ref = self._vhost(vhost)
        described = await ref.ask(Describe(), block=False)
        for queue in described["queues"]:
            if queue["name"] == name:
                return ref, queue
        raise NotFound(f"no queue '{name}' in vhost '{vhost}'")

    @staticmethod
    def _owner(queue: Mapping[str, Any]) -> int:
        """The connection id to act as: the owner of an exclusive queue (as RabbitMQ's admin may
        act on any queue), else 0."""
        return queue["exclusive_owner"] or 0

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

    def delete_queue(self, vhost: str, name: str, if_unused: bool, if_empty: bool) -> None:
        """``DELETE /api/queues/{vhost}/{name}``."""

        async def delete() -> None:
            ref, queue = await self._queue(vhost, name)
            method = spec.QueueDelete(queue=name, if_unused=if_unused, if_empty=if_empty)
            _check(await self._ask_vhost(ref, method, self._owner(queue)))

        self.run(delete())

    def purge_queue(self, vhost: str, name: str) -> int:
        """``DELETE /api/queues/{vhost}/{name}/contents``; returns how many were purged."""

        async def purge() -> int:
            ref, queue = await self._queue(vhost, name)
            reply = _check(
                await self._ask_vhost(ref, spec.QueuePurge(queue=name), self._owner(queue))
            )
            return reply.message_count

        return self.run(purge())

    def get_messages(self, vhost: str, name: str, count: int, requeue: bool | None) -> list[Taken]:
        """``POST /api/queues/{vhost}/{name}/get``: take up to ``count`` messages, then settle
        them all at once (requeued in place, acknowledged, or rejected) as ``requeue`` says."""

        async def get() -> list[Taken]:
            ref, queue = await self._queue(vhost, name)
            taken: list[Taken] = []
            source = None
            for _ in range(count):
                result = await self._ask_vhost(
                    ref, spec.BasicGet(queue=name, no_ack=False), self._owner(queue)
                )
                _check(result)
                if not isinstance(result, GetResult) or result.entry is None:
                    break
                source = result.queue
                taken.append(Taken(result.entry, result.message_count))
            if taken and source is not None:
                post(source, Settle([t.entry.id for t in taken], requeue))
            return taken

        return self.run(get())

    # ----- definitions

    def import_definitions(self, definitions: Mapping[str, Any], vhost: str | None) -> list[str]:
        """``POST /api/definitions[/{vhost}]``: declare vhosts, exchanges, queues, bindings.

        Users are not imported (dispatchd keeps its users in its settings for now). Raises
        CommandError for a malformed document (nothing applied); otherwise returns the errors,
        one line per definition the broker refused (the others are applied).
        """
        try:
            vhosts = [] if vhost is not None else [v["name"] for v in definitions.get("vhosts", ())]
            declarations = _declarations(definitions, vhost)
        except (KeyError, TypeError, AttributeError) as exc:
            raise CommandError(f"malformed definitions: {exc!r}") from None
        if not all(isinstance(name, str) for name in vhosts):
            raise CommandError("malformed definitions: vhost names must be strings")

        async def apply() -> list[str]:
            for name in vhosts:
                self.broker.start_vhost(name)
            errors: list[str] = []
            for what, where, method in declarations:
                try:
                    _check(await self._ask_vhost(self._vhost(where), method, 0))
                except (NotFound, CommandError) as exc:
                    errors.append(f"{what} in vhost '{where}': {exc}")
            return errors

        return self.run(apply())


def _declarations(
    definitions: Mapping[str, Any], vhost: str | None
) -> list[tuple[str, str, spec.Method]]:
    """(what, vhost, method) for the exchanges, queues and bindings of a definitions document,
    in the order that recreates them (``vhost`` overrides the items' own, for a per-vhost
    import). Raises KeyError/TypeError/AttributeError on a malformed document."""

    def where(item: Mapping[str, Any]) -> str:
        return vhost if vhost is not None else str(item.get("vhost", "/"))

    def table(item: Mapping[str, Any]) -> dict[str, Any]:
        return dict(item.get("arguments") or {})

    out: list[tuple[str, str, spec.Method]] = []
    for x in definitions.get("exchanges", ()):
        method: spec.Method = spec.ExchangeDeclare(
            exchange=str(x["name"]),
            type=str(x.get("type", "direct")),
            durable=bool(x.get("durable", True)),
            auto_delete=bool(x.get("auto_delete", False)),
            internal=bool(x.get("internal", False)),
            arguments=table(x),
        )
        out.append((f"exchange '{x['name']}'", where(x), method))
    for q in definitions.get("queues", ()):
        method = spec.QueueDeclare(
            queue=str(q["name"]),
            durable=bool(q.get("durable", True)),
            auto_delete=bool(q.get("auto_delete", False)),
            arguments=table(q),
        )
        out.append((f"queue '{q['name']}'", where(q), method))
    for b in definitions.get("bindings", ()):
        source, dest, key = str(b["source"]), str(b["destination"]), str(b.get("routing_key", ""))
        if b.get("destination_type", "queue") == "exchange":
            method = spec.ExchangeBind(
                destination=dest, source=source, routing_key=key, arguments=table(b)
            )
        else:
            method = spec.QueueBind(
                queue=dest, exchange=source, routing_key=key, arguments=table(b)
            )
        out.append((f"binding '{source}' -> '{dest}'", where(b), method))
    return out
