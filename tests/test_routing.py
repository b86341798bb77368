"""Routing logic of the four exchange types (actors/routing), checked against RabbitMQ."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatchd.actors.routing import (
    ROUTERS,
    Binding,
    DirectRouter,
    FanoutRouter,
    FrozenTable,
    HeadersRouter,
    Router,
    RoutingArgumentError,
    TopicRouter,
    freeze,
    router_for,
    thaw,
)
from dispatchd.actors.routing.headers import values_equal
from dispatchd.actors.routing.topic import split_key
from tests import bench_routing

ALL_TYPES = ["direct", "fanout", "topic", "headers"]


# Stand-ins for wire.fields' marker types: the codec decodes AMQP field types that plain
# Python values cannot tell apart ('l' long, 'x' byte array, ...) to subclasses like these.
class Int64(int):
    pass


class ByteArray(bytes):
    pass


# --------------------------------------------------------------------------------------------
# registry, binding identity, the shared binding bookkeeping


def test_registry():
    assert ROUTERS == {
        "direct": DirectRouter,
        "fanout": FanoutRouter,
        "topic": TopicRouter,
        "headers": HeadersRouter,
    }
    for name, cls in ROUTERS.items():
        router = router_for(name)
        assert type(router) is cls and isinstance(router, Router) and len(router) == 0
    assert router_for("topic") is not router_for("topic")
    with pytest.raises(KeyError):
        router_for("x-consistent-hash")


def test_freeze_and_frozen_table():
    table = {"b": [1, {"c": bytearray(b"x")}], "a": {"z": 1, "y": [True]}}
    frozen = freeze(table)
    assert isinstance(frozen, FrozenTable)
    assert list(frozen) == ["a", "b"]  # sorted, like rabbit_misc:sort_field_table
    assert frozen["b"] == (1, FrozenTable({"c": b"x"}))
    assert hash(frozen) == hash(freeze({"a": {"y": (True,), "z": 1}, "b": (1, {"c": b"x"})}))
    assert frozen == table  # compares with plain mappings too
    assert thaw(frozen) == {"a": {"y": [True], "z": 1}, "b": [1, {"c": b"x"}]}
    assert freeze(frozen) is frozen
    with pytest.raises(TypeError):
        frozen["a"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (1, True),
        (1, 1.0),
        (0, False),
        ("1", 1),
        (1, Int64(1)),  # {signedint,1} vs {long,1}
        ("a", ByteArray(b"a")),  # {longstr,<<"a">>} vs {binary,<<"a">>}
        ([1], [True]),
        ({"k": 1}, {"k": 1.0}),
        (Decimal("1.0"), Decimal("1.00")),  # {decimal,{1,10}} vs {decimal,{2,100}}
    ],
)
def test_binding_arguments_are_type_aware(one, other):
    # RabbitMQ compares binding args as {Name, Type, Value} terms: {long,1} and {bool,true}
    # are two bindings, even though Python says 1 == True.
    assert freeze({"k": one}) != freeze({"k": other})
    router = DirectRouter()
    assert router.bind("q", "rk", {"k": one})
    assert router.bind("q", "rk", {"k": other})
    assert len(router) == 2


def test_binding_dataclass():
    router = TopicRouter()
    router.bind("q1", "a.*", {"x": [1, 2]})
    router.bind("q2", "b")
    [first, second] = router.bindings()
    assert first == Binding("q1", "a.*", freeze({"x": [1, 2]}))
    assert second == Binding("q2", "b", FrozenTable())
    assert first in router and Binding("q1", "a.*") not in router
    with pytest.raises(AttributeError):
        first.dest = "q3"  # type: ignore[misc]
    assert {first, second} == set(router.bindings())


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_bind_unbind_bookkeeping(kind):
    router = router_for(kind)
    assert router.bind("q1", "a", {}) is True
    assert router.bind("q1", "a", {}) is False  # duplicate
    assert router.bind("q1", "a", None) is False  # None and {} are the same arguments
    assert router.bind("q1", "a", {"k": "v"}) is True  # same key, other args: second binding
    assert router.bind("q1", "b") is True
    assert router.bind("q2", "a") is True
    assert len(router) == 4
    assert router.has_bindings_to("q1") and not router.has_bindings_to("q3")
    assert [b.routing_key for b in router.bindings_to("q1")] == ["a", "a", "b"]

    assert router.unbind("q1", "a", {"k": "other"}) is False
    assert router.unbind("q3", "a", {}) is False
    assert router.unbind("q1", "a", {"k": "v"}) is True
    assert router.unbind("q1", "a", {"k": "v"}) is False
    assert len(router) == 3

    assert router.unbind_all("q1") == 2
    assert router.unbind_all("q1") == 0
    assert not router.has_bindings_to("q1")
    assert [(b.dest, b.routing_key) for b in router.bindings()] == [("q2", "a")]
    assert router.unbind("q2", "a") is True
    assert len(router) == 0 and router.bindings() == []
    assert router.route("a", {}) == set()


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_route_returns_a_fresh_set(kind):
    router = router_for(kind)
    router.bind("q", "k")
    found = router.route("k", None)
    assert found == {"q"}
    found.add("intruder")
    assert router.route("k", None) == {"q"}


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_unbind_all_stops_routing(kind):
    router = router_for(kind)
    router.bind("q1", "k")
    router.bind("q1", "k", {"other": 1} if kind != "headers" else {"x-other": 1})
    router.bind("q2", "k")
    assert router.route("k", None) == {"q1", "q2"}
    assert router.unbind_all("q1") == 2
    assert router.route("k", None) == {"q2"}


# --------------------------------------------------------------------------------------------
# direct


def test_direct_routes_to_every_matching_binding():
    router = DirectRouter()
    for q in ("q1", "q2", "q3"):
        router.bind(q, "rk")
    router.bind("q4", "other")
    assert router.route("rk") == {"q1", "q2", "q3"}
    assert router.route("other") == {"q4"}
    assert router.route("RK") == set()  # case-sensitive
    assert router.route("nothing") == set()


def test_direct_empty_key_and_arguments():
    router = DirectRouter()
    router.bind("q1", "")
    router.bind("q2", "a", {"x-whatever": 1})
    assert router.route("") == {"q1"}
    assert router.route("a", {"x-whatever": 2}) == {"q2"}  # arguments don't route


def test_direct_same_dest_two_bindings_one_removed():
    router = DirectRouter()
    router.bind("q", "rk", {"a": 1})
    router.bind("q", "rk", {"a": 2})
    assert router.route("rk") == {"q"}
    router.unbind("q", "rk", {"a": 1})
    assert router.route("rk") == {"q"}  # the other binding still leads there
    router.unbind("q", "rk", {"a": 2})
    assert router.route("rk") == set()


# --------------------------------------------------------------------------------------------
# fanout


def test_fanout_routes_everywhere():
    router = FanoutRouter()
    router.bind("q1", "")
    router.bind("q2", "some.key")
    router.bind("q2", "other")
    assert router.route("") == {"q1", "q2"}
    assert router.route("anything", {"h": 1}) == {"q1", "q2"}
    router.unbind("q2", "other")
    assert router.route("x") == {"q1", "q2"}
    router.unbind("q2", "some.key")
    assert router.route("x") == {"q1"}


# --------------------------------------------------------------------------------------------
# topic


def reference_topic_match(pattern: str, key: str) -> bool:
    """An independent, regex-based topic matcher (words from an alphabet without '/')."""
    regex = "".join(
        "[^/]*/" if w == "*" else "(?:[^/]*/)*" if w == "#" else re.escape(w) + "/"
        for w in (pattern.split(".") if pattern else [])
    )
    subject = "".join(w + "/" for w in (key.split(".") if key else []))
    return re.fullmatch(regex, subject) is not None


# RabbitMQ's own topic test: deps/rabbit/test/routing_SUITE.erl, topic1/1.
RABBIT_BINDINGS = [
    ("a.b.c", "t1"), ("a.*.c", "t2"), ("a.#.b", "t3"), ("a.b.b.c", "t4"), ("#", "t5"),
    ("#.#", "t6"), ("#.b", "t7"), ("*.*", "t8"), ("a.*", "t9"), ("*.b.c", "t10"),
    ("a.#", "t11"), ("a.#.#", "t12"), ("b.b.c", "t13"), ("a.b.b", "t14"), ("a.b", "t15"),
    ("b.c", "t16"), ("", "t17"), ("*.*.*", "t18"), ("vodka.martini", "t19"), ("a.b.c", "t20"),
    ("*.#", "t21"), ("#.*.#", "t22"), ("*.#.#", "t23"), ("#.#.#", "t24"), ("*", "t25"),
    ("#.b.#", "t26"),
]  # fmt: skip
RABBIT_ARGS_BINDINGS = [("args-test", "t27", {"foo": "bar"}), ("args-test", "t27", {"foo": "baz"})]
RABBIT_EXPECTED = {
    "a.b.c": "t1 t2 t5 t6 t10 t11 t12 t18 t20 t21 t22 t23 t24 t26",
    "a.b": "t3 t5 t6 t7 t8 t9 t11 t12 t15 t21 t22 t23 t24 t26",
    "a.b.b": "t3 t5 t6 t7 t11 t12 t14 t18 t21 t22 t23 t24 t26",
    "": "t5 t6 t17 t24",
    "b.c.c": "t5 t6 t18 t21 t22 t23 t24 t26",
    "a.a.a.a.a": "t5 t6 t11 t12 t21 t22 t23 t24",
    "vodka.gin": "t5 t6 t8 t21 t22 t23 t24",
    "vodka.martini": "t5 t6 t8 t19 t21 t22 t23 t24",
    "b.b.c": "t5 t6 t10 t13 t18 t21 t22 t23 t24 t26",
    "nothing.here.at.all": "t5 t6 t21 t22 t23 t24",
    "oneword": "t5 t6 t21 t22 t23 t24 t25",
    "args-test": "t5 t6 t21 t22 t23 t24 t25 t27",
}
# After removing bindings 1, 5, 11, 19, 21 and 28 (1-based, in binding order).
RABBIT_EXPECTED_AFTER_REMOVAL = {
    "a.b.c": "t2 t6 t10 t12 t18 t20 t22 t23 t24 t26",
    "a.b": "t3 t6 t7 t8 t9 t12 t15 t22 t23 t24 t26",
    "a.b.b": "t3 t6 t7 t12 t14 t18 t22 t23 t24 t26",
    "": "t6 t17 t24",
    "b.c.c": "t6 t18 t22 t23 t24 t26",
    "a.a.a.a.a": "t6 t12 t22 t23 t24",
    "vodka.gin": "t6 t8 t22 t23 t24",
    "vodka.martini": "t6 t8 t22 t23 t24",
    "b.b.c": "t6 t10 t13 t18 t22 t23 t24 t26",
    "nothing.here.at.all": "t6 t22 t23 t24",
    "oneword": "t6 t22 t23 t24 t25",
    "args-test": "t6 t22 t23 t24 t25 t27",
}


def test_topic_rabbitmq_routing_suite():
    router = TopicRouter()
    bindings = [(k, q, {}) for k, q in RABBIT_BINDINGS] + RABBIT_ARGS_BINDINGS
    for key, queue, args in bindings:
        assert router.bind(queue, key, args)
    assert len(router) == 28
    for key, expected in RABBIT_EXPECTED.items():
        assert router.route(key) == set(expected.split()), key
        assert {q for k, q, _ in bindings if reference_topic_match(k, key)} == router.route(key)

    for n in (1, 5, 11, 19, 21, 28):
        key, queue, args = bindings[n - 1]
        assert router.unbind(queue, key, args)
    for key, expected in RABBIT_EXPECTED_AFTER_REMOVAL.items():
        assert router.route(key) == set(expected.split()), key


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("#", "", True),  # '#' alone matches everything, the empty key too
        ("#", "a", True),
        ("#", "a.b.c", True),
        ("#", "..", True),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("a.#", "b", False),
        ("a.#", "", False),
        ("#.a", "a", True),
        ("#.a", "b.a", True),
        ("#.a", "a.b", False),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.b.c", False),
        ("#.#", "", True),
        ("#.#", "a.b", True),
        ("#.#.a.#.#", "a", True),
        ("*", "a", True),
        ("*", "", False),  # the empty key is zero words; '*' needs exactly one
        ("*", "a.b", False),
        ("*", ".", False),  # '.' is two empty words
        ("*.*", ".", True),
        ("a.*", "a", False),  # '*' does not match zero words
        ("a.*", "a.", True),  # ... but does match one empty word
        ("a.*.b", "a..b", True),
        ("a..b", "a..b", True),  # empty words are words
        ("a..b", "a.b", False),
        (".a", ".a", True),
        (".a", "a", False),
        ("*.a", ".a", True),
        ("a.", "a.", True),
        ("a.", "a", False),
        ("#.", "", False),
        ("#.", ".", True),
        ("#.", "a.", True),
        ("", "", True),  # the empty binding key matches only the empty routing key
        ("", ".", False),
        ("", "a", False),
        ("a*", "ab", False),  # wildcards only as whole words
        ("a*", "a*", True),
        ("#a", "#a", True),
        ("#a", "a", False),
        ("a.b", "a.b", True),
        ("a.b", "A.b", False),  # case-sensitive
        ("#.*.#", "", False),
        ("#.*.#", "x", True),
        ("*.#", "x", True),
        ("#.*", "", False),
    ],
)
def test_topic_edge_cases(pattern, key, matches):
    router = TopicRouter()
    router.bind("q", pattern)
    assert router.route(key) == ({"q"} if matches else set())
    assert reference_topic_match(pattern, key) is matches


def test_topic_literal_wildcard_words_in_routing_key():
    router = TopicRouter()
    router.bind("star", "a.*")
    router.bind("hash", "a.#")
    router.bind("lit", "a.b")
    assert router.route("a.*") == {"star", "hash"}
    assert router.route("a.#") == {"star", "hash"}


def test_split_key():
    assert split_key("") == []
    assert split_key(".") == ["", ""]
    assert split_key("a..b") == ["a", "", "b"]
    assert split_key("a.") == ["a", ""]


def test_topic_unbind_prunes_the_trie_and_cache_follows():
    router = TopicRouter()
    keys = ["a.b.c", "a.*.c", "a.#", "#", "*.b", "a.b.c.d", ""]
    for i, key in enumerate(keys):
        router.bind(f"q{i}", key)
    assert router.route("a.b.c") == {"q0", "q1", "q2", "q3"}
    router.unbind("q2", "a.#")
    assert router.route("a.b.c") == {"q0", "q1", "q3"}  # cached answer was dropped
    router.bind("q9", "a.b.*")
    assert router.route("a.b.c") == {"q0", "q1", "q3", "q9"}
    for i, key in enumerate(keys):
        router.unbind(f"q{i}", key)
    router.unbind("q9", "a.b.*")
    assert router._root.is_empty()
    assert router.route("a.b.c") == set()


class CountedWords(list):
    """A split routing key that counts how often the walk reads one of its words, and stops
    the walk (AssertionError) once it has read more than ``limit``."""

    def __init__(self, words: list[str], limit: int) -> None:
        super().__init__(words)
        self.limit = limit
        self.reads = 0

    def __getitem__(self, index):
        self.reads += 1
        assert self.reads <= self.limit, f"the walk read over {self.limit} words"
        return super().__getitem__(index)


def trie_nodes(node) -> int:
    """How many nodes the topic trie below (and including) ``node`` has."""
    children = [*node.words.values(), node.star, node.hash]
    return 1 + sum(trie_nodes(child) for child in children if child is not None)


def test_topic_many_hashes_stay_polynomial():
    # Without a visited set the walk is exponential in consecutive '#'. With it, each
    # (trie node, word position) state is walked, reading its word, at most once.
    # (tests/bench_routing.py times this walk.)
    router, key = bench_routing.many_hashes()
    assert router.route(key) == {"q"}
    words = split_key(key)
    counted = CountedWords(words, limit=trie_nodes(router._root) * len(words))
    assert router._match(counted) == {"q"}  # uncached walk
    assert counted.reads > 0  # (the count does see the walk)


def test_topic_routes_right_with_hundreds_of_bindings():
    # 601 bindings (tests/bench_routing.py times this walk): every key gets exactly the
    # destinations whose pattern matches it, walked afresh and from the cache.
    bindings = bench_routing.stock_bindings(300)
    router = TopicRouter()
    for dest, pattern in bindings:
        router.bind(dest, pattern)
    keys = bench_routing.stock_keys(300) + ["eu.region7", "region19", "stock", "bond.3.x.13"]
    expected: dict[str, set[str]] = {key: set() for key in keys}
    for dest, pattern in bindings:
        for key in keys:
            if reference_topic_match(pattern, key):
                expected[key].add(dest)
    for key in keys:
        assert router._match(split_key(key)) == expected[key], key  # uncached walk
        assert router.route(key) == expected[key], key
    assert router.route("stock.3.nyse.13") == {"q13", "all"}
    assert len(expected["eu.region7"]) == 15  # r7, r27, ..., r287


def test_routing_benchmark_smoke():
    """Runs the micro-benchmark briefly; numbers come from `python tests/bench_routing.py`."""
    timings = bench_routing.run(bindings=20, rounds=1)
    assert all(seconds > 0 for seconds in timings.values())


WORDS = st.sampled_from(["a", "b", ""])
KEYS = st.lists(WORDS, max_size=5).map(".".join)
PATTERNS = st.lists(st.sampled_from(["a", "b", "", "*", "#"]), max_size=5).map(".".join)


@settings(max_examples=400, deadline=None)
@given(patterns=st.lists(PATTERNS, min_size=1, max_size=12), keys=st.lists(KEYS, max_size=12))
def test_topic_matches_regex_reference(patterns, keys):
    router = TopicRouter()
    for i, pattern in enumerate(patterns):
        router.bind(i, pattern)
    for key in keys:
        expected = {i for i, p in enumerate(patterns) if reference_topic_match(p, key)}
        assert router.route(key) == expected, key


# --------------------------------------------------------------------------------------------
# headers


def headers_router(**bindings):
    router = HeadersRouter()
    for dest, args in bindings.items():
        router.bind(dest, "", args)
    return router


def test_headers_all_is_default_and_any():
    router = headers_router(
        all_=({"a": 1, "b": "x"}),
        all_explicit={"x-match": "all", "a": 1, "b": "x"},
        any_={"x-match": "any", "a": 1, "b": "x"},
    )
    assert router.route("", {"a": 1, "b": "x", "c": 3}) == {"all_", "all_explicit", "any_"}
    assert router.route("", {"a": 1}) == {"any_"}
    assert router.route("", {"a": 2, "b": "x"}) == {"any_"}
    assert router.route("", {"a": 2, "b": "y"}) == set()
    assert router.route("", {}) == set()
    assert router.route("", None) == set()


def test_headers_routing_key_is_ignored():
    router = headers_router(q={"a": 1})
    assert router.route("anything", {"a": 1}) == {"q"}


def test_headers_empty_bindings():
    router = headers_router(
        nothing={},  # 'all' with nothing to compare matches every message
        only_x={"x-match": "all", "x-foo": "bar"},  # x- arguments don't count
        any_empty={"x-match": "any"},  # 'any' with nothing to compare matches none
        any_only_x={"x-match": "any", "x-foo": "bar"},
    )
    assert router.route("", None) == {"nothing", "only_x"}
    assert router.route("", {"x-foo": "bar", "h": 1}) == {"nothing", "only_x"}


def test_headers_x_arguments_ignored_unless_with_x():
    router = headers_router(
        all_={"x-match": "all", "x-key": "v", "k": 1},
        any_={"x-match": "any", "x-key": "v", "k": 1},
        all_x={"x-match": "all-with-x", "x-key": "v", "k": 1},
        any_x={"x-match": "any-with-x", "x-key": "v", "k": 1},
    )
    assert router.route("", {"k": 1}) == {"all_", "any_", "any_x"}
    assert router.route("", {"k": 1, "x-key": "v"}) == {"all_", "any_", "all_x", "any_x"}
    assert router.route("", {"x-key": "v"}) == {"any_x"}
    assert router.route("", {"k": 1, "x-key": "w"}) == {"all_", "any_", "any_x"}


def test_headers_x_match_never_matched_and_prefix_is_case_sensitive():
    router = headers_router(
        q={"x-match": "all-with-x"},  # x-match itself is never compared
        upper={"X-Key": "v"},  # 'X-' is not the 'x-' prefix: it takes part
    )
    assert router.route("", {}) == {"q"}
    assert router.route("", {"X-Key": "v"}) == {"q", "upper"}
    assert router.route("", {"x-match": "any"}) == {"q"}


def test_headers_void_binding_value_means_presence():
    router = headers_router(
        all_={"present": None, "k": 1},
        any_={"x-match": "any", "present": None, "k": 1},
    )
    assert router.route("", {"present": "anything", "k": 1}) == {"all_", "any_"}
    assert router.route("", {"present": None, "k": 1}) == {"all_", "any_"}
    assert router.route("", {"present": 0}) == {"any_"}
    assert router.route("", {"k": 1}) == {"any_"}
    assert router.route("", {}) == set()


def test_headers_void_message_value_only_matches_void_binding():
    router = headers_router(q={"k": 0}, e={"k": ""}, f={"k": False})
    assert router.route("", {"k": None}) == set()


@pytest.mark.parametrize(
    ("wanted", "actual", "equal"),
    [
        (1, 1, True),
        (1, "1", False),  # types differ in kind: never equal
        ("1", 1, False),
        (1, True, False),  # booleans are atoms in Erlang, not numbers
        (True, 1, False),
        (0, False, False),
        (True, True, True),
        (False, False, True),
        (1, 1.0, True),  # Erlang's == compares numbers numerically, whatever their width
        (2**40, 2**40, True),
        (1.5, 1.5, True),
        ("abc", b"abc", True),  # every string type is an Erlang binary
        (b"abc", "abc", True),
        ("abc", ByteArray(b"abc"), True),  # longstr vs byte array: values alike, so equal
        (1, Int64(1), True),  # signedint vs long: types are not compared
        ([1], [Int64(1)], False),  # ... except inside arrays and tables
        ("é", "é".encode(), True),
        ("abc", "ABC", False),
        (Decimal("1.5"), Decimal("1.5"), True),
        (Decimal("1.0"), Decimal("1.00"), False),  # {1,10} =/= {2,100}
        (Decimal("1"), 1, False),
        ([1, "a"], [1, "a"], True),
        ([1, "a"], (1, "a"), True),
        ([1], [1.0], False),  # array elements keep their types
        ([1], [True], False),
        ([Decimal("1.0")], [Decimal("1.00")], False),
        ({"a": 1}, {"a": 1}, True),
        ({"a": 1}, {"a": "1"}, False),
        ({"a": 1}, [("a", 1)], False),
        ("x", None, False),
    ],
)
def test_headers_value_comparison(wanted, actual, equal):
    assert values_equal(wanted, actual) is equal
    router = headers_router(q={"k": wanted})
    assert router.route("", {"k": actual}) == ({"q"} if equal else set())


def test_headers_names_that_are_not_utf8():
    # wire.fields keeps a field name that is not UTF-8 as bytes; RabbitMQ sorts names as bytes.
    router = headers_router(q={b"\xff": 1, "a": 2}, x={"x-match": "any", b"x-\xff": 1})
    assert list(router.bindings()[0].arguments) == ["a", b"\xff"]
    assert router.route("", {b"\xff": 1, "a": 2}) == {"q"}
    assert router.route("", {b"x-\xff": 1}) == set()  # an x- name, ignored without -with-x


def test_headers_nested_binding_arguments():
    router = headers_router(q={"t": {"a": [1, 2]}})
    assert router.route("", {"t": {"a": [1, 2]}}) == {"q"}
    assert router.route("", {"t": {"a": [2, 1]}}) == set()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "none",
            'Invalid x-match field value <<"none">>; expected all, any, all-with-x, or any-with-x',
        ),
        (
            "ALL",
            'Invalid x-match field value <<"ALL">>; expected all, any, all-with-x, or any-with-x',
        ),
        ("", 'Invalid x-match field value <<"">>; expected all, any, all-with-x, or any-with-x'),
        (1, "Invalid x-match field type signedint (value 1); expected longstr"),
        (True, "Invalid x-match field type bool (value true); expected longstr"),
        (None, "Invalid x-match field type void (value undefined); expected longstr"),
        (Int64(5), "Invalid x-match field type long (value 5); expected longstr"),
        (
            ByteArray(b"any"),
            'Invalid x-match field type binary (value <<"any">>); expected longstr',
        ),
        (
            b"\xff",  # a long string that is not UTF-8 decodes to plain bytes
            "Invalid x-match field value <<255>>; expected all, any, all-with-x, or any-with-x",
        ),
        (
            "tôut",
            'Invalid x-match field value <<"tôut"/utf8>>; expected all, any, all-with-x, or '
            "any-with-x",
        ),
    ],
)
def test_headers_invalid_x_match(value, message):
    router = HeadersRouter()
    with pytest.raises(RoutingArgumentError) as caught:
        router.bind("q", "", {"x-match": value, "k": 1})
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)
    assert len(router) == 0
    # unbinding never validates (RabbitMQ only calls validate_binding on add)
    assert router.unbind("q", "", {"x-match": value}) is False


@pytest.mark.parametrize("mode", ["all", "any", "all-with-x", "any-with-x"])
def test_headers_valid_x_match(mode):
    router = HeadersRouter()
    assert router.bind("q", "", {"x-match": mode, "k": 1})


@pytest.mark.parametrize("kind", ["direct", "fanout", "topic"])
def test_x_match_is_only_checked_by_headers(kind):
    assert router_for(kind).bind("q", "k", {"x-match": "bogus"})


def reference_headers_match(args: dict, data: dict) -> bool:
    """A line-by-line port of RabbitMQ's sorted-merge headers_match/5 (values compared by ==)."""
    mode = {"any": "any", "all-with-x": "all_with_x", "any-with-x": "any_with_x"}.get(
        args.get("x-match"), "all"
    )
    pattern = sorted(args.items())
    data_ = sorted(data.items())
    all_match, any_match = True, False
    while True:
        if not all_match and mode in ("all", "all_with_x"):
            return False
        if any_match and mode in ("any", "any_with_x"):
            return True
        if not pattern:
            return all_match if mode in ("all", "all_with_x") else any_match
        (pk, pv) = pattern[0]
        if pk == "x-match" or (pk.startswith("x-") and mode in ("all", "any")):
            pattern = pattern[1:]
        elif not data_:
            pattern, all_match = [], False
        elif pk > data_[0][0]:
            data_ = data_[1:]
        elif pk < data_[0][0]:
            pattern, all_match = pattern[1:], False
        elif pv is None or pv == data_[0][1]:
            pattern, data_, any_match = pattern[1:], data_[1:], True
        else:
            pattern, data_, all_match = pattern[1:], data_[1:], False


