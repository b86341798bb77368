"""Topics: a topic exchange matches dotted routing keys against patterns (kombu).

Events are published to the topic exchange ``ex-topics.events`` with keys like
``order.eu.created``. In a binding pattern ``*`` stands for exactly one word and ``#`` for
zero or more, so ``order.#`` also matches the bare key ``order``:

- ``ex-topics.orders``   ``order.#``   every order event
- ``ex-topics.europe``   ``*.eu.*``    three-word events from Europe
- ``ex-topics.failures`` ``#.failed``  anything that failed, however deep

Run against a local broker: ``python examples/topics.py``
(``AMQP_URL`` and ``DISPATCHD_ADMIN_URL`` say where it is; see ``examples/README.md``).
"""

from __future__ import annotations

from collections.abc import Callable

from common import AMQP_URL, check, run, show_topology
from kombu import Connection, Consumer, Exchange, Message, Producer, Queue

PREFIX = "ex-topics"
EXCHANGE = Exchange(f"{PREFIX}.events", type="topic", durable=False)
PATTERNS = {"orders": "order.#", "europe": "*.eu.*", "failures": "#.failed"}
EVENTS = ["order.eu.created", "order.us.created", "payment.eu.failed", "order", "sync.failed"]
EXPECTED = {
    "orders": ["order.eu.created", "order.us.created", "order"],
    "europe": ["order.eu.created", "payment.eu.failed"],
    "failures": ["payment.eu.failed", "sync.failed"],
}


def main() -> None:
    """Bind the patterns, publish the events, check each queue got its matches."""
    options = {"client_properties": {"connection_name": f"{PREFIX} app"}}
    with Connection(AMQP_URL, transport_options=options) as connection:
        queues = [
            Queue(f"{PREFIX}.{name}", EXCHANGE, routing_key=pattern, exclusive=True)
            for name, pattern in PATTERNS.items()
        ]
        got: dict[str, list[str]] = {name: [] for name in PATTERNS}

        def collect_into(bodies: list[str]) -> Callable[[str, Message], None]:
            def on_message(body: str, message: Message) -> None:
                bodies.append(body)
                message.ack()

            return on_message

        consumers = [
            Consumer(
                connection,
                [queue],
                callbacks=[collect_into(got[name])],
                tag_prefix=f"{queue.name}.",
            )
            for name, queue in zip(PATTERNS, queues, strict=True)
        ]
        for consumer in consumers:  # declares the exchange, queue and binding, then consumes
            consumer.consume()
        producer = Producer(connection.channel(), exchange=EXCHANGE)
        for key in EVENTS:
            producer.publish(key, routing_key=key, serializer="raw")
        try:
            while sum(map(len, got.values())) < sum(map(len, EXPECTED.values())):
                connection.drain_events(timeout=5)
        except TimeoutError:  # the checks below say what is missing
            pass

        print("queues got:", got)
        for name, pattern in PATTERNS.items():
            check(got[name] == EXPECTED[name], f"{pattern} matched {EXPECTED[name]}")
        show_topology(PREFIX)
        EXCHANGE(connection.default_channel).delete()


if __name__ == "__main__":
    run(main)
