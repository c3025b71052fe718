"""What only ``S3ArtifactStore`` does: multipart uploads (its own, streamed, and the
presigned ones clients drive), presigned downloads, S3 errors turned into 4xx errors,
endpoint configuration, and keeping boto3 off the event loop. Against moto's S3 server."""

from __future__ import annotations

import asyncio
import os
import threading

import httpx
import pytest

from labdeck.artifacts.s3 import S3ArtifactStore
from labdeck.artifacts.store import FileInfo
from labdeck.errors import InvalidParameter, NotFound
from tests.artifacts.test_store_contract import MiB, chunked, failing_after, listing, read, run, write

pytestmark = pytest.mark.s3

PREFIX = "exp/artifacts"


@pytest.fixture
def bucket(s3) -> str:
    return s3.new_bucket()


@pytest.fixture
def store(s3, bucket):
    made = S3ArtifactStore(f"s3://{bucket}/{PREFIX}", endpoint_url=s3.endpoint, part_size_mb=5)
    yield made
    run(made.close())


def head(s3, bucket, key):
    return s3.client().head_object(Bucket=bucket, Key=f"{PREFIX}/{key}")


def pending_uploads(s3, bucket):
    return s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def put_part(url: str, body: bytes) -> str:
    response = httpx.put(url, content=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.headers["etag"]


def test_root_uri_and_keys_follow_the_configured_prefix(s3, bucket, store):
    assert store.root_uri == f"s3://{bucket}/{PREFIX}"
    write(store, "d/a.txt", b"abc")
    assert head(s3, bucket, "d/a.txt")["ContentLength"] == 3


def test_a_store_on_a_whole_bucket(s3, bucket):
    store = S3ArtifactStore(f"s3://{bucket}", endpoint_url=s3.endpoint)
    assert store.root_uri == f"s3://{bucket}"
    write(store, "top/file.txt", b"xy")
    assert s3.client().get_object(Bucket=bucket, Key="top/file.txt")["Body"].read() == b"xy"
    assert listing(store, "") == [FileInfo("top", True)]
    run(store.delete("top"))
    assert listing(store, "") == []
    run(store.close())


def test_uris_without_a_bucket_are_refused():
    with pytest.raises(InvalidParameter, match="no bucket"):
        S3ArtifactStore("s3:///prefix")
    with pytest.raises(InvalidParameter, match="not an S3 URI"):
        S3ArtifactStore("/var/artifacts")


def test_endpoint_comes_from_mlflow_s3_endpoint_url(s3, bucket, monkeypatch):
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3.endpoint)
    store = S3ArtifactStore(f"s3://{bucket}/{PREFIX}")
    write(store, "via-env.txt", b"env")
    assert head(s3, bucket, "via-env.txt")["ContentLength"] == 3
    run(store.close())


def test_listing_and_deleting_follow_every_page(s3, bucket, store):
    store.list_page_size = 2
    pages: list[int] = []
    store._client.meta.events.register("after-call.s3.ListObjectsV2", lambda **_: pages.append(1))
    for name in ["a.txt", "b.txt", "c.txt", "d1/x", "d2/x", "d3/x", "e.txt"]:
        write(store, f"many/{name}", b"x")
    names = [(f.path.removeprefix("many/"), f.is_dir) for f in listing(store, "many")]
    assert names == [
        ("a.txt", False), ("b.txt", False), ("c.txt", False), ("d1", True), ("d2", True), ("d3", True), ("e.txt", False)
    ]
    assert len(pages) >= 4
    run(store.delete("many"))
    assert s3.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_large_bodies_go_up_as_multipart_uploads_of_the_part_size(s3, bucket, store):
    write(store, "big.bin", os.urandom(11 * MiB), sizes=(100_000,))
    assert head(s3, bucket, "big.bin")["ETag"].strip('"').endswith("-3")
    write(store, "exact.bin", os.urandom(5 * MiB))
    assert head(s3, bucket, "exact.bin")["ETag"].strip('"').endswith("-1")
    write(store, "small.bin", os.urandom(5 * MiB - 1))
    assert "-" not in head(s3, bucket, "small.bin")["ETag"]
    assert read(store, "exact.bin")[0] == 5 * MiB
    assert pending_uploads(s3, bucket) == []


