"""MLflow's proxied artifact service (``mlflow.artifacts.MlflowArtifactsService``) and the
plain ``/get-artifact`` route of MLflow's UI.

Clients resolve ``mlflow-artifacts:/<path>`` to ``/api/2.0/mlflow-artifacts/artifacts/<path>``
on this server, so they need no credentials for the store behind it. Bodies stream both
ways; paths are checked by the store (``artifacts/paths.py``) before anything is touched.
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import orjson

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from labdeck.artifacts.paths import join, safe_path
from labdeck.artifacts.store import ArtifactStore, FileStream
from labdeck.artifacts.uri import run_relative_root
from labdeck.errors import InvalidParameter, LabdeckError
from labdeck.tracking.service import TrackingService
from labdeck.wire.errors import http_status, mlflow_body
from labdeck.auth.needs import EDIT, MANAGE, READ, On, needs
from labdeck.wire.mlflow_rpc import Raw, RpcRequest, rpc
from labdeck.wire.types import Send

ARTIFACTS = "/mlflow-artifacts/artifacts"
PRESIGNED_EXPIRY_SECONDS = 900
UI_UPLOAD_LIMIT = 10 * 1024 * 1024


async def request_chunks(req: RpcRequest) -> AsyncIterator[bytes]:
    while True:
        message = await req.receive()
        if message["type"] == "http.disconnect":
            raise InvalidParameter("the client disconnected before the upload finished")
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def _limited(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise InvalidParameter(f"Artifact size is too large. Max size is {limit // (1024 * 1024)}MB.")
        yield chunk


def download_headers(path: str, size: int) -> list[tuple[bytes, bytes]]:
    name = path.rsplit("/", 1)[-1]
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type in ("application/json", "application/x-yaml"):
        content_type += "; charset=utf-8"
    return [
        (b"content-type", content_type.encode()),
        (b"content-length", str(size).encode()),
        (b"content-disposition", f"attachment; filename*=UTF-8''{quote(name)}".encode()),
        (b"accept-ranges", b"none"),
        (b"x-content-type-options", b"nosniff"),
    ]


class FileResponse(Raw):
    def __init__(self, path: str, stream: FileStream):
        self.path = path
        self.stream = stream

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": download_headers(self.path, self.stream.size)})
        async for chunk in self.stream.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def _upload_file_name(local_path: str) -> str:
    """The file name a multipart upload is stored under: clients send the path of their
    local file (``/home/me/model.bin``, or ``C:\\data\\model.bin``), of which only the last
    component names the artifact."""
    name = local_path.replace("\\", "/").rsplit("/", 1)[-1]
    if not name:
        raise InvalidParameter(f"Invalid value {local_path!r} for parameter 'path': it names no file.")
    return name


def _parts(raw: list[dict[str, Any]]) -> list[tuple[int, str]]:
    parts = []
    for i, part in enumerate(raw):
        number, etag = part.get("part_number"), part.get("etag")
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise InvalidParameter(f"Invalid value for parameter 'parts[{i}].part_number': expected a positive integer.")
        if not isinstance(etag, str) or not etag:
            raise InvalidParameter(f"Missing value for required parameter 'parts[{i}].etag'.")
        parts.append((number, etag))
    return parts


class ArtifactsApi:
    def __init__(self, store: ArtifactStore, tracking: TrackingService):
        self.store = store
        self.tracking = tracking

    @rpc("PUT", ARTIFACTS + "/{path:path}", stream=True, needs=On("artifact", EDIT, "path"))
    async def upload(self, req: RpcRequest) -> dict[str, Any]:
        await self.store.write(req.path_params["path"], request_chunks(req))
        return {}

    @rpc("GET", ARTIFACTS + "/{path:path}", needs=On("artifact", READ, "path"))
    async def download(self, req: RpcRequest) -> Raw:
        path = req.path_params["path"]
        return FileResponse(path, await self.store.open(path))

    @rpc("GET", ARTIFACTS, needs=On("artifact", READ, "path"))
    async def list(self, req: RpcRequest) -> dict[str, Any]:
        files = await self.store.list(req.str("path", default="") or "")
        if not files:
            return {}
        return {
            "files": [
                {"path": f.path.rsplit("/", 1)[-1], "is_dir": f.is_dir, **({} if f.is_dir else {"file_size": f.file_size})}
                for f in files
            ]
        }

    @rpc("DELETE", ARTIFACTS + "/{path:path}", needs=On("artifact", MANAGE, "path"))
    async def delete(self, req: RpcRequest) -> dict[str, Any]:
        await self.store.delete(req.path_params["path"])
        return {}

    @rpc("POST", "/mlflow-artifacts/mpu/create/{path:path}", needs=On("artifact", EDIT, "path"))
    async def create_multipart(self, req: RpcRequest) -> dict[str, Any]:
        path = join(safe_path(req.path_params["path"]), _upload_file_name(req.str("path", required=True)))
        num_parts = req.int("num_parts", required=True)
        if not 1 <= num_parts <= 10000:
            raise InvalidParameter(f"Invalid value {num_parts} for parameter 'num_parts': it must be between 1 and 10000.")
        upload_id, parts = await self.store.create_multipart(path, num_parts)
        return {
            "upload_id": upload_id,
            "credentials": [
                {"url": p.url, "part_number": p.part_number, "headers": [{"key": k, "value": v} for k, v in p.headers.items()]}
                for p in parts
            ],
        }

    @rpc("POST", "/mlflow-artifacts/mpu/complete/{path:path}", needs=On("artifact", EDIT, "path"))
    async def complete_multipart(self, req: RpcRequest) -> dict[str, Any]:
        path = join(safe_path(req.path_params["path"]), _upload_file_name(req.str("path", required=True)))
        await self.store.complete_multipart(path, req.str("upload_id", required=True), _parts(req.obj_list("parts")))
        return {}

    @rpc("POST", "/mlflow-artifacts/mpu/abort/{path:path}", needs=On("artifact", EDIT, "path"))
    async def abort_multipart(self, req: RpcRequest) -> dict[str, Any]:
        path = join(safe_path(req.path_params["path"]), _upload_file_name(req.str("path", required=True)))
        await self.store.abort_multipart(path, req.str("upload_id", required=True))
        return {}

    @rpc("POST", "/mlflow/upload-artifact", stream=True, needs=On("run", EDIT))  # run_id or run_uuid
    async def upload_run_artifact(self, req: RpcRequest) -> dict[str, Any]:
        """The UI's small upload into a run's artifacts (``?run_uuid=&path=``, raw body)."""
        run_id = req.str("run_uuid") or req.str("run_id")
        if not run_id:
            raise InvalidParameter("Request must specify run_uuid.")
        path = safe_path(req.str("path"), allow_root=False)
        run = await self.tracking.get_run(run_id)
        target = join(run_relative_root(run.info.artifact_uri, self.store), path)
        size = await self.store.write(target, _limited(request_chunks(req), UI_UPLOAD_LIMIT))
        if size == 0:
            await self.store.delete(target)
            raise InvalidParameter("Request must specify data.")
        return {}

    @rpc("GET", "/mlflow-artifacts/presigned/{path:path}", needs=On("artifact", READ, "path"))
    async def presigned(self, req: RpcRequest) -> dict[str, Any]:
        url, headers, size = await self.store.presigned_download(req.path_params["path"], PRESIGNED_EXPIRY_SECONDS)
        return {"url": url, "headers": [{"key": k, "value": v} for k, v in headers.items()], "file_size": size}


async def file_under(store: ArtifactStore, request: Request, root: Callable[[], Awaitable[str]]) -> Response:
    """A plain-HTTP download of ``?path=`` below the artifact URI ``root()`` names, with
    errors in MLflow's JSON shape (the routes MLflow's UI fetches files from)."""
    try:
        path = safe_path(request.query_params.get("path"), allow_root=False)
        stream = await store.open(join(run_relative_root(await root(), store), path))
    except LabdeckError as error:
        return Response(orjson.dumps(mlflow_body(error)), http_status(error), media_type="application/json")
    headers = {k.decode(): v.decode() for k, v in download_headers(path, stream.size)}
    return StreamingResponse(stream.chunks, headers=headers)


def plain_artifact_routes(store: ArtifactStore, tracking: TrackingService) -> list[tuple[str, Any, list[str]]]:
    """``GET /get-artifact?run_id=&path=``: a run's file, as MLflow's UI fetches it."""

    @needs(On("run", READ, "run_id"))
    async def get_artifact(request: Request) -> Response:
        async def run_root() -> str:
            run_id = request.query_params.get("run_id") or request.query_params.get("run_uuid")
            if not run_id:
                raise InvalidParameter("Missing value for required parameter 'run_id'.")
            return (await tracking.get_run(run_id)).info.artifact_uri

        return await file_under(store, request, run_root)

    return [("/get-artifact", get_artifact, ["GET"])]
