"""What a verb answers, and rabbitmqctl's ways of printing it (table, ``-q``/``-s``, JSON)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dispatchd.actors.routing.terms import field_type

__all__ = ["EX_DATAERR", "EX_NOUSER", "EX_SOFTWARE", "EX_UNAVAILABLE", "EX_USAGE", "Arguments",
           "CtlError", "Output", "render"]  # fmt: skip

# rabbitmqctl's exit codes (sysexits.h, as its ExitCodes module).
EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70


class CtlError(Exception):
    """A verb failed: exactly what rabbitmqctl prints on stderr, and its exit code."""

    def __init__(self, message: str, code: int = EX_SOFTWARE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Arguments(dict[str, Any]):
    """A field table in a listing: ``[{"x-max-length",1000}]`` in a table, a list of
    ``[name, type, value]`` in JSON, as rabbitmqctl prints queue arguments."""

    def cell(self) -> str:
        """As a table cell."""
        items = (
            f'{{"{k}",{json.dumps(v) if isinstance(v, str) else _cell(v)}}}'
            for k, v in self.items()
        )
        return "[" + ",".join(items) + "]"

    def json(self) -> list[list[Any]]:
        """As JSON."""
        return [[k, field_type(v), v] for k, v in self.items()]


@dataclass(frozen=True, slots=True)
class Output:
    """A verb's answer: a table (columns and rows), or text; the info lines are the
    context's (they are printed even when the verb fails)."""

    columns: Sequence[str] = ()
    rows: Sequence[Sequence[Any]] = field(default_factory=list)
    text: str | None = None
    data: str | None = None  # for the client to write to a file (export_definitions)
    empty_json: str = "[\n]"  # rabbitmqctl prints some empty lists as "[]"
    headers: bool = True  # False: --no-table-headers


def _cell(value: Any) -> str:
    """One table cell as rabbitmqctl prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, Arguments):
        return value.cell()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _json(value: Any) -> Any:
    return value.json() if isinstance(value, Arguments) else value


def render(info: Sequence[str], output: Output, quiet: bool, silent: bool, formatter: str) -> str:
    """What a verb prints on stdout: ``quiet`` drops the informational lines, ``silent``
    the table header too; the JSON formatter prints one object per row, and no info."""
    lines: list[str] = []
    if not (quiet or silent or formatter == "json"):
        lines.extend(info)
    if output.columns:
        if formatter == "json":
            objects = [
                json.dumps(
                    {k: _json(v) for k, v in zip(output.columns, row, strict=True)},
                    separators=(",", ":"),
                )
                for row in output.rows
            ]
            lines.append("[\n" + "\n,".join(objects) + "\n]" if objects else output.empty_json)
        else:
            if not silent and output.headers:
                lines.append("\t".join(output.columns))
            lines.extend("\t".join(_cell(v) for v in row) for row in output.rows)
    if output.text is not None:
        if formatter == "json":
            lines.append(json.dumps({"message": output.text}, separators=(",", ":")))
        else:
            lines.append(output.text)
    return "".join(line + "\n" for line in lines)
