"""The channel's state objects on their own: confirms, unacked deliveries, limits, transactions."""

from __future__ import annotations

import pytest

from dispatchd.actors.confirms import Confirms, acks
from dispatchd.actors.content import Entry, Message
from dispatchd.actors.limiter import Limiter
from dispatchd.actors.transaction import Transaction, TxState
from dispatchd.actors.unacked import UnackedMessages
from dispatchd.wire.errors import AMQPError

QUEUE, OTHER = "queue-ref", "other-ref"  # stand-ins: the state objects only store refs


def entries(*ids: int) -> list[Entry]:
    return [Entry(i, Message("", "k", b"\x00\x00", b"")) for i in ids]


# ----- confirms


def test_confirms_number_in_order_and_wait_for_every_queue():
    confirms = Confirms()
    assert [confirms.number() for _ in range(3)] == [1, 2, 3]
    assert confirms.routed([(1, 2), (2, 0), (3, 1)]) == [2]  # routed nowhere: confirmed
    assert confirms.accepted([1, 3]) == [3]  # 1 waits for its second queue
    assert 1 in confirms and len(confirms) == 1
    assert confirms.accepted([1]) == [1]
    assert len(confirms) == 0 and confirms.lowest() is None


def test_confirms_acceptance_before_the_routing_report_confirms():
    confirms = Confirms()
    seq = confirms.number()
    assert confirms.accepted([seq]) == [seq]
    assert confirms.routed([(seq, 3)]) == []  # already settled: not counted again
    assert len(confirms) == 0


def test_confirms_rejected_settles_only_the_unconfirmed():
    confirms = Confirms()
    one, two = confirms.number(), confirms.number()
    confirms.routed([(one, 1), (two, 1)])
    assert confirms.accepted([one]) == [one]
    assert confirms.rejected([one, two, 99]) == [two]
    assert confirms.number_many(3) == [3, 4, 5] and confirms.lowest() == 3


@pytest.mark.parametrize(
    ("confirmed", "lowest", "frames"),
    [
        ([3], None, [(3, False)]),
        ([1, 2, 3], None, [(3, True)]),
        ([1, 2], 5, [(2, True)]),
        ([1, 2, 6, 7], 5, [(2, True), (6, False), (7, False)]),
        ([6], 5, [(6, False)]),
    ],
)
def test_acks_coalesce_below_the_lowest_unconfirmed(confirmed, lowest, frames):
    assert acks(confirmed, lowest) == frames


# ----- unacked deliveries


def test_unacked_tags_count_every_delivery_and_remember_only_acked_ones():
    unacked = UnackedMessages()
    assert unacked.deliver(QUEUE, "c1", entries(10, 11), no_ack=False) == 1
    assert unacked.deliver(QUEUE, "c2", entries(12), no_ack=True) == 3
    assert unacked.tags(2) == 4
    assert unacked.deliver(OTHER, None, entries(13), no_ack=False) == 6
    assert list(unacked.records) == [1, 2, 6]
    assert unacked.consumer_deliveries() == 2
    assert unacked.records[6].queue == OTHER and unacked.records[6].entry_id == 13


def test_unacked_take_single_multiple_and_all():
    unacked = UnackedMessages()
    unacked.deliver(QUEUE, "c", entries(*range(1, 6)), no_ack=False)
    assert [tag for tag, _ in unacked.take(2, multiple=False)] == [2]
    assert [tag for tag, _ in unacked.take(4, multiple=True)] == [1, 3, 4]
    for tag, multiple in ((4, False), (4, True), (99, True)):
        with pytest.raises(AMQPError) as error:
            unacked.take(tag, multiple)
        assert error.value.code == 406 and error.value.text == f"unknown delivery tag {tag}"
    assert [tag for tag, _ in unacked.take(0, multiple=True)] == [5]
    assert len(unacked) == 0


def test_unacked_restore_puts_deliveries_back_in_tag_order():
    unacked = UnackedMessages()
    unacked.deliver(QUEUE, "c", entries(1, 2, 3), no_ack=False)
    taken = unacked.take(1, multiple=False) + unacked.take(3, multiple=False)
    unacked.restore(taken)
    assert list(unacked.records) == [1, 2, 3]


# ----- limiter


def test_limiter_lends_what_is_left_first_come_first_served():
    limiter = Limiter()
    assert limiter.set_limit(5, unacked=1) is True
    limiter.want("a", 3)
    limiter.want("b", 3)
    assert limiter.grants(lambda tag: True) == [("a", 3), ("b", 1)]
    assert limiter.grants(lambda tag: True) == []  # nothing left
    limiter.delivered("a", 3, no_ack=False)
    assert (limiter.used, limiter.lent) == (4, 1)
    limiter.freed(2)
    limiter.want("a", 5)
    assert limiter.grants(lambda tag: True) == [("a", 2)]
    assert limiter.set_limit(7, unacked=0) is False  # a new value, not switched on or off


def test_limiter_no_ack_deliveries_free_their_window_at_once():
    limiter = Limiter()
    limiter.set_limit(2, unacked=0)
    limiter.want("a", 2)
    assert limiter.grants(lambda tag: True) == [("a", 2)]
    limiter.delivered("a", 2, no_ack=True)
    assert (limiter.used, limiter.lent) == (0, 0)


def test_limiter_returned_forgotten_and_ineligible_window():
    limiter = Limiter()
    limiter.set_limit(4, unacked=0)
    limiter.want("a", 3)
    limiter.want("gone", 1)
    assert limiter.grants(lambda tag: tag != "gone") == [("a", 3)]
    limiter.returned("a", 10)  # never more than it held
    assert limiter.lent == 0
    limiter.want("a", 2)
    limiter.grants(lambda tag: True)
    limiter.forget("a")
    assert limiter.lent == 0 and "a" not in limiter.wanting
    assert limiter.set_limit(0, unacked=0) is True and limiter.used == 0


# ----- transaction


def test_transaction_states_and_what_commit_and_rollback_hand_back():
    tx = Transaction()  # a channel without a transaction has none at all
    assert tx.state is TxState.OPEN
    message = Message("x", "k", b"\x00\x00", b"body")
    tx.publish(QUEUE, message)
    tx.publish(QUEUE, message)
    unacked = UnackedMessages()
    unacked.deliver(QUEUE, "c", entries(1), no_ack=False)
    tx.settle(unacked.take(1, multiple=False), requeue=None)
    assert tx.held_messages() == 2 and len(tx.settles) == 1
    publishes, settles = tx.commit()
    assert tx.state is TxState.COMMITTING
    assert publishes == {QUEUE: [message, message]} and settles[0][0] == 1
    tx.committed()
    assert tx.state is TxState.OPEN and tx.held_messages() == 0
    tx.publish(OTHER, message)
    unacked.deliver(QUEUE, "c", entries(2), no_ack=False)
    tx.settle(unacked.take(2, multiple=False), requeue=True)
    assert [tag for tag, _, requeue in tx.rollback()] == [2]
    assert tx.held_messages() == 0 and tx.settles == [] and tx.state is TxState.OPEN
