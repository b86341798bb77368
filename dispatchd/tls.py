"""TLS contexts from the settings, what their certificates say, and reloading them.

One server context serves every AMQPS socket, another the admin's HTTPS ones (the admin
follows ``--tls-versions`` and ``--tls-ciphers`` too, so one policy covers every port, and
asks for no client certificate: it authenticates with Basic or a login session). SIGHUP builds
new contexts from the same files and swaps each in only if it loads, so new connections use the
new certificate, live ones keep theirs, and a bad file changes nothing.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from dispatchd.config import Settings, value_list
from dispatchd.wire.certnames import distinguished_name

__all__ = ["Certificate", "CertificateError", "ServerTLS", "reason", "server_context"]

log = logging.getLogger("dispatchd.tls")

#: RabbitMQ's names for TLS versions (``ssl_options.versions``).
VERSIONS = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}
#: OpenSSL 3 refuses TLS 1.0 and 1.1 at its default security level; naming them turns it off.
LEGACY_CIPHERS = "DEFAULT:@SECLEVEL=0"


class CertificateError(Exception):
    """A certificate, key or CA file that cannot be used; the message is one line."""


@dataclass(frozen=True, slots=True)
class Certificate:
    """What start-up logs of a certificate."""

    subject: str
    not_after: datetime

    @classmethod
    def read(cls, path: str) -> Certificate:
        """The first certificate of a PEM file (CertificateError if it does not parse)."""
        try:
            # The standard library's one decoder of a certificate file (private, since 3.2).
            decoded: dict[str, Any] = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
        except OSError as exc:  # ssl.SSLError included
            raise CertificateError(f"cannot read certificate {path}: {reason(exc)}") from None
        not_after = datetime.fromtimestamp(ssl.cert_time_to_seconds(decoded["notAfter"]), UTC)
        return cls(distinguished_name(decoded.get("subject", ())), not_after)

    def describe(self) -> str:
        """``subject CN=...; expires 2027-01-07 01:00 UTC``, noting an expired one."""
        expired = " (EXPIRED)" if self.not_after <= datetime.now(UTC) else ""
        return f"subject {self.subject}, expires {self.not_after:%Y-%m-%d %H:%M} UTC{expired}"


def reason(exc: OSError) -> str:
    """An OpenSSL or OS error in one line: ``[X509: KEY_VALUES_MISMATCH] key values
    mismatch``, ``No such file or directory``, ``timed out``."""
    if isinstance(exc, ssl.SSLError):
        text = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc.args[-1]))
        if exc.reason is None and "PEM lib" in text:
            return f"no certificate or no private key in PEM ({text})"
        return text
    return exc.strerror or str(exc) or type(exc).__name__


def server_context(
    cert: str,
    key: str,
    ca: str = "",
    verify: str = "none",
    fail_if_no_peer_cert: bool = False,
    versions: str = "tlsv1.2,tlsv1.3",
    ciphers: str = "",
) -> ssl.SSLContext:
    """A server-side context as RabbitMQ's ``ssl_options`` describe it (CertificateError with
    the file and the reason when one cannot be used)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    chosen = sorted(VERSIONS[v] for v in value_list(versions))
    context.minimum_version, context.maximum_version = chosen[0], chosen[-1]
    for skipped in set(VERSIONS.values()) - set(chosen):
        if chosen[0] < skipped < chosen[-1]:
            context.options |= _NO_VERSION[skipped]
    try:
        if ciphers or chosen[0] < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers(ciphers or LEGACY_CIPHERS)
    except ssl.SSLError:
        raise CertificateError(f"no usable cipher in --tls-ciphers {ciphers!r}") from None
    for path in filter(None, (cert, key, ca)):
        try:
            Path(path).read_bytes()  # so that the error names the file that cannot be read
        except OSError as exc:
            raise CertificateError(f"cannot read {path}: {reason(exc)}") from None
    try:
        context.load_cert_chain(cert, key or None)
    except OSError as exc:
        files = f"{cert} and key {key}" if key else cert
        raise CertificateError(f"cannot load certificate {files}: {reason(exc)}") from None
    if ca:
        try:
            context.load_verify_locations(ca)
        except OSError as exc:
            raise CertificateError(f"cannot load CA file {ca}: {reason(exc)}") from None
    if verify == "peer":
        if not ca:
            raise CertificateError("--tls-verify peer needs --tls-ca to verify clients with")
        context.verify_mode = ssl.CERT_REQUIRED if fail_if_no_peer_cert else ssl.CERT_OPTIONAL
    return context


_NO_VERSION = {
    ssl.TLSVersion.TLSv1_1: ssl.Options.OP_NO_TLSv1_1,
    ssl.TLSVersion.TLSv1_2: ssl.Options.OP_NO_TLSv1_2,
}


class ServerTLS:
    """A listener's context (``context``), built by ``build`` and rebuilt by ``reload``."""

    def __init__(self, name: str, cert: str, build: Callable[[], ssl.SSLContext]) -> None:
        self.name = name
        self.cert = cert
        self._build = build
        self.context = build()
        self.certificate = Certificate.read(cert)

    @classmethod
    def amqp(cls, s: Settings) -> ServerTLS:
        """The AMQPS listener's, from ``--tls-*``."""
        build = partial(
            server_context,
            s.tls_cert,
            s.tls_key,
            s.tls_ca,
            s.tls_verify,
            s.tls_fail_if_no_peer_cert,
            s.tls_versions,
            s.tls_ciphers,
        )
        return cls("AMQPS", s.tls_cert, build)

    @classmethod
    def admin(cls, s: Settings) -> ServerTLS:
        """The admin's HTTPS, from ``--admin-tls-cert`` / ``--admin-tls-key``."""
        build = partial(
            server_context,
            s.admin_tls_cert,
            s.admin_tls_key,
            versions=s.tls_versions,
            ciphers=s.tls_ciphers,
        )
        return cls("admin", s.admin_tls_cert, build)

    def describe(self) -> str:
        """``certificate PATH: subject ..., expires ...``, as start-up logs it."""
        return f"certificate {self.cert}: {self.certificate.describe()}"

    def reload(self) -> bool:
        """Read the files again; keep the old context (and log why) if they do not load."""
        try:
            context, certificate = self._build(), Certificate.read(self.cert)
        except CertificateError as exc:
            log.error("%s certificate not reloaded, keeping the old one: %s", self.name, exc)
            return False
        self.context, self.certificate = context, certificate
        log.info("%s certificate reloaded: %s", self.name, certificate.describe())
        return True
