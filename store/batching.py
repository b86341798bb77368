"""How much one group commit may hold: a budget in rows and bytes.

Under a flood the store's inbox never empties, so "commit when the inbox is empty" alone let
one transaction grow to a million rows (a 31.9 s commit, every confirm behind it). The store
asks :meth:`CommitBudget.fits` before it collects each request: one that would take the batch
past either limit is left for the next commit, which it starts. Requests are never split or
reordered, so a single request larger than the budget gets a batch of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BATCH_BYTES", "BATCH_ROWS", "CommitBudget"]

#: A batch's default limits (``--store-batch-rows``, ``--store-batch-bytes``).
BATCH_ROWS = 1000
BATCH_BYTES = 1024 * 1024


@dataclass(slots=True)
class CommitBudget:
    """The rows and bytes collected into the open batch, against their limits."""

    max_rows: int
    max_bytes: int
    rows: int = 0
    bytes: int = 0
    requests: int = 0

    def fits(self, rows: int, nbytes: int) -> bool:
        """Whether a request of this size may join the open batch (an empty one takes any)."""
        if not self.requests:
            return True
        return self.rows + rows <= self.max_rows and self.bytes + nbytes <= self.max_bytes

    def add(self, rows: int, nbytes: int) -> None:
        """Count a request collected into the open batch."""
        self.rows += rows
        self.bytes += nbytes
        self.requests += 1

    @property
    def full(self) -> bool:
        """Whether the batch has reached a limit (commit now, whatever waits in the inbox)."""
        return self.rows >= self.max_rows or self.bytes >= self.max_bytes

    def reset(self) -> None:
        """A commit began: the next batch starts empty."""
        self.rows = self.bytes = self.requests = 0
