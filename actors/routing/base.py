"""What every exchange type shares: bindings, their identity, and the router interface.

A router is the pure routing logic of one exchange: no actors, no I/O. The vhost owns one
per exchange and changes it; what routing needs of it is its :class:`RoutingTable`, an
immutable value that every bind or unbind replaces (never changes), so the vhost can hand
it to the exchange actor. Subclasses only know how to index a binding (``_add``) and forget
it (``_remove``), keeping ``table`` current; this module keeps the binding set itself and
the per-destination index.

Binding identity follows RabbitMQ: a binding is ``(destination, routing key, arguments)``, so
binding the same queue with the same key but other arguments adds a second binding
(``rabbit_binding`` stores ``#binding{source, key, destination, args}`` with the arguments
sorted by key at the top level, and compares the whole record).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

__all__ = [
    "EMPTY_DESTS",
    "Binding",
    "DestinationSet",
    "FrozenTable",
    "Router",
    "RoutingArgumentError",
    "RoutingTable",
    "freeze",
    "thaw",
    "typed_key",
]


def _by_key(item: tuple[str | bytes, Any]) -> bytes:
    """Sort table items by name as bytes, like RabbitMQ (names that are not UTF-8 stay bytes)."""
    name = item[0]
    return name.encode("utf-8", "surrogatepass") if isinstance(name, str) else name


class RoutingArgumentError(ValueError):
    """Binding arguments an exchange type rejects; the actor replies 406 PRECONDITION_FAILED."""


def typed_key(value: Any) -> Hashable:
    """Return a hashable key for a table value that keeps its type.

    Two values have the same key only if they are the same AMQP value: ``True`` and ``1``,
    ``1`` and ``1.0``, ``Decimal("1.0")`` and ``Decimal("1.00")`` all differ (RabbitMQ keeps
    them apart in binding arguments, which it compares as ``{Name, Type, Value}`` terms).
    The codec decodes each AMQP field type to its own Python type (``wire.fields.Int64`` for
    a long, ``ByteArray`` for a byte array), so subclasses differ from their base type too.
    Tables compare regardless of key order (RabbitMQ only sorts the top level); arrays are
    ordered.
    """
    if isinstance(value, FrozenTable):
        return value._key
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=_by_key)
        return ("table", tuple((k, typed_key(v)) for k, v in items))
    if isinstance(value, (list, tuple)):
        return ("array", tuple(typed_key(v) for v in value))
    if isinstance(value, (bytearray, memoryview)):
        return (bytes, bytes(value))
    if isinstance(value, Decimal):
        return (type(value), value.as_tuple())  # {Scale, Unscaled}: 1.0 and 1.00 differ
    return (type(value), value)


def freeze(value: Any) -> Any:
    """Return an immutable, hashable copy of a field value.

    Mappings become :class:`FrozenTable`, lists and tuples become tuples, byte arrays become
    ``bytes``; everything else (numbers, strings, ``None``, decimals, datetimes) is returned
    as it is.
    """
    if isinstance(value, FrozenTable):
        return value
    if isinstance(value, Mapping):
        return FrozenTable(value)
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


def thaw(value: Any) -> Any:
    """Undo :func:`freeze`: tables become dicts and tuples become lists, recursively."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


