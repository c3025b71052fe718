"""The artifact store contract: the same behaviour from ``LocalArtifactStore`` (a folder)
and ``S3ArtifactStore`` (a bucket and prefix on moto's S3 server).

Each store lives under a root with neighbours outside it (a sibling whose name shares the
root's prefix, and an unrelated file); every test ends by checking that nothing outside
the root changed, so no method can escape the root without a test noticing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labdeck.artifacts.local import LocalArtifactStore
from labdeck.artifacts.s3 import S3ArtifactStore
from labdeck.artifacts.store import ArtifactStore, FileInfo
from labdeck.errors import InvalidParameter, NotFound

MiB = 1024 * 1024
TRAVERSALS = ["../x", "..", "a/../../x", "a/..", "/etc/passwd", "C:/x", "a\\b", "a\x00b"]


@dataclass
class Subject:
    store: ArtifactStore
    outside: Callable[[], set[str]]
    """Everything that exists outside the store's root, as names with their sizes."""


def run(coroutine):
    return asyncio.run(coroutine)


async def chunked(data: bytes, sizes: tuple[int, ...] = (65536,)) -> AsyncIterator[bytes]:
    """``data`` in chunks whose sizes cycle through ``sizes``."""
    position, turn = 0, 0
    while position < len(data):
        size = sizes[turn % len(sizes)]
        yield data[position : position + size]
        position += size
        turn += 1


async def failing_after(data: bytes) -> AsyncIterator[bytes]:
    async for chunk in chunked(data):
        yield chunk
    raise RuntimeError("the client went away")


def write(store: ArtifactStore, path: str, data: bytes, sizes: tuple[int, ...] = (65536,)) -> int:
    return run(store.write(path, chunked(data, sizes)))


def read(store: ArtifactStore, path: str) -> tuple[int, bytes]:
    async def go() -> tuple[int, bytes]:
        stream = await store.open(path)
        return stream.size, b"".join([chunk async for chunk in stream.chunks])

    return run(go())


def listing(store: ArtifactStore, path: str) -> list[FileInfo]:
    return run(store.list(path))


def local_subject(tmp_path: Path) -> Subject:
    (tmp_path / "root-sibling").mkdir()
    (tmp_path / "root-sibling" / "keep.txt").write_bytes(b"sibling")
    (tmp_path / "outside.txt").write_bytes(b"outside")
    root = tmp_path / "root"
    store = LocalArtifactStore(root)

    def outside() -> set[str]:
        found = set()
        for dirpath, dirnames, filenames in os.walk(tmp_path):
            for name in dirnames + filenames:
                full = Path(dirpath) / name
                if full != root and root not in full.parents:
                    found.add(f"{full.relative_to(tmp_path)}:{full.lstat().st_size if full.is_file() else 'dir'}")
        return found

    return Subject(store, outside)


def s3_subject(s3) -> Subject:
    bucket = s3.new_bucket()
    client = s3.client()
    client.put_object(Bucket=bucket, Key="team/artifacts-sibling/keep.txt", Body=b"sibling")
    client.put_object(Bucket=bucket, Key="team/artifacts", Body=b"an object named like the root")
    client.put_object(Bucket=bucket, Key="outside.txt", Body=b"outside")
    store = S3ArtifactStore(f"s3://{bucket}/team/artifacts/", endpoint_url=s3.endpoint, part_size_mb=5)

    def outside() -> set[str]:
        found = set()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                if not obj["Key"].startswith("team/artifacts/"):
                    found.add(f"{obj['Key']}:{obj['Size']}")
        return found

    return Subject(store, outside)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    made = local_subject(tmp_path) if request.param == "local" else s3_subject(request.getfixturevalue("s3"))
    before = made.outside()
    assert before, "the neighbours outside the root must exist for the final check to mean anything"
    yield made
    run(made.store.close())
    assert made.outside() == before


@pytest.fixture
def store(subject: Subject) -> ArtifactStore:
    return subject.store


def test_small_and_empty_files_round_trip(store):
    assert write(store, "notes/readme.txt", b"hello artifacts") == 15
    assert read(store, "notes/readme.txt") == (15, b"hello artifacts")
    assert write(store, "empty.bin", b"") == 0
    assert read(store, "empty.bin") == (0, b"")


def test_multi_mebibyte_body_written_in_many_chunks_round_trips(store):
    data = os.urandom(11 * MiB + 123)
    assert write(store, "models/weights.bin", data, sizes=(65536, 1, 300_000, 7)) == len(data)
    size, got = read(store, "models/weights.bin")
    assert size == len(data)
    assert got == data


def test_overwrite_replaces_the_file(store):
    write(store, "a.txt", b"first version, rather long")
    write(store, "a.txt", b"second")
    assert read(store, "a.txt") == (6, b"second")
    assert listing(store, "") == [FileInfo("a.txt", False, 6)]


def test_listing_nested_directories(store):
    write(store, "d/a.txt", b"aa")
    write(store, "d/sub/b.bin", b"bbb")
    write(store, "d/sub/deeper/c.txt", b"c")
    write(store, "top.txt", b"top!")
    assert listing(store, "") == [FileInfo("d", True), FileInfo("top.txt", False, 4)]
    assert listing(store, "d") == [FileInfo("d/a.txt", False, 2), FileInfo("d/sub", True)]
    assert listing(store, "d/") == listing(store, "d")
    assert listing(store, "./d/sub") == [FileInfo("d/sub/b.bin", False, 3), FileInfo("d/sub/deeper", True)]
    assert listing(store, "d/sub/deeper") == [FileInfo("d/sub/deeper/c.txt", False, 1)]


