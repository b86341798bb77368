"""ExchangeActor: owns one exchange's bindings (a Router) and routes published messages.

A plain publish is routed in one step: every message goes to the set of queues its bindings
match, one Enqueue per queue per batch. Exchange-to-exchange bindings and alternate exchanges
make a *walk*: the message travels from exchange actor to exchange actor collecting queues
(each exchange visited once, so loops are safe) and is enqueued once per queue at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pykka import ActorRef

from actors.content import Message
from actors.messages import (
    AddBinding,
    AlternateIs,
    Enqueue,
    Publish,
    RemoveBinding,
    RemoveDestination,
    Reply,
    RouteResult,
)
from actors.routing import router_for
from actors.runtime import LoopActor, post


@dataclass(frozen=True, slots=True)
class RouteOnward:
    """One message on an exchange-to-exchange walk (see the module docstring)."""

    message: Message
    seq: int
    reply_to: ActorRef[Any] | None
    visited: frozenset[ActorRef[Any]]
    queues: frozenset[ActorRef[Any]]
    pending: tuple[ActorRef[Any], ...]


class ExchangeActor(LoopActor):
    """One AMQP exchange of any type."""

    kind = "exchange"

    def __init__(
        self,
        vhost: ActorRef[Any],
        vhost_name: str,
        name: str,
        type_name: str,
        alternate: ActorRef[Any] | None = None,
    ) -> None:
        super().__init__(name=name or "amq.default", owner=vhost_name, supervisor=vhost)
        self.exchange_name = name
        self.type_name = type_name
        self.router = router_for(type_name)
        self.uses_headers = type_name == "headers"
        self.alternate = alternate
        self.exchange_dests: set[ActorRef[Any]] = set()
        self._handlers = {
            Publish: self._publish,
            RouteOnward: self._route_onward,
            AddBinding: self._add_binding,
            RemoveBinding: self._remove_binding,
            RemoveDestination: self._remove_destination,
            AlternateIs: self._alternate_is,
        }

    def on_receive(self, message: Any) -> None:  # noqa: D102
        self._handlers[type(message)](message)

    # ----- routing

    def _publish(self, msg: Publish) -> None:
        route = self.router.route
        uses_headers = self.uses_headers
        walk = bool(self.exchange_dests) or self.alternate is not None
        seqs = msg.seqs
        batches: dict[ActorRef[Any], tuple[list[Message], list[int]]] = {}
        returned: list[Message] = []
        routed: list[tuple[int, int]] = []
        for i, message in enumerate(msg.messages):
            dests = route(message.routing_key, message.headers if uses_headers else None)
            seq = seqs[i] if seqs else 0
            if walk and (not dests or not self.exchange_dests.isdisjoint(dests)):
                self._start_walk(message, seq, msg.reply_to, dests)
                continue
            for dest in dests:
                batch = batches.get(dest)
                if batch is None:
                    batches[dest] = batch = ([], [])
                batch[0].append(message)
                if seq:
                    batch[1].append(seq)
            if not dests and message.mandatory:
                returned.append(message)
            if seq:
                routed.append((seq, len(dests)))
        reply_to = msg.reply_to
        for dest, (messages, dest_seqs) in batches.items():
            post(dest, Enqueue(messages, dest_seqs, reply_to if dest_seqs else None))
        if reply_to is not None and (returned or routed):
            post(reply_to, RouteResult(returned, routed))

    def _start_walk(
        self,
        message: Message,
        seq: int,
        reply_to: ActorRef[Any] | None,
        dests: set[ActorRef[Any]],
    ) -> None:
        me = self.actor_ref
        self._continue_walk(
            RouteOnward(message, seq, reply_to, frozenset((me,)), frozenset(), ()), dests
        )

    def _route_onward(self, step: RouteOnward) -> None:
        me = self.actor_ref
        if me in step.visited:
            self._continue_walk(step, set())
            return
        dests = self.router.route(
            step.message.routing_key, step.message.headers if self.uses_headers else None
        )
        self._continue_walk(
            RouteOnward(
                step.message,
                step.seq,
                step.reply_to,
                step.visited | {me},
                step.queues,
                step.pending,
            ),
            dests,
        )

    def _continue_walk(self, step: RouteOnward, dests: set[ActorRef[Any]]) -> None:
        queues = set(step.queues)
        pending = list(step.pending)
        for dest in dests:
            if dest in self.exchange_dests:
                if dest not in step.visited and dest not in pending:
                    pending.append(dest)
            else:
                queues.add(dest)
        if not dests and self.alternate is not None and self.alternate not in step.visited:
            pending.append(self.alternate)
        while pending:
            nxt = pending.pop(0)
            if nxt.is_alive() and nxt not in step.visited:
                post(
                    nxt,
                    RouteOnward(
                        step.message,
                        step.seq,
                        step.reply_to,
                        step.visited,
                        frozenset(queues),
                        tuple(pending),
                    ),
                )
                return
        seqs = [step.seq] if step.seq else []
        for queue in queues:
            post(queue, Enqueue([step.message], seqs, step.reply_to if seqs else None))
        if step.reply_to is not None:
            returned = [step.message] if not queues and step.message.mandatory else []
            routed = [(step.seq, len(queues))] if step.seq else []
            if returned or routed:
                post(step.reply_to, RouteResult(returned, routed))

    # ----- bindings

    def _add_binding(self, msg: AddBinding) -> None:
        self.router.bind(msg.dest, msg.routing_key, msg.arguments)
        if msg.dest.actor_class is ExchangeActor:
            self.exchange_dests.add(msg.dest)
        if msg.reply_to is not None:
            post(msg.reply_to, Reply(msg.reply))

    def _remove_binding(self, msg: RemoveBinding) -> None:
        self.router.unbind(msg.dest, msg.routing_key, msg.arguments)
        if not self.router.has_bindings_to(msg.dest):
            self.exchange_dests.discard(msg.dest)
        if msg.reply_to is not None:
            post(msg.reply_to, Reply(msg.reply))

    def _remove_destination(self, msg: RemoveDestination) -> None:
        self.router.unbind_all(msg.dest)
        self.exchange_dests.discard(msg.dest)

    def _alternate_is(self, msg: AlternateIs) -> None:
        self.alternate = msg.ref

    def describe(self) -> dict[str, Any]:
        """Type, bindings and alternate exchange for the admin page (flags are the vhost's)."""
        return {
            **super().describe(),
            "exchange": self.exchange_name,
            "type": self.type_name,
            "bindings": len(self.router),
            "alternate": self.alternate.actor_urn if self.alternate is not None else None,
        }
