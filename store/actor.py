"""StoreActor: the one thread-based actor. It owns the database connection and group-commits.

Writes arrive as typed messages from loop actors. The actor collects every message waiting in
its inbox into one transaction (hot-path statements cached and run with ``executemany``),
commits, and only then tells each requester what it asked to be told — with one
``call_soon_threadsafe`` per batch. While a batch commits, the next one collects in the inbox:
that is the group commit of DESIGN.md. A batch is also bounded (``store/batching.py``): a
request that would take it past ``--store-batch-rows`` or ``--store-batch-bytes`` waits, in
order, for the next commit, so a flood cannot make one commit (and every confirm in it) last
seconds. A failed commit rolls back and tells every requester
``StoreFailed`` instead: nothing in that batch is confirmed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import peewee as pw
import pykka
from pykka import ActorRef

from dispatchd.actors.content import Message
from dispatchd.actors.runtime import post
from dispatchd.store import accounts
from dispatchd.store.batching import BATCH_BYTES, BATCH_ROWS, CommitBudget
from dispatchd.store.models import (
    BindingRow,
    ExchangeRow,
    MessageRow,
    QueueMessageRow,
    QueueRow,
    bind,
)
from dispatchd.wire.fields import encode_table

log = logging.getLogger("dispatchd.store")

Notify = tuple[ActorRef[Any], Any] | None
SLOW_COMMIT = 1.0  # seconds: a commit this long is logged as a warning
_LOAD_CHUNK = 500  # ids per SELECT ... IN (...) (well under every database's parameter limit)


@dataclass(frozen=True, slots=True)
class StoreMessages:
    """Persist messages at positions of a durable queue: (position, message, expires)."""

    queue_id: int
    rows: list[tuple[int, Message, int]]
    then: Notify = None
    stored: ActorRef[Any] | None = None  # told Stored (or StoreFailed) too: it pages them out


@dataclass(frozen=True, slots=True)
class Stored:
    """Told to a StoreMessages' ``stored``: its rows up to ``last_position`` are committed."""

    queue_id: int
    last_position: int


@dataclass(frozen=True, slots=True)
class LoadMessages:
    """Read paged-out messages back by store id; answered at once with Loaded (or StoreFailed)."""

    queue_id: int
    store_ids: list[int]
    reply_to: ActorRef[Any]
    token: int


@dataclass(frozen=True, slots=True)
class Loaded:
    """The messages a LoadMessages asked for, by store id (absent ones are not in the store)."""

    token: int
    messages: dict[int, Message]


@dataclass(frozen=True, slots=True)
class UnstoreMessages:
    """Forget messages (acked, dropped, purged) by (position, message id)."""

    queue_id: int
    rows: list[tuple[int, int]]
    then: Notify = None


@dataclass(frozen=True, slots=True)
class MarkDelivered:
    """Record that these positions were delivered (they come back redelivered after a crash)."""

    queue_id: int
    positions: list[int]


@dataclass(frozen=True, slots=True)
class SaveExchange:
    """A durable exchange was declared."""

    vhost: str
    name: str
    type: str
    auto_delete: bool
    internal: bool
    arguments: dict[str, Any]
    then: Notify = None


@dataclass(frozen=True, slots=True)
class DeleteExchange:
    """A durable exchange was deleted (its bindings go with it)."""

    vhost: str
    name: str
    then: Notify = None


@dataclass(frozen=True, slots=True)
class SaveQueue:
    """A durable queue was declared."""

    queue_id: int
    vhost: str
    name: str
    auto_delete: bool
    arguments: dict[str, Any]
    then: Notify = None


@dataclass(frozen=True, slots=True)
class DeleteQueue:
    """A durable queue was deleted: its row, its messages, its bindings."""

    queue_id: int
    vhost: str
    name: str
    then: Notify = None


@dataclass(frozen=True, slots=True)
class SaveBinding:
    """A binding between durable ends was added (``delete`` False) or removed (True)."""

    vhost: str
    source: str
    dest_kind: str
    dest: str
    routing_key: str
    arguments: dict[str, Any]
    delete: bool = False
    then: Notify = None


@dataclass(frozen=True, slots=True)
class StoreFailed:
    """Told instead of the requested notification when the batch holding it failed."""

    request: Any
    error: str


