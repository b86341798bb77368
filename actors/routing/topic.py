"""The topic exchange: binding keys are patterns of '.'-separated words with ``*`` and ``#``.

The semantics are RabbitMQ's (``rabbit_db_topic_exchange.erl``, checked against its
``routing_SUITE`` topic test, which ``tests/test_routing.py`` replays):

- A key is split on every ``.``, so empty words are words: ``"a..b"`` is ``a``, ``""``, ``b``
  and ``"a."`` is ``a``, ``""``. The empty key ``""`` is *zero* words, not one empty word
  (``split_topic_key(<<>>) -> []``), so binding key ``*`` never matches routing key ``""``
  while ``#``, ``#.#`` and ``""`` do.
- ``*`` matches exactly one word (possibly an empty one); ``#`` matches zero or more words,
  so ``a.#`` matches ``a``, ``#.a`` matches ``a``, ``a.#.b`` matches ``a.b``.
- The wildcards are only special as whole words: ``a*`` or ``#a`` are literal words.

Bindings live in a trie of words. Matching walks it as an NFA over (node, word position)
states; a node reached through ``#`` may also consume further words in place. Only below a
``#`` can one state be reached twice, so only there is a visited set kept, which bounds the
walk by nodes x words however many ``#`` a pattern has (RabbitMQ's own recursion is
exponential in consecutive ``#``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from .base import Binding, DestinationSet, Router

__all__ = ["TopicRouter", "split_key"]

CACHE_SIZE = 4096


def split_key(key: str) -> list[str]:
    """Split a routing or binding key into words the way RabbitMQ does ("" is no words)."""
    return key.split(".") if key else []


class _Node:
    """One trie node: children by literal word, the ``*`` and ``#`` children, destinations."""

    __slots__ = ("words", "star", "hash", "dests", "loops", "below_hash")

    def __init__(self, loops: bool = False, below_hash: bool = False) -> None:
        self.words: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.hash: _Node | None = None
        self.dests = DestinationSet()
        self.loops = loops  # reached through '#': may consume more words in place
        self.below_hash = below_hash  # a '#' on the path: (node, position) can repeat

    def child(self, word: str) -> _Node | None:
        if word == "*":
            return self.star
        if word == "#":
            return self.hash
        return self.words.get(word)

    def make_child(self, word: str) -> _Node:
        node = self.child(word)
        if node is None:
            node = _Node(loops=word == "#", below_hash=self.below_hash or word == "#")
            if word == "*":
                self.star = node
            elif word == "#":
                self.hash = node
            else:
                self.words[word] = node
        return node

    def drop_child(self, word: str) -> None:
        if word == "*":
            self.star = None
        elif word == "#":
            self.hash = None
        else:
            del self.words[word]

    def is_empty(self) -> bool:
        return not self.dests and not self.words and self.star is None and self.hash is None


class TopicRouter(Router):
    """Routes by matching the routing key against ``*``/``#`` patterns held in a word trie.

    Results for recently seen routing keys are cached; any bind or unbind clears the cache.
    """

    type_name = "topic"

    __slots__ = ("_root", "_cache")

    def __init__(self) -> None:
        super().__init__()
        self._root = _Node()
        self._cache: dict[str, frozenset[Hashable]] = {}

    def _add(self, binding: Binding) -> None:
        node = self._root
        for word in split_key(binding.routing_key):
            node = node.make_child(word)
        node.dests.add(binding.dest)
        self._cache.clear()

    def _remove(self, binding: Binding) -> None:
        path: list[tuple[_Node, str]] = []
        node = self._root
        for word in split_key(binding.routing_key):
            path.append((node, word))
            node = node.child(word)  # type: ignore[assignment]  # bound, so it exists
        node.dests.remove(binding.dest)
        for parent, word in reversed(path):  # prune the branch that no binding needs now
            if not node.is_empty():
                break
            parent.drop_child(word)
            node = parent
        self._cache.clear()

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> set[Hashable]:
        """Every destination with a binding pattern that matches ``routing_key``."""
        cached = self._cache.get(routing_key)
        if cached is None:
            cached = frozenset(self._match(split_key(routing_key)))
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[routing_key] = cached
        return set(cached)

    def _match(self, words: list[str]) -> set[Hashable]:
        end = len(words)
        found: set[Hashable] = set()
        seen: set[tuple[_Node, int]] = set()
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        pop = stack.pop
        push = stack.append
        while stack:
            node, at = pop()
            if node.below_hash:
                state = (node, at)
                if state in seen:
                    continue
                seen.add(state)
                if node.loops and at < end:
                    push((node, at + 1))  # this '#' takes one more word
            if at == end:
                if node.dests:
                    found.update(node.dests)
            else:
                child = node.words.get(words[at])
                if child is not None:
                    push((child, at + 1))
                if node.star is not None:
                    push((node.star, at + 1))
            if node.hash is not None:
                push((node.hash, at))  # '#' matching zero words (so far)
        return found
