"""The artifact store interface: a tree of files under one root, addressed by safe
relative paths (see ``artifacts/paths.py``).

Implementations: ``LocalArtifactStore`` (a folder) and ``S3ArtifactStore`` (a bucket and
prefix on any S3-compatible service). Every method validates its path itself, so a caller
cannot reach outside the root by forgetting to. Reads and writes stream: no method holds
a whole file in memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

from labdeck.errors import NotImplementedByStore

_NO_MULTIPART = "Multipart upload is not supported for the current artifact repository"


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One entry of a listing; ``path`` is relative to the store root."""

    path: str
    is_dir: bool
    file_size: int | None = None


@dataclass(frozen=True, slots=True)
class PresignedPart:
    part_number: int
    url: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class FileStream:
    """An open file to send: its size and an async iterator of its bytes."""

    size: int
    chunks: AsyncIterator[bytes]


class ArtifactStore(ABC):
    #: a URI naming the root (a folder path or ``s3://bucket/prefix``)
    root_uri: str
    #: whether the multipart upload methods work (S3 only)
    supports_multipart: bool = False

    @abstractmethod
    async def write(self, path: str, chunks: AsyncIterator[bytes]) -> int:
        """Store the bytes at ``path`` (replacing any file there); returns the size.
        A partly written file never becomes visible."""

    @abstractmethod
    async def open(self, path: str) -> FileStream:
        """Open a file for reading; NotFound if it does not exist or is a directory."""

    @abstractmethod
    async def list(self, path: str) -> list[FileInfo]:
        """The immediate children of directory ``path`` ("" = root), sorted by path.
        A missing directory lists as empty; a file lists as empty."""

    @abstractmethod
    async def delete(self, path: str) -> None:
        """Delete the file or the whole directory at ``path``; NotFound if nothing is there."""

    async def create_multipart(self, path: str, num_parts: int) -> tuple[str, list[PresignedPart]]:
        """Start a multipart upload: an upload id and a presigned URL per part."""
        raise NotImplementedByStore(_NO_MULTIPART)

    async def complete_multipart(self, path: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        raise NotImplementedByStore(_NO_MULTIPART)

    async def abort_multipart(self, path: str, upload_id: str) -> None:
        raise NotImplementedByStore(_NO_MULTIPART)

    async def presigned_download(self, path: str, expires_in: int) -> tuple[str, dict[str, str], int]:
        """A URL the client may GET directly: (url, headers, file size)."""
        raise NotImplementedByStore("Presigned URLs are not supported for the current artifact repository")

    async def presigned_upload(self, path: str, expires_in: int) -> tuple[str, dict[str, str]]:
        """A URL the client may PUT the file's bytes to directly: (url, headers)."""
        raise NotImplementedByStore("Presigned URLs are not supported for the current artifact repository")

    async def close(self) -> None:
        """Release clients and threads."""