@dataclass
class CommitStats:
    """The store's commits as the loop sees them, for the admin page and /metrics.

    One per store, made by whoever starts the store (the broker) and read by the admin on
    the loop thread: the store thread hands each batch's figures over in the one
    ``call_soon_threadsafe`` it makes per batch anyway, and never touches it itself.
    """

    commits: int = 0
    failures: int = 0
    rows: int = 0
    seconds_total: float = 0.0
    last_seconds: float = 0.0
    max_seconds: float = 0.0  # the longest commit since start
    last_batch: int = 0

    def record(self, seconds: float, requests: int, rows: int, failed: bool) -> None:
        """Count one committed (or failed) batch."""
        if failed:
            self.failures += 1
            return
        self.commits += 1
        self.rows += rows
        self.seconds_total += seconds
        self.last_seconds = seconds
        self.max_seconds = max(self.max_seconds, seconds)
        self.last_batch = requests


@dataclass
class _Batch:
    """What one transaction will write, in executemany-ready lists."""

    messages: list[tuple[Any, ...]] = field(default_factory=list)
    placements: list[tuple[Any, ...]] = field(default_factory=list)
    removals: list[tuple[int, int]] = field(default_factory=list)
    orphans: list[tuple[int, int]] = field(default_factory=list)
    delivered: list[tuple[bool, int, int]] = field(default_factory=list)
    notes: list[tuple[ActorRef[Any], Any]] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    size: int = 0
    error: BaseException | None = None


def _sql(query: pw.Query) -> str:
    sql, _ = query.sql()
    return sql