def test_a_failed_streamed_upload_is_aborted(s3, bucket, store):
    with pytest.raises(RuntimeError):
        run(store.write("partial.bin", failing_after(os.urandom(12 * MiB))))
    assert pending_uploads(s3, bucket) == []
    assert listing(store, "") == []


def test_objects_get_a_content_type_from_their_name(s3, bucket, store):
    write(store, "metrics.json", b"{}")
    write(store, "blob", b"?")
    assert head(s3, bucket, "metrics.json")["ContentType"] == "application/json"
    assert head(s3, bucket, "blob")["ContentType"] != "application/json"


def test_presigned_multipart_upload_round_trip(s3, bucket, store):
    first, second = os.urandom(5 * MiB), os.urandom(1234)
    upload_id, parts = run(store.create_multipart("mpu/model.bin", 2))
    assert [p.part_number for p in parts] == [1, 2]
    assert all(p.url.startswith(s3.endpoint) and upload_id in p.url for p in parts)
    etags = [put_part(parts[1].url, second), put_part(parts[0].url, first)]
    run(store.complete_multipart("mpu/model.bin", upload_id, [(2, etags[0]), (1, etags[1])]))
    assert read(store, "mpu/model.bin") == (len(first) + len(second), first + second)
    assert pending_uploads(s3, bucket) == []


def test_completing_with_bad_parts_is_invalid_input(store):
    upload_id, parts = run(store.create_multipart("bad.bin", 2))
    first = put_part(parts[0].url, b"tiny first part")
    last = put_part(parts[1].url, b"tiny last part")
    with pytest.raises(InvalidParameter, match="InvalidPart"):
        run(store.complete_multipart("bad.bin", upload_id, [(1, '"0123456789abcdef0123456789abcdef"')]))
    with pytest.raises(InvalidParameter, match="EntityTooSmall"):
        run(store.complete_multipart("bad.bin", upload_id, [(1, first), (2, last)]))
    with pytest.raises(InvalidParameter, match="at least one part"):
        run(store.complete_multipart("bad.bin", upload_id, []))
    with pytest.raises(InvalidParameter, match="num_parts"):
        run(store.create_multipart("bad.bin", 0))
    with pytest.raises(InvalidParameter, match="num_parts"):
        run(store.create_multipart("bad.bin", 10_001))


def test_unknown_or_aborted_uploads_are_not_found(s3, bucket, store):
    # moto answers CompleteMultipartUpload of an unknown upload id with a 500 (S3 says
    # NoSuchUpload), so the unknown-upload case is exercised through AbortMultipartUpload.
    with pytest.raises(NotFound, match="'no-such-upload' of 'x.bin' does not exist"):
        run(store.abort_multipart("x.bin", "no-such-upload"))
    upload_id, parts = run(store.create_multipart("x.bin", 1))
    put_part(parts[0].url, b"body")
    run(store.abort_multipart("x.bin", upload_id))
    assert pending_uploads(s3, bucket) == []
    with pytest.raises(NotFound):
        run(store.abort_multipart("x.bin", upload_id))
    with pytest.raises(NotFound):
        run(store.open("x.bin"))


def test_presigned_download(store):
    write(store, "d/report.txt", b"report body")
    url, headers, size = run(store.presigned_download("d/report.txt", 300))
    assert size == 11
    assert httpx.get(url, headers=headers, timeout=60).content == b"report body"
    with pytest.raises(NotFound):
        run(store.presigned_download("d/absent.txt", 300))


def test_boto3_never_runs_on_the_event_loop_thread(store):
    callers: list[int] = []
    store._client.meta.events.register("before-call.s3", lambda **_: callers.append(threading.get_ident()))

    async def everything() -> int:
        loop_thread = threading.get_ident()
        await store.write("t/big.bin", chunked(os.urandom(6 * MiB)))
        await store.write("t/small.txt", chunked(b"small"))
        stream = await store.open("t/big.bin")
        async for _ in stream.chunks:
            pass
        await store.list("t")
        upload_id, _parts = await store.create_multipart("t/mpu.bin", 1)
        await store.abort_multipart("t/mpu.bin", upload_id)
        await store.presigned_download("t/small.txt", 60)
        await store.delete("t")
        return loop_thread

    loop_thread = asyncio.run(everything())
    assert len(callers) >= 12
    assert loop_thread not in callers
