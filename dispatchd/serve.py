"""Running one broker on the current event loop: open the store, listen, serve, shut down.

This is the composition root: the one place that knows every layer (wire, actors, store,
admin). A :class:`Node` is the process's part that outlives ``dispatchd ctl stop_app``: its
settings, data dir and control socket; its :class:`App` is the broker proper (store, actors,
AMQP listener, admin), stopped, wiped (``reset``) and started again as RabbitMQ's rabbit app.
Nothing here touches process-wide state (no signal handlers, no logging set-up, no event
loop policy), so several brokers can run in one process, each on its own loop; the
``dispatchd`` command adds the signals (``cli.py``).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import peewee
import uvloop

from dispatchd import __version__, admin
from dispatchd.actors.ready import max_priority
from dispatchd.actors.runtime import Runtime
from dispatchd.admin.server import AdminServer
from dispatchd.alarms import DiskLimit, MemoryWatermark, ResourceMonitor
from dispatchd.broker import Broker, Listener, node_name
from dispatchd.config import DEFAULT_BIND, Settings, addresses
from dispatchd.control import server as control
from dispatchd.management import Management, ManagementError
from dispatchd.store import accounts, database, recovery
from dispatchd.store.actor import CommitStats, StoreActor
from dispatchd.store.batching import CommitBudget
from dispatchd.store.database import StoreError
from dispatchd.tls import CertificateError, ServerTLS
from dispatchd.wire.gate import AcceptGate, GatedListener
from dispatchd.wire.protocol import AMQPProtocol
from dispatchd.wire.tls import TLSAcceptor

__all__ = ["SHUTDOWN_GRACE", "App", "Node", "serve"]

log = logging.getLogger("dispatchd")

SHUTDOWN_GRACE = 5.0
"""Seconds clients get to answer the shutdown's connection.close before they are cut off."""


async def serve(
    settings: Settings,
    stop: asyncio.Event,
    started: asyncio.Event | None = None,
    reload: asyncio.Event | None = None,
) -> None:
    """Run a broker with ``settings`` until ``stop`` is set, then shut it down cleanly.

    ``started`` is set once it accepts connections; each time ``reload`` is set the TLS
    certificate is read again (SIGHUP). A broker that cannot start (data dir, store, port,
    certificate) raises SystemExit with a one-line reason.
    """
    data_dir = Path(settings.data_dir).resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SystemExit(f"dispatchd: cannot create data dir {data_dir}: {exc}") from exc
    node = Node(settings, data_dir)
    await node.start_app()
    log.info(
        "dispatchd %s (Python %s, uvloop %s)",
        __version__,
        sys.version.split()[0],
        uvloop.__version__,
    )
    log.info("data dir %s (store: %s)", data_dir, settings.store or data_dir / "dispatchd.db")
    try:
        control_server = await control.start(node, data_dir)
    except OSError as exc:
        await node.stop_app()
        raise SystemExit(f"dispatchd: cannot listen on the control socket: {exc}") from exc
    if started is not None:
        started.set()
    reloading = asyncio.create_task(_reload_on(reload, node)) if reload is not None else None
    await stop.wait()
    if reloading is not None:
        reloading.cancel()
    control_server.close()
    await node.stop_app()
    log.info("stopped")


async def _reload_on(reload: asyncio.Event, node: Node) -> None:
    """Reload the node's TLS certificate each time ``reload`` is set."""
    while True:
        await reload.wait()
        reload.clear()
        node.reload_tls()