HEADER_NAMES = st.sampled_from(["a", "b", "c", "x-a", "x-b"])
HEADER_VALUES = st.sampled_from([1, 2, "1", "s"])
BINDING_ARGS = st.dictionaries(HEADER_NAMES, HEADER_VALUES | st.none(), max_size=4) | st.builds(
    lambda mode, args: {"x-match": mode, **args},
    st.sampled_from(["all", "any", "all-with-x", "any-with-x"]),
    st.dictionaries(HEADER_NAMES, HEADER_VALUES | st.none(), max_size=4),
)
MESSAGE_HEADERS = st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=5)


@settings(max_examples=400, deadline=None)
@given(bindings=st.lists(BINDING_ARGS, min_size=1, max_size=8), messages=st.lists(MESSAGE_HEADERS))
def test_headers_matches_rabbitmq_reference(bindings, messages):
    router = HeadersRouter()
    for i, args in enumerate(bindings):
        router.bind(i, "", args)
    for headers in messages:
        expected = {i for i, args in enumerate(bindings) if reference_headers_match(args, headers)}
        assert router.route("", headers) == expected, headers


# --------------------------------------------------------------------------------------------
# every router against a brute-force model, through random bind/unbind sequences


def model_route(kind, bindings, key, headers):
    if kind == "direct":
        return {d for d, k, _ in bindings if k == key}
    if kind == "fanout":
        return {d for d, _, _ in bindings}
    if kind == "topic":
        return {d for d, k, _ in bindings if reference_topic_match(k, key)}
    return {d for d, _, a in bindings if reference_headers_match(dict(a), headers)}


