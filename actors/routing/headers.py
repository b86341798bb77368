"""The headers exchange: binding arguments are matched against the message's headers table.

Semantics follow RabbitMQ's ``rabbit_exchange_type_headers.erl`` (3.x):

- ``x-match`` picks the mode: ``all`` (the default when absent), ``any``, ``all-with-x`` or
  ``any-with-x``. Any other string, or a non-string value, is refused at bind time
  (``validate_binding``), which RabbitMQ reports as 406 PRECONDITION_FAILED.
- ``x-match`` itself never takes part in matching. Other binding arguments whose name starts
  with ``x-`` (case-sensitive) are ignored too, except in the ``-with-x`` modes.
- A binding argument with a void value (``None``) matches when the header is present, with
  whatever value.
- ``all`` with no arguments left to compare matches every message; ``any`` with none
  matches nothing. A message without headers is matched as an empty table.
- Values are compared with Erlang's ``==`` on the decoded values, ignoring the field types
  (``PV == DV``; the type fields ``_PT``/``_DT`` are unused). See :func:`values_equal`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from decimal import Decimal
from typing import Any

from .base import (
    Binding,
    DestinationSet,
    FrozenTable,
    Router,
    RoutingArgumentError,
    RoutingTable,
    typed_key,
)
from .terms import as_binary, erlang_repr, field_type

__all__ = ["HeadersRouter", "HeadersTable", "X_MATCH_MODES", "values_equal"]

X_MATCH_MODES = ("all", "any", "all-with-x", "any-with-x")

_Term = tuple[str, Any, bool]  # (header name, wanted value, value is void)
_PLAIN = frozenset({str, bytes, int, float, bool})


def values_equal(wanted: Any, actual: Any) -> bool:
    """Compare a binding value with a header value the way RabbitMQ's ``==`` does.

    RabbitMQ decodes both tables to Erlang terms and compares values only, so:
    integers of any width and floats compare numerically (``1 == 1.0``); booleans are atoms
    and never equal a number; every string type is a binary, so ``str`` and ``bytes`` with
    the same UTF-8 bytes are equal; a decimal is ``{Scale, Unscaled}`` and equals only the
    same decimal written the same way (``Decimal("1.0") != Decimal("1.00")``). Nested
    tables and arrays keep their element types in Erlang, so they compare type-aware
    (see :func:`~actors.routing.base.typed_key`).
    """
    kind = type(wanted)
    if kind is type(actual) and kind in _PLAIN:  # the common case, decided by ==
        return wanted == actual
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return type(wanted) is type(actual) and wanted == actual
    if isinstance(wanted, (int, float)) and isinstance(actual, (int, float)):
        return wanted == actual
    if isinstance(wanted, (str, bytes)) and isinstance(actual, (str, bytes, bytearray)):
        return as_binary(wanted) == as_binary(actual)
    if isinstance(wanted, Decimal) and isinstance(actual, Decimal):
        return wanted.as_tuple() == actual.as_tuple()
    return typed_key(wanted) == typed_key(actual)


def _is_x_name(name: str | bytes) -> bool:
    return name.startswith("x-") if isinstance(name, str) else name.startswith(b"x-")


class _Matcher:
    """One distinct argument table, compiled (immutable once made)."""

    __slots__ = ("any", "terms")

    def __init__(self, arguments: FrozenTable) -> None:
        mode = arguments.get("x-match", "all")
        with_x = mode in ("all-with-x", "any-with-x")
        self.any = mode in ("any", "any-with-x")
        self.terms: tuple[_Term, ...] = tuple(
            (name, value, value is None)
            for name, value in arguments.items()
            if name != "x-match" and (with_x or not _is_x_name(name))
        )

    def matches(self, headers: Mapping[str, Any]) -> bool:
        if self.any:
            for name, wanted, void in self.terms:
                if name in headers and (void or values_equal(wanted, headers[name])):
                    return True
            return False
        for name, wanted, void in self.terms:
            if name not in headers or not (void or values_equal(wanted, headers[name])):
                return False
        return True


class HeadersTable(RoutingTable):
    """Each distinct argument table with the destinations bound with it."""

    __slots__ = ("matchers",)

    def __init__(self, matchers: tuple[tuple[_Matcher, frozenset[Hashable]], ...]) -> None:
        self.matchers = matchers

    def route(  # noqa: D102
        self, routing_key: str, headers: Mapping[str, Any] | None = None
    ) -> frozenset[Hashable]:
        table = headers if headers is not None else {}
        found: set[Hashable] = set()
        for matcher, dests in self.matchers:
            if matcher.matches(table):
                found.update(dests)
        return frozenset(found)


class HeadersRouter(Router):
    """Routes by comparing each binding's arguments with the message headers.

    The routing key is ignored. Every distinct argument table is checked on each message
    (RabbitMQ checks every binding); bindings that share a table are matched once.
    """

    type_name = "headers"

    __slots__ = ("_tables",)

    def __init__(self) -> None:
        super().__init__()
        self._tables: dict[FrozenTable, tuple[_Matcher, DestinationSet]] = {}
        self.table = HeadersTable(())

    def validate(self, arguments: FrozenTable) -> None:
        """Refuse an ``x-match`` that is not one of :data:`X_MATCH_MODES`, as RabbitMQ does."""
        if "x-match" not in arguments:
            return
        mode = arguments["x-match"]
        # A long string decodes to str, or to plain bytes when it is not UTF-8; a byte array
        # ('x') decodes to a bytes subclass and is refused like any other non-longstr type.
        if isinstance(mode, str) or type(mode) is bytes:
            if mode not in X_MATCH_MODES:
                raise RoutingArgumentError(
                    f"Invalid x-match field value {erlang_repr(mode)}; "
                    "expected all, any, all-with-x, or any-with-x"
                )
            return
        raise RoutingArgumentError(
            f"Invalid x-match field type {field_type(mode)} "
            f"(value {erlang_repr(mode)}); expected longstr"
        )

    def _add(self, binding: Binding) -> None:
        held = self._tables.get(binding.arguments)
        if held is None:
            held = self._tables[binding.arguments] = (_Matcher(binding.arguments), DestinationSet())
        held[1].add(binding.dest)
        self._rebuild()

    def _remove(self, binding: Binding) -> None:
        dests = self._tables[binding.arguments][1]
        dests.remove(binding.dest)
        if not dests:
            del self._tables[binding.arguments]
        self._rebuild()

    def _rebuild(self) -> None:
        self.table = HeadersTable(
            tuple((matcher, frozenset(dests)) for matcher, dests in self._tables.values())
        )
