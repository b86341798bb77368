"""The broker's end of ``dispatchd ctl``: a Unix socket in the data dir, one request per
connection (a JSON line: verb, arguments, options), one JSON line back (exit code and text).

The socket file is made 0600 before it listens, and each peer's credentials are checked
(``SO_PEERCRED``): only the broker's own OS user (or root) is served.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dispatchd.control import SOCKET_NAME
from dispatchd.control.output import EX_SOFTWARE, EX_USAGE, CtlError, Output, render
from dispatchd.control.verbs import VERBS, Context

if TYPE_CHECKING:
    from dispatchd.serve import Node

__all__ = ["MAX_REQUEST", "start"]

log = logging.getLogger("dispatchd.control")

MAX_REQUEST = 64 * 1024 * 1024
"""Largest request accepted (an import_definitions carries the whole file)."""


async def start(node: Node, data_dir: Path) -> asyncio.AbstractServer:
    """Listen on ``<data_dir>/dispatchd.sock``; a stale socket file is replaced."""
    path = data_dir / SOCKET_NAME
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        sock.bind(str(path))
        os.chmod(path, 0o600)  # before listen(): nobody else can have connected
        sock.listen(16)
    except OSError:
        sock.close()
        raise

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _serve_one(node, reader, writer)
        except Exception:  # noqa: BLE001 - one bad request never takes the listener down
            log.exception("ctl request failed")
        finally:
            writer.close()

    return await asyncio.start_unix_server(serve, sock=sock, limit=MAX_REQUEST)


def _peer_allowed(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid in (0, os.getuid())


async def _serve_one(
    node: Node, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    if not _peer_allowed(writer):
        log.warning("ctl: refused a peer of another OS user")
        return
    line = await reader.readline()
    try:
        request = json.loads(line)
        verb, args = request["verb"], [str(a) for a in request.get("args", ())]
        options: dict[str, Any] = dict(request.get("options", {}))
    except (ValueError, KeyError, TypeError) as exc:
        reply = {"code": EX_USAGE, "out": "", "err": f"Error: malformed request: {exc}\n"}
    else:
        reply = await run(node, verb, args, options)
    writer.write(json.dumps(reply).encode() + b"\n")
    await writer.drain()


async def run(node: Node, verb: str, args: list[str], options: dict[str, Any]) -> dict[str, Any]:
    """Carry out one verb: ``{"code", "out", "err"}`` as rabbitmqctl would print them."""
    handler = VERBS.get(verb)
    if handler is None:
        return {"code": EX_USAGE, "out": "", "err": f"Command '{verb}' not found. \n"}
    context = Context(node, options.get("vhost") or "/", options)
    quiet, silent = bool(options.get("quiet")), bool(options.get("silent"))
    formatter = str(options.get("formatter") or "table")
    try:
        output: Output = await handler(context, args)
    except CtlError as exc:
        out = render(context.info, Output(), quiet, silent, formatter)
        return {"code": exc.code, "out": out, "err": exc.message + "\n"}
    except Exception as exc:  # noqa: BLE001 - reported to the operator, logged here
        log.exception("ctl %s failed", verb)
        out = render(context.info, Output(), quiet, silent, formatter)
        return {"code": EX_SOFTWARE, "out": out, "err": f"Error:\n{exc}\n"}
    out = render(context.info, output, quiet, silent, formatter)
    return {"code": 0, "out": out, "err": "", "data": output.data}
