"""Work queue: competing consumers share one queue, prefetch 1 spreads the tasks (pika).

A producer puts 30 tasks on the queue ``ex-workq.tasks`` through the default exchange; three
workers, each on its own connection with ``basic.qos(prefetch_count=1)``, consume from it and
ack each task once done. The broker never gives a worker a second task before it acked the
first, so the tasks are spread over all three and each is processed exactly once.

Run against a local broker: ``python examples/work_queue.py``
(``AMQP_URL`` and ``DISPATCHD_ADMIN_URL`` say where it is; see ``examples/README.md``).
"""

from __future__ import annotations

from collections import Counter

import pika
from common import check, connect, pump, run, show_topology
from pika.adapters.blocking_connection import BlockingChannel

PREFIX = "ex-workq"
QUEUE = f"{PREFIX}.tasks"
TASKS = 30


class Worker:
    """One consumer on its own connection; holds its tasks until ``finish()`` acks them."""

    def __init__(self, number: int) -> None:
        self.name = f"worker-{number}"
        self.connection = connect(f"{PREFIX} {self.name}")
        self.channel = self.connection.channel()
        self.channel.basic_qos(prefetch_count=1)
        self.channel.basic_consume(QUEUE, self.on_task, consumer_tag=f"{PREFIX}.{self.name}")
        self.held: list[int] = []  # delivery tags not acked yet
        self.most_held = 0
        self.done: list[str] = []

    def on_task(
        self, _ch: BlockingChannel, method: pika.spec.Basic.Deliver, _p: object, body: bytes
    ) -> None:
        """A task arrived: do it, but ack only in ``finish()``."""
        self.held.append(method.delivery_tag)
        self.most_held = max(self.most_held, len(self.held))
        self.done.append(body.decode())

    def finish(self) -> None:
        """Ack what this worker holds, which lets the broker send it the next task."""
        for tag in self.held:
            self.channel.basic_ack(tag)
        self.held.clear()


def main() -> None:
    """Start the workers, publish the tasks, check each was done once."""
    producer = connect(f"{PREFIX} producer")
    channel = producer.channel()
    channel.queue_declare(QUEUE)
    workers = [Worker(n) for n in (1, 2, 3)]
    connections = [producer] + [w.connection for w in workers]
    try:
        for n in range(TASKS):
            channel.basic_publish("", QUEUE, f"task-{n}".encode())
        while sum(len(w.done) for w in workers) < TASKS:
            pump(*connections, until=lambda: any(w.held for w in workers))
            for worker in workers:
                worker.finish()
        done = Counter(task for w in workers for task in w.done)

        print("tasks per worker:", {w.name: len(w.done) for w in workers})
        check(sorted(done) == sorted(f"task-{n}" for n in range(TASKS)), "every task was done")
        check(set(done.values()) == {1}, "no task was done twice")
        check(all(w.done for w in workers), "all three workers got tasks")
        check(max(w.most_held for w in workers) == 1, "no worker held more than prefetch 1")
        show_topology(PREFIX)
    finally:
        for worker in workers:
            worker.connection.close()
        channel.queue_delete(QUEUE)
        producer.close()


if __name__ == "__main__":
    run(main)
