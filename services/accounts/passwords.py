"""Password hashing with Argon2id; hashes only ever leave this module, never passwords."""

from __future__ import annotations

import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.core.errors import BadInput

_hasher = PasswordHasher()
MIN_LENGTH = 10


def hash_password(password: str) -> str:
    """An Argon2id hash of a password that meets the minimum length."""
    if len(password) < MIN_LENGTH:
        raise BadInput(f"a password needs at least {MIN_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(hashed: str | None, password: str) -> bool:
    """Whether the password matches; False for a missing or corrupt hash, after the same work as a real check.

    An unknown name is checked against a throw-away hash, so the time taken does not tell which names exist.
    """
    try:
        return _hasher.verify(hashed or _dummy_hash(), password) and bool(hashed)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    """A hash of a random password nobody knows, with the same parameters as real ones."""
    return _hasher.hash(secrets.token_urlsafe(24))