OPS = st.lists(
    st.tuples(
        st.sampled_from(["bind", "unbind", "unbind_all"]),
        st.sampled_from(["q1", "q2", "q3"]),
        PATTERNS,
        st.dictionaries(st.sampled_from(["a", "x-a"]), st.sampled_from([1, 2]), max_size=2),
    ),
    max_size=30,
)


@pytest.mark.parametrize("kind", ALL_TYPES)
@settings(max_examples=150, deadline=None)
@given(ops=OPS, keys=st.lists(KEYS, min_size=1, max_size=4), headers=MESSAGE_HEADERS)
def test_routers_follow_model(kind, ops, keys, headers):
    router = router_for(kind)
    model: dict[tuple, None] = {}
    for op, dest, key, args in ops:
        entry = (dest, key, tuple(sorted(args.items())))
        if op == "bind":
            assert router.bind(dest, key, args) is (entry not in model)
            model[entry] = None
        elif op == "unbind":
            assert router.unbind(dest, key, args) is (entry in model)
            model.pop(entry, None)
        else:
            gone = [e for e in model if e[0] == dest]
            assert router.unbind_all(dest) == len(gone)
            for e in gone:
                del model[e]
        assert len(router) == len(model)
        for key_ in keys:
            assert router.route(key_, headers) == model_route(kind, model, key_, headers)
    assert {(b.dest, b.routing_key, tuple(b.arguments.items())) for b in router.bindings()} == set(
        model
    )
