"""Bounded group commits: the budget alone, then the store keeping to it, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import uvloop

from dispatchd.actors.runtime import Runtime
from dispatchd.config import load_settings
from dispatchd.store import recovery
from dispatchd.store.actor import CommitStats, SaveQueue, StoreActor, StoreMessages
from dispatchd.store.batching import BATCH_BYTES, BATCH_ROWS, CommitBudget
from dispatchd.store.database import connect
from tests.support.actors import Collector
from tests.test_store import message


def test_an_empty_batch_takes_any_request() -> None:
    budget = CommitBudget(max_rows=3, max_bytes=100)
    assert budget.fits(10, 1000)  # too big for any batch: it gets one of its own
    budget.add(10, 1000)
    assert budget.full
    assert not budget.fits(1, 0)


def test_rows_and_bytes_both_bound_the_batch() -> None:
    budget = CommitBudget(max_rows=3, max_bytes=100)
    budget.add(2, 40)
    assert budget.fits(1, 60) and not budget.full
    assert not budget.fits(2, 0)  # 4 rows
    assert not budget.fits(1, 61)  # 101 bytes
    budget.add(1, 60)
    assert budget.full
    budget.reset()
    assert (budget.rows, budget.bytes, budget.requests) == (0, 0, 0)
    assert not budget.full


class Batches(CommitStats):
    """CommitStats that also keeps each committed batch's row count."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def record(self, seconds: float, requests: int, rows: int, failed: bool) -> None:
        super().record(seconds, requests, rows, failed)
        self.sizes.append(rows)


def test_store_commits_within_its_budget_in_order(tmp_path: Path) -> None:
    """40 one-row writes and one of 5 rows, told at once to a store allowed 3 rows a batch:
    no batch holds more than 3 rows but the 5-row one (alone), every write is confirmed
    after its commit and in the order told, and all are stored in order."""
    stats = Batches()
    order = list(range(40))

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        runtime = Runtime(loop)
        db = connect(str(tmp_path))
        store = StoreActor.start(db, loop, stats, CommitBudget(3, 1 << 20))
        try:
            done: asyncio.Future[list[Any]] = loop.create_future()
            ref = runtime.start(Collector, len(order) + 1, done)
            store.tell(SaveQueue(1, "/", "q", False, {}))
            for n in order[:20]:
                store.tell(StoreMessages(1, [(n, message(n, 100 + n), 0)], then=(ref, n)))
            big = [(100 + i, message(100 + i, 200 + i), 0) for i in range(5)]
            store.tell(StoreMessages(1, big, then=(ref, "big")))
            for n in order[20:]:
                store.tell(StoreMessages(1, [(n, message(n, 100 + n), 0)], then=(ref, n)))
            return await asyncio.wait_for(done, 10)
        finally:
            store.stop()
            db.close()
            runtime.close()

    heard = uvloop.run(main())
    assert heard == [*order[:20], "big", *order[20:]]
    assert sum(stats.sizes) == 45  # message rows (the queue row is not counted)
    assert all(size <= 3 for size in stats.sizes if size != 5)
    assert stats.max_seconds >= stats.last_seconds
    db = connect(str(tmp_path))
    (queue,) = recovery.load(db).queues
    db.close()
    assert [p for p, _, _, _ in queue.messages] == [*order, *range(100, 105)]


def test_batch_settings() -> None:
    settings = load_settings([], environ={})
    assert (settings.store_batch_rows, settings.store_batch_bytes) == (BATCH_ROWS, BATCH_BYTES)
    env = {"DISPATCHD_STORE_BATCH_ROWS": "10", "DISPATCHD_STORE_BATCH_BYTES": "4096"}
    settings = load_settings([], environ=env)
    assert (settings.store_batch_rows, settings.store_batch_bytes) == (10, 4096)
    for flag in ("--store-batch-rows", "--store-batch-bytes"):
        with pytest.raises(SystemExit, match=f"{flag} must be more than 0"):
            load_settings([flag, "0"], environ={})
