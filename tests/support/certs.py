"""Certificates made for the test session: nothing in the repository can expire.

One CA signs the server certificate (``localhost``, 127.0.0.1, ::1), a client certificate and
an expired client certificate; a second CA signs a client certificate the first CA does not
know. Every file is PEM; keys are unencrypted and live beside their certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

__all__ = ["Certs", "Pair", "make_certs"]

UPN = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
"""Microsoft's user principal name: the usual otherName alternative name (client@upn.example)."""

CLIENT_SUBJECT = "CN=client,OU=tests,O=dispatchd"
"""The client certificate's subject in RFC 4514 order (RabbitMQ's distinguished_name form)."""


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Certs:
    """Every file a TLS test needs."""

    ca: Path  # the CA that signed server, client and expired
    server: Pair
    client: Pair  # subject CLIENT_SUBJECT; SANs client.example, client@example.com, UPN
    expired: Pair  # signed by ca, not valid since yesterday
    stranger: Pair  # a client certificate from another CA
    other_ca: Path


def _name(**attributes: str) -> x509.Name:
    oids = {"CN": NameOID.COMMON_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME}
    oids["O"] = NameOID.ORGANIZATION_NAME
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in attributes.items()])


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Pair:
    pair = Pair(directory / f"{stem}.pem", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pair


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    san: list[x509.GeneralName] | None = None,
    usage: x509.ObjectIdentifier | None = None,
    days: tuple[int, int] = (-1, 30),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _ca(
    directory: Path, stem: str, common_name: str
) -> tuple[Path, x509.Name, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(CN=common_name, O="dispatchd tests")
    pair = _write(directory, stem, _certificate(name, key, name, key, ca=True, days=(-1, 60)), key)
    return pair.cert, name, key


def _leaf(
    directory: Path,
    stem: str,
    subject: x509.Name,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey],
    **kwargs: object,
) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    return _write(directory, stem, _certificate(subject, key, *issuer, **kwargs), key)  # type: ignore[arg-type]


def make_certs(directory: Path) -> Certs:
    """Create the CAs, server and client certificates in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_name, ca_key = _ca(directory, "ca", "dispatchd test CA")
    other_ca, other_name, other_key = _ca(directory, "other-ca", "another CA")
    server = _leaf(
        directory,
        "server",
        _name(CN="localhost", O="dispatchd"),
        (ca_name, ca_key),
        san=[
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ],
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    upn = b"client@upn.example"
    client_san = [
        x509.DNSName("client.example"),
        x509.RFC822Name("client@example.com"),
        x509.OtherName(UPN, b"\x0c" + bytes([len(upn)]) + upn),  # a UTF8String
    ]
    client = _leaf(
        directory,
        "client",
        _name(O="dispatchd", OU="tests", CN="client"),
        (ca_name, ca_key),
        san=client_san,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    expired = _leaf(
        directory,
        "expired",
        _name(O="dispatchd", CN="expired"),
        (ca_name, ca_key),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        days=(-30, -1),
    )
    stranger = _leaf(
        directory,
        "stranger",
        _name(O="elsewhere", CN="stranger"),
        (other_name, other_key),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    return Certs(ca, server, client, expired, stranger, other_ca)
