"""What a verb answers, and rabbitmqctl's ways of printing it (table, ``-q``/``-s``, JSON)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EX_DATAERR", "EX_NOUSER", "EX_SOFTWARE", "EX_UNAVAILABLE", "EX_USAGE", "CtlError",
           "Output", "render"]  # fmt: skip

# rabbitmqctl's exit codes (sysexits.h, as its ExitCodes module).
EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70


class CtlError(Exception):
    """A verb failed: the message rabbitmqctl prints on stderr and its exit code."""

    def __init__(self, message: str, code: int = EX_SOFTWARE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class Output:
    """A verb's answer: an informational line, then a table (columns and rows) or text."""

    info: str | None = None
    columns: Sequence[str] = ()
    rows: Sequence[Sequence[Any]] = field(default_factory=list)
    text: str | None = None
    code: int = 0
    data: str | None = None  # for the client to write to a file (export_definitions)


def _cell(value: Any) -> str:
    """One table cell as rabbitmqctl prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def render(output: Output, quiet: bool, silent: bool, formatter: str) -> str:
    """The text a verb prints on stdout: ``quiet`` drops the informational line, ``silent``
    the table header too; the JSON formatter prints one object per row."""
    lines: list[str] = []
    if output.info and not (quiet or silent):
        lines.append(output.info)
    if output.columns:
        if formatter == "json":
            objects = [
                json.dumps(dict(zip(output.columns, row, strict=True)), separators=(",", ":"))
                for row in output.rows
            ]
            lines.append("[\n" + ",\n".join(objects) + ("\n" if objects else "") + "]")
        else:
            if not silent:
                lines.append("\t".join(output.columns))
            lines.extend("\t".join(_cell(v) for v in row) for row in output.rows)
    if output.text is not None:
        lines.append(output.text)
    return "".join(line + "\n" for line in lines)
