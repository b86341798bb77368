"""HTTPS for the admin: its server SSLContext, and what start-up says about the certificate.

RabbitMQ's management listener has ssl_opts of its own; dispatchd's admin follows the AMQP
listener's ``--tls-versions`` (every version from the oldest to the newest listed) and
``--tls-ciphers`` instead, so one TLS policy covers every port. Only the certificate and key
are the admin's own (``--admin-tls-cert``, ``--admin-tls-key``). No client certificates are
asked for: the admin authenticates users with Basic credentials or a login session.
"""

from __future__ import annotations

import datetime
import logging
import re
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from dispatchd.config import value_list

if TYPE_CHECKING:
    from dispatchd.config import Settings

__all__ = ["server_context"]

log = logging.getLogger("dispatchd.admin")

#: ``--tls-versions`` names as the ssl module's versions.
VERSIONS: dict[str, ssl.TLSVersion] = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}


def server_context(settings: Settings) -> ssl.SSLContext:
    """The admin's server context from the settings, its certificate loaded and logged.

    A certificate or key that cannot be loaded, or a cipher list OpenSSL refuses, stops
    start-up with a one-line SystemExit.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = sorted(VERSIONS[name] for name in value_list(settings.tls_versions))
    context.minimum_version, context.maximum_version = versions[0], versions[-1]
    if settings.tls_ciphers:
        try:
            context.set_ciphers(settings.tls_ciphers)
        except ssl.SSLError as exc:
            raise SystemExit(
                f"dispatchd: --tls-ciphers {settings.tls_ciphers!r}: {reason(exc)}"
            ) from exc
    _load(context, settings.admin_tls_cert, settings.admin_tls_key)
    return context


def _load(context: ssl.SSLContext, cert: str, key: str) -> None:
    """Load ``cert`` and ``key`` ('' = in the cert file) into ``context`` and log the
    certificate's subject and expiry."""
    try:
        for path in filter(None, (cert, key)):
            Path(path).read_bytes()  # so that the error names the file that cannot be read
        context.load_cert_chain(cert, key or None)
        # The one stdlib decoder of a certificate file (private, present since Python 3.2).
        decoded = ssl._ssl._test_decode_cert(cert)  # type: ignore[attr-defined]
    except OSError as exc:  # ssl.SSLError included
        raise SystemExit(
            f"dispatchd: cannot load the admin certificate {cert}: {reason(exc)}"
        ) from exc
    subject = ", ".join(f"{name}={value}" for rdn in decoded["subject"] for name, value in rdn)
    expiry = datetime.datetime.fromtimestamp(
        ssl.cert_time_to_seconds(decoded["notAfter"]), datetime.UTC
    )
    expired = expiry <= datetime.datetime.now(datetime.UTC)
    log.log(
        logging.WARNING if expired else logging.INFO,
        "admin certificate %s: subject %s, %s %s",
        cert,
        subject,
        "EXPIRED on" if expired else "expires",
        f"{expiry:%Y-%m-%d %H:%M:%S} UTC",
    )


def reason(exc: OSError) -> str:
    """An OpenSSL or OS error in one line: ``[X509: KEY_VALUES_MISMATCH] key values
    mismatch``, ``No such file or directory: 'k.pem'``, ``timed out``."""
    if isinstance(exc, ssl.SSLError):
        text = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc.args[-1]))
        if exc.reason is None and "PEM lib" in text:
            return f"no certificate or no private key in PEM ({text})"
        return text
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename!r}"
    return exc.strerror or str(exc) or type(exc).__name__
