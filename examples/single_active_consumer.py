"""Single active consumer: many consumers wait, one at a time gets the messages (pika).

The queue ``ex-sac.orders`` has ``x-single-active-consumer: true``. Two consumers subscribe,
each on its own connection: the first to subscribe is the active one and gets every message,
in order, while the other stands by. When the active consumer's connection goes away the
broker fails over to the standby, which goes on from the next message, still in order.

Run against a local broker: ``python examples/single_active_consumer.py``
(``AMQP_URL`` and ``DISPATCHD_ADMIN_URL`` say where it is; see ``examples/README.md``).
"""

from __future__ import annotations

from common import Inbox, check, connect, pump, run, show_topology

PREFIX = "ex-sac"
QUEUE = f"{PREFIX}.orders"


def main() -> None:
    """Subscribe twice, publish, fail the active consumer over, publish again."""
    publisher = connect(f"{PREFIX} publisher")
    channel = publisher.channel()
    channel.queue_declare(QUEUE, arguments={"x-single-active-consumer": True})
    first, second = connect(f"{PREFIX} consumer-a"), connect(f"{PREFIX} consumer-b")
    try:
        inbox_a, inbox_b = (Inbox(c.channel(), QUEUE) for c in (first, second))
        for n in range(5):
            channel.basic_publish("", QUEUE, f"order-{n}".encode())
        pump(publisher, first, second, until=lambda: len(inbox_a.bodies + inbox_b.bodies) == 5)
        second.process_data_events(time_limit=0.2)  # room for a wrong delivery to the standby
        check(inbox_a.bodies == [f"order-{n}" for n in range(5)], "A, active, got all, in order")
        check(inbox_b.bodies == [], "B, standing by, got nothing")
        show_topology(PREFIX)

        first.close()  # the active consumer goes away: the broker fails over to B
        for n in range(5, 10):
            channel.basic_publish("", QUEUE, f"order-{n}".encode())
        pump(publisher, second, until=lambda: len(inbox_b.bodies) == 5)
        print(f"A got {inbox_a.bodies}\nB got {inbox_b.bodies}")
        check(inbox_b.bodies == [f"order-{n}" for n in range(5, 10)], "B took over, in order")
    finally:
        for connection in (first, second):
            if connection.is_open:
                connection.close()
        channel.queue_delete(QUEUE)
        publisher.close()


if __name__ == "__main__":
    run(main)
