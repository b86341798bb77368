"""The ``dispatchd ctl`` command: rabbitmqctl's command line, sent to the broker's socket.

It finds the broker from the same settings as the daemon (flags, ``DISPATCHD_*``, the
``--config`` file): the socket is ``<data dir>/dispatchd.sock``. Global options as
rabbitmqctl's: ``-p VHOST``, ``-q``/``--quiet``, ``-s``/``--silent``, ``--formatter json``,
``-t``/``--timeout``; ``-n NODE`` is accepted (there is one node: the data dir's).
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dispatchd.config import build_parser, merge_settings
from dispatchd.control import SOCKET_NAME
from dispatchd.control.output import EX_DATAERR, EX_UNAVAILABLE, EX_USAGE

__all__ = ["main"]

USAGE = "Usage: dispatchd ctl [-p <vhost>] [-q] [-s] [--formatter json] <command> [<args>]"


def _parser() -> Any:
    parser = build_parser(prog="dispatchd ctl", add_help=False)
    parser.add_argument("-p", "--vhost", dest="ctl_vhost")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument("-s", "--silent", action="store_true")
    parser.add_argument("--formatter", default="table", choices=("table", "json"))
    parser.add_argument("-t", "--timeout", type=float, default=60.0)
    parser.add_argument("-n", "--node")
    return parser


def _request(path: Path, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        chunks = []
        while not chunks or not chunks[-1].endswith(b"\n"):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one rabbitmqctl-style command against the broker; returns the exit code."""
    args, rest = _parser().parse_known_args(argv)
    if not rest:
        print(USAGE, file=sys.stderr)
        return EX_USAGE
    settings = merge_settings(vars(args))
    path = Path(settings.data_dir).resolve() / SOCKET_NAME
    verb, verb_args = rest[0], rest[1:]
    options: dict[str, Any] = {
        "vhost": args.ctl_vhost,
        "quiet": args.quiet,
        "silent": args.silent,
        "formatter": args.formatter,
        "timeout": args.timeout,
    }
    if verb == "import_definitions" and verb_args:
        options["source"] = verb_args[0]
        try:
            source = sys.stdin if verb_args[0] == "-" else open(verb_args[0])  # noqa: SIM115
            with source:
                verb_args = [source.read()]
        except OSError as exc:
            print(f"Error: cannot read {verb_args[0]}: {exc}", file=sys.stderr)
            return EX_DATAERR
    request = {"verb": verb, "args": verb_args, "options": options}
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            reply = _request(path, request, args.timeout)
            break
        except (OSError, ValueError) as exc:
            if verb == "await_startup" and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            print(
                "Error: unable to perform an operation on node "
                f"'dispatchd@{socket.gethostname()}'. "
                "Please see diagnostics information and suggestions below.\n\n"
                f"DIAGNOSTICS\n===========\n\nno broker answers on {path}: {exc}",
                file=sys.stderr,
            )
            return EX_UNAVAILABLE
    sys.stdout.write(reply.get("out", ""))
    sys.stderr.write(reply.get("err", ""))
    data = reply.get("data")
    if data is not None and verb == "export_definitions":
        if verb_args[0] == "-":
            sys.stdout.write(data + "\n")
        else:
            Path(verb_args[0]).write_text(data)
    return int(reply.get("code", 0))
