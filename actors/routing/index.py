"""The bindings of a virtual host by name, indexed by source and by destination.

The vhost keeps one :class:`BindingIndex` (names only, no actors). Deleting an exchange or a
queue asks for every binding where it is the source or the destination, and an auto-delete
exchange asks whether it is still the source of any binding; the two indexes answer each of
these in time proportional to the bindings concerned, not to all bindings of the vhost.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from .base import FrozenTable

__all__ = ["BindingIndex", "BindingKey", "DestKind"]

DestKind = Literal["queue", "exchange"]


@dataclass(frozen=True, slots=True)
class BindingKey:
    """One binding as the vhost knows it: names, binding key and (frozen) arguments."""

    source: str
    dest_kind: DestKind
    dest: str
    routing_key: str
    arguments: FrozenTable


class BindingIndex:
    """A set of :class:`BindingKey` with lookups by source and by (kind, destination).

    Iteration yields every binding once, grouped by source, oldest first within a source.
    """

    __slots__ = ("_by_source", "_by_dest", "_count")

    def __init__(self) -> None:
        self._by_source: dict[str, dict[BindingKey, None]] = {}
        self._by_dest: dict[tuple[DestKind, str], dict[BindingKey, None]] = {}
        self._count = 0

    def add(self, key: BindingKey) -> bool:
        """Add a binding; False if it was already there."""
        of_source = self._by_source.setdefault(key.source, {})
        if key in of_source:
            return False
        of_source[key] = None
        self._by_dest.setdefault((key.dest_kind, key.dest), {})[key] = None
        self._count += 1
        return True

    def remove(self, key: BindingKey) -> bool:
        """Remove a binding; False if there was no such binding."""
        of_source = self._by_source.get(key.source)
        if of_source is None or key not in of_source:
            return False
        self._drop(self._by_source, key.source, key)
        self._drop(self._by_dest, (key.dest_kind, key.dest), key)
        self._count -= 1
        return True

    def remove_source(self, source: str) -> list[BindingKey]:
        """Remove and return every binding from exchange ``source``."""
        removed = list(self._by_source.pop(source, ()))
        for key in removed:
            self._drop(self._by_dest, (key.dest_kind, key.dest), key)
        self._count -= len(removed)
        return removed

    def remove_destination(self, kind: DestKind, dest: str) -> list[BindingKey]:
        """Remove and return every binding to the queue or exchange ``dest``."""
        removed = list(self._by_dest.pop((kind, dest), ()))
        for key in removed:
            self._drop(self._by_source, key.source, key)
        self._count -= len(removed)
        return removed

    def has_source(self, source: str) -> bool:
        """Whether exchange ``source`` is the source of any binding."""
        return source in self._by_source

    def from_source(self, source: str) -> list[BindingKey]:
        """The bindings from exchange ``source``, oldest first."""
        return list(self._by_source.get(source, ()))

    def to_destination(self, kind: DestKind, dest: str) -> list[BindingKey]:
        """The bindings to the queue or exchange ``dest``, oldest first."""
        return list(self._by_dest.get((kind, dest), ()))

    def problems(self) -> list[str]:
        """Disagreements between the two indexes (an empty list when they agree)."""
        by_source = {key for keys in self._by_source.values() for key in keys}
        by_dest = {key for keys in self._by_dest.values() for key in keys}
        out = [f"only indexed by source: {key}" for key in by_source - by_dest]
        out += [f"only indexed by destination: {key}" for key in by_dest - by_source]
        out += [f"empty entry for source {s!r}" for s, keys in self._by_source.items() if not keys]
        out += [f"empty entry for dest {d!r}" for d, keys in self._by_dest.items() if not keys]
        if len(by_source) != self._count:
            out.append(f"count {self._count} but {len(by_source)} bindings")
        return out

    @staticmethod
    def _drop(index: dict[Any, dict[BindingKey, None]], group: Any, key: BindingKey) -> None:
        keys = index[group]
        del keys[key]
        if not keys:
            del index[group]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, BindingKey) and key in self._by_source.get(key.source, ())

    def __iter__(self) -> Iterator[BindingKey]:
        for keys in self._by_source.values():
            yield from keys

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"<BindingIndex bindings={self._count}>"
