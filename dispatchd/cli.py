"""The ``dispatchd`` command: load settings, start the broker on uvloop, serve until a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop

import admin
from actors import runtime
from actors.content import continue_store_ids
from dispatchd import __version__
from dispatchd.broker import Broker
from dispatchd.config import Settings, load_settings
from store import database, recovery
from store.actor import StoreActor
from store.database import StoreError
from wire.protocol import AMQPProtocol

log = logging.getLogger("dispatchd")

SHUTDOWN_GRACE = 5.0


async def serve(settings: Settings, started: asyncio.Event | None = None) -> None:
    """Run the broker until SIGINT/SIGTERM, then shut down cleanly."""
    loop = asyncio.get_running_loop()
    runtime.bind_loop(loop)
    data_dir = Path(settings.data_dir).resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SystemExit(f"dispatchd: cannot create data dir {data_dir}: {exc}") from exc
    try:
        db = database.connect(settings.store or str(data_dir))
        recovered = recovery.load(db, settings.queue_memory_limit)
    except StoreError as exc:
        raise SystemExit(f"dispatchd: {exc}") from exc
    continue_store_ids(recovered.max_message_id)
    store = StoreActor.start(db, loop)
    broker = Broker(settings, store, recovered)
    broker.start()
    try:
        server = await loop.create_server(
            lambda: AMQPProtocol(broker), settings.bind, settings.port, backlog=1024
        )
    except OSError as exc:
        raise SystemExit(
            f"dispatchd: cannot listen on {settings.bind}:{settings.port}: {exc}"
        ) from exc
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ports = ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in server.sockets)
    log.info(
        "dispatchd %s (Python %s, uvloop %s)",
        __version__,
        sys.version.split()[0],
        uvloop.__version__,
    )
    log.info("AMQP 0-9-1 listening on %s", ports)
    admin_server = admin.start(broker, settings)
    if admin_server is not None:
        log.info("admin page and management API on %s", admin_server.url)
    else:
        log.info("admin page off (--admin-port 0)")
    log.info("data dir %s (store: %s)", data_dir, settings.store or data_dir / "dispatchd.db")
    log.info(
        "limits: frame_max %d, channel_max %d, heartbeat %ds",
        settings.frame_max,
        settings.channel_max,
        settings.heartbeat,
    )
    if started is not None:
        started.set()
    await stop.wait()
    log.info("shutting down: closing %d connection(s)", len(broker.connections))
    server.close()
    if admin_server is not None:
        await asyncio.to_thread(admin_server.stop)
    await broker.close_all("shutdown", SHUTDOWN_GRACE)
    await asyncio.gather(*runtime.stop_all(), return_exceptions=True)
    await asyncio.to_thread(store.stop)  # the store's inbox drains and commits first
    db.close()
    runtime.unbind_loop()
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dispatchd`` console script."""
    settings = load_settings(argv)
    level = getattr(logging, settings.log_level.upper(), None)
    if not isinstance(level, int):
        raise SystemExit(f"dispatchd: unknown log level {settings.log_level!r}")
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )
    uvloop.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
