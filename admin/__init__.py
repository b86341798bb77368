"""The admin page, the RabbitMQ-compatible management API and Prometheus ``/metrics``.

A Bottle app on a threaded WSGI server in its own daemon thread (``server.py``, ``app.py``).
It reads the broker only through snapshots built on the loop (``snapshot.py``), turns them
into RabbitMQ-shaped records (``records.py``) and metrics (``metrics.py``), computes rates in
its own thread (``rates.py``), and sends commands into the loop as AMQP methods
(``commands.py``). The page itself is ``page.html``: static, offline, polling the API with
the session cookie its login form gets (``sessions.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dispatchd.admin.server import AdminServer
from dispatchd.config import addresses

if TYPE_CHECKING:
    from dispatchd.broker import Broker
    from dispatchd.config import Settings

__all__ = ["AdminServer", "start"]


def start(broker: Broker, settings: Settings) -> AdminServer | None:
    """Start the admin server on ``--bind``:``--admin-port`` (None when the port is 0).

    Call on the loop thread; exits like the AMQP listener if the port cannot be bound.
    """
    if not settings.admin_port:
        return None
    try:
        server = AdminServer(broker, addresses(settings.bind)[0], settings.admin_port)
    except OSError as exc:
        raise SystemExit(
            f"dispatchd: cannot listen on {settings.bind}:{settings.admin_port} "
            f"for the admin page: {exc}"
        ) from exc
    server.start()
    return server
