"""Priority queue: ``x-max-priority`` delivers urgent messages first (pika).

The queue ``ex-priority.jobs`` is declared with ``x-max-priority: 10``. Jobs are published
with priorities 0-9 while nobody consumes; a consumer that then reads them gets the highest
priority first and, within one priority, the order they were published in.

Run against a local broker: ``python examples/priority_queue.py``
(``AMQP_URL`` and ``DISPATCHD_ADMIN_URL`` say where it is; see ``examples/README.md``).
"""

from __future__ import annotations

import pika
from common import Inbox, check, connect, pump, run, show_topology

PREFIX = "ex-priority"
QUEUE = f"{PREFIX}.jobs"
JOBS = [("backup", 1), ("page on-call", 9), ("resize image", 5), ("send invoice", 5),
        ("reindex", 0), ("fraud alert", 9)]  # fmt: skip


def main() -> None:
    """Queue jobs of mixed priority, then consume them and check the order."""
    connection = connect(f"{PREFIX} app")
    channel = connection.channel()
    channel.queue_declare(QUEUE, arguments={"x-max-priority": 10})
    try:
        for job, priority in JOBS:
            channel.basic_publish("", QUEUE, job.encode(), pika.BasicProperties(priority=priority))
        channel.basic_qos(prefetch_count=1)
        inbox = Inbox(channel, QUEUE)
        pump(connection, until=lambda: len(inbox.bodies) == len(JOBS))

        print("consumed in order:", inbox.bodies)
        expected = [job for job, _ in sorted(JOBS, key=lambda j: -j[1])]  # stable: FIFO per level
        check(inbox.bodies == expected, "highest priority first, FIFO within a priority")
        show_topology(PREFIX)
    finally:
        channel.queue_delete(QUEUE)
        connection.close()


if __name__ == "__main__":
    run(main)
