"""TLS contexts from the settings, what their certificates say, and reloading them.

One server context serves every AMQPS socket; SIGHUP builds a new one from the same files and
swaps it in only if it loads, so new connections use the new certificate, live ones keep
theirs, and a bad file changes nothing.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dispatchd.config import Settings, value_list
from dispatchd.wire.certnames import distinguished_name

__all__ = ["CertificateError", "Certificate", "ServerTLS", "server_context"]

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
            decoded: dict[str, Any] = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
        except (OSError, ssl.SSLError) as exc:
            raise CertificateError(f"cannot read certificate {path}: {_reason(exc)}") from None
        not_after = datetime.fromtimestamp(ssl.cert_time_to_seconds(decoded["notAfter"]), UTC)
        return cls(distinguished_name(decoded.get("subject", ())), not_after)

    def describe(self) -> str:
        """``subject CN=...; expires 2027-01-07 01:00 UTC``, noting an expired one."""
        expired = " (EXPIRED)" if self.not_after <= datetime.now(UTC) else ""
        return f"subject {self.subject}, expires {self.not_after:%Y-%m-%d %H:%M} UTC{expired}"


def _reason(exc: BaseException) -> str:
    """An OSError or SSLError as one short line."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"{exc.library or 'SSL'}: {exc.reason}".replace("_", " ").lower()
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


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
    try:
        context.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as exc:
        files = f"{cert} and key {key}" if key else cert
        raise CertificateError(f"cannot load certificate {files}: {_reason(exc)}") from None
    if ca:
        try:
            context.load_verify_locations(ca)
        except (OSError, ssl.SSLError) as exc:
            raise CertificateError(f"cannot load CA file {ca}: {_reason(exc)}") from None
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
    """The AMQPS listener's context, built from the settings and rebuilt by ``reload``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context = self._build()
        self.certificate = Certificate.read(settings.tls_cert)

    def _build(self) -> ssl.SSLContext:
        s = self.settings
        return server_context(
            s.tls_cert,
            s.tls_key,
            s.tls_ca,
            s.tls_verify,
            s.tls_fail_if_no_peer_cert,
            s.tls_versions,
            s.tls_ciphers,
        )

    def describe(self) -> str:
        """The settings start-up logs beside the listener."""
        s = self.settings
        verify = "peer" + (", fail_if_no_peer_cert" if s.tls_fail_if_no_peer_cert else "")
        return (
            f"versions {s.tls_versions}, verify {verify if s.tls_verify == 'peer' else 'none'}, "
            f"certificate {s.tls_cert}: {self.certificate.describe()}"
        )

    def reload(self) -> bool:
        """Read the files again; keep the old context (and log why) if they do not load."""
        try:
            context, certificate = self._build(), Certificate.read(self.settings.tls_cert)
        except CertificateError as exc:
            log.error("TLS certificate not reloaded, keeping the old one: %s", exc)
            return False
        self.context, self.certificate = context, certificate
        log.info("TLS certificate reloaded: %s", certificate.describe())
        return True
