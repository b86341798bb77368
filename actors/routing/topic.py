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

The trie is persistent: a node never changes once made, and a bind or unbind copies only
the nodes on its pattern's path, so each :class:`TopicTable` is an immutable value that the
next change shares most of. The exchange actor caches routing results per routing key
(``cacheable``); the table itself holds no cache.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from .base import EMPTY_DESTS, Binding, Router, RoutingTable

__all__ = ["TopicRouter", "TopicTable", "split_key"]


def split_key(key: str) -> list[str]:
    """Split a routing or binding key into words the way RabbitMQ does ("" is no words)."""
    return key.split(".") if key else []


class _Node:
    """One trie node: children by literal word, the ``*`` and ``#`` children, destinations.

    Immutable once made (``words`` included): changes make new nodes along one path.
    """

    __slots__ = ("below_hash", "dests", "hash", "loops", "star", "words")

    def __init__(
        self,
        loops: bool = False,
        below_hash: bool = False,
        words: dict[str, _Node] | None = None,
        star: _Node | None = None,
        hash: _Node | None = None,  # noqa: A002 - the '#' child
        dests: frozenset[Hashable] = EMPTY_DESTS,
    ) -> None:
        self.words: dict[str, _Node] = words if words is not None else {}
        self.star = star
        self.hash = hash
        self.dests = dests
        self.loops = loops  # reached through '#': may consume more words in place
        self.below_hash = below_hash  # a '#' on the path: (node, position) can repeat

    def child(self, word: str) -> _Node | None:
        if word == "*":
            return self.star
        if word == "#":
            return self.hash
        return self.words.get(word)

    def fresh_child(self, word: str) -> _Node:
        """An empty node to hang under this one as ``word``."""
        return _Node(loops=word == "#", below_hash=self.below_hash or word == "#")

    def with_child(self, word: str, child: _Node | None) -> _Node:
        """A copy with ``child`` (None: no child) as ``word``."""
        words, star, hash_ = self.words, self.star, self.hash
        if word == "*":
            star = child
        elif word == "#":
            hash_ = child
        else:
            words = dict(words)
            if child is None:
                del words[word]
            else:
                words[word] = child
        return _Node(self.loops, self.below_hash, words, star, hash_, self.dests)

    def with_dests(self, dests: frozenset[Hashable]) -> _Node:
        """A copy with other destinations."""
        return _Node(self.loops, self.below_hash, self.words, self.star, self.hash, dests)

    def is_empty(self) -> bool:
        return not self.dests and not self.words and self.star is None and self.hash is None


def _changed(node: _Node, words: list[str], at: int, dest: Hashable, add: bool) -> _Node | None:
    """``node`` with ``dest`` added at (or removed from) the pattern ``words[at:]`` below
    it; None when the new node is empty (the branch is pruned)."""
    if at == len(words):
        new = node.with_dests(node.dests | {dest} if add else node.dests - {dest})
    else:
        word = words[at]
        child = node.child(word)
        if child is None:
            child = node.fresh_child(word)
        new = node.with_child(word, _changed(child, words, at + 1, dest, add))
    return None if new.is_empty() else new


class TopicTable(RoutingTable):
    """The trie of binding patterns, immutable."""

    __slots__ = ("root",)

    cacheable = True

    def __init__(self, root: _Node) -> None:
        self.root = root

    def route(  # noqa: D102
        self, routing_key: str, headers: Mapping[str, Any] | None = None
    ) -> frozenset[Hashable]:
        return frozenset(self.match(split_key(routing_key)))

    def match(self, words: list[str]) -> set[Hashable]:
        """Every destination whose pattern matches the routing key's ``words``."""
        end = len(words)
        found: set[Hashable] = set()
        seen: set[tuple[_Node, int]] = set()
        stack: list[tuple[_Node, int]] = [(self.root, 0)]
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


class TopicRouter(Router):
    """Routes by matching the routing key against ``*``/``#`` patterns held in a word trie."""

    type_name = "topic"

    __slots__ = ("_counts",)
    table: TopicTable

    def __init__(self) -> None:
        super().__init__()
        self._counts: dict[tuple[str, Hashable], int] = {}  # bindings per pattern and dest
        self.table = TopicTable(_Node())

    @property
    def _root(self) -> _Node:
        return self.table.root

    def _match(self, words: list[str]) -> set[Hashable]:
        return self.table.match(words)

    def _add(self, binding: Binding) -> None:
        key = (binding.routing_key, binding.dest)
        count = self._counts.get(key, 0)
        self._counts[key] = count + 1
        if not count:
            self._change(binding, add=True)

    def _remove(self, binding: Binding) -> None:
        key = (binding.routing_key, binding.dest)
        count = self._counts[key] - 1
        if count:
            self._counts[key] = count
            return
        del self._counts[key]
        self._change(binding, add=False)

    def _change(self, binding: Binding, add: bool) -> None:
        words = split_key(binding.routing_key)
        root = _changed(self.table.root, words, 0, binding.dest, add)
        self.table = TopicTable(root if root is not None else _Node())
