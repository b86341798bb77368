"""The client side of ``tests/test_deploy.py``, run inside a network namespace.

``python -m tests.deploy_client HOST PORT USER PASSWORD`` logs in as USER, declares a queue,
publishes to it and gets the message back, prints ``{"step": "open", ...}`` and keeps the
connection open until a line arrives on stdin (so the test can look at the broker's record of
it). Then it closes, tries to log in as guest/guest and prints ``{"step": "guest", "code",
"text"}``: the reply code and text of the connection.close that refused it. One JSON object a
line on stdout.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pika

from tests.access_support import refusal
from tests.support import WAIT

__all__ = ["main"]


def report(**fields: Any) -> None:
    """One JSON line, flushed at once: the test waits for it."""
    print(json.dumps(fields), flush=True)


def main(host: str, port: int, user: str, password: str) -> None:
    def connect(name: str, secret: str) -> pika.BlockingConnection:
        return pika.BlockingConnection(
            pika.ConnectionParameters(
                host,
                port,
                credentials=pika.PlainCredentials(name, secret),
                connection_attempts=1,
                socket_timeout=WAIT,
                blocked_connection_timeout=WAIT,
            )
        )

    connection = connect(user, password)
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"from the namespace")
    _method, _properties, body = channel.basic_get(queue, auto_ack=True)
    report(step="open", queue=queue, body=body.decode() if body is not None else None)
    sys.stdin.readline()
    connection.close()
    code, text = refusal(lambda: connect("guest", "guest"))
    report(step="guest", code=code, text=text)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
