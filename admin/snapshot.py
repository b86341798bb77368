"""One consistent picture of the running broker, built on the loop for the admin thread.

The admin server never reads actor or wire state itself. It asks the loop for a
:class:`Snapshot` (:class:`SnapshotSource`), and everything it shows is computed from that
frozen picture. On the loop, :func:`collect` reads the live-actor index
(``broker.runtime.snapshot()``), the open connections of the broker, and asks every actor to
``Describe`` itself, all at once, waiting at most ``describe_timeout`` seconds: an actor whose
mailbox is so deep that it cannot answer in time simply has no description in that snapshot.

Concurrent HTTP requests share the snapshot being built (single flight), so a page that
fetches several endpoints at once costs the loop one snapshot, not one per endpoint.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pykka import ActorDeadError

from dispatchd.access import AccessControl
from dispatchd.actors.runtime import ActorInfo, Describe, LoopActorRef, LoopFuture
from dispatchd.actors.stats import MessageTotals
from dispatchd.alarms import Resources
from dispatchd.store.actor import CommitStats

if TYPE_CHECKING:
    from dispatchd.broker import Broker, Listener
    from dispatchd.wire.protocol import AMQPProtocol

__all__ = ["ConnectionState", "Snapshot", "SnapshotSource", "collect"]

DESCRIBE_TIMEOUT = 1.0
"""Seconds the loop waits for every actor's description before the snapshot goes without."""


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """One open AMQP connection as the wire layer knows it."""

    id: int
    name: str
    state: str
    user: str
    vhost: str
    peer_host: str
    peer_port: int
    host: str
    port: int
    connected_at: float  # wall clock, seconds
    heartbeat: int
    frame_max: int
    channel_max: int
    client_properties: Mapping[str, Any]
    channels: Mapping[int, str]  # channel number -> channel actor URN
    auth_mechanism: str
    tls: Mapping[str, Any] | None  # ssl_protocol, ssl_cipher, peer_cert_* (None: plain TCP)
    actor: str | None  # the connection actor's URN once connection.open succeeded


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The broker at one instant: actors, their own descriptions, connections, users."""

    taken_at: float  # loop monotonic clock
    wall: float  # time.time() at the same instant
    node: str
    listeners: tuple[Listener, ...]
    auth_mechanisms: tuple[str, ...]
    tls_handshake_failures: dict[str, int]  # by reason
    actors: tuple[ActorInfo, ...]
    described: Mapping[str, Mapping[str, Any]]  # URN -> describe(); absent: no answer in time
    connections: tuple[ConnectionState, ...]
    vhosts: Mapping[str, str]  # vhost name -> vhost actor URN
    access: AccessControl  # a copy: users, vhosts' metadata, permissions
    closed_channels: MessageTotals  # counts of the channels that have stopped
    commits: CommitStats | None  # the store's commits so far (None: no store)
    started_at: float = 0.0  # time.time() when the broker started
    data_dir: str = ""
    resources: Resources | None = None  # memory and disk, and the alarms on
    by_urn: Mapping[str, ActorInfo] = field(default_factory=dict)

    def describe(self, urn: str | None) -> Mapping[str, Any] | None:
        """The description an actor gave, or None (unknown URN, or it did not answer)."""
        return None if urn is None else self.described.get(urn)

    def of_kind(self, kind: str) -> list[tuple[ActorInfo, Mapping[str, Any] | None]]:
        """Every live actor of one kind with its description (None if it did not answer)."""
        return [(info, self.described.get(info.urn)) for info in self.actors if info.kind == kind]


def _address(transport: Any, key: str) -> tuple[str, int]:
    address = transport.get_extra_info(key) if transport is not None else None
    if not address:
        return "", 0
    return str(address[0]), int(address[1])


def _connection_state(protocol: AMQPProtocol) -> ConnectionState:
    peer_host, peer_port = _address(protocol.transport, "peername")
    host, port = _address(protocol.transport, "sockname")
    ref = protocol.connection_ref
    return ConnectionState(
        id=protocol.id,
        name=protocol.connection_name,
        state=protocol.throttle_state,
        user=protocol.user,
        vhost=protocol.vhost,
        peer_host=peer_host,
        peer_port=peer_port,
        host=host,
        port=port,
        connected_at=protocol.connected_at,
        heartbeat=protocol.heartbeat,
        frame_max=protocol.frame_max,
        channel_max=protocol.channel_max,
        client_properties=dict(protocol.client_properties),
        channels={number: slot.ref.actor_urn for number, slot in protocol.channels.items()},
        auth_mechanism=protocol.auth_mechanism,
        tls=protocol.tls,
        actor=ref.actor_urn if ref is not None else None,
    )


async def describe_all(
    refs: Mapping[str, LoopActorRef[Any]], timeout: float
) -> dict[str, Mapping[str, Any]]:
    """Ask every actor to ``Describe`` itself at once; keep the answers that come in time.

    Loop thread only. An actor that raised answers ``{"error": ...}``; one that died or did
    not answer within ``timeout`` seconds is left out.
    """
    futures: dict[str, LoopFuture[Any]] = {
        urn: ref.ask(Describe(), block=False) for urn, ref in refs.items()
    }
    all_done = asyncio.get_running_loop().create_future()
    remaining = len(futures)

    def one_done(_future: LoopFuture[Any]) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0 and not all_done.done():
            all_done.set_result(None)

    for future in futures.values():
        future.add_done_callback(one_done)
    if remaining:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_done, timeout)
    described: dict[str, Mapping[str, Any]] = {}
    for urn, future in futures.items():
        if not future.done():
            continue
        try:
            described[urn] = await future
        except ActorDeadError:  # stopped between the index read and the ask
            continue
        except Exception as exc:  # noqa: BLE001 - shown on the page, never raised
            described[urn] = {"error": repr(exc)}
    return described


def _closed_channels(
    vhosts: Mapping[str, str],
    described: Mapping[str, Mapping[str, Any]],
    last: dict[str, MessageTotals],
) -> MessageTotals:
    """The vhosts' totals of their stopped channels; a vhost that did not answer in time
    counts what it last reported (``last``, updated), so the totals never go back."""
    total = MessageTotals()
    for urn in vhosts.values():
        counts = described.get(urn, {}).get("closed_channels")
        if counts is not None:
            last[urn] = MessageTotals(**counts)
        total.add(last.get(urn, MessageTotals()))
    return total


async def collect(
    broker: Broker,
    describe_timeout: float = DESCRIBE_TIMEOUT,
    last_closed: dict[str, MessageTotals] | None = None,
) -> Snapshot:
    """Build a complete :class:`Snapshot` of ``broker``; run it on the loop thread.

    ``last_closed`` carries each vhost's closed-channel totals from one snapshot to the next.
    """
    runtime = broker.runtime
    actors = tuple(runtime.snapshot())
    connections = tuple(_connection_state(p) for p in list(broker.connections.values()))
    vhosts = {name: ref.actor_urn for name, ref in broker.vhosts.items()}
    refs = {}
    for info in actors:
        ref = runtime.lookup(info.urn)
        if ref is not None:
            refs[info.urn] = ref
    described = await describe_all(refs, describe_timeout)
    settings = broker.settings
    return Snapshot(
        taken_at=time.monotonic(),
        wall=time.time(),
        node=broker.cluster_name,
        listeners=tuple(broker.listeners),
        auth_mechanisms=tuple(broker.auth_mechanisms),
        tls_handshake_failures=dict(broker.tls_handshake_failures),
        actors=actors,
        described=described,
        connections=connections,
        vhosts=vhosts,
        access=broker.access.copy(),
        closed_channels=_closed_channels(
            vhosts, described, {} if last_closed is None else last_closed
        ),
        commits=dataclasses.replace(broker.commits) if broker.commits is not None else None,
        started_at=broker.started_at,
        data_dir=str(settings.data_dir or ""),
        resources=broker.monitor.figures() if broker.monitor is not None else None,
        by_urn={info.urn: info for info in actors},
    )


class SnapshotSource:
    """Snapshots for the admin thread: run :func:`collect` on the loop, share one in flight."""

    def __init__(self, broker: Broker, timeout: float = 5.0) -> None:
        self.broker = broker
        self.timeout = timeout
        self._lock = threading.RLock()
        self._inflight: concurrent.futures.Future[Snapshot] | None = None
        self._last_closed: dict[str, MessageTotals] = {}  # loop thread only (collect)

    def get(self) -> Snapshot:
        """A snapshot taken now, or the one being taken; TimeoutError if the loop is stuck."""
        with self._lock:
            future = self._inflight
            if future is None:
                future = asyncio.run_coroutine_threadsafe(
                    collect(self.broker, last_closed=self._last_closed), self.broker.runtime.loop
                )
                self._inflight = future
                future.add_done_callback(self._landed)
        return future.result(self.timeout)

    def _landed(self, future: concurrent.futures.Future[Snapshot]) -> None:
        with self._lock:
            if self._inflight is future:
                self._inflight = None
