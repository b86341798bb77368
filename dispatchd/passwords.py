"""Password hashes in RabbitMQ's format, so that they move both ways in definitions files.

RabbitMQ stores ``base64(salt + H(salt + password))`` with a 4-byte random salt and names the
hash function in ``hashing_algorithm``: ``rabbit_password_hashing_sha256`` (its default),
``rabbit_password_hashing_sha512`` and ``rabbit_password_hashing_md5`` (``rabbit_password``).
A user without a hash has no password: nobody logs in as them with PLAIN or AMQPLAIN.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable

__all__ = ["ALGORITHMS", "DEFAULT_HASHING", "UnknownHashing", "check_password", "hash_password"]

DEFAULT_HASHING = "rabbit_password_hashing_sha256"

ALGORITHMS: dict[str, Callable[[bytes], bytes]] = {
    "rabbit_password_hashing_sha256": lambda data: hashlib.sha256(data).digest(),
    "rabbit_password_hashing_sha512": lambda data: hashlib.sha512(data).digest(),
    "rabbit_password_hashing_md5": lambda data: hashlib.md5(data).digest(),  # noqa: S324
}

_SALT_SIZE = 4


class UnknownHashing(ValueError):
    """A ``hashing_algorithm`` RabbitMQ 3.10 does not have."""


def _function(algorithm: str) -> Callable[[bytes], bytes]:
    function = ALGORITHMS.get(algorithm)
    if function is None:
        raise UnknownHashing(f"unknown hashing algorithm '{algorithm}'")
    return function


def hash_password(
    password: str, algorithm: str = DEFAULT_HASHING, salt: bytes | None = None
) -> str:
    """The hash of ``password`` in RabbitMQ's format (a fresh random salt unless given)."""
    function = _function(algorithm)
    salt = os.urandom(_SALT_SIZE) if salt is None else salt
    return base64.b64encode(salt + function(salt + password.encode())).decode()


def check_password(password: str, password_hash: str, algorithm: str = DEFAULT_HASHING) -> bool:
    """Whether ``password`` matches the hash (an empty hash matches nothing)."""
    function = _function(algorithm)
    try:
        raw = base64.b64decode(password_hash, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) <= _SALT_SIZE:
        return False
    salt, digest = raw[:_SALT_SIZE], raw[_SALT_SIZE:]
    return hmac.compare_digest(digest, function(salt + password.encode()))
