"""The admin HTTP(S) server: wsgiref with a thread per request, one socket per address.

Each ``--bind`` address gets its own listening socket served from its own daemon thread (IPv6
sockets are IPv6-only, so ``0.0.0.0,::`` can share a port); all serve one app. A slow or stuck
HTTP client holds one request thread, never the loop. With TLS the accept loop only wraps the
socket; the handshake runs in the request thread under ``--tls-handshake-timeout``, so a
client that connects and sends nothing holds its own thread only, and a failed handshake
closes that socket with one log line. The handler keeps the request path as the client sent
it (still percent-encoded), so that ``%2F`` in ``/api/queues/%2F/q`` stays inside its segment
instead of splitting the path.
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from dispatchd.admin.app import AdminApp
from dispatchd.tls import ServerTLS, reason
from dispatchd.wire.tls import endpoint

if TYPE_CHECKING:
    from dispatchd.broker import Broker

__all__ = ["AdminServer"]

log = logging.getLogger("dispatchd.admin")

RAW_PATH = "dispatchd.raw_path"


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server with one daemon thread per request."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 refuses a burst of connections
    tls: ServerTLS | None = None  # set before serving: HTTPS only, its context current
    handshake_timeout = 5.0

    def server_bind(self) -> None:
        """Bind, an IPv6 socket for IPv6 only (``::`` leaves IPv4 to ``0.0.0.0``)."""
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept; with TLS, wrap the socket without a handshake (that waits for its thread)."""
        sock, peer = super().get_request()
        if self.tls is None:
            return sock, peer
        context = self.tls.context
        return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), peer

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve the request (in its own thread), after the TLS handshake if there is one."""
        if isinstance(request, ssl.SSLSocket) and not self._handshake(request, client_address):
            return  # process_request_thread closes the socket
        super().finish_request(request, client_address)

    def _handshake(self, sock: ssl.SSLSocket, peer: Any) -> bool:
        """The TLS handshake within ``handshake_timeout``; False (logged) when it fails."""
        sock.settimeout(self.handshake_timeout)
        try:
            sock.do_handshake()
        except TimeoutError:
            log.warning(
                "admin TLS handshake with %s failed: no handshake within %ss",
                endpoint(peer),
                self.handshake_timeout,
            )
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError):  # a port probe, too
            log.debug("admin TLS connection from %s closed before the handshake", endpoint(peer))
        except OSError as exc:  # ssl.SSLError included: plain HTTP, no shared version
            log.warning("admin TLS handshake with %s failed: %s", endpoint(peer), reason(exc))
        else:
            sock.settimeout(None)
            return True
        return False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a failed request (a client that hung up at debug level) instead of printing it."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            log.debug("admin client %s went away", client_address)
        else:
            log.warning("admin request from %s failed", client_address, exc_info=True)


class _IPv6ThreadingWSGIServer(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


class _Handler(WSGIRequestHandler):
    """Keeps the raw request path, marks HTTPS for wsgiref (``wsgi.url_scheme``) and logs
    requests at debug level, not to stderr."""

    def get_environ(self) -> dict[str, Any]:  # noqa: D102
        environ = super().get_environ()
        environ[RAW_PATH] = self.path.split("?", 1)[0]
        if isinstance(self.connection, ssl.SSLSocket):
            environ["HTTPS"] = "on"
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
    """The admin page and API for one broker, served on ``hosts`` x ``port`` from daemon
    threads, over HTTPS when given ``tls``.

    Create it on the loop thread (it binds every socket at once, so a busy port fails
    start-up), ``start()`` it, and ``stop()`` it before the loop stops.
    """

    def __init__(
        self,
        broker: Broker,
        hosts: list[str],
        port: int,
        tls: ServerTLS | None = None,
        handshake_timeout: float = 5.0,
    ) -> None:
        self.app = AdminApp(broker, port)
        self.scheme = "http" if tls is None else "https"
        self.servers: list[_ThreadingWSGIServer] = []
        self._threads: list[threading.Thread] = []
        try:
            for host in hosts:  # port 0: the others take the port the first one got
                self.servers.append(self._bind(host, self.port if self.servers else port))
        except OSError:
            self.stop()
            raise
        for server in self.servers:
            server.tls, server.handshake_timeout = tls, handshake_timeout
            server.set_app(_raw_paths(self.app.wsgi))
        self.app.port = self.port

    @staticmethod
    def _bind(host: str, port: int) -> _ThreadingWSGIServer:
        server_class = _IPv6ThreadingWSGIServer if ":" in host else _ThreadingWSGIServer
        return server_class((host, port), _Handler)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Every socket's ``(ip, port)``, in ``--bind`` order."""
        return [(str(s.server_address[0]), int(s.server_address[1])) for s in self.servers]

    @property
    def port(self) -> int:
        """The port actually bound."""
        return self.addresses[0][1]

    @property
    def url(self) -> str:
        """The page's URL on the first address."""
        host = self.addresses[0][0]
        host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{host}:{self.port}/"

    def start(self) -> None:
        """Serve each socket from a daemon thread."""
        for server in self.servers:
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"admin-{self.scheme}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop accepting requests and close the sockets (blocks up to a poll interval)."""
        for server, _ in zip(self.servers, self._threads, strict=False):  # the started ones
            server.shutdown()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads = []
        for server in self.servers:
            server.server_close()
