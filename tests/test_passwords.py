"""Password hashes as RabbitMQ 3.10 makes them (the vectors were made by a real RabbitMQ)."""

from __future__ import annotations

import pytest

from dispatchd.passwords import UnknownHashing, check_password, hash_password

# Recorded from Debian's rabbitmq-server 3.10.8: `rabbitmqctl export_definitions` after
# `add_user`, and `rabbit_password:hash(Module, Password)` through `rabbitmqctl eval`.
RECORDED = [
    ("guest", "SSKsyTg+Vesm+yG6ROVYKngQegac6riYpEKyW0F0Te4F6tts", "rabbit_password_hashing_sha256"),
    (
        "s3cret-pässword",
        "5VNws4AZnkt/Fd5S6mIz2m34AJ6Q7kQ2TJquEtJ4sFHuBJJW",
        "rabbit_password_hashing_sha256",
    ),
    (
        "s3cret-pw-sha512",
        "RJob0BirJ+QCX2Su/R/aOvQDQxgQ0GBxnNo92N/OSr805t8ett6U/lTyI/SAus3dQFrpsvsjYiIhKkrod/BEgaANmU0=",
        "rabbit_password_hashing_sha512",
    ),
    ("s3cret-pw-md5", "oOdh8YFk1Iiankp/BRM+IHPYjF8=", "rabbit_password_hashing_md5"),
]


@pytest.mark.parametrize(("password", "password_hash", "algorithm"), RECORDED)
def test_rabbitmq_hashes_verify(password, password_hash, algorithm):
    assert check_password(password, password_hash, algorithm)
    assert not check_password(password + "x", password_hash, algorithm)


@pytest.mark.parametrize(("password", "password_hash", "algorithm"), RECORDED)
def test_our_hashes_are_rabbitmqs(password, password_hash, algorithm):
    import base64

    salt = base64.b64decode(password_hash)[:4]
    assert hash_password(password, algorithm, salt) == password_hash
    fresh = hash_password(password, algorithm)
    assert fresh != hash_password(password, algorithm)  # a random salt each time
    assert check_password(password, fresh, algorithm)


def test_empty_malformed_and_unknown():
    assert not check_password("", "")  # a passwordless user matches nothing
    assert not check_password("guest", "not base64!")
    assert not check_password("guest", "AAAA")  # a salt and no digest
    with pytest.raises(UnknownHashing, match="unknown hashing algorithm 'rabbit_password_x'"):
        check_password("guest", RECORDED[0][1], "rabbit_password_x")
    with pytest.raises(UnknownHashing):
        hash_password("guest", "bcrypt")
