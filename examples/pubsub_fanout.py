"""Publish/subscribe: a fanout exchange copies every message to every bound queue (aio-pika).

Three subscribers, each on its own connection, declare an exclusive queue
(``ex-pubsub.sub-N``, gone when its connection closes) and bind it to the fanout exchange
``ex-pubsub.news``. Every message published to the exchange reaches all three; the routing
key plays no part.

Run against a local broker: ``python examples/pubsub_fanout.py``
(``AMQP_URL`` and ``DISPATCHD_ADMIN_URL`` say where it is; see ``examples/README.md``).
"""

from __future__ import annotations

import asyncio

import aio_pika
from common import AMQP_URL, check, run, show_topology

PREFIX = "ex-pubsub"
EXCHANGE = f"{PREFIX}.news"
HEADLINES = ["markets up", "rain tomorrow", "new release"]


async def connect(name: str) -> aio_pika.abc.AbstractConnection:
    """An aio-pika connection the broker lists under ``name``."""
    return await aio_pika.connect(AMQP_URL, client_properties={"connection_name": name})


async def subscribe(number: int, got: list[str]) -> aio_pika.abc.AbstractConnection:
    """One subscriber: an exclusive queue bound to the exchange, consumed into ``got``."""
    connection = await connect(f"{PREFIX} subscriber-{number}")
    channel = await connection.channel()
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.FANOUT)
    queue = await channel.declare_queue(f"{PREFIX}.sub-{number}", exclusive=True)
    await queue.bind(exchange)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():  # acks when the block ends
            got.append(message.body.decode())

    await queue.consume(on_message, consumer_tag=f"{PREFIX}.sub-{number}")
    return connection


async def main() -> None:
    """Subscribe three times, publish the headlines, check everyone got all of them."""
    inboxes: list[list[str]] = [[], [], []]
    subscribers = [await subscribe(n, got) for n, got in enumerate(inboxes, 1)]
    publisher = await connect(f"{PREFIX} publisher")
    try:
        channel = await publisher.channel()
        exchange = await channel.get_exchange(EXCHANGE)
        for headline in HEADLINES:
            await exchange.publish(aio_pika.Message(headline.encode()), routing_key="")
        async with asyncio.timeout(5):
            while any(len(got) < len(HEADLINES) for got in inboxes):
                await asyncio.sleep(0.01)

        print("subscribers got:", inboxes)
        check(all(got == HEADLINES for got in inboxes), "each subscriber got every headline")
        show_topology(PREFIX)
        await exchange.delete()
    finally:
        for connection in [publisher, *subscribers]:
            await connection.close()


if __name__ == "__main__":
    run(lambda: asyncio.run(main()))
