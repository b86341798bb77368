"""Micro-benchmark of the LoopActor runtime: a 4-actor chain on uvloop.

Run: python tests/bench_runtime.py [--messages N]

Run from the repository root: PYTHONPATH=. python tests/bench_runtime.py

Reports messages per second through the whole chain (each message makes 4 hops:
producer -> stage -> stage -> stage -> sink) and the cost per message-hop, for:

- single tells, the producer yielding to the loop after every tell (every hop
  pays a `call_soon` and a drain),
- single tells, 100 per loop turn (drains handle many messages each),
- batches of 100 messages per tell, stages passing the list on untouched
  (pure runtime cost),
- batches of 100 per tell, each stage building a new list item by item (closer
  to a real actor that looks at every message).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

import uvloop

from dispatchd.actors.runtime import LoopActor, LoopActorRef, Runtime, handles


@dataclass(frozen=True, slots=True)
class Item:
    """One benchmark message."""

    n: int


class Stage(LoopActor):
    """Forwards every message to the next stage."""

    kind = "bench"

    def __init__(self, next_ref: LoopActorRef[Any], touch: bool) -> None:
        super().__init__()
        self.next_tell = next_ref.tell
        self.touch = touch

    @handles(list)
    def on_list(self, message: list[Item]) -> None:
        if self.touch:
            message = [item for item in message if item.n >= 0]
        self.next_tell(message)

    @handles(Item)
    def on_item(self, message: Item) -> None:
        self.next_tell(message)


class Sink(LoopActor):
    """Counts messages (or batches) and resolves a future at the expected total."""

    kind = "bench"

    def __init__(self, expected: int, done: asyncio.Future[float]) -> None:
        super().__init__()
        self.expected = expected
        self.done = done
        self.count = 0

    @handles(list)
    def on_list(self, message: list[Item]) -> None:
        self.count += len(message)
        if self.count >= self.expected:
            self.done.set_result(time.perf_counter())

    @handles(Item)
    def on_item(self, _message: Item) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.done.set_result(time.perf_counter())


async def _chain(messages: int, batch: int, per_turn: int = 100, touch: bool = False) -> float:
    loop = asyncio.get_running_loop()
    runtime = Runtime(loop)
    done: asyncio.Future[float] = loop.create_future()
    ref: LoopActorRef[Any] = runtime.start(Sink, messages, done)
    for _ in range(3):
        ref = runtime.start(Stage, ref, touch)
    tell = ref.tell
    start = time.perf_counter()
    if batch > 1:
        chunk = [Item(i) for i in range(batch)]
        for _ in range(messages // batch):
            tell(chunk)
            # Yield now and then, as a connection's data_received would.
            await asyncio.sleep(0)
    else:
        item = Item(0)
        for i in range(messages):
            tell(item)
            if i % per_turn == per_turn - 1:
                await asyncio.sleep(0)
    end = await done
    await asyncio.gather(*runtime.stop_all())
    runtime.close()
    return messages / (end - start)


def run(messages: int = 200_000, rounds: int = 3) -> dict[str, float]:
    """Run each chain variant `rounds` times on uvloop; return the best msgs/s of each."""
    variants = (
        ("single tells, 1 per loop turn", 1, 1, False, messages // 4),
        ("single tells, 100 per loop turn", 1, 100, False, messages),
        ("batches of 100, untouched", 100, 1, False, messages * 10),
        ("batches of 100, copied per item", 100, 1, True, messages * 2),
    )
    best: dict[str, float] = {}
    for label, batch, per_turn, touch, total in variants:
        rates = [uvloop.run(_chain(total, batch, per_turn, touch)) for _ in range(rounds)]
        best[label] = max(rates)
    return best


def main() -> None:
    """Print the benchmark's results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for label, rate in run(args.messages, args.rounds).items():
        print(f"4-actor chain, {label:<32} {rate:>12,.0f} msg/s  ({1e6 / rate / 4:.3f} µs/hop)")


if __name__ == "__main__":
    main()
