"""``S3ArtifactStore``: artifacts as objects under ``s3://bucket/prefix`` on any
S3-compatible service (AWS, MinIO, Ceph, moto).

It owns the boto3 client, the mapping between store-relative paths and object keys,
and the translation of S3's client errors into labdeck errors (bad input becomes a 4xx,
never a 500). Uploads stream as a multipart upload, one part per ``part_size_mb`` of
body, so memory stays bounded and a failed upload is aborted before it becomes an
object; bodies of less than one part go up as a single PUT. Clients that upload large
files themselves get presigned part URLs (``create_multipart``). boto3 is blocking, so
every call to it runs on a worker thread.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, TypeVar

import anyio
import boto3
from anyio import to_thread
from botocore.config import Config
from botocore.exceptions import ClientError

from labdeck.artifacts.paths import safe_path
from labdeck.artifacts.store import ArtifactStore, FileInfo, FileStream, PresignedPart
from labdeck.errors import InvalidParameter, LabdeckError, NotFound

READ_CHUNK = 1024 * 1024
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10_000
PART_URL_EXPIRY_SECONDS = 6 * 3600
DELETE_BATCH = 1000

_MISSING_CODES = {"NoSuchKey", "NoSuchUpload", "404", "NotFound"}
_BAD_INPUT_CODES = {
    "InvalidPart",
    "InvalidPartOrder",
    "EntityTooSmall",
    "EntityTooLarge",
    "MalformedXML",
    "InvalidArgument",
    "InvalidRequest",
    "KeyTooLongError",
}

T = TypeVar("T")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _translated(error: ClientError, what: str) -> Exception:
    """The labdeck error for S3's answer about ``what``, or the original if it is our fault."""
    code = _code(error)
    detail = error.response.get("Error", {}).get("Message") or code
    if code in _MISSING_CODES:
        return NotFound(f"{what} does not exist.")
    if code in _BAD_INPUT_CODES:
        return InvalidParameter(f"{what} was refused by the artifact store: {code}: {detail}")
    return error


def _content_type(key: str) -> dict[str, str]:
    guessed = mimetypes.guess_type(key.rsplit("/", 1)[-1])[0]
    return {"ContentType": guessed} if guessed else {}


