"""User names from a verified client certificate, formed exactly as RabbitMQ forms them.

SASL EXTERNAL (RabbitMQ's ``rabbitmq_auth_mechanism_ssl``) names the user after the client
certificate; ``ssl_cert_login_from`` chooses how (``rabbit_ssl:peer_cert_auth_name``):

- ``distinguished_name``: the subject as ``rabbit_cert_info:format_rdn_sequence`` writes it,
  RFC 4514 style: RDNs last first, joined by ``,``, multi-valued RDNs by ``+``, RabbitMQ's
  attribute names (an unknown attribute as its dotted OID) and its escaping;
- ``common_name``: every CN of the subject, joined by ``,``;
- ``subject_alternative_name``: the ``ssl_cert_login_san_index``-th (from 0) alternative name
  of ``ssl_cert_login_san_type``.

The certificate is the dict ``ssl.SSLObject.getpeercert()`` returns for a verified peer;
``otherName`` alternative names, which that dict leaves out, are read from its DER form.
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


def subject_alternative_name(cert: dict[str, Any], der: bytes, kind: str, index: int) -> str:
    """The ``index``-th (from 0) alternative name of RabbitMQ's type ``kind``."""
    if kind == "other_name":
        names = other_names(der)
    else:
        names = [v for k, v in cert.get("subjectAltName", ()) if k == SAN_TYPES[kind]]
    if index >= len(names):
        raise NoName("no name found")
    return names[index]


def user_name(
    cert: dict[str, Any], der: bytes, login_from: str, san_type: str, san_index: int
) -> str:
    """The user a verified certificate (``cert`` and its DER bytes) logs in as, by
    ``--tls-cert-login-from``."""
    subject = cert.get("subject", ())
    if login_from == "common_name":
        return common_name(subject)
    if login_from == "subject_alternative_name":
        return subject_alternative_name(cert, der, san_type, san_index)
    return distinguished_name(subject)


# ----- otherName alternative names, from the DER certificate

_SAN_OID = bytes.fromhex("551d11")  # 2.5.29.17, subjectAltName
#: The string types RabbitMQ's ``sanitize_other_name`` decodes (as a DirectoryString).
_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be", 0x1C: "utf-32-be"}


def _tlv(der: bytes, at: int) -> tuple[int, int, int]:
    """The (tag, content start, content end) of the DER element at ``at``."""
    tag, length = der[at], der[at + 1]
    start = at + 2
    if length & 0x80:
        size = length & 0x7F
        length, start = int.from_bytes(der[start : start + size], "big"), start + size
    return tag, start, start + length


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        out.append(_tlv(der, start))
        start = out[-1][2]
    return out


def other_names(der: bytes) -> list[str]:
    """The values of the certificate's ``otherName`` alternative names, as strings."""
    try:
        _, start, end = _tlv(der, 0)  # Certificate
        _, start, end = _tlv(der, start)  # TBSCertificate
        tagged = [child for child in _children(der, start, end) if child[0] == 0xA3]
        if not tagged:
            return []
        _, start, end = _tlv(der, tagged[0][1])  # Extensions
        names: list[str] = []
        for _, ext_start, ext_end in _children(der, start, end):
            parts = _children(der, ext_start, ext_end)
            if der[parts[0][1] : parts[0][2]] != _SAN_OID:
                continue
            _, start, end = _tlv(der, parts[-1][1])  # GeneralNames, inside the OCTET STRING
            for tag, name_start, name_end in _children(der, start, end):
                if tag == 0xA0:  # otherName: type-id, [0] EXPLICIT value
                    value = _children(der, name_start, name_end)[1]
                    kind, v_start, v_end = _tlv(der, value[1])
                    names.append(der[v_start:v_end].decode(_STRINGS.get(kind, "latin-1")))
        return names
    except (IndexError, UnicodeDecodeError):
        return []
