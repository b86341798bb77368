"""The admin HTTP server: wsgiref with a thread per request, in its own daemon thread.

A slow or stuck HTTP client holds one request thread, never the loop. The handler keeps the
request path as the client sent it (still percent-encoded), so that ``%2F`` in
``/api/queues/%2F/q`` stays inside its segment instead of splitting the path.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from dispatchd.admin.app import AdminApp

if TYPE_CHECKING:
    from dispatchd.broker import Broker

__all__ = ["AdminServer"]

log = logging.getLogger("dispatchd.admin")

RAW_PATH = "dispatchd.raw_path"


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server with one daemon thread per request."""

    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a failed request (a client that hung up at debug level) instead of printing it."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            log.debug("admin client %s went away", client_address)
        else:
            log.warning("admin request from %s failed", client_address, exc_info=True)


class _IPv6ThreadingWSGIServer(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


class _Handler(WSGIRequestHandler):
    """Keeps the raw request path and logs requests at debug level, not to stderr."""

    def get_environ(self) -> dict[str, Any]:  # noqa: D102
        environ = super().get_environ()
        environ[RAW_PATH] = self.path.split("?", 1)[0]
        return environ

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, D102
        log.debug("%s %s", self.address_string(), format % args)


def _raw_paths(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """WSGI middleware: route on the percent-encoded path the client sent."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raw = environ.get(RAW_PATH)
        if raw and raw.startswith("/"):
            environ["PATH_INFO"] = raw
        return app(environ, start_response)

    return wsgi


class AdminServer:
    """The admin page and API for one broker, served on ``host:port`` from a daemon thread.

    Create it on the loop thread (it binds the socket at once, so a busy port fails start-up),
    ``start()`` it, and ``stop()`` it before the loop stops.
    """

    def __init__(self, broker: Broker, host: str, port: int) -> None:
        server_class = _IPv6ThreadingWSGIServer if ":" in host else _ThreadingWSGIServer
        self.app = AdminApp(broker, port)
        self.server = server_class((host, port), _Handler)
        self.server.set_app(_raw_paths(self.app.wsgi))
        self.app.port = self.port
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        """The page's URL."""
        host = self.server.server_address[0]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        """Serve from a daemon thread."""
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="admin-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting requests and close the socket (blocks up to a poll interval)."""
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=2.0)
            self._thread = None
        self.server.server_close()
