"""Publisher confirms with persistent messages: the broker says when each message is safe (pika).

The channel is put in confirm mode (``confirm.select``); every ``basic_publish`` then waits
for the broker's ``basic.ack``. Messages are persistent (``delivery_mode=2``) and go to the
durable queue ``ex-confirms.orders`` through the durable exchange ``ex-confirms.orders``, so
the ack comes only once they are written to disk. A message published with ``mandatory``
that no queue is bound for comes back as unroutable instead of vanishing.

Run against a local broker: ``python examples/publisher_confirms.py``
(``AMQP_URL`` and ``DISPATCHD_ADMIN_URL`` say where it is; see ``examples/README.md``).
"""

from __future__ import annotations

import pika
from common import Inbox, check, connect, pump, run, show_topology
from pika.exceptions import UnroutableError

PREFIX = "ex-confirms"
EXCHANGE = QUEUE = f"{PREFIX}.orders"
ORDERS = 20
PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


def main() -> None:
    """Publish persistent orders with confirms, check every one was acked and arrives."""
    connection = connect(f"{PREFIX} shop")
    channel = connection.channel()
    channel.exchange_declare(EXCHANGE, "direct", durable=True)
    channel.queue_declare(QUEUE, durable=True)
    channel.queue_bind(QUEUE, EXCHANGE, routing_key="new")
    try:
        channel.confirm_delivery()
        for n in range(ORDERS):  # each call returns once the broker has confirmed the message
            channel.basic_publish(EXCHANGE, "new", f"order-{n}".encode(), PERSISTENT, True)
        print(f"{ORDERS} persistent orders confirmed")
        try:
            channel.basic_publish(EXCHANGE, "no-such-key", b"lost", PERSISTENT, mandatory=True)
            returned = False
        except UnroutableError:
            returned = True
        check(returned, "an unroutable mandatory message was returned, not confirmed silently")

        inbox = Inbox(channel, QUEUE)
        pump(connection, until=lambda: len(inbox.bodies) == ORDERS)
        check(inbox.bodies == [f"order-{n}" for n in range(ORDERS)], "all orders, in order")
        check(all(p.delivery_mode == 2 for p in inbox.properties), "all still persistent")
        show_topology(PREFIX)
    finally:
        channel.queue_delete(QUEUE)
        channel.exchange_delete(EXCHANGE)
        connection.close()


if __name__ == "__main__":
    run(main)
