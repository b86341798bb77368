"""Accepting AMQPS: the TLS handshake in front of a connection's protocol, on the same loop.

``loop.create_server(ssl=...)`` hides a failed handshake (no callback, a debug log line at
most), and a certificate cannot change under a running server. So the listener accepts plain
TCP and puts the loop's own SSL protocol (uvloop's, or asyncio's on another loop) in front of
each connection itself, with the context current at that moment; the AMQP protocol sees the
connection only once the handshake succeeded, and a failure reaches ``on_failure`` with the
peer and the reason.
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import uvloop
from uvloop.loop import SSLProtocol as UVSSLProtocol

from dispatchd.wire.certnames import distinguished_name

__all__ = ["SHUTDOWN_TIMEOUT", "TLSAcceptor", "endpoint", "session_info"]

SHUTDOWN_TIMEOUT = 2.0
"""Seconds a closing TLS connection waits for the peer's close_notify before the socket is cut
(the loops' default, 30 s, holds a silent peer's socket that long after its connection ended)."""


class TLSAcceptor(asyncio.Protocol):
    """One accepted TCP socket: runs the handshake, then hands over to the app protocol."""

    def __init__(
        self,
        context: Callable[[], ssl.SSLContext],
        app: Callable[[], asyncio.Protocol],
        timeout: float,
        on_failure: Callable[[str, BaseException], None],
    ) -> None:
        self._context = context
        self._app = app
        self._timeout = timeout
        self._on_failure = on_failure

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        protocol_class = UVSSLProtocol if isinstance(loop, uvloop.Loop) else sslproto.SSLProtocol
        tls = protocol_class(
            loop,
            self._app(),
            self._context(),
            waiter,
            server_side=True,
            ssl_handshake_timeout=self._timeout,
            ssl_shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        transport.set_protocol(tls)  # type: ignore[attr-defined]
        tls.connection_made(transport)
        address = endpoint(transport.get_extra_info("peername") or ("?", 0))
        waiter.add_done_callback(lambda done: self._handshake_done(address, done))

    def _handshake_done(self, peer: str, done: asyncio.Future[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            self._on_failure(peer, done.exception())  # type: ignore[arg-type]


def endpoint(address: tuple[Any, ...]) -> str:
    """A socket address as RabbitMQ writes it in connection names: ``ip:port``, an IPv6
    address in brackets."""
    host = str(address[0])
    return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"


def session_info(tls: ssl.SSLObject) -> dict[str, Any]:
    """A TLS connection's fields in the management API's connection record (RabbitMQ's
    names; the cipher as OpenSSL names it); the peer_cert_* fields for a verified peer."""
    cipher, version, _bits = tls.cipher() or ("", "", 0)
    info: dict[str, Any] = {"ssl_protocol": (version or "").lower(), "ssl_cipher": cipher}
    cert = tls.getpeercert()
    if cert:
        info["peer_cert_subject"] = distinguished_name(cert.get("subject", ()))
        info["peer_cert_issuer"] = distinguished_name(cert.get("issuer", ()))
        info["peer_cert_validity"] = f"{_iso(cert['notBefore'])} - {_iso(cert['notAfter'])}"
    return info


def _iso(when: str) -> str:
    """An OpenSSL date (``Jan  7 01:00:45 2027 GMT``) as ``2027-01-07T01:00:45Z``."""
    return f"{datetime.fromtimestamp(ssl.cert_time_to_seconds(when), UTC):%Y-%m-%dT%H:%M:%SZ}"
