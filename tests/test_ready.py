"""A queue's ready messages on their own: FIFO, priority and paged stores, one interface."""

from __future__ import annotations

import pytest

from dispatchd.actors.content import Entry, Message
from dispatchd.actors.ready import (
    FifoReady,
    PagedReady,
    PriorityReady,
    ReadyMessages,
    ready_messages,
)
from dispatchd.wire import spec


def message(body: bytes = b"x", priority: int | None = None, store_id: int = 0) -> Message:
    props = spec.BasicProperties(priority=priority, delivery_mode=2 if store_id else None)
    m = Message("", "k", props.encode(), body)
    m.store_id = store_id
    return m


def entry(position: int, **kwargs: object) -> Entry:
    return Entry(position, message(**kwargs))  # type: ignore[arg-type]


def drain(ready: ReadyMessages) -> list[int]:
    out = []
    while ready:
        out.append(ready.pop().id)
    return out


@pytest.mark.parametrize(
    "make", [FifoReady, lambda **kw: PagedReady(100, **kw), lambda **kw: PriorityReady(3, **kw)]
)
def test_every_store_keeps_order_and_puts_requeued_entries_back_in_place(make):
    ready = make(track_bytes=True)
    for position in range(1, 6):
        ready.push(entry(position, body=b"ab"))
    assert (len(ready), ready.total, ready.bytes, ready.last_position()) == (5, 5, 10, 5)
    first, second = ready.pop(), ready.pop()
    assert (first.id, second.id, ready.peek().id) == (1, 2, 3)
    ready.requeue(second)
    ready.requeue(first)
    assert ready.peek().id == 1 and ready.bytes == 10
    assert drain(ready) == [1, 2, 3, 4, 5]
    assert ready.bytes == 0 and not ready


def test_priority_store_delivers_highest_first_and_caps_at_its_maximum():
    ready = PriorityReady(5)
    for position, priority in enumerate([None, 3, 9, 3, 0, 5], start=1):
        ready.push(entry(position, priority=priority))
    assert ready.last_position() == 6
    assert drain(ready) == [3, 6, 2, 4, 1, 5]  # 9 counts as 5; within a level, by position


def test_purge_returns_everything_in_memory():
    ready = PriorityReady(2, track_bytes=True)
    ready.push(entry(1, priority=1))
    ready.push(entry(2, priority=2))
    purged = ready.purge()
    assert sorted(e.id for e in purged.entries) == [1, 2] and purged.paged == []
    assert (len(ready), ready.bytes) == (0, 0)


def test_paged_store_spills_past_its_limit_pages_once_stored_and_reads_back_in_order():
    ready = PagedReady(4)
    for position in range(1, 11):
        ready.push(entry(position, store_id=100 + position))
    assert (len(ready), ready.total, ready.paging) == (4, 10, True)
    ready.stored(8)  # 5..8 committed: only references stay
    assert ready.in_memory == 4 + 2  # 9 and 10 still spilled whole
    assert drain(ready) == [1, 2, 3, 4]
    assert ready.wants_refill()
    request = ready.refill()
    assert request is not None and request.store_ids == [105, 106]  # half the limit
    assert ready.reading and not ready.wants_refill() and ready.total == 6
    bodies = {sid: message(store_id=sid) for sid in request.store_ids}
    assert ready.loaded(request.token, bodies) == []
    assert drain(ready) == [5, 6]
    request = ready.refill()
    assert request is not None
    assert ready.loaded(request.token, {107: message(store_id=107)}) == [8]  # 108 is missing
    assert drain(ready) == [7]
    assert ready.refill() is None  # the spilled ones come whole
    assert drain(ready) == [9, 10] and not ready.paging


def test_paged_store_failed_write_keeps_entries_whole_and_failed_read_is_retried():
    ready = PagedReady(1)
    for position in (1, 2, 3):
        ready.push(entry(position, store_id=position))
    ready.store_failed(2)  # 2 is not on disk: kept whole; 3 still spilled
    ready.stored(3)
    assert ready.pop().id == 1
    assert ready.refill() is None  # 2 is whole: back at once
    assert ready.pop().id == 2
    request = ready.refill()
    assert request is not None and request.store_ids == [3]
    ready.load_failed(request.token)
    assert not ready.reading and ready.total == 1
    again = ready.refill()
    assert again is not None and again.token != request.token
    assert ready.loaded(request.token, {}) is None  # the stale answer is ignored
    assert ready.loaded(again.token, {3: message(store_id=3)}) == []
    assert drain(ready) == [3]


def test_paged_purge_and_recovery():
    ready = PagedReady(2)
    recovered = [Entry(1, message(store_id=11)), Entry(2, message(store_id=12))]
    recovered += [Entry(3, 13), Entry(4, message(store_id=14))]  # type: ignore[arg-type]
    ready.recover(recovered)
    assert (len(ready), ready.total, ready.last_position()) == (2, 4, 4)
    purged = ready.purge()
    assert [e.id for e in purged.entries] == [1, 2] and purged.paged == [(3, 13), (4, 14)]
    assert ready.total == 0 and not ready.paging


def test_factory_picks_the_store_for_the_queue():
    assert isinstance(ready_messages(5, True, False, 10), PriorityReady)
    assert isinstance(ready_messages(0, False, False, 10), FifoReady)
    paged = ready_messages(0, True, False, 10)
    assert isinstance(paged, PagedReady) and paged.memory_limit == 10
    limited = ready_messages(0, True, True, 10)
    assert isinstance(limited, PagedReady) and limited.memory_limit > 10**9
    assert limited.track_bytes and FifoReady().memory_limit is None