class StoreActor(pykka.ThreadingActor):
    """Owns the database connection; batches every write it is told into group commits."""

    # A start-up failure must not leave the process hanging on this thread; a clean shutdown
    # stops the actor explicitly (its inbox drains and commits first).
    use_daemon_thread = True

    def __init__(
        self,
        db: pw.Database,
        loop: asyncio.AbstractEventLoop,
        commits: CommitStats,
        budget: CommitBudget | None = None,
    ) -> None:
        super().__init__()
        self.db = db
        self.loop = loop
        self.commits = commits  # recorded on the loop, never in this thread
        self.batch = _Batch()
        self.budget = budget or CommitBudget(BATCH_ROWS, BATCH_BYTES)
        self._last_bytes = 0  # the committed batch's bytes, for the slow-commit warning
        m, qm = MessageRow, QueueMessageRow
        self.sql_message = _sql(
            m.insert(
                id=0, exchange="", routing_key="", properties=b"", body=b""
            ).on_conflict_ignore()
        )
        self.sql_place = _sql(
            qm.insert(
                queue_id=0, position=0, message_id=0, delivered=False, expires=0
            ).on_conflict_ignore()
        )
        self.sql_remove = _sql(qm.delete().where((qm.queue_id == 0) & (qm.position == 0)))
        self.sql_orphan = _sql(
            m.delete().where(
                (m.id == 0) & ~pw.fn.EXISTS(qm.select(pw.SQL("1")).where(qm.message_id == 0))
            )
        )
        self.sql_delivered = _sql(
            qm.update(delivered=True).where((qm.queue_id == 0) & (qm.position == 0))
        )
        self._handlers: dict[type, Callable[[Any], None]] = {
            StoreMessages: self._store_messages,
            UnstoreMessages: self._unstore_messages,
            MarkDelivered: self._mark_delivered,
            SaveExchange: self._save_exchange,
            DeleteExchange: self._delete_exchange,
            SaveQueue: self._save_queue,
            DeleteQueue: self._delete_queue,
            SaveBinding: self._save_binding,
        }
        for kind, writer in accounts.WRITERS.items():
            self._handlers[kind] = self._after_rows(writer)

    def on_start(self) -> None:
        """The models' database binding is per thread: bind them in the store's own."""
        bind(self.db)

    def on_receive(self, message: Any) -> None:  # noqa: D102
        if type(message) is LoadMessages:
            self._load(message)
        else:
            rows, nbytes = _cost(message)
            if not self.budget.fits(rows, nbytes):
                self._commit()  # it waits for the next batch, which it starts
            self._collect(message)
            self.budget.add(rows, nbytes)
        if self.batch.requests and (self.budget.full or self.actor_inbox.empty()):
            self._commit()

    def on_stop(self) -> None:
        """A stop queued behind writes must not drop them: commit what was collected."""
        if self.batch.requests:
            self._commit()

    def _collect(self, message: Any) -> None:
        """Add a write to the open transaction (begun by the first write of a batch)."""
        batch = self.batch
        if not batch.requests:
            self.db.begin()
        batch.requests.append(message)
        batch.notes.extend(_notes_for(message))
        if batch.error is None:
            try:
                self._handlers[type(message)](message)
            except Exception as exc:  # noqa: BLE001 - any database failure fails the batch
                batch.error = exc

    def _load(self, msg: LoadMessages) -> None:
        """Read bodies back for a paging queue (committed rows: no need to wait for a commit)."""
        m = MessageRow
        found: dict[int, Message] = {}
        reply: Loaded | StoreFailed
        try:
            for i in range(0, len(msg.store_ids), _LOAD_CHUNK):
                chunk = msg.store_ids[i : i + _LOAD_CHUNK]
                query = m.select(m.id, m.exchange, m.routing_key, m.properties, m.body)
                for sid, exchange, key, props, body in query.where(m.id.in_(chunk)).tuples():
                    message = Message(exchange, key, bytes(props), bytes(body))
                    message.store_id = sid
                    found[sid] = message
            reply = Loaded(msg.token, found)
        except Exception as exc:  # noqa: BLE001 - any database failure: the queue retries
            log.error("store read for queue %d failed: %s", msg.queue_id, exc)
            reply = StoreFailed(msg, str(exc))
        self.loop.call_soon_threadsafe(_post_all, [(msg.reply_to, reply)])

    # ----- collecting

    def _store_messages(self, msg: StoreMessages) -> None:
        batch = self.batch
        for position, message, expires in msg.rows:
            batch.messages.append(
                (
                    message.store_id,
                    message.exchange,
                    message.routing_key,
                    message.raw_properties,
                    message.body,
                )
            )
            batch.placements.append((msg.queue_id, position, message.store_id, False, expires))
        batch.size += len(msg.rows)

    def _unstore_messages(self, msg: UnstoreMessages) -> None:
        batch = self.batch
        for position, message_id in msg.rows:
            batch.removals.append((msg.queue_id, position))
            batch.orphans.append((message_id, message_id))
        batch.size += len(msg.rows)

    def _mark_delivered(self, msg: MarkDelivered) -> None:
        self.batch.delivered.extend((True, msg.queue_id, p) for p in msg.positions)

    def _flush_rows(self) -> None:
        """Run the collected message statements (entity changes must come after them)."""
        batch = self.batch
        cursor = self.db.cursor()
        if batch.messages:
            cursor.executemany(self.sql_message, batch.messages)
            cursor.executemany(self.sql_place, batch.placements)
        if batch.delivered:
            cursor.executemany(self.sql_delivered, batch.delivered)
        if batch.removals:
            cursor.executemany(self.sql_remove, batch.removals)
            cursor.executemany(self.sql_orphan, batch.orphans)
        batch.messages, batch.placements, batch.removals = [], [], []
        batch.orphans, batch.delivered = [], []

    def _after_rows(self, writer: Callable[[Any], None]) -> Callable[[Any], None]:
        """A writer that runs after the batch's pending message rows (it may delete them)."""

        def run(message: Any) -> None:
            self._flush_rows()
            writer(message)

        return run

    def _save_exchange(self, msg: SaveExchange) -> None:
        self._flush_rows()
        ExchangeRow.insert(
            vhost=msg.vhost,
            name=msg.name,
            type=msg.type,
            auto_delete=msg.auto_delete,
            internal=msg.internal,
            arguments=encode_table(msg.arguments),
        ).on_conflict(  # an upsert both SQLite and PostgreSQL speak
            conflict_target=[ExchangeRow.vhost, ExchangeRow.name],
            preserve=[
                ExchangeRow.type,
                ExchangeRow.auto_delete,
                ExchangeRow.internal,
                ExchangeRow.arguments,
            ],
        ).execute()

    def _delete_exchange(self, msg: DeleteExchange) -> None:
        self._flush_rows()
        ExchangeRow.delete().where(
            (ExchangeRow.vhost == msg.vhost) & (ExchangeRow.name == msg.name)
        ).execute()
        b = BindingRow
        b.delete().where(
            (b.vhost == msg.vhost)
            & ((b.source == msg.name) | ((b.dest_kind == "exchange") & (b.dest == msg.name)))
        ).execute()

    def _save_queue(self, msg: SaveQueue) -> None:
        self._flush_rows()
        QueueRow.insert(
            id=msg.queue_id,
            vhost=msg.vhost,
            name=msg.name,
            auto_delete=msg.auto_delete,
            arguments=encode_table(msg.arguments),
        ).on_conflict(
            conflict_target=[QueueRow.vhost, QueueRow.name],
            preserve=[QueueRow.id, QueueRow.auto_delete, QueueRow.arguments],
        ).execute()

    def _delete_queue(self, msg: DeleteQueue) -> None:
        self._flush_rows()
        QueueRow.delete().where(QueueRow.id == msg.queue_id).execute()
        qm, m = QueueMessageRow, MessageRow
        qm.delete().where(qm.queue_id == msg.queue_id).execute()
        m.delete().where(
            ~pw.fn.EXISTS(qm.select(pw.SQL("1")).where(qm.message_id == m.id))
        ).execute()
        b = BindingRow
        b.delete().where(
            (b.vhost == msg.vhost) & (b.dest_kind == "queue") & (b.dest == msg.name)
        ).execute()

    def _save_binding(self, msg: SaveBinding) -> None:
        self._flush_rows()
        b = BindingRow
        key = {
            "vhost": msg.vhost,
            "source": msg.source,
            "dest_kind": msg.dest_kind,
            "dest": msg.dest,
            "routing_key": msg.routing_key,
            "arguments": encode_table(msg.arguments),
        }
        if msg.delete:
            b.delete().where(*(getattr(b, k) == v for k, v in key.items())).execute()
        else:
            b.insert(**key).on_conflict_ignore().execute()

    # ----- committing

    def _commit(self) -> None:
        batch = self.batch
        started = time.perf_counter()
        try:
            if batch.error is not None:
                raise batch.error
            self._flush_rows()
            self.db.commit()
        except Exception as exc:  # noqa: BLE001 - any database failure fails the batch
            self._fail(batch, exc)
            return
        finally:
            self.batch = _Batch()
            self._last_bytes = self.budget.bytes
            self.budget.reset()
        elapsed = time.perf_counter() - started
        if elapsed >= SLOW_COMMIT:
            log.warning(
                "store commit took %.2f s: %d requests, %d rows, %d bytes",
                elapsed,
                len(batch.requests),
                batch.size,
                self._last_bytes,
            )
        self._notify(batch.notes, (elapsed, len(batch.requests), batch.size, False))

    def _fail(self, batch: _Batch, exc: BaseException) -> None:
        """Roll back; every requester hears StoreFailed: nothing of this batch is confirmed."""
        try:
            self.db.rollback()
        except pw.DatabaseError:
            log.exception("rollback failed")
        log.error("store commit failed, %d requests not confirmed: %s", len(batch.requests), exc)
        failed = [
            (ref, StoreFailed(request, str(exc)))
            for request in batch.requests
            for ref, _ in _notes_for(request)
        ]
        self._notify(failed, (0.0, len(batch.requests), 0, True))

    def _notify(
        self, notes: list[tuple[ActorRef[Any], Any]], figures: tuple[float, int, int, bool]
    ) -> None:
        """One hand-over to the loop per batch: the figures, then the notifications."""
        self.loop.call_soon_threadsafe(_after_commit, self.commits, notes, figures)


def _cost(request: Any) -> tuple[int, int]:
    """What a write adds to a batch: (rows, body and property bytes)."""
    kind = type(request)
    if kind is StoreMessages:
        nbytes = sum(len(m.body) + len(m.raw_properties) for _, m, _ in request.rows)
        return len(request.rows), nbytes
    if kind is UnstoreMessages:
        return len(request.rows), 0
    if kind is MarkDelivered:
        return len(request.positions), 0
    return 1, 0


def _notes_for(request: Any) -> list[tuple[ActorRef[Any], Any]]:
    """Who hears about ``request`` once its batch is committed, and what."""
    then = getattr(request, "then", None)
    notes = [] if then is None else [then]
    if type(request) is StoreMessages and request.stored is not None:
        notes.append((request.stored, Stored(request.queue_id, request.rows[-1][0])))
    return notes


def _post_all(notes: list[tuple[ActorRef[Any], Any]]) -> None:
    for ref, message in notes:
        post(ref, message)


def _after_commit(
    commits: CommitStats,
    notes: list[tuple[ActorRef[Any], Any]],
    figures: tuple[float, int, int, bool],
) -> None:
    commits.record(*figures)
    _post_all(notes)
