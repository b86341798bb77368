"""Two more clients besides pika: aio-pika (asyncio, aiormq's codec) and py-amqp (kombu and
Celery's transport) publish with confirms, get and consume, ack and requeue.

Run against RabbitMQ with ``DISPATCHD_PEER_PORT=5692`` (see tests/basic_support.py).
"""

from __future__ import annotations

import asyncio

import aio_pika
import aiormq
import amqp
import pytest

from tests.basic_support import WAIT, Peer, bodies
from tests.basic_support import peer as peer


async def aio_pika_round_trip(port: int, queue_name: str) -> list[tuple[bytes, bool]]:
    """Publish 5 with confirms (and one unroutable), consume them, requeue one, ack all."""
    connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/", timeout=WAIT)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = channel.default_exchange
        for body in bodies("m", 5):
            confirmation = await exchange.publish(aio_pika.Message(body), queue_name)
            assert isinstance(confirmation, aiormq.spec.Basic.Ack)
        with pytest.raises(aio_pika.exceptions.PublishError):
            await exchange.publish(aio_pika.Message(b"lost"), "dtest-nowhere")
        await channel.set_qos(prefetch_count=2)
        queue = await channel.get_queue(queue_name, ensure=True)
        seen: list[tuple[bytes, bool]] = []
        async with asyncio.timeout(WAIT), queue.iterator() as messages:
            async for message in messages:
                seen.append((message.body, message.redelivered))
                if message.body == b"m-1" and not message.redelivered:
                    await message.nack(requeue=True)
                else:
                    await message.ack()
                if len(seen) == 6:
                    break
        return seen


def test_aio_pika_publishes_consumes_and_requeues(peer: Peer) -> None:
    queue = peer.queue()
    seen = asyncio.run(aio_pika_round_trip(peer.port, queue))
    assert sorted(seen) == sorted([(b, False) for b in bodies("m", 5)] + [(b"m-1", True)])
    assert seen[:2] == [(b"m-0", False), (b"m-1", False)]
    assert peer.count(queue) == 0


def test_py_amqp_publishes_gets_and_consumes(peer: Peer) -> None:
    queue = peer.queue()
    connection = amqp.Connection(
        f"127.0.0.1:{peer.port}", userid="guest", password="guest", confirm_publish=True
    )
    connection.connect()
    try:
        channel = connection.channel()
        for body in bodies("m", 4):
            channel.basic_publish(amqp.Message(body), exchange="", routing_key=queue)
        got = channel.basic_get(queue, no_ack=False)
        assert (got.body, got.delivery_info["message_count"]) == (b"m-0", 3)
        channel.basic_reject(got.delivery_tag, requeue=True)
        received: list[amqp.Message] = []
        channel.basic_qos(0, 10, False)
        channel.basic_consume(queue, callback=received.append)
        while len(received) < 4:
            connection.drain_events(timeout=WAIT)
        assert [(m.body, m.delivery_info["redelivered"]) for m in received] == [
            (b"m-0", True),
            (b"m-1", False),
            (b"m-2", False),
            (b"m-3", False),
        ]
        channel.basic_ack(received[-1].delivery_tag, multiple=True)
        channel.close()
    finally:
        connection.close()
    assert peer.count(queue) == 0