class Node:
    """The settings, the data dir and, while it runs, the app (``None`` after stop_app)."""

    def __init__(self, settings: Settings, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.name = node_name()
        self.app: App | None = None
        self.running = asyncio.Event()  # set while the app runs (await_startup waits on it)
        self._changing = asyncio.Lock()  # one stop_app/start_app/reset at a time

    @property
    def store_location(self) -> str:
        """The store's URL, or the data dir holding its SQLite file."""
        return self.settings.store or str(self.data_dir)

    async def start_app(self) -> None:
        """Start the app (a no-op while it runs, as rabbitmqctl start_app)."""
        async with self._changing:
            if self.app is None:
                self.app = await App.start(self.settings, self.store_location)
                self.running.set()

    async def stop_app(self) -> None:
        """Stop the app, keeping the node and its control socket (a no-op once stopped)."""
        async with self._changing:
            if self.app is not None:
                app, self.app = self.app, None
                self.running.clear()
                await app.stop()

    def reload_tls(self) -> None:
        """Read the AMQPS and admin certificate files again (new connections get the new
        certificate)."""
        if self.app is None or not self.app.tls:
            log.info("SIGHUP: no TLS listener, nothing to reload")
        for tls in self.app.tls if self.app is not None else ():
            tls.reload()

    async def reset(self) -> None:
        """Wipe the store (users, vhosts, definitions, messages); the app must be stopped.
        The next start_app is a first start: the default user and vhost come back."""
        async with self._changing:
            await asyncio.to_thread(database.wipe, self.store_location)
            log.info("reset: the store at %s is empty", self.store_location)


@dataclass(slots=True)
class App:
    """The broker proper, running: its store, actors, AMQP listener and admin server."""

    broker: Broker
    db: peewee.Database
    servers: list[asyncio.AbstractServer]  # plain and TLS, each on every --bind address
    admin_server: AdminServer | None
    tls: list[ServerTLS]  # the AMQPS and admin HTTPS certificates, those in use

    @classmethod
    async def start(cls, settings: Settings, store_location: str) -> App:
        """Open and recover the store, start the actors, listen; SystemExit with a one-line
        reason when it cannot."""
        loop = asyncio.get_running_loop()
        runtime = Runtime(loop)
        try:
            db = database.connect(store_location)
            recovered = recovery.load(db, settings.queue_memory_limit, unpaged=max_priority)
            access = accounts.load(db)
            if not accounts.initialised(db) and not settings.load_definitions:
                named = [x.vhost for x in recovered.exchanges] + [q.vhost for q in recovered.queues]
                vhosts = [settings.default_vhost, *named]
                accounts.create_defaults(
                    db, access, settings.default_user, settings.default_pass, vhosts
                )
                log.info(
                    "first start: created vhost '%s' and user '%s'",
                    settings.default_vhost,
                    settings.default_user,
                )
        except (StoreError, peewee.DatabaseError) as exc:
            raise SystemExit(f"dispatchd: {exc}") from exc
        commits = CommitStats()
        budget = CommitBudget(settings.store_batch_rows, settings.store_batch_bytes)
        store = StoreActor.start(db, loop, commits, budget)
        broker = Broker(settings, runtime, store, recovered, commits, access)
        broker.start()
        broker.monitor = ResourceMonitor(
            MemoryWatermark.parse(settings.memory_high_watermark),
            DiskLimit.parse(settings.disk_free_limit),
            settings.data_dir,
            broker.cluster_name,
            broker.alarms,
            broker.alarms_changed,
        )
        broker.monitor.start()
        if settings.load_definitions:
            await _load_definitions(broker, settings.load_definitions, store)
        try:
            tls = ServerTLS.amqp(settings) if settings.tls_cert and settings.tls_port else None
            admin_tls = ServerTLS.admin(settings) if settings.admin_tls_cert else None
            servers = await _listen(broker, tls)
        except (OSError, CertificateError) as exc:
            await asyncio.gather(*runtime.stop_all(), return_exceptions=True)
            await asyncio.to_thread(store.stop)
            raise SystemExit(f"dispatchd: {exc}") from None
        admin_server = admin.start(broker, settings, admin_tls)
        if admin_server is not None:
            about = f" ({admin_tls.describe()})" if admin_tls is not None else ""
            for ip, port in admin_server.addresses:
                listener = Listener(admin_server.scheme, ip, port)
                broker.listeners.append(listener)
                log.info(
                    "admin page and management API on %s://%s:%d/%s",
                    admin_server.scheme,
                    listener.interface,
                    port,
                    about,
                )
        else:
            log.info("admin page off (--admin-port 0)")
        log.info(
            "limits: frame_max %d, channel_max %d, heartbeat %ds",
            settings.frame_max,
            settings.channel_max,
            settings.heartbeat,
        )
        return cls(broker, db, servers, admin_server, [x for x in (tls, admin_tls) if x])

    async def stop(self) -> None:
        """Close every connection, stop the actors, commit and close the store."""
        broker = self.broker
        log.info("stopping: closing %d connection(s)", len(broker.connections))
        for server in self.servers:
            server.close()
        if self.admin_server is not None:
            await asyncio.to_thread(self.admin_server.stop)
        if broker.monitor is not None:
            broker.monitor.stop()
        await broker.close_all("shutdown", SHUTDOWN_GRACE)
        await asyncio.gather(*broker.runtime.stop_all(), return_exceptions=True)
        await asyncio.to_thread(broker.store.stop)  # the store's inbox drains and commits first
        self.db.close()
        broker.runtime.close()


_Factory = Callable[[], asyncio.Protocol]


async def _listen(broker: Broker, tls: ServerTLS | None) -> list[asyncio.AbstractServer]:
    """Open the plain and TLS listeners on every ``--bind`` address, record and log them;
    OSError naming the address when one cannot be bound."""
    settings, loop = broker.settings, asyncio.get_running_loop()
    listeners: list[tuple[str, int, Callable[[_Factory], _Factory], str]] = []
    if settings.port:
        listeners.append(("amqp", settings.port, lambda app: app, "AMQP 0-9-1"))
    if tls is not None:

        def factory(app: _Factory) -> _Factory:
            return partial(
                TLSAcceptor,
                lambda: tls.context,
                app,
                settings.tls_handshake_timeout,
                partial(_handshake_failed, broker),
            )

        s = settings
        verify = "peer" + (", fail_if_no_peer_cert" if s.tls_fail_if_no_peer_cert else "")
        verify = verify if s.tls_verify == "peer" else "none"
        about = (
            f"AMQP 0-9-1 over TLS (versions {s.tls_versions}, verify {verify}, {tls.describe()})"
        )
        listeners.append(("amqp/ssl", settings.tls_port, factory, about))
    servers = []
    try:
        for protocol, port, wrap, about in listeners:
            for host in addresses(settings.bind):
                app: _Factory = lambda: AMQPProtocol(broker)  # noqa: E731
                if settings.max_connections:  # one gate per listener, as RabbitMQ 3.10
                    # (behind TLS: a held client has finished its TLS handshake)
                    app = GatedListener(AcceptGate(settings.max_connections), app)
                try:
                    server = await loop.create_server(wrap(app), host, port, backlog=1024)
                except OSError as exc:
                    if _missing_default(settings, host, exc):
                        continue
                    where = Listener(protocol, host, port).interface
                    raise OSError(f"cannot listen on {where}:{port}: {exc}") from None
                servers.append(server)
                for sock in server.sockets:
                    listener = Listener(protocol, *sock.getsockname()[:2])
                    broker.listeners.append(listener)
                    log.info("listening on %s:%d: %s", listener.interface, listener.port, about)
    except OSError:
        for server in servers:
            server.close()
        raise
    if not servers:
        log.warning("no AMQP listener: --port 0 and no --tls-cert")
    return servers


def _missing_default(settings: Settings, host: str, exc: OSError) -> bool:
    """Whether ``host`` is one of the default loopback addresses and this machine has no such
    address (IPv6 turned off): then the broker does without it, with a warning."""
    if settings.bind != DEFAULT_BIND or exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return False
    log.warning("not listening on %s (default --bind): %s", host, exc.strerror)
    return True


def _handshake_failed(broker: Broker, peer: str, exc: BaseException) -> None:
    """A TLS handshake failed: one log line naming the peer and why, counted for /metrics."""
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "ssl_error").lower()
        text = exc.reason.replace("_", " ").lower() if exc.reason else str(exc)
    elif isinstance(exc, ConnectionAbortedError):
        reason, text = "timeout", str(exc)
    else:  # the client hung up before or during the handshake: a port probe, like nc -z
        broker.tls_handshake_failures["closed"] += 1
        log.debug("TLS connection from %s closed before the handshake ended", peer)
        return
    broker.tls_handshake_failures[reason] += 1
    log.warning("TLS handshake with %s failed: %s", peer, text)


async def _load_definitions(broker: Broker, path: str, store: Any) -> None:
    """``--load-definitions``: import the file (every start, as RabbitMQ's load_definitions);
    a file that cannot be read or applied stops start-up with the reason."""
    try:
        doc = json.loads(Path(path).read_text())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        management = Management(broker)
        errors = await management.import_definitions(doc, None)
        if errors:
            raise ValueError("; ".join(errors))
        await management.commit(broker.access, accounts.Initialised())
    except (OSError, ValueError, ManagementError) as exc:
        await asyncio.gather(*broker.runtime.stop_all(), return_exceptions=True)
        await asyncio.to_thread(store.stop)
        raise SystemExit(f"dispatchd: cannot load definitions from {path}: {exc}") from exc
    log.info("loaded definitions from %s", path)
