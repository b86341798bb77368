"""User names from a verified client certificate, formed exactly as RabbitMQ forms them.

SASL EXTERNAL (RabbitMQ's ``rabbitmq_auth_mechanism_ssl``) names the user after the client
certificate; ``ssl_cert_login_from`` chooses how (``rabbit_ssl:peer_cert_auth_name``):

- ``distinguished_name``: the subject as ``rabbit_cert_info:format_rdn_sequence`` writes it,
  RFC 4514 style: RDNs last first, joined by ``,``, multi-valued RDNs by ``+``, RabbitMQ's
  attribute names (an unknown attribute as its dotted OID) and its escaping;
- ``common_name``: every CN of the subject, joined by ``,``;
- ``subject_alternative_name``: the ``ssl_cert_login_san_index``-th (from 0) alternative name
  of ``ssl_cert_login_san_type``.

The certificate is the dict ``ssl.SSLObject.getpeercert()`` returns for a verified peer.
"""

from __future__ import annotations

import ssl
from typing import Any

__all__ = ["NoName", "common_name", "distinguished_name", "subject_alternative_name", "user_name"]

#: OpenSSL's long attribute names (as ``getpeercert`` gives them) -> RabbitMQ's names.
ATTRIBUTES = {
    "surname": "SN",
    "givenName": "GIVENNAME",
    "initials": "INITIALS",
    "generationQualifier": "GENERATIONQUALIFIER",
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "title": "TITLE",
    "countryName": "C",
    "serialNumber": "SERIALNUMBER",
    "pseudonym": "PSEUDONYM",
    "domainComponent": "DC",
    "emailAddress": "EMAILADDRESS",
    "streetAddress": "STREET",
    "userId": "UID",
}

#: RabbitMQ's ``ssl_cert_login_san_type`` values -> ``getpeercert``'s names for them.
SAN_TYPES = {"dns": "DNS", "ip": "IP Address", "email": "email", "uri": "URI"}
SAN_TYPES["other_name"] = "othername"

_SPECIAL = frozenset(b'"+,;<>\\')


class NoName(ValueError):
    """The certificate holds no name of the kind asked for (RabbitMQ: "no name found")."""


def _attribute_name(name: str) -> str:
    known = ATTRIBUTES.get(name)
    if known is not None:
        return known
    try:
        return ssl._ssl.txt2obj(name, name=True)[3]  # type: ignore[attr-defined]
    except ValueError:
        return name  # already a dotted OID


def _escape(value: str) -> str:
    """``rabbit_cert_info:escape_rdn_value``: on the value's UTF-8 bytes, a leading space or
    ``#``, a trailing space and ``"+,;<>\\`` get a backslash; bytes below 32 or from 126 up
    are written ``\\XX``."""
    data = value.encode()
    out = []
    for i, byte in enumerate(data):
        if (i == 0 and byte in b" #") or byte in _SPECIAL or (byte == 32 and i == len(data) - 1):
            out.append("\\" + chr(byte))
        elif byte < 32 or byte >= 126:
            out.append(f"\\{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


def distinguished_name(subject: tuple[Any, ...]) -> str:
    """A ``getpeercert()`` subject (or issuer) as RabbitMQ's RFC 4514-style string."""
    rdns = ("+".join(f"{_attribute_name(k)}={_escape(v)}" for k, v in rdn) for rdn in subject)
    return ",".join(reversed(list(rdns)))


def common_name(subject: tuple[Any, ...]) -> str:
    """Every common name of ``subject``, joined by ``,`` (NoName when there is none)."""
    names = [v for rdn in subject for k, v in rdn if k == "commonName"]
    if not names:
        raise NoName("no name found")
    return ",".join(names)


def subject_alternative_name(cert: dict[str, Any], kind: str, index: int) -> str:
    """The ``index``-th (from 0) alternative name of RabbitMQ's type ``kind``."""
    wanted = SAN_TYPES[kind]
    names = [v for k, v in cert.get("subjectAltName", ()) if k == wanted]
    if index >= len(names):
        raise NoName("no name found")
    return names[index]


def user_name(cert: dict[str, Any], login_from: str, san_type: str, san_index: int) -> str:
    """The user a verified certificate logs in as, by ``--tls-cert-login-from``."""
    subject = cert.get("subject", ())
    if login_from == "common_name":
        return common_name(subject)
    if login_from == "subject_alternative_name":
        return subject_alternative_name(cert, san_type, san_index)
    return distinguished_name(subject)
