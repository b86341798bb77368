"""The admin page, the RabbitMQ-compatible management API and Prometheus ``/metrics``.

A Bottle app on a threaded WSGI server in its own daemon thread (``server.py``, ``app.py``).
It reads the broker only through snapshots built on the loop (``snapshot.py``), turns them
into RabbitMQ-shaped records (``records.py``) and metrics (``metrics.py``), computes rates in
its own thread (``rates.py``), and sends commands into the loop as AMQP methods
(``commands.py``). The page itself is ``page.html``: static, offline, polling the API with
the session cookie its login form gets (``sessions.py``). With ``--admin-tls-cert`` it is
served over HTTPS only (``dispatchd/tls.py`` builds its context).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dispatchd.admin.server import AdminServer
from dispatchd.config import addresses

if TYPE_CHECKING:
    from dispatchd.broker import Broker
    from dispatchd.config import Settings
    from dispatchd.tls import ServerTLS

__all__ = ["AdminServer", "start"]


def start(broker: Broker, settings: Settings, tls: ServerTLS | None) -> AdminServer | None:
    """Start the admin server on every ``--bind`` address at ``--admin-port`` (None when the
    port is 0), over HTTPS with ``tls`` (``--admin-tls-cert``).

    Call on the loop thread; exits like the AMQP listener if a socket cannot be bound.
    """
    if not settings.admin_port:
        return None
    try:
        server = AdminServer(
            broker,
            addresses(settings.bind),
            settings.admin_port,
            tls,
            settings.tls_handshake_timeout,
        )
    except OSError as exc:
        raise SystemExit(
            f"dispatchd: cannot listen on {settings.bind}:{settings.admin_port} "
            f"for the admin page: {exc}"
        ) from exc
    server.start()
    return server
