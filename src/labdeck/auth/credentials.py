"""The secrets labdeck hands out and checks: API tokens, session ids and their signatures,
CSRF tokens and password hashes. Only digests are ever stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "ldk_"
_hasher = PasswordHasher()  # argon2id with the library's recommended costs


def digest(secret: str) -> str:
    """SHA-256 hex of a high-entropy secret (tokens, session ids): what the database keeps."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def looks_like_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX) and len(value) > 20


def new_id() -> str:
    return secrets.token_urlsafe(32)


def sign(value: str, key: bytes) -> str:
    """``value.signature``: what goes in a cookie, so forged values never reach the database."""
    mac = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{value}.{mac}"


def unsign(signed: str, key: bytes) -> str | None:
    if not signed.isascii():  # never signed here (and compare_digest refuses non-ASCII str)
        return None
    value, _, mac = signed.rpartition(".")
    if not value or not hmac.compare_digest(sign(value, key), signed):
        return None
    return value


def hash_password(password: str) -> str:
    return _hasher.hash(password)


_stand_in: list[str] = []


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches. Without a hash (no such user, or no password) a
    stand-in hash is verified all the same, so that both answers take as long."""
    if not password_hash:
        if not _stand_in:
            _stand_in.append(_hasher.hash(secrets.token_urlsafe(16)))
        _verify(_stand_in[0], password)
        return False
    return _verify(password_hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
