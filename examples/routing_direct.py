"""Routing: a direct exchange sends each message to the queues bound with its routing key (pika).

Log lines are published to the direct exchange ``ex-routing.logs`` with their severity as the
routing key. ``ex-routing.errors`` is bound with ``error`` only; ``ex-routing.all`` is bound
three times, with ``info``, ``warning`` and ``error``. An ``error`` line goes to both queues,
the others only to ``ex-routing.all``, and a ``debug`` line (bound nowhere) is dropped.

Run against a local broker: ``python examples/routing_direct.py``
(``AMQP_URL`` and ``DISPATCHD_ADMIN_URL`` say where it is; see ``examples/README.md``).
"""

from __future__ import annotations

from common import check, connect, pump, run, show_topology, subscribe

PREFIX = "ex-routing"
EXCHANGE = f"{PREFIX}.logs"
LINES = [("info", "started"), ("debug", "tick"), ("warning", "disk 91%"), ("error", "disk full")]


def main() -> None:
    """Bind by severity, publish one line of each, check who got what."""
    connection = connect(f"{PREFIX} app")
    channel = connection.channel()
    channel.exchange_declare(EXCHANGE, "direct")
    try:
        errors = subscribe(channel, EXCHANGE, f"{PREFIX}.errors", ["error"])
        everything = subscribe(channel, EXCHANGE, f"{PREFIX}.all", ["info", "warning", "error"])
        for severity, line in LINES:
            channel.basic_publish(EXCHANGE, severity, line.encode())
        pump(connection, until=lambda: len(everything.bodies) == 3)

        print(f"errors got {errors.bodies}, all got {everything.bodies}")
        check(errors.bodies == ["disk full"], "errors got the error line only")
        check(
            everything.bodies == ["started", "disk 91%", "disk full"],
            "all got info, warning and error, in order, and not debug",
        )
        show_topology(PREFIX)
    finally:
        channel.exchange_delete(EXCHANGE)  # the exclusive queues go with the connection
        connection.close()


if __name__ == "__main__":
    run(main)
