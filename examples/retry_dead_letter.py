"""Retry with dead-lettering and TTL: failed messages wait, then come back (pika).

The classic retry loop, built only from queue arguments:

- ``ex-retry.work`` (bound to exchange ``ex-retry.work`` with ``task``) has
  ``x-dead-letter-exchange: ex-retry.retry``: a message its consumer rejects (without requeue)
  is republished to that exchange instead of being dropped.
- ``ex-retry.wait`` (bound to the fanout ``ex-retry.retry``) has no consumer, but
  ``x-message-ttl: 200`` and ``x-dead-letter-exchange: ex-retry.work``: after 200 ms a message
  expires and goes back to the work exchange with its original routing key.

Each trip adds to the message's ``x-death`` header (one entry per queue and reason, with a
``count``), which the consumer reads to give up or, here, to succeed on the third attempt.

Run against a local broker: ``python examples/retry_dead_letter.py``
(``AMQP_URL`` and ``DISPATCHD_ADMIN_URL`` say where it is; see ``examples/README.md``).
"""

from __future__ import annotations

import time
from typing import Any

import pika
from common import check, connect, pump, run, show_topology
from pika.adapters.blocking_connection import BlockingChannel

PREFIX = "ex-retry"
WORK = f"{PREFIX}.work"  # the work exchange and the work queue
RETRY, WAIT = f"{PREFIX}.retry", f"{PREFIX}.wait"
TTL_MS = 200
ATTEMPTS = 3  # fail twice, succeed the third time


def deaths(props: pika.BasicProperties) -> dict[tuple[str, str], dict[str, Any]]:
    """The message's ``x-death`` entries by (queue, reason)."""
    entries = (props.headers or {}).get("x-death", [])
    return {(e["queue"], e["reason"]): e for e in entries}


def main() -> None:
    """Declare the loop, publish one task, fail it twice, check how it came back."""
    connection = connect(f"{PREFIX} worker")
    channel = connection.channel()
    channel.exchange_declare(WORK, "direct")
    channel.exchange_declare(RETRY, "fanout")
    channel.queue_declare(WORK, arguments={"x-dead-letter-exchange": RETRY})
    channel.queue_bind(WORK, WORK, routing_key="task")
    wait_args = {"x-message-ttl": TTL_MS, "x-dead-letter-exchange": WORK}
    channel.queue_declare(WAIT, arguments=wait_args)
    channel.queue_bind(WAIT, RETRY)
    seen: list[pika.BasicProperties] = []

    def attempt(
        ch: BlockingChannel, method: pika.spec.Basic.Deliver, props: pika.BasicProperties, _b: bytes
    ) -> None:
        seen.append(props)
        history = [f"{q} {r} x{e['count']}" for (q, r), e in sorted(deaths(props).items())]
        print(f"attempt {len(seen)}: x-death {history}")
        if len(seen) < ATTEMPTS:
            ch.basic_reject(method.delivery_tag, requeue=False)  # off to the retry exchange
        else:
            ch.basic_ack(method.delivery_tag)

    try:
        channel.basic_consume(WORK, attempt, consumer_tag=f"{PREFIX}.worker")
        started = time.monotonic()
        channel.basic_publish(WORK, "task", b"charge card 4242")
        pump(connection, until=lambda: len(seen) == ATTEMPTS)
        elapsed = time.monotonic() - started

        last = deaths(seen[-1])
        check(not deaths(seen[0]), "the first delivery has no x-death header")
        check(last.get((WORK, "rejected"), {}).get("count") == 2, "x-death: rejected twice")
        check(last.get((WAIT, "expired"), {}).get("count") == 2, "x-death: expired twice")
        check(last[(WAIT, "expired")]["exchange"] == RETRY, "it came through the retry exchange")
        check(last[(WORK, "rejected")]["routing-keys"] == ["task"], "with its routing key")
        check(seen[-1].headers.get("x-first-death-reason") == "rejected", "first death: rejected")
        check(elapsed >= 2 * TTL_MS / 1000, f"it waited the TTL each time ({elapsed:.2f}s)")
        show_topology(PREFIX)
    finally:
        for queue in (WORK, WAIT):
            channel.queue_delete(queue)
        for exchange in (WORK, RETRY):
            channel.exchange_delete(exchange)
        connection.close()


if __name__ == "__main__":
    run(main)
