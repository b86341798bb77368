"""Two brokers in one process, side by side: nothing in the broker is process-wide state.

Each runs ``dispatchd.serve.serve`` on a uvloop loop of its own thread, with its own port and
data dir; what one holds is invisible to the other, and stopping one leaves the other
serving.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pika
import pika.exceptions
import pytest
import uvloop

from dispatchd.config import Settings
from dispatchd.serve import serve
from tests.conftest import free_port
from tests.support.actors import TIMEOUT


class InProcessBroker:
    """A broker served by a thread of the test process."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = Settings(port=free_port(), data_dir=str(data_dir), admin_port=0)
        self.loop = uvloop.new_event_loop()
        self.started = threading.Event()
        self.failure: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name=f"broker-{self.settings.port}")

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            ready = asyncio.Event()
            task = asyncio.create_task(serve(self.settings, self._stop, ready))
            await ready.wait()
            self.started.set()
            await task

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.failure = exc
            self.started.set()
        finally:
            self.loop.close()

    def start(self) -> InProcessBroker:
        self.thread.start()
        assert self.started.wait(TIMEOUT) and self.failure is None, self.failure
        return self

    def stop(self) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive() and self.failure is None, self.failure

    def connect(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.settings.port))


def test_two_brokers_in_one_process_keep_apart(tmp_path: Path) -> None:
    first = InProcessBroker(tmp_path / "first").start()
    second = InProcessBroker(tmp_path / "second").start()
    try:
        a, b = first.connect(), second.connect()
        ch_a, ch_b = a.channel(), b.channel()
        ch_a.queue_declare("only-in-first", durable=True)
        ch_a.confirm_delivery()
        ch_a.basic_publish("", "only-in-first", b"one", pika.BasicProperties(delivery_mode=2))
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as missing:
            ch_b.queue_declare("only-in-first", passive=True)
        assert missing.value.reply_code == 404
        ch_b = b.channel()
        ch_b.queue_declare("only-in-second")
        ch_b.basic_publish("", "only-in-second", b"two")
        a.close()
        first.stop()  # the other broker carries on
        method, _, body = ch_b.basic_get("only-in-second", auto_ack=True)
        assert body == b"two" and method.message_count == 0
        b.close()
    finally:
        for broker in (first, second):
            if broker.thread.is_alive():
                broker.stop()
    # The first broker's store kept its durable queue and persistent message.
    again = InProcessBroker(tmp_path / "first").start()
    try:
        connection = again.connect()
        method, _, body = connection.channel().basic_get("only-in-first", auto_ack=True)
        assert body == b"one"
        connection.close()
    finally:
        again.stop()
