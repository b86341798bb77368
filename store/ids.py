"""The numbers the store knows things by: durable queues' ids and stored messages' ids.

One :class:`StoreIds` per broker, made from the largest ids recovery found, hands them out on
the loop thread: the vhosts number their new durable queues with it, the queues the messages
they write. A message routed to several durable queues is stored once, under the id the
first of them gave it.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dispatchd.actors.content import Message

__all__ = ["StoreIds"]


class StoreIds:
    """Ids for new durable queues and newly stored messages (loop thread only)."""

    __slots__ = ("_messages", "_queues")

    def __init__(self, max_queue_id: int = 0, max_message_id: int = 0) -> None:
        self._queues = itertools.count(max_queue_id + 1)
        self._messages = itertools.count(max_message_id + 1)

    def queue_id(self) -> int:
        """The id of a durable queue being declared."""
        return next(self._queues)

    def message_id(self, message: Message) -> int:
        """The message's id in the store, given on first use."""
        if not message.store_id:
            message.store_id = next(self._messages)
        return message.store_id