class FrozenTable(Mapping[str, Any]):
    """An immutable, hashable field table (binding arguments), sorted by key.

    Equality and hashing are type-aware (see :func:`typed_key`); a ``FrozenTable`` also
    compares equal to a plain mapping with the same typed content.
    """

    __slots__ = ("_data", "_key", "_hash")

    def __init__(self, table: Mapping[str, Any] | None = None) -> None:
        items = sorted((table or {}).items(), key=_by_key)
        self._data: dict[str, Any] = {k: freeze(v) for k, v in items}
        self._key: Hashable = ("table", tuple((k, typed_key(v)) for k, v in self._data.items()))
        self._hash = hash(self._key)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenTable):
            return self._hash == other._hash and self._key == other._key
        if isinstance(other, Mapping):
            return self._key == typed_key(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenTable({self._data!r})"


EMPTY_TABLE = FrozenTable()


@dataclass(frozen=True, slots=True)
class Binding:
    """One binding: a destination, the binding key and the (frozen) binding arguments."""

    dest: Hashable
    routing_key: str
    arguments: FrozenTable = EMPTY_TABLE


class DestinationSet(dict[Hashable, int]):
    """Destinations with a count of bindings each; iterating yields each destination once.

    Several bindings can lead to the same destination from one place in an index (same key,
    different arguments), so a destination stays until its last binding there is removed.
    """

    __slots__ = ()

    def add(self, dest: Hashable) -> None:
        """Count one more binding to ``dest``."""
        self[dest] = self.get(dest, 0) + 1

    def remove(self, dest: Hashable) -> None:
        """Count one binding to ``dest`` less, forgetting ``dest`` at zero."""
        left = self[dest] - 1
        if left:
            self[dest] = left
        else:
            del self[dest]


EMPTY_DESTS: frozenset[Hashable] = frozenset()


class RoutingTable(ABC):
    """Where an exchange's messages go, at one moment: immutable once made.

    ``cacheable`` tables route by the routing key alone, at a cost worth caching per key
    (topic patterns); the exchange actor that uses one may keep such a cache of its own.
    """

    __slots__ = ()

    cacheable: ClassVar[bool] = False

    @abstractmethod
    def route(
        self, routing_key: str, headers: Mapping[str, Any] | None = None
    ) -> frozenset[Hashable]:
        """Every distinct destination with at least one binding matching the message."""


class Router(ABC):
    """The bindings of one exchange and how a message finds its destinations.

    ``bind``/``unbind`` keep the binding set; subclasses index each binding in ``_add`` and
    ``_remove`` and keep ``table`` (the current :class:`RoutingTable`) up to date.
    Destinations are opaque hashable values (queue or exchange names, or actor references).
    """

    type_name: ClassVar[str] = ""

    __slots__ = ("_bindings", "_by_dest", "table")

    def __init__(self) -> None:
        self._bindings: dict[Binding, None] = {}
        self._by_dest: dict[Hashable, dict[Binding, None]] = {}
        self.table: RoutingTable

    # -- bindings --------------------------------------------------------------------------

    def validate(self, arguments: FrozenTable) -> None:  # noqa: B027 - optional hook
        """Raise :class:`RoutingArgumentError` if this exchange type rejects ``arguments``."""

    def bind(
        self, dest: Hashable, routing_key: str, arguments: Mapping[str, Any] | None = None
    ) -> bool:
        """Add a binding; return True if it is new, False if it already existed.

        Raises :class:`RoutingArgumentError` for arguments the exchange type rejects (checked
        before the duplicate test, as RabbitMQ validates every ``queue.bind``).
        """
        frozen = freeze(arguments) if arguments else EMPTY_TABLE
        self.validate(frozen)
        binding = Binding(dest, routing_key, frozen)
        if binding in self._bindings:
            return False
        self._bindings[binding] = None
        self._by_dest.setdefault(dest, {})[binding] = None
        self._add(binding)
        return True

    def unbind(
        self, dest: Hashable, routing_key: str, arguments: Mapping[str, Any] | None = None
    ) -> bool:
        """Remove a binding; return True if it existed."""
        binding = Binding(dest, routing_key, freeze(arguments) if arguments else EMPTY_TABLE)
        if binding not in self._bindings:
            return False
        del self._bindings[binding]
        of_dest = self._by_dest[dest]
        del of_dest[binding]
        if not of_dest:
            del self._by_dest[dest]
        self._remove(binding)
        return True

    def unbind_all(self, dest: Hashable) -> int:
        """Remove every binding to ``dest`` (its queue was deleted); return how many."""
        of_dest = self._by_dest.pop(dest, None)
        if not of_dest:
            return 0
        for binding in of_dest:
            del self._bindings[binding]
            self._remove(binding)
        return len(of_dest)

    def bindings(self) -> list[Binding]:
        """Every binding, oldest first."""
        return list(self._bindings)

    def bindings_to(self, dest: Hashable) -> list[Binding]:
        """The bindings to ``dest``, oldest first."""
        return list(self._by_dest.get(dest, ()))

    def has_bindings_to(self, dest: Hashable) -> bool:
        """Whether any binding leads to ``dest``."""
        return dest in self._by_dest

    def __contains__(self, binding: object) -> bool:
        return binding in self._bindings

    def __len__(self) -> int:
        return len(self._bindings)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} bindings={len(self._bindings)}>"

    # -- what each exchange type provides ----------------------------------------------------

    @abstractmethod
    def _add(self, binding: Binding) -> None:
        """Index a new binding."""

    @abstractmethod
    def _remove(self, binding: Binding) -> None:
        """Forget a binding that was indexed by ``_add``."""

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> set[Hashable]:
        """Every distinct destination with at least one binding matching the message (a
        fresh set; routing on the hot path asks ``table`` instead)."""
        return set(self.table.route(routing_key, headers))
