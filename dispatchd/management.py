"""Managing users, vhosts and permissions: the operations ``dispatchd ctl`` and the API share.

Every operation is a coroutine run on the loop thread. It validates and applies the change to
the broker's :class:`~dispatchd.access.AccessControl`, waits until the store has committed it
(so a change that was answered survives ``kill -9``; a failed commit puts the old state back
and raises), then makes it take effect: vhost actors get their new grants (the next operation
of every open channel is checked against them), connections of a deleted user or vhost are
closed with 320 CONNECTION_FORCED, a new vhost's actor starts and a deleted one's stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dispatchd import definitions
from dispatchd.access import AccessControl, AlreadyExists, User, Vhost
from dispatchd.actors.confirms import Confirms
from dispatchd.actors.messages import (
    Accepted,
    AccessChanged,
    ChannelStopped,
    ExchangeResolved,
    GetResult,
    Publish,
    Rejected,
    Reply,
    Request,
    ResolveExchange,
    RouteResult,
)
from dispatchd.actors.publishing import check_destination, checked
from dispatchd.actors.runtime import LoopActor, handles, post
from dispatchd.actors.stats import MessageTotals
from dispatchd.store import accounts
from dispatchd.store.actor import StoreFailed
from dispatchd.wire.errors import not_found, precondition_failed

if TYPE_CHECKING:
    from dispatchd.actors.content import Message
    from dispatchd.broker import Broker

__all__ = ["Committed", "Management", "ManagementError", "ReplyCatcher"]

REPLY_TIMEOUT = 5.0
"""Seconds an operation waits for the store or an actor to answer."""


class ManagementError(Exception):
    """An operation failed for a reason other than a refused change (the store failed)."""


@dataclass(frozen=True, slots=True)
class Committed:
    """Store -> catcher: the write it was sent with is committed."""


class ReplyCatcher(LoopActor):
    """A one-shot actor that stands in for a channel: hands its first message to a future."""

    kind = "admin"

    def __init__(self, future: asyncio.Future[Any]) -> None:
        super().__init__(name="admin request")
        self.future = future

    @handles(Reply)
    def on_reply(self, msg: Reply) -> None:
        """A vhost's or queue's answer to a request."""
        self._catch(msg)

    @handles(GetResult)
    def on_get_result(self, msg: GetResult) -> None:
        """A queue's answer to basic.get."""
        self._catch(msg)

    @handles(ExchangeResolved)
    def on_exchange_resolved(self, msg: ExchangeResolved) -> None:
        """A vhost's answer to resolving an exchange to publish to."""
        self._catch(msg)

    @handles(Committed)
    def on_committed(self, msg: Committed) -> None:
        """The store committed a write."""
        self._catch(msg)

    @handles(StoreFailed)
    def on_store_failed(self, msg: StoreFailed) -> None:
        """The store could not commit a write."""
        self._catch(msg)

    def _catch(self, message: Any) -> None:
        if not self.future.done():
            self.future.set_result(message)
        self.stop()


@dataclass(frozen=True, slots=True)
class Published:
    """Confirm catcher -> its future: every queue the publish reached took it (or one
    refused it)."""

    routed: bool
    rejected: bool = False


class ConfirmCatcher(LoopActor):
    """A one-shot publisher: waits until its one publish is confirmed, as a confirm channel
    would (routed to no queue, or taken by every queue it reached, or refused by one)."""

    kind = "admin"
    SEQ = 1  # the number of the one publish (the first a fresh Confirms gives)

    def __init__(self, future: asyncio.Future[Any]) -> None:
        super().__init__(name="admin publish")
        self.future = future
        self.confirms = Confirms()
        self.confirms.number()  # SEQ, the publish's number
        self.routed = False

    @handles(RouteResult)
    def on_route_result(self, msg: RouteResult) -> None:
        """The exchange counted the queues the publish reached."""
        self.routed = any(count for _, count in msg.routed)
        self._settled(self.confirms.routed(msg.routed))

    @handles(Accepted)
    def on_accepted(self, msg: Accepted) -> None:
        """A queue took the publish (persisted first, if it is persistent and durable)."""
        self._settled(self.confirms.accepted(msg.seqs))

    @handles(Rejected)
    def on_rejected(self, msg: Rejected) -> None:
        """A queue refused the publish (full, overflow reject-publish)."""
        if self.confirms.rejected(msg.seqs):
            self._settle(Published(self.routed, rejected=True))

    def _settled(self, done: list[int]) -> None:
        if done:
            self._settle(Published(self.routed))

    def _settle(self, outcome: Published) -> None:
        if not self.future.done():
            self.future.set_result(outcome)
        self.stop()


