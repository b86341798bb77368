"""Headers exchange: route on message headers instead of the routing key (pika).

Documents are published to the headers exchange ``ex-headers.docs`` with headers such as
``{"format": "pdf", "type": "report"}``. ``ex-headers.pdf-reports`` is bound with
``x-match: all`` (every bound header must match); ``ex-headers.archives`` with
``x-match: any`` (one is enough). The routing key is ignored.

Run against a local broker: ``python examples/headers.py``
(``AMQP_URL`` and ``DISPATCHD_ADMIN_URL`` say where it is; see ``examples/README.md``).
"""

from __future__ import annotations

from common import check, connect, pump, run, show_topology, subscribe
from pika import BasicProperties

PREFIX = "ex-headers"
EXCHANGE = f"{PREFIX}.docs"
ALL_OF = {"x-match": "all", "format": "pdf", "type": "report"}
ANY_OF = {"x-match": "any", "format": "zip", "compressed": True}
DOCUMENTS = [
    ("q3.pdf", {"format": "pdf", "type": "report"}),
    ("invoice.pdf", {"format": "pdf", "type": "invoice"}),
    ("logs.zip", {"format": "zip"}),
    ("logs.tar.gz", {"format": "tar", "compressed": True}),
    ("notes.txt", {"format": "txt"}),
]


def main() -> None:
    """Bind on headers, publish documents, check each queue got its matches."""
    connection = connect(f"{PREFIX} app")
    channel = connection.channel()
    channel.exchange_declare(EXCHANGE, "headers")
    try:
        reports = subscribe(channel, EXCHANGE, f"{PREFIX}.pdf-reports", arguments=ALL_OF)
        archives = subscribe(channel, EXCHANGE, f"{PREFIX}.archives", arguments=ANY_OF)
        for name, headers in DOCUMENTS:  # the routing key plays no part
            channel.basic_publish(EXCHANGE, "", name.encode(), BasicProperties(headers=headers))
        pump(connection, until=lambda: len(reports.bodies) + len(archives.bodies) == 3)
        connection.process_data_events(time_limit=0.2)  # room for a wrong extra delivery

        print(f"pdf-reports got {reports.bodies}, archives got {archives.bodies}")
        check(reports.bodies == ["q3.pdf"], "x-match all: only the pdf that is a report")
        check(archives.bodies == ["logs.zip", "logs.tar.gz"], "x-match any: zip or compressed")
        show_topology(PREFIX)
    finally:
        channel.exchange_delete(EXCHANGE)  # the exclusive queues go with the connection
        connection.close()


if __name__ == "__main__":
    run(main)
