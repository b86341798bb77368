"""A persistent (immutable) map: updates return a new map that shares most of the old one.

Routing tables are handed from the vhost to exchange actors as immutable values, and the
default exchange alone has one binding per queue: copying a 20,000-entry dict on every
queue.declare costs ~65 µs (measured here), so a table must not be copied whole. A
:class:`PMap` is ``S`` shard dicts (``S`` about the square root of its size, a power of
two): an update copies the tuple of shards and the one shard it changes, O(√n), and a
lookup is one more index than a dict's (``shards[hash(key) & mask]``, which a hot path may
write out itself). Shards are never changed once the map that holds them exists.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["PMap"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MIN_SHARDED = 64  # below this size one shard (a plain dict copy) is cheapest


def _shard_count(size: int) -> int:
    if size < _MIN_SHARDED:
        return 1
    return 1 << round(math.log2(math.sqrt(size)))


class PMap(Mapping[K, V], Generic[K, V]):
    """An immutable mapping; :meth:`set` and :meth:`delete` return updated copies."""

    __slots__ = ("_len", "mask", "shards")

    def __init__(self, items: Mapping[K, V] | None = None) -> None:
        items = items or {}
        count = _shard_count(len(items))
        shards: list[dict[K, V]] = [{} for _ in range(count)]
        mask = count - 1
        for key, value in items.items():
            shards[hash(key) & mask][key] = value
        self.shards: tuple[dict[K, V], ...] = tuple(shards)
        self.mask = mask
        self._len = len(items)

    @classmethod
    def _of(cls, shards: tuple[dict[K, V], ...], size: int) -> PMap[K, V]:
        new = cls.__new__(cls)
        new.shards, new.mask, new._len = shards, len(shards) - 1, size
        count = _shard_count(size)
        if count * 4 <= len(shards) or count >= len(shards) * 4:  # grown or shrunk 4x
            return cls(new)
        return new

    def __getitem__(self, key: K) -> V:
        return self.shards[hash(key) & self.mask][key]

    def get(self, key: K, default: Any = None) -> Any:  # noqa: D102
        return self.shards[hash(key) & self.mask].get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.shards[hash(key) & self.mask]

    def __iter__(self) -> Iterator[K]:
        for shard in self.shards:
            yield from shard

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"PMap({dict(self)!r})"

    def set(self, key: K, value: V) -> PMap[K, V]:
        """A copy with ``key`` mapped to ``value``."""
        index = hash(key) & self.mask
        shard = dict(self.shards[index])
        size = self._len + (key not in shard)
        shard[key] = value
        shards = list(self.shards)
        shards[index] = shard
        return self._of(tuple(shards), size)

    def delete(self, key: K) -> PMap[K, V]:
        """A copy without ``key`` (KeyError if it is absent)."""
        index = hash(key) & self.mask
        shard = dict(self.shards[index])
        del shard[key]
        shards = list(self.shards)
        shards[index] = shard
        return self._of(tuple(shards), self._len - 1)