class Management:
    """The broker's management operations (call and await them on the loop thread)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    @property
    def access(self) -> AccessControl:
        """The broker's users, vhosts and permissions."""
        return self.broker.access

    async def catch(self, send: Any, catcher_class: type[LoopActor] = ReplyCatcher) -> Any:
        """Start a catcher, call ``send(catcher)`` and wait for what the catcher gets."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        catcher = self.broker.runtime.start(catcher_class, future)
        try:
            send(catcher)
            return await asyncio.wait_for(future, REPLY_TIMEOUT)
        finally:
            catcher.stop(block=False)

    async def commit(self, before: AccessControl, *writes: Any) -> None:
        """Persist ``writes`` (one batch) and wait for the commit; on failure restore
        ``before`` and raise ManagementError. Without a store, nothing to wait for."""
        store = self.broker.store
        if store is None or not writes:
            return
        *first, last = writes

        def send(catcher: Any) -> None:
            for write in first:
                store.tell(write)
            store.tell(replace(last, then=(catcher, Committed())))

        try:
            outcome = await self.catch(send)
        except TimeoutError:
            outcome = StoreFailed(last, "no answer from the store")
        if isinstance(outcome, StoreFailed):
            self.broker.access = before
            raise ManagementError(f"the store failed: {outcome.error}")

    def regrant(self, vhosts: Iterable[str]) -> None:
        """Hand the vhosts' actors their users' current grants."""
        for name in set(vhosts):
            ref, vhost = self.broker.vhosts.get(name), self.access.vhosts.get(name)
            if ref is not None and vhost is not None:
                limits = vhost.limits
                post(ref, AccessChanged(self.access.grants(name), limits.get("max-queues")))

    @staticmethod
    def _close(connections: list[Any], text: str) -> None:
        """Close connections with 320 (without waiting for their clients' close-ok, as
        RabbitMQ: a closing connection reads nothing more but that)."""
        for protocol in connections:
            protocol.force_close(text)

    async def ask_vhost(
        self, vhost: Any, method: Any, connection_id: int, user: str | None = None
    ) -> Any:
        """Send an AMQP method to a vhost actor as ``user`` would on a channel (None: as the
        broker itself, with no permission checks) and return the reply message."""

        def send(catcher: Any) -> None:
            if not post(vhost, Request(method, catcher, connection_id, user=user)):
                raise ManagementError("the vhost is gone")

        return await self.catch(send)

    async def publish(self, vhost: Any, vhost_name: str, message: Message, user: str) -> bool:
        """Route one message through its exchange as ``user`` would publish it on a confirm
        channel (their write and topic permissions, user-id, expiration and CC/BCC checked as
        there); once confirmed, whether it reached a queue. Raises the AMQPError a channel
        would get (a queue's refusal: 406, as RabbitMQ's API reports a nack)."""

        def resolve(catcher: Any) -> None:
            post(vhost, ResolveExchange(message.exchange, catcher, user))

        resolved = await self.catch(resolve)
        if resolved.refused is not None:
            raise resolved.refused
        if resolved.ref is None:
            raise not_found(f"no exchange '{message.exchange}' in vhost '{vhost_name}'")
        check_destination(message, resolved.internal, resolved.topic_write, vhost_name, user)
        message = checked(message, user)

        def route(catcher: Any) -> None:
            post(resolved.ref, Publish([message], [ConfirmCatcher.SEQ], catcher))
            post(vhost, ChannelStopped(MessageTotals(published=1), catcher))

        outcome = await self.catch(route, ConfirmCatcher)
        if outcome.rejected:
            raise precondition_failed("the message was rejected by a queue")
        return outcome.routed

    async def import_definitions(self, doc: Mapping[str, Any], vhost: str | None) -> list[str]:
        """See ``dispatchd.definitions.import_definitions``."""
        return await definitions.import_definitions(self, doc, vhost)

    # ----- users

    async def add_user(
        self,
        name: str,
        password: str | None,
        tags: Iterable[str] = (),
        *,
        password_hash: str | None = None,
        hashing_algorithm: str | None = None,
        exists_ok: bool = False,
    ) -> User:
        """Create a user (``exists_ok``: or replace one, as the API's PUT does)."""
        if not exists_ok and name in self.access.users:
            raise AlreadyExists(f"user '{name}' already exists")
        before = self.access.copy()
        options = {} if hashing_algorithm is None else {"hashing_algorithm": hashing_algorithm}
        user = self.access.add_user(name, password, tags, password_hash, **options)
        await self.commit(before, accounts.SaveUser(user))
        return user

    async def change_password(self, name: str, password: str | None) -> User:
        """A new password; None clears it (``clear_password``)."""
        before = self.access.copy()
        user = self.access.change_password(name, password)
        await self.commit(before, accounts.SaveUser(user))
        return user

    async def set_user_tags(self, name: str, tags: Iterable[str]) -> User:
        """Replace a user's tags."""
        before = self.access.copy()
        user = self.access.set_user_tags(name, tags)
        await self.commit(before, accounts.SaveUser(user))
        return user

    async def set_user_limits(self, name: str, limits: Mapping[str, Any]) -> User:
        """Replace a user's limits."""
        before = self.access.copy()
        user = self.access.set_user_limits(name, limits)
        await self.commit(before, accounts.SaveUser(user))
        return user

    async def delete_user(self, name: str) -> None:
        """Delete a user: their permissions go, their connections are closed with 320."""
        before = self.access.copy()
        vhosts = [v for v, u in self.access.permissions if u == name]
        self.access.delete_user(name)
        await self.commit(before, accounts.DeleteUser(name))
        self.regrant(vhosts)
        connections = [p for p in self.broker.connections.values() if p.user == name]
        self._close(connections, f"user '{name}' is deleted")

    # ----- vhosts

    async def add_vhost(
        self,
        name: str,
        description: str = "",
        tags: Iterable[str] = (),
        default_queue_type: str = "undefined",
        *,
        exists_ok: bool = False,
    ) -> Vhost:
        """Create a vhost and start its actor (``exists_ok``: or update its metadata)."""
        if not exists_ok and name in self.access.vhosts:
            raise AlreadyExists(f"vhost '{name}' already exists")
        before = self.access.copy()
        vhost = self.access.add_vhost(name, description, tags, default_queue_type)
        await self.commit(before, accounts.SaveVhost(vhost))
        self.broker.start_vhost(name)
        return vhost

    async def set_vhost_limits(self, name: str, limits: Mapping[str, Any]) -> Vhost:
        """Replace a vhost's limits."""
        before = self.access.copy()
        vhost = self.access.set_vhost_limits(name, limits)
        await self.commit(before, accounts.SaveVhost(vhost))
        self.regrant([name])
        return vhost

    async def delete_vhost(self, name: str) -> None:
        """Delete a vhost: its connections close with 320, its actors stop, and every row it
        had in the store (exchanges, queues and their messages, bindings, permissions) goes."""
        before = self.access.copy()
        self.access.delete_vhost(name)  # no connection may open it from here on
        connections = [p for p in self.broker.connections.values() if p.vhost == name]
        self._close(connections, f"vhost '{name}' is deleted")
        ref = self.broker.vhosts.pop(name, None)
        if ref is not None:
            await self.broker.stop_vhost(ref)
        await self.commit(before, accounts.DeleteVhost(name))

    # ----- permissions

    async def set_permissions(
        self, vhost: str, user: str, configure: str, write: str, read: str
    ) -> None:
        """Set a user's permissions in a vhost."""
        before = self.access.copy()
        permission = self.access.set_permissions(vhost, user, configure, write, read)
        await self.commit(before, accounts.SavePermission(vhost, user, permission))
        self.regrant([vhost])

    async def clear_permissions(self, vhost: str, user: str) -> None:
        """Take a user's permissions in a vhost away."""
        before = self.access.copy()
        self.access.clear_permissions(vhost, user)
        await self.commit(before, accounts.SavePermission(vhost, user, None))
        self.regrant([vhost])

    async def set_topic_permissions(
        self, vhost: str, user: str, exchange: str, write: str, read: str
    ) -> None:
        """Restrict a user's routing keys on a topic exchange."""
        before = self.access.copy()
        topic = self.access.set_topic_permissions(vhost, user, exchange, write, read)
        await self.commit(before, accounts.SaveTopicPermission(vhost, user, exchange, topic))
        self.regrant([vhost])

    async def clear_topic_permissions(self, vhost: str, user: str, exchange: str | None) -> None:
        """Remove a user's topic permissions (on one exchange, or all)."""
        before = self.access.copy()
        self.access.clear_topic_permissions(vhost, user, exchange)
        await self.commit(before, accounts.SaveTopicPermission(vhost, user, exchange, None))
        self.regrant([vhost])
