"""The store on its own: group commit, stored-once messages, recovery order, failures."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import uvloop

from dispatchd.actors.content import Message
from dispatchd.actors.runtime import Runtime
from dispatchd.store import recovery
from dispatchd.store.actor import (
    CommitStats,
    DeleteQueue,
    MarkDelivered,
    SaveBinding,
    SaveExchange,
    SaveQueue,
    StoreActor,
    StoreFailed,
    StoreMessages,
    UnstoreMessages,
)
from dispatchd.store.database import StoreError, connect
from dispatchd.store.models import SCHEMA_VERSION
from tests.support.actors import Collector


def message(n: int, store_id: int) -> Message:
    m = Message("ex", f"key{n}", b"\x00\x00", f"body{n}".encode())
    m.store_id = store_id
    return m


def run_with_store(data_dir: Path, script: Any) -> Any:
    """Run ``script(store_ref, runtime)`` on uvloop with a StoreActor on data_dir."""

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        runtime = Runtime(loop)
        db = connect(str(data_dir))
        store = StoreActor.start(db, loop, CommitStats())
        try:
            return await script(store, runtime)
        finally:
            store.stop()
            db.close()
            runtime.close()

    return uvloop.run(main())


async def told(runtime: Runtime, send: Any, want: int) -> list[Any]:
    done: asyncio.Future[list[Any]] = runtime.loop.create_future()
    ref = runtime.start(Collector, want, done)
    send(ref)
    return await asyncio.wait_for(done, 10)


def test_messages_stored_once_and_recovered_in_order(tmp_path: Path) -> None:
    shared = message(2, 12)

    async def script(store: Any, runtime: Runtime) -> None:
        def send(ref: Any) -> None:
            store.tell(SaveQueue(1, "/", "q1", False, {"x-max-priority": 5}))
            store.tell(SaveQueue(2, "/", "q2", False, {}))
            store.tell(
                StoreMessages(1, [(1, message(1, 11), 0), (2, shared, 0), (3, message(3, 13), 0)])
            )
            store.tell(StoreMessages(2, [(7, shared, 0)], then=(ref, "persisted")))
            store.tell(MarkDelivered(1, [1]))

        assert await told(runtime, send, 1) == ["persisted"]

    run_with_store(tmp_path, script)
    db = connect(str(tmp_path))
    state = recovery.load(db)
    db.close()
    by_name = {q.name: q for q in state.queues}
    assert [(p, m.body, d) for p, m, d, _ in by_name["q1"].messages] == [
        (1, b"body1", True),
        (2, b"body2", False),
        (3, b"body3", False),
    ]
    assert by_name["q1"].arguments == {"x-max-priority": 5}
    ((_, again, _, _),) = by_name["q2"].messages
    assert again is by_name["q1"].messages[1][1]  # one message object for both queues
    assert state.max_message_id == 13 and state.max_queue_id == 2


def test_unstore_removes_rows_and_orphans_only(tmp_path: Path) -> None:
    shared = message(1, 21)

    async def script(store: Any, runtime: Runtime) -> None:
        def send(ref: Any) -> None:
            store.tell(SaveQueue(1, "/", "a", False, {}))
            store.tell(SaveQueue(2, "/", "b", False, {}))
            store.tell(StoreMessages(1, [(1, shared, 0), (2, message(2, 22), 0)]))
            store.tell(StoreMessages(2, [(1, shared, 0)]))
            store.tell(UnstoreMessages(1, [(1, 21), (2, 22)], then=(ref, "gone")))

        await told(runtime, send, 1)

    run_with_store(tmp_path, script)
    db = connect(str(tmp_path))
    state = recovery.load(db)
    assert {q.name: [m.body for _, m, _, _ in q.messages] for q in state.queues} == {
        "a": [],
        "b": [b"body1"],
    }
    assert db.execute_sql("select count(*) from messages").fetchone()[0] == 1
    db.close()


def test_entities_and_queue_delete_cascade(tmp_path: Path) -> None:
    async def script(store: Any, runtime: Runtime) -> None:
        def send(ref: Any) -> None:
            store.tell(SaveExchange("/", "x", "topic", False, False, {"alternate-exchange": "ae"}))
            store.tell(SaveQueue(1, "/", "q", False, {}))
            store.tell(SaveQueue(2, "/", "keep", False, {}))
            store.tell(SaveBinding("/", "x", "queue", "q", "a.#", {}))
            store.tell(SaveBinding("/", "x", "queue", "keep", "b", {"k": 1}))
            store.tell(StoreMessages(1, [(1, message(1, 1), 0)]))
            store.tell(DeleteQueue(1, "/", "q", then=(ref, "deleted")))

        await told(runtime, send, 1)

    run_with_store(tmp_path, script)
    db = connect(str(tmp_path))
    state = recovery.load(db)
    db.close()
    assert [(e.name, e.type, e.arguments) for e in state.exchanges] == [
        ("x", "topic", {"alternate-exchange": "ae"})
    ]
    assert [q.name for q in state.queues] == ["keep"]
    assert [(b.dest, b.routing_key, b.arguments) for b in state.bindings] == [
        ("keep", "b", {"k": 1})
    ]


def test_failed_commit_confirms_nothing(tmp_path: Path) -> None:
    async def script(store: Any, runtime: Runtime) -> list[Any]:
        def send(ref: Any) -> None:
            store.tell(SaveQueue(1, "/", "q", False, {}, then=(ref, "saved")))

        assert await told(runtime, send, 1) == ["saved"]
        # A real SQLite failure under the store: its table vanishes (another connection).
        other = connect(str(tmp_path))
        other.execute_sql('DROP TABLE "queue_messages"')
        other.close()

        def send_more(ref: Any) -> None:
            store.tell(StoreMessages(1, [(1, message(1, 5), 0)], then=(ref, "persisted")))

        return await told(runtime, send_more, 1)

    (outcome,) = run_with_store(tmp_path, script)
    assert isinstance(outcome, StoreFailed)
    assert "queue_messages" in outcome.error
    db = connect(str(tmp_path))
    assert recovery.load(db).queues[0].messages == []
    db.close()


def test_foreign_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dispatchd.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        connect(str(tmp_path))


def test_version_1_store_is_upgraded_keeping_its_messages(tmp_path: Path) -> None:
    """A data dir written before message expiries were stored (schema 1) opens: the column
    is added (no expiry for the old rows) and the messages are recovered."""
    db = connect(str(tmp_path))
    db.execute_sql("ALTER TABLE queue_messages DROP COLUMN expires")
    db.execute_sql(
        "INSERT INTO queues (id, vhost, name, auto_delete, arguments)"
        " VALUES (1, '/', 'old', 0, x'00000000')"
    )
    db.execute_sql("INSERT INTO messages VALUES (5, '', 'old', x'0000', x'6869')")
    db.execute_sql(
        "INSERT INTO queue_messages (queue_id, position, message_id, delivered) VALUES (1, 1, 5, 0)"
    )
    db.execute_sql("UPDATE schema_version SET version = 1")
    db.close()
    db = connect(str(tmp_path))
    try:
        assert db.execute_sql("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        (queue,) = recovery.load(db).queues
        assert [(p, m.body, expires) for p, m, _, expires in queue.messages] == [(1, b"hi", 0)]
    finally:
        db.close()
