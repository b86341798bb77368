"""Rates (per second) of counters, computed in the admin thread from successive snapshots.

Actors keep plain totals (messages handled, published, delivered, acked); nothing on the hot
path measures time. A rate is the change of a total between two snapshots at least
``min_interval`` seconds apart, divided by the time between them. Snapshots closer together
than that (a page fetching several endpoints at once) reuse the last rate, so a burst of
requests neither divides by ~0 nor resets the window.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

__all__ = ["RateTracker"]


class RateTracker:
    """Per-key rates from successive samples of monotonically growing totals; thread-safe."""

    def __init__(self, min_interval: float = 1.0, forget_after: float = 120.0) -> None:
        self.min_interval = min_interval
        self.forget_after = forget_after
        self._samples: dict[Hashable, tuple[float, float, float]] = {}  # key -> (t, value, rate)
        self._lock = threading.Lock()
        self._swept = 0.0

    def rate(self, key: Hashable, now: float, value: float) -> float:
        """Record ``value`` of ``key`` at time ``now`` (seconds) and return its rate per second.

        The first sample of a key has rate 0. A total that went down (a counter reset: the
        entity was re-created under the same key) restarts the window with rate 0.
        """
        with self._lock:
            previous = self._samples.get(key)
            if previous is None or value < previous[1]:
                self._samples[key] = (now, value, 0.0)
                rate = 0.0
            else:
                then, old, rate = previous
                elapsed = now - then
                if elapsed >= self.min_interval:
                    rate = (value - old) / elapsed
                    self._samples[key] = (now, value, rate)
            if now - self._swept > self.forget_after:
                self._sweep(now)
            return rate

    def _sweep(self, now: float) -> None:
        """Forget keys not sampled for ``forget_after`` seconds (deleted queues, dead actors)."""
        self._swept = now
        stale = [k for k, (t, _, _) in self._samples.items() if now - t > self.forget_after]
        for key in stale:
            del self._samples[key]
