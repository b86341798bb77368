"""Every binding of one vhost, and the routing snapshots they give its exchanges.

The vhost actor owns one :class:`VhostBindings`: the bindings by name (a
:class:`~.index.BindingIndex`, for declares, deletes and listings), each exchange's
:class:`~.base.Router` (the same bindings by destination actor, for routing), and which
exchange reaches which through exchange-to-exchange bindings and alternate exchanges. Every
change returns the snapshots to send: for each exchange whose routing changed, and for each
exchange that reaches one of those, a :class:`~.snapshot.RoutingSnapshot` with its own route
and the routes of everything it reaches. Destinations are opaque handles (actor refs).

The default exchange's bindings (one per queue, by its name, and direct reply-to names) are
implicit, as in RabbitMQ: they are in its router only, not in the index.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field

from . import router_for
from .base import EMPTY_TABLE, Router
from .index import BindingIndex, BindingKey, DestKind
from .snapshot import ExchangeRoute, RoutingSnapshot

__all__ = ["VhostBindings"]

Sends = list[tuple[Hashable, RoutingSnapshot]]  # (exchange actor, its new snapshot)


@dataclass(slots=True)
class _Exchange:
    """One exchange as routing sees it."""

    name: str
    router: Router
    uses_headers: bool
    alternate: str | None  # the alternate exchange's name, whether it exists or not
    ref: Hashable | None = None  # its actor, once started
    bound: Counter[str] = field(default_factory=Counter)  # bindings to each exchange
    route: ExchangeRoute | None = None


class VhostBindings:
    """A vhost's bindings by name and by actor, and the routing they make."""

    __slots__ = ("_alternate_of", "_bound_by", "_exchanges", "index")

    def __init__(self) -> None:
        self.index = BindingIndex()
        self._exchanges: dict[str, _Exchange] = {}
        self._bound_by: dict[str, set[str]] = {}  # exchange -> exchanges bound to it
        self._alternate_of: dict[str, set[str]] = {}  # name -> exchanges with it as AE

    # ----- exchanges

    def declare_exchange(self, name: str, type_name: str, alternate: str | None) -> RoutingSnapshot:
        """A new exchange (its actor not started yet): its first snapshot.

        RabbitMQ routes nothing through an alternate-exchange naming the default exchange.
        """
        exchange = _Exchange(name, router_for(type_name), type_name == "headers", alternate or None)
        self._exchanges[name] = exchange
        if exchange.alternate is not None:
            self._alternate_of.setdefault(exchange.alternate, set()).add(name)
        self._rebuild(exchange)
        return self._snapshot(exchange)

    def exchange_started(self, name: str, ref: Hashable) -> Sends:
        """The exchange's actor runs: the exchanges that reach it (as their alternate
        exchange, by name) route through it now."""
        self._exchanges[name].ref = ref
        for other in self._alternate_of.get(name, ()):
            if other in self._exchanges:
                self._rebuild(self._exchanges[other])
        return self._sends(self._reaching({name}) - {name})

    def delete_exchange(self, name: str) -> tuple[set[str], Sends]:
        """An exchange goes with every binding from or to it: the exchanges that lost a
        binding to it (for auto-delete), and the snapshots to send."""
        exchange = self._exchanges[name]
        reaching = self._reaching({name}) - {name}
        self.index.remove_source(name)
        for dest in exchange.bound:
            self._bound_by[dest].discard(name)
        if exchange.alternate is not None:
            self._alternate_of[exchange.alternate].discard(name)
        sources = {b.source for b in self.index.remove_destination("exchange", name)}
        for source in sources:
            other = self._exchanges[source]
            other.router.unbind_all(exchange.ref)
            del other.bound[name]
        self._bound_by.pop(name, None)
        del self._exchanges[name]
        for other in reaching:
            if other in self._exchanges:
                self._rebuild(self._exchanges[other])
        return sources, self._sends(reaching & self._exchanges.keys())

    def router(self, name: str) -> Router:
        """The exchange's router (to validate binding arguments)."""
        return self._exchanges[name].router

    # ----- bindings

    def bind(self, key: BindingKey, dest: Hashable) -> Sends:
        """Add a binding (``dest``: the destination's actor); snapshots to send."""
        if not self.index.add(key):
            return []
        exchange = self._exchanges[key.source]
        exchange.router.bind(dest, key.routing_key, key.arguments)
        if key.dest_kind == "exchange":
            exchange.bound[key.dest] += 1
            self._bound_by.setdefault(key.dest, set()).add(key.source)
        return self._changed({key.source})

    def unbind(self, key: BindingKey, dest: Hashable) -> Sends:
        """Remove a binding; snapshots to send."""
        if not self.index.remove(key):
            return []
        exchange = self._exchanges[key.source]
        exchange.router.unbind(dest, key.routing_key, key.arguments)
        if key.dest_kind == "exchange":
            exchange.bound[key.dest] -= 1
            if not exchange.bound[key.dest]:
                del exchange.bound[key.dest]
                self._bound_by[key.dest].discard(key.source)
        return self._changed({key.source})

    def remove_queue(self, name: str, ref: Hashable) -> tuple[set[str], Sends]:
        """A queue is gone: its bindings (and its default-exchange binding) go; the
        exchanges that lost a binding (for auto-delete), and snapshots to send."""
        sources = {b.source for b in self.index.remove_destination("queue", name)}
        for source in sources | {""}:
            self._exchanges[source].router.unbind_all(ref)
        return sources, self._changed(sources | {""})

    def bind_default(self, name: str, dest: Hashable) -> Sends:
        """The default exchange's implicit binding of a queue (or reply name) to its name."""
        self._exchanges[""].router.bind(dest, name)
        return self._changed({""})

    def unbind_default(self, dest: Hashable) -> Sends:
        """Drop the default exchange's implicit binding of ``dest``."""
        self._exchanges[""].router.unbind_all(dest)
        return self._changed({""})

    def __contains__(self, key: object) -> bool:
        return key in self.index

    def __iter__(self) -> Iterator[BindingKey]:
        return iter(self.index)

    def has_source(self, name: str) -> bool:
        """Whether exchange ``name`` is the source of any (explicit) binding."""
        return self.index.has_source(name)

    def to_destination(self, kind: DestKind, name: str) -> list[BindingKey]:
        """The bindings to a queue or exchange."""
        return self.index.to_destination(kind, name)

    # ----- snapshots

    def _changed(self, names: set[str]) -> Sends:
        for name in names:
            self._rebuild(self._exchanges[name])
        return self._sends(self._reaching(names))

    def _rebuild(self, exchange: _Exchange) -> None:
        exchanges = self._exchanges
        alternate = exchanges.get(exchange.alternate) if exchange.alternate else None
        exchange.route = ExchangeRoute(
            exchange.name,
            exchange.router.table,
            exchange.uses_headers,
            frozenset(
                exchanges[name].ref for name in exchange.bound if exchanges[name].ref is not None
            ),
            alternate.ref if alternate is not None else None,
        )

    def _reaching(self, names: set[str]) -> set[str]:
        """``names`` and every exchange that reaches one of them (bindings, alternates)."""
        found = set(names)
        pending = list(names)
        while pending:
            name = pending.pop()
            for other in (*self._bound_by.get(name, ()), *self._alternate_of.get(name, ())):
                if other not in found and other in self._exchanges:
                    found.add(other)
                    pending.append(other)
        return found

    def _snapshot(self, exchange: _Exchange) -> RoutingSnapshot:
        """The exchange's route and those of every exchange it reaches."""
        exchanges = self._exchanges
        reachable: dict[Hashable, ExchangeRoute] = {}
        pending = [exchange]
        while pending:
            current = pending.pop()
            targets: Iterable[str] = current.bound
            if current.alternate is not None:
                targets = (*current.bound, current.alternate)
            for name in targets:
                nxt = exchanges.get(name)
                if nxt is None or nxt.ref is None or nxt.ref in reachable:
                    continue
                assert nxt.route is not None
                reachable[nxt.ref] = nxt.route
                pending.append(nxt)
        assert exchange.route is not None
        return RoutingSnapshot(exchange.route, reachable)

    def _sends(self, names: Iterable[str]) -> Sends:
        exchanges = self._exchanges
        return [
            (exchanges[name].ref, self._snapshot(exchanges[name]))
            for name in names
            if exchanges[name].ref is not None
        ]

    # ----- checks

    def problems(
        self, refs: dict[tuple[DestKind, str], Hashable], implicit: dict[str, Hashable]
    ) -> list[str]:
        """Where the index, the routers and the routes disagree, given the live queue and
        exchange actors by kind and name (``refs``) and the default exchange's implicit
        bindings (queue and reply names -> actor); empty when they agree."""
        problems = self.index.problems()
        for name, exchange in self._exchanges.items():
            expected = set()
            if name == "":
                expected = {(ref, n, EMPTY_TABLE) for n, ref in implicit.items()}
            for b in self.index.from_source(name):
                ref = refs.get((b.dest_kind, b.dest))
                if ref is None:
                    problems.append(f"binding to a missing {b.dest_kind}: {b}")
                expected.add((ref, b.routing_key, b.arguments))
            actual = {(b.dest, b.routing_key, b.arguments) for b in exchange.router.bindings()}
            if expected != actual:
                problems.append(
                    f"exchange {name!r}: index has {len(expected - actual)} bindings its router "
                    f"lacks, router has {len(actual - expected)} the index lacks"
                )
            route = exchange.route
            if route is None or route.table is not exchange.router.table:
                problems.append(f"exchange {name!r}: its route is not its router's table")
            elif route.exchange_dests != {refs.get(("exchange", n)) for n in exchange.bound}:
                problems.append(f"exchange {name!r}: wrong exchange destinations")
        for key in self.index:
            if key.source not in self._exchanges:
                problems.append(f"binding from a missing exchange: {key}")
        return problems
