"""The ``dispatchd`` command: load settings, start the broker on uvloop, serve until a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

import uvloop

from dispatchd.config import Settings, load_settings
from dispatchd.serve import serve


async def _until_signal(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM; SIGHUP reloads the TLS certificate."""
    stop, reload = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    await serve(settings, stop, reload=reload)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dispatchd`` console script (``dispatchd ctl ...``: the control
    command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["ctl"]:
        from dispatchd.control.client import main as ctl

        return ctl(argv[1:])
    settings = load_settings(argv)
    level = getattr(logging, settings.log_level.upper(), None)
    if not isinstance(level, int):
        raise SystemExit(f"dispatchd: unknown log level {settings.log_level!r}")
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )
    uvloop.run(_until_signal(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
