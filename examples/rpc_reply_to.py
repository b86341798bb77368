"""RPC with direct reply-to: a client calls a server and gets answers without a reply queue (pika).

The server consumes requests from ``ex-rpc.requests`` and publishes each answer to the
request's ``reply_to`` with the same ``correlation_id``. The client consumes the
pseudo-queue ``amq.rabbitmq.reply-to`` (no-ack, as RabbitMQ requires) and sends requests
with ``reply_to="amq.rabbitmq.reply-to"``; the broker rewrites that to a name that routes
straight back to the client's channel, so no reply queue is ever declared.

Run against a local broker: ``python examples/rpc_reply_to.py``
(``AMQP_URL`` and ``DISPATCHD_ADMIN_URL`` say where it is; see ``examples/README.md``).
"""

from __future__ import annotations

import pika
from common import check, connect, pump, run, show_topology
from pika.adapters.blocking_connection import BlockingChannel

PREFIX = "ex-rpc"
QUEUE = f"{PREFIX}.requests"
REPLY_TO = "amq.rabbitmq.reply-to"


def fib(n: int) -> int:
    """The service the server offers."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def serve(
    ch: BlockingChannel, method: pika.spec.Basic.Deliver, props: pika.BasicProperties, body: bytes
) -> None:
    """Answer one request to whoever ``reply_to`` names."""
    answer = str(fib(int(body))).encode()
    reply = pika.BasicProperties(correlation_id=props.correlation_id)
    ch.basic_publish("", props.reply_to, answer, reply)
    ch.basic_ack(method.delivery_tag)


def main() -> None:
    """Start a server, make five calls through direct reply-to, check the answers."""
    server = connect(f"{PREFIX} server")
    server_channel = server.channel()
    server_channel.queue_declare(QUEUE)
    server_channel.basic_consume(QUEUE, serve, consumer_tag=f"{PREFIX}.server")
    client = connect(f"{PREFIX} client")
    try:
        channel = client.channel()
        answers: dict[str, int] = {}

        def on_reply(_ch: BlockingChannel, _m: object, props: pika.BasicProperties, body: bytes):
            answers[props.correlation_id] = int(body)

        channel.basic_consume(REPLY_TO, on_reply, auto_ack=True, consumer_tag=f"{PREFIX}.client")
        calls = {f"call-{n}": n for n in (10, 20, 30, 40, 50)}
        for call_id, n in calls.items():
            props = pika.BasicProperties(reply_to=REPLY_TO, correlation_id=call_id)
            channel.basic_publish("", QUEUE, str(n).encode(), props)
        pump(server, client, until=lambda: len(answers) == len(calls))

        print("answers:", answers)
        check(answers == {c: fib(n) for c, n in calls.items()}, "every call got its own answer")
        show_topology(PREFIX)
    finally:
        client.close()
        server_channel.queue_delete(QUEUE)
        server.close()


if __name__ == "__main__":
    run(main)