def test_listing_sorts_by_path(store):
    for name in ["b.txt", "a/x", "c/y", "A.txt", "a.txt"]:
        write(store, f"s/{name}", b"x")
    assert [f.path for f in listing(store, "s")] == ["s/A.txt", "s/a", "s/a.txt", "s/b.txt", "s/c"]


def test_listing_a_missing_directory_or_a_file_is_empty(store):
    write(store, "d/file.txt", b"x")
    assert listing(store, "nothing/here") == []
    assert listing(store, "d/file.txt") == []
    assert listing(store, "d/fil") == []


def test_listing_an_empty_store_is_empty(store):
    assert listing(store, "") == []


def test_delete_a_file(store):
    write(store, "d/one.txt", b"1")
    write(store, "d/two.txt", b"2")
    run(store.delete("d/one.txt"))
    assert listing(store, "d") == [FileInfo("d/two.txt", False, 1)]
    with pytest.raises(NotFound):
        read(store, "d/one.txt")


def test_delete_a_directory_recursively_and_nothing_beside_it(store):
    write(store, "d/a.txt", b"a")
    write(store, "d/sub/deeper/b.txt", b"b")
    write(store, "dx.txt", b"a sibling whose name starts like the directory")
    write(store, "d-other/c.txt", b"c")
    run(store.delete("d"))
    assert listing(store, "") == [FileInfo("d-other", True), FileInfo("dx.txt", False, 46)]
    assert listing(store, "d") == []
    with pytest.raises(NotFound):
        read(store, "d/sub/deeper/b.txt")


def test_delete_missing_is_not_found(store):
    write(store, "present.txt", b"x")
    with pytest.raises(NotFound):
        run(store.delete("absent.txt"))
    with pytest.raises(NotFound):
        run(store.delete("present"))
    assert listing(store, "") == [FileInfo("present.txt", False, 1)]


def test_open_missing_or_a_directory_is_not_found(store):
    write(store, "d/file.txt", b"x")
    with pytest.raises(NotFound):
        run(store.open("absent.txt"))
    with pytest.raises(NotFound):
        run(store.open("d"))
    with pytest.raises(NotFound):
        run(store.open("d/file.txt/below"))


def test_the_root_itself_is_not_a_file(store):
    with pytest.raises(InvalidParameter):
        run(store.write("", chunked(b"x")))
    with pytest.raises(InvalidParameter):
        run(store.open(""))
    with pytest.raises(InvalidParameter):
        run(store.delete(""))


def test_a_failed_write_leaves_nothing_visible(store):
    with pytest.raises(RuntimeError, match="went away"):
        run(store.write("partial.bin", failing_after(os.urandom(6 * MiB))))
    with pytest.raises(NotFound):
        run(store.open("partial.bin"))
    assert listing(store, "") == []


def test_a_failed_overwrite_keeps_the_previous_file(store):
    write(store, "model.bin", b"the good version")
    with pytest.raises(RuntimeError, match="went away"):
        run(store.write("model.bin", failing_after(os.urandom(6 * MiB))))
    assert read(store, "model.bin") == (16, b"the good version")
    assert listing(store, "") == [FileInfo("model.bin", False, 16)]


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_every_method_rejects_paths_that_leave_the_root(store, bad):
    write(store, "a/inside.txt", b"inside")
    calls = {
        "write": lambda: store.write(bad, chunked(b"escaped")),
        "open": lambda: store.open(bad),
        "list": lambda: store.list(bad),
        "delete": lambda: store.delete(bad),
    }
    if store.supports_multipart:
        calls |= {
            "create_multipart": lambda: store.create_multipart(bad, 1),
            "complete_multipart": lambda: store.complete_multipart(bad, "upload", [(1, "etag")]),
            "abort_multipart": lambda: store.abort_multipart(bad, "upload"),
            "presigned_download": lambda: store.presigned_download(bad, 60),
        }
    for name, call in calls.items():
        with pytest.raises(InvalidParameter, match="Invalid artifact path"):
            run(call())
        assert listing(store, "a") == [FileInfo("a/inside.txt", False, 6)], name
    assert listing(store, "") == [FileInfo("a", True)]


@pytest.fixture
def local_root(tmp_path: Path) -> tuple[LocalArtifactStore, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    store = LocalArtifactStore(tmp_path / "root")
    (store.root / "dir-link").symlink_to(outside, target_is_directory=True)
    (store.root / "file-link").symlink_to(outside / "secret.txt")
    return store, outside


def test_local_store_refuses_symlinks_that_lead_outside_the_root(local_root):
    store, outside = local_root
    refused = [
        lambda: store.open("dir-link/secret.txt"),
        lambda: store.open("file-link"),
        lambda: store.write("dir-link/new.txt", chunked(b"planted")),
        lambda: store.write("dir-link/nested/new.txt", chunked(b"planted")),
        lambda: store.write("file-link", chunked(b"overwritten")),
        lambda: store.list("dir-link"),
        lambda: store.delete("dir-link/secret.txt"),
    ]
    for call in refused:
        with pytest.raises(InvalidParameter, match="outside the artifact root"):
            run(call())
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"secret"


def test_local_store_writing_below_a_file_is_invalid(tmp_path):
    store = LocalArtifactStore(tmp_path / "root")
    write(store, "plain.txt", b"x")
    with pytest.raises(InvalidParameter, match="plain.txt"):
        write(store, "plain.txt/below.txt", b"y")
    assert read(store, "plain.txt") == (1, b"x")


def test_local_store_leaves_no_temporary_file_after_a_failed_write(tmp_path):
    store = LocalArtifactStore(tmp_path / "root")
    with pytest.raises(RuntimeError):
        run(store.write("d/partial.bin", failing_after(b"x" * MiB)))
    assert list((tmp_path / "root" / "d").iterdir()) == []
