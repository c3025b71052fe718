"""Artifact paths made safe before any store sees them.

Every path is relative to the store's root and uses ``/``. Absolute paths, ``..``
components, NUL bytes, backslashes and over-long names are refused with
INVALID_PARAMETER_VALUE, so no
request can name anything outside the artifact root. (The local store also refuses to
follow a symlink out of its root; that check needs the file system and lives there.)
"""

from __future__ import annotations

from labdeck.errors import InvalidParameter

# What file systems (and S3 keys, at 1024) allow; longer names fail deep in the store.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024


def safe_path(path: str | None, *, allow_root: bool = True) -> str:
    """The normalized relative path ("" is the root), or InvalidParameter."""
    if path is None:
        path = ""
    if not isinstance(path, str):
        raise InvalidParameter(f"Invalid artifact path {path!r}: expected a string.")
    if "\x00" in path:
        raise InvalidParameter("Invalid artifact path: it contains a NUL character.")
    if "\\" in path:
        raise InvalidParameter(f"Invalid artifact path {path!r}: backslashes are not allowed.")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise InvalidParameter(f"Invalid artifact path {path!r}: absolute paths are not allowed.")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidParameter(f"Invalid artifact path {path!r}: '..' is not allowed.")
    if any(len(p.encode()) > MAX_NAME_BYTES for p in parts):
        raise InvalidParameter(f"Invalid artifact path: a file or folder name is longer than {MAX_NAME_BYTES} bytes.")
    normalized = "/".join(parts)
    if len(normalized.encode()) > MAX_PATH_BYTES:
        raise InvalidParameter(f"Invalid artifact path: it is longer than {MAX_PATH_BYTES} bytes.")
    if not normalized and not allow_root:
        raise InvalidParameter("Invalid artifact path: a file path is required.")
    return normalized


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))