class S3ArtifactStore(ArtifactStore):
    supports_multipart = True
    #: keys asked for per listing request (S3 answers at most 1000)
    list_page_size = 1000

    def __init__(
        self, uri: str, *, endpoint_url: str | None = None, region: str | None = None, part_size_mb: int = 10
    ):
        if not uri.startswith("s3://"):
            raise InvalidParameter(f"not an S3 URI: {uri!r}")
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise InvalidParameter(f"S3 URI {uri!r} names no bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root_uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.part_size = max(part_size_mb * 1024 * 1024, MIN_PART_BYTES)
        endpoint_url = endpoint_url or os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
        # S3-compatible servers rarely resolve bucket subdomains, so name the bucket in the path.
        custom_endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
            "AWS_ENDPOINT_URL"
        )
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"} if custom_endpoint else {},
            max_pool_connections=32,
        )
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix and relative else self.prefix or relative

    def _dir_prefix(self, relative: str) -> str:
        key = self._key(relative)
        return f"{key}/" if key else ""

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await to_thread.run_sync(partial(fn, *args, **kwargs))

    async def write(self, path: str, chunks: AsyncIterator[bytes]) -> int:
        key = self._key(safe_path(path, allow_root=False))
        buffer = bytearray()
        size = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                if len(buffer) >= self.part_size:
                    if upload_id is None:
                        upload_id = await self._start_upload(key)
                    parts.append(await self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if upload_id is None:
                await self._call(
                    self._client.put_object, Bucket=self.bucket, Key=key, Body=bytes(buffer), **_content_type(key)
                )
                return size
            if buffer:
                parts.append(await self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
            await self._call(
                self._client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException as error:
            if upload_id is not None:
                with anyio.CancelScope(shield=True):
                    await self._abort_quietly(key, upload_id)
            if isinstance(error, ClientError):
                raise _translated(error, f"Upload of artifact {path!r}") from None
            raise
        return size

    async def _start_upload(self, key: str) -> str:
        created = await self._call(
            self._client.create_multipart_upload, Bucket=self.bucket, Key=key, **_content_type(key)
        )
        return created["UploadId"]

    async def _upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        answer = await self._call(
            self._client.upload_part, Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    async def _abort_quietly(self, key: str, upload_id: str) -> None:
        try:
            await self._call(self._client.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError:
            pass  # the upload is unreachable either way; S3 lifecycle rules reap leftovers

    async def open(self, path: str) -> FileStream:
        relative = safe_path(path, allow_root=False)
        try:
            answer = await self._call(self._client.get_object, Bucket=self.bucket, Key=self._key(relative))
        except ClientError as error:
            raise _translated(error, f"Artifact {path!r}") from None
        body = answer["Body"]

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    chunk = await to_thread.run_sync(body.read, READ_CHUNK)
                    if not chunk:
                        return
                    yield chunk
            finally:
                body.close()

        return FileStream(int(answer["ContentLength"]), chunks())

    async def list(self, path: str) -> list[FileInfo]:
        relative = safe_path(path)
        return await to_thread.run_sync(self._list_sync, relative)

    def _pages(self, **query: str) -> Any:
        paginator = self._client.get_paginator("list_objects_v2")
        return paginator.paginate(Bucket=self.bucket, PaginationConfig={"PageSize": self.list_page_size}, **query)

    def _list_sync(self, relative: str) -> list[FileInfo]:
        prefix = self._dir_prefix(relative)
        entries: list[FileInfo] = []
        for page in self._pages(Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(prefix) :].rstrip("/")
                if name not in ("", ".", ".."):
                    entries.append(FileInfo(f"{relative}/{name}" if relative else name, True))
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) :]
                if name not in ("", ".", ".."):
                    entries.append(FileInfo(f"{relative}/{name}" if relative else name, False, obj["Size"]))
        return sorted(entries, key=lambda f: f.path)

    async def delete(self, path: str) -> None:
        key = self._key(safe_path(path, allow_root=False))
        deleted = await to_thread.run_sync(self._delete_sync, key)
        if not deleted:
            raise NotFound(f"Artifact {path!r} does not exist.")

    def _delete_sync(self, key: str) -> int:
        keys = [obj["Key"] for page in self._pages(Prefix=f"{key}/") for obj in page.get("Contents", [])]
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
            keys.append(key)
        except ClientError as error:
            if _code(error) not in _MISSING_CODES:
                raise
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": k} for k in keys[start : start + DELETE_BATCH]]
            answer = self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if answer.get("Errors"):
                failed = ", ".join(f"{e.get('Key')}: {e.get('Code')}" for e in answer["Errors"][:5])
                raise LabdeckError(f"The artifact store could not delete some objects ({failed}).")
        return len(keys)

    async def create_multipart(self, path: str, num_parts: int) -> tuple[str, list[PresignedPart]]:
        key = self._key(safe_path(path, allow_root=False))
        if not 1 <= num_parts <= MAX_PARTS:
            raise InvalidParameter(f"Invalid value {num_parts} for 'num_parts': it must be between 1 and {MAX_PARTS}.")
        try:
            upload_id = await self._start_upload(key)
        except ClientError as error:
            raise _translated(error, f"Multipart upload of {path!r}") from None

        def presign_parts() -> list[PresignedPart]:
            return [
                PresignedPart(
                    number,
                    self._client.generate_presigned_url(
                        "upload_part",
                        Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": number},
                        ExpiresIn=PART_URL_EXPIRY_SECONDS,
                    ),
                    {},
                )
                for number in range(1, num_parts + 1)
            ]

        return upload_id, await to_thread.run_sync(presign_parts)

    async def complete_multipart(self, path: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        key = self._key(safe_path(path, allow_root=False))
        if not parts:
            raise InvalidParameter("Missing value for required parameter 'parts': a multipart upload needs at least one part.")
        ordered = [{"PartNumber": number, "ETag": etag} for number, etag in sorted(parts)]
        try:
            await self._call(
                self._client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": ordered},
            )
        except ClientError as error:
            raise _translated(error, f"Multipart upload {upload_id!r} of {path!r}") from None

    async def abort_multipart(self, path: str, upload_id: str) -> None:
        key = self._key(safe_path(path, allow_root=False))
        try:
            await self._call(self._client.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as error:
            raise _translated(error, f"Multipart upload {upload_id!r} of {path!r}") from None

    async def presigned_download(self, path: str, expires_in: int) -> tuple[str, dict[str, str], int]:
        key = self._key(safe_path(path, allow_root=False))
        try:
            head = await self._call(self._client.head_object, Bucket=self.bucket, Key=key)
        except ClientError as error:
            raise _translated(error, f"Artifact {path!r}") from None
        url = await self._call(
            self._client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=expires_in,
        )
        return url, {}, int(head["ContentLength"])

    async def presigned_upload(self, path: str, expires_in: int) -> tuple[str, dict[str, str]]:
        key = self._key(safe_path(path, allow_root=False))
        url = await self._call(
            self._client.generate_presigned_url,
            "put_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=expires_in,
        )
        return url, {}

    async def close(self) -> None:
        await to_thread.run_sync(self._client.close)
