"""Opaque page tokens: a URL-safe encoding of the offset, checked on the way back in.

MLflow's SQL store uses offsets too; the tokens are labdeck's own (an offset and a hash of
the offset with the query they belong to), so a token from another query, or one whose
offset was edited, is refused instead of silently paging something else.
"""

from __future__ import annotations

import base64
import hashlib

import orjson

from labdeck.errors import InvalidParameter


def _fingerprint(query: object) -> str:
    return hashlib.blake2s(orjson.dumps(query, default=str), digest_size=6).hexdigest()


def make_token(offset: int, query: object) -> str:
    raw = orjson.dumps({"offset": offset, "q": _fingerprint([offset, query])})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_token(token: str | None, query: object) -> int:
    """The offset a token stands for; 0 for no token."""
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        offset = data["offset"]
        fingerprint = data["q"]
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise InvalidParameter(f"Invalid page token {token!r}: it was not issued by this server.") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidParameter(f"Invalid page token {token!r}: bad offset.")
    if fingerprint != _fingerprint([offset, query]):
        raise InvalidParameter("Invalid page token: it belongs to a different search (filter, order or experiments changed).")
    return offset
