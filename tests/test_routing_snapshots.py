"""Routing snapshots on their own: the persistent map, immutable tables, a vhost's bindings."""

from __future__ import annotations

import random

from dispatchd.actors.content import Message
from dispatchd.actors.routing import BindingKey, DirectRouter, FrozenTable, TopicRouter
from dispatchd.actors.routing.bindings import VhostBindings
from dispatchd.actors.routing.pmap import PMap

EMPTY = FrozenTable()


def test_pmap_updates_leave_the_old_map_untouched():
    rng = random.Random(7)
    model: dict[int, int] = {}
    current: PMap[int, int] = PMap()
    history = []
    for _ in range(3000):
        key = rng.randrange(2000)
        if key in model and rng.random() < 0.4:
            del model[key]
            current = current.delete(key)
        else:
            model[key] = rng.randrange(100)
            current = current.set(key, model[key])
        history.append((current, dict(model)))
    for snapshot, expected in history[::97]:  # every old version still reads as it was
        assert dict(snapshot) == expected and len(snapshot) == len(expected)
        assert all(snapshot.get(k) == v and k in snapshot for k, v in expected.items())
    assert PMap({1: 2}).get(3, "none") == "none"


def test_router_tables_are_replaced_never_changed():
    router = DirectRouter()
    router.bind("q1", "a")
    before = router.table
    router.bind("q2", "a")
    router.bind("q1", "a", {"other": 1})  # a second binding to the same place
    assert before.route("a") == {"q1"} and router.table.route("a") == {"q1", "q2"}
    router.unbind("q1", "a")
    assert router.table.route("a") == {"q1", "q2"}  # q1 still bound with other arguments
    topic = TopicRouter()
    topic.bind("q", "a.*")
    old = topic.table
    topic.unbind("q", "a.*")
    assert old.route("a.b") == {"q"} and topic.table.route("a.b") == set()


def key(source: str, kind: str, dest: str, routing_key: str = "k") -> BindingKey:
    return BindingKey(source, kind, dest, routing_key, EMPTY)  # type: ignore[arg-type]


def started(bindings: VhostBindings, name: str, type_name: str, alternate: str | None = None):
    first = bindings.declare_exchange(name, type_name, alternate)
    return first, dict(bindings.exchange_started(name, f"X:{name}"))


def test_snapshots_carry_what_each_exchange_reaches():
    bindings = VhostBindings()
    started(bindings, "", "direct")
    started(bindings, "a", "fanout")
    started(bindings, "b", "direct")
    sends = dict(bindings.bind(key("b", "queue", "q"), "Q:q"))
    assert set(sends) == {"X:b"}  # nobody reaches b yet
    sends = dict(bindings.bind(key("a", "exchange", "b"), "X:b"))
    routing = sends["X:a"]
    assert routing.own.exchange_dests == {"X:b"} and set(routing.reachable) == {"X:b"}
    message = Message("a", "k", b"\x00\x00", b"")
    assert routing.walk(message, routing.own.route(message)) == {"Q:q"}
    # A change to b reaches a too: b's new route is in a's new snapshot.
    sends = dict(bindings.bind(key("b", "queue", "r"), "Q:r"))
    assert set(sends) == {"X:a", "X:b"}
    assert sends["X:a"].walk(message, frozenset({"X:b"})) == {"Q:q", "Q:r"}
    assert (
        bindings.problems(
            {("exchange", n): f"X:{n}" for n in ("", "a", "b")}
            | {("queue", "q"): "Q:q", ("queue", "r"): "Q:r"},
            {},
        )
        == []
    )


def test_alternate_exchanges_resolve_by_name_when_they_come_and_go():
    bindings = VhostBindings()
    first, _ = started(bindings, "main", "direct", alternate="ae")
    assert first.own.alternate is None
    _, sends = started(bindings, "ae", "fanout")
    assert sends["X:main"].own.alternate == "X:ae"
    bindings.bind(key("ae", "queue", "q"), "Q:q")
    sources, deleted = bindings.delete_exchange("ae")
    assert sources == set() and dict(deleted)["X:main"].own.alternate is None


def test_deleting_a_bound_exchange_or_queue_unbinds_it_everywhere():
    bindings = VhostBindings()
    started(bindings, "", "direct")
    started(bindings, "a", "topic")
    started(bindings, "b", "topic")
    bindings.bind_default("q", "Q:q")
    bindings.bind(key("a", "exchange", "b", "#"), "X:b")
    bindings.bind(key("b", "queue", "q", "#"), "Q:q")
    sources, sends = bindings.remove_queue("q", "Q:q")
    assert sources == {"b"} and set(dict(sends)) == {"X:", "X:a", "X:b"}
    sources, sends = bindings.delete_exchange("b")
    assert sources == {"a"} and dict(sends)["X:a"].own.exchange_dests == frozenset()
    assert not bindings.has_source("a") and list(bindings) == []
