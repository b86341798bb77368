"""Micro-benchmark of the topic exchange's router (actors/routing/topic.py).

Run: python tests/bench_routing.py [--bindings N] [--rounds R]

Reports the time per routing decision for:

- the uncached trie walk (``TopicRouter._match``) with ``2 * N + 1`` bindings: N patterns
  ``stock.<i % 10>.*.<i>``, N patterns ``#.region<i % 20>`` and one ``stock.#``, routing the
  N keys ``stock.<i % 10>.nyse.<i>`` (a few microseconds a key in practice),
- the same keys through ``route()``, answered from its cache after the first walk,
- a key of 41 words against two patterns of 25 consecutive ``#`` (the walk's visited set
  keeps this polynomial; RabbitMQ's own recursion is exponential in consecutive ``#``).

What the router answers in these cases is checked by tests/test_routing.py, without timing.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from dispatchd.actors.routing import TopicRouter
from dispatchd.actors.routing.topic import split_key


def stock_bindings(count: int = 300) -> list[tuple[str, str]]:
    """``2 * count + 1`` (destination, binding key) pairs."""
    bindings = []
    for i in range(count):
        bindings.append((f"q{i}", f"stock.{i % 10}.*.{i}"))
        bindings.append((f"r{i}", f"#.region{i % 20}"))
    bindings.append(("all", "stock.#"))
    return bindings


def stock_keys(count: int = 300) -> list[str]:
    """The ``count`` routing keys routed through :func:`stock_bindings`' router."""
    return [f"stock.{i % 10}.nyse.{i}" for i in range(count)]


def many_bindings(count: int = 300) -> tuple[TopicRouter, list[str]]:
    """A router with :func:`stock_bindings` and the :func:`stock_keys` to route."""
    router = TopicRouter()
    for dest, pattern in stock_bindings(count):
        router.bind(dest, pattern)
    return router, stock_keys(count)


def many_hashes() -> tuple[TopicRouter, str]:
    """A router with two patterns of 25 consecutive ``#`` and a 41-word key."""
    router = TopicRouter()
    router.bind("q", ".".join(["#"] * 25) + ".z")
    router.bind("never", ".".join(["#"] * 25) + ".nope")
    return router, ".".join(["w"] * 40 + ["z"])


def measure(fn: Callable[[], object], calls: int, rounds: int) -> float:
    """Best of ``rounds`` runs of ``fn``, in seconds per routing decision (``calls`` per run)."""
    return min(timeit.repeat(fn, number=1, repeat=rounds)) / calls


def run(bindings: int = 300, rounds: int = 5) -> dict[str, float]:
    """Time each case ``rounds`` times; the best seconds per routing decision of each."""
    router, keys = many_bindings(bindings)
    split = [split_key(key) for key in keys]
    hashes, long_key = many_hashes()
    long_words = split_key(long_key)

    def uncached() -> None:
        for words in split:
            router._match(words)

    def cached() -> None:
        for key in keys:
            router.route(key)

    cached()  # fill the cache
    return {
        f"uncached walk, {2 * bindings + 1} bindings": measure(uncached, len(split), rounds),
        f"cached route, {2 * bindings + 1} bindings": measure(cached, len(keys), rounds),
        "uncached walk, 25 consecutive '#'": measure(lambda: hashes._match(long_words), 1, rounds),
    }


def main() -> None:
    """Print the benchmark's results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bindings", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for label, seconds in run(args.bindings, args.rounds).items():
        print(f"topic {label:<36} {seconds * 1e6:10.2f} µs/route {1 / seconds:14,.0f} routes/s")


if __name__ == "__main__":
    main()
