"""Artifact paths made safe before any store sees them.

Every path is relative to the store's root and uses ``/``. Absolute paths, ``..``
components, NUL bytes and backslashes are refused with INVALID_PARAMETER_VALUE, so no
request can name anything outside the artifact root. (The local store also refuses to
follow a symlink out of its root; that check needs the file system and lives there.)
"""

from __future__ import annotations

from labdeck.errors import InvalidParameter


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
    normalized = "/".join(parts)
    if not normalized and not allow_root:
        raise InvalidParameter("Invalid artifact path: a file path is required.")
    return normalized


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))
