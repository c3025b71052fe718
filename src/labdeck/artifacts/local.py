"""``LocalArtifactStore``: artifacts as files under one folder.

Writes go to a temporary file beside the target and are renamed into place, so a reader
never sees half a file. Every resolved path is checked to still lie under the root after
symlinks are followed, so a symlink planted inside the tree cannot lead out of it.
File I/O runs on worker threads so the event loop keeps serving while a large file moves.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from anyio import to_thread

from labdeck.artifacts.paths import safe_path
from labdeck.artifacts.store import ArtifactStore, FileInfo, FileStream
from labdeck.errors import InvalidParameter, NotFound

CHUNK = 1024 * 1024


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = self.root.resolve()
        self.root_uri = str(self.root)

    def _resolve(self, path: str, *, allow_root: bool = True) -> Path:
        relative = safe_path(path, allow_root=allow_root)
        target = self.root / relative if relative else self.root
        real = target.resolve()
        if real != self._real_root and self._real_root not in real.parents:
            raise InvalidParameter(f"Invalid artifact path {path!r}: it leads outside the artifact root.")
        return target

    async def write(self, path: str, chunks: AsyncIterator[bytes]) -> int:
        target = self._resolve(path, allow_root=False)
        if target.is_dir():
            raise InvalidParameter(f"Cannot write artifact {path!r}: a directory of that name exists.")
        try:
            await to_thread.run_sync(lambda: target.parent.mkdir(parents=True, exist_ok=True))
        except (FileExistsError, NotADirectoryError):
            raise InvalidParameter(f"Cannot write artifact {path!r}: a file stands where a directory is needed.") from None
        self._resolve(path, allow_root=False)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        size = 0
        try:
            async with await anyio.open_file(fd, "wb", closefd=True) as out:
                async for chunk in chunks:
                    size += len(chunk)
                    await out.write(chunk)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return size

    async def open(self, path: str) -> FileStream:
        target = self._resolve(path, allow_root=False)
        if not target.is_file():
            raise NotFound(f"Artifact {path!r} does not exist.")
        size = target.stat().st_size

        async def chunks() -> AsyncIterator[bytes]:
            async with await anyio.open_file(target, "rb") as f:
                while True:
                    chunk = await f.read(CHUNK)
                    if not chunk:
                        return
                    yield chunk

        return FileStream(size, chunks())

    async def list(self, path: str) -> list[FileInfo]:
        relative = safe_path(path)
        target = self._resolve(relative)
        return await to_thread.run_sync(self._list_sync, target, relative)

    def _list_sync(self, target: Path, relative: str) -> list[FileInfo]:
        if not target.is_dir():
            return []
        entries = []
        with os.scandir(target) as it:
            for entry in it:
                if entry.name.startswith(".upload-"):
                    continue
                child = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_dir():
                    entries.append(FileInfo(child, True))
                else:
                    entries.append(FileInfo(child, False, entry.stat().st_size))
        return sorted(entries, key=lambda f: f.path)

    async def delete(self, path: str) -> None:
        target = self._resolve(path, allow_root=False)
        if target.is_dir() and not target.is_symlink():
            await to_thread.run_sync(shutil.rmtree, target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        else:
            raise NotFound(f"Artifact {path!r} does not exist.")
