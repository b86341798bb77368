"""EXTERNAL's user names: RabbitMQ's ``rabbit_cert_info`` formatting, on getpeercert dicts."""

from __future__ import annotations

import ssl

import pytest

from dispatchd.wire.certnames import NoName, distinguished_name, other_names, user_name
from tests.support.certs import Certs

CERT = {
    "subject": (
        (("countryName", "DE"),),
        (("organizationName", "Acme, Inc."),),
        (("organizationalUnitName", "ops"), ("userId", "42")),
        (("commonName", "#worker "),),
        (("commonName", "second"),),
    ),
    "subjectAltName": (("DNS", "a.example"), ("email", "x@example"), ("DNS", "b.example")),
}


def test_distinguished_name_is_reversed_escaped_and_uses_rabbitmq_names() -> None:
    assert distinguished_name(CERT["subject"]) == (
        "CN=second,CN=\\#worker\\ ,OU=ops+UID=42,O=Acme\\, Inc.,C=DE"
    )


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (" lead", "\\ lead"),
        ('a+b;c<d>e"f\\g', 'a\\+b\\;c\\<d\\>e\\"f\\\\g'),
        ("caf\u00e9", "caf\\C3\\A9"),  # UTF-8 bytes from 126 up, as RabbitMQ escapes them
        ("tab\there", "tab\\09here"),
        ("mid space", "mid space"),
    ],
)
def test_values_are_escaped_as_rabbitmq_escapes_them(value: str, written: str) -> None:
    assert distinguished_name(((("commonName", value),),)) == f"CN={written}"


def test_an_attribute_rabbitmq_does_not_name_is_its_dotted_oid() -> None:
    assert distinguished_name(((("businessCategory", "x"),),)) == "2.5.4.15=x"


def test_common_name_and_subject_alternative_names() -> None:
    assert user_name(CERT, b"", "common_name", "dns", 0) == "#worker ,second"
    assert user_name(CERT, b"", "subject_alternative_name", "dns", 1) == "b.example"
    assert user_name(CERT, b"", "subject_alternative_name", "email", 0) == "x@example"
    with pytest.raises(NoName, match="no name found"):
        user_name(CERT, b"", "subject_alternative_name", "uri", 0)
    with pytest.raises(NoName):
        user_name({"subject": ()}, b"", "common_name", "dns", 0)


def test_other_names_are_read_from_the_der_certificate(certs: Certs) -> None:
    der = ssl.PEM_cert_to_DER_cert(certs.client.cert.read_text())
    assert other_names(der) == ["client@upn.example"]
    assert user_name({}, der, "subject_alternative_name", "other_name", 0) == "client@upn.example"
    server = ssl.PEM_cert_to_DER_cert(certs.server.cert.read_text())
    assert other_names(server) == []
