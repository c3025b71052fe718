"""Bring a model's files to a local folder, from wherever its URI points.

``models:/``, ``runs:/`` and logged-model URIs are resolved through a tracking server
(labdeck or MLflow; ``--tracking-uri`` or ``MLFLOW_TRACKING_URI``, credentials from
``MLFLOW_TRACKING_TOKEN`` or ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``) to an artifact
location, which is then downloaded: ``mlflow-artifacts:/`` through the server's artifact
proxy, ``s3://`` with boto3, ``http(s)://`` as a file or an archive (.tar.gz, .zip), and
local paths are used where they are. Downloads land in a cache folder named after the
location and are reused once complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import httpx

from labdeck.errors import InvalidParameter, LabdeckError, NotFound, Unauthenticated, Unavailable
from labdeck.model_uri import RestModelLocator, parse_model_uri

COMPLETE = ".labdeck-complete"


@dataclass(frozen=True)
class FetchedModel:
    path: Path
    location: str
    version: str | None


def tracking_client(tracking_uri: str | None) -> httpx.AsyncClient:
    base = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not base or not base.startswith(("http://", "https://")):
        raise InvalidParameter(
            "Resolving this model URI needs a tracking server: pass --tracking-uri or set MLFLOW_TRACKING_URI to its http(s) URL."
        )
    headers: dict[str, str] = {}
    auth: Any = None
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
    elif os.environ.get("MLFLOW_TRACKING_USERNAME"):
        auth = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
    return httpx.AsyncClient(base_url=base.rstrip("/"), headers=headers, auth=auth, timeout=300)


async def fetch(uri: str, cache: Path, tracking_uri: str | None = None) -> FetchedModel:
    try:
        return await _fetch(uri, cache, tracking_uri)
    except Unauthenticated as error:  # say which credentials were refused, and where they came from
        raise Unauthenticated(f"The tracking server refused {_credentials()}: {error.message}") from None
    except httpx.TransportError as exc:  # no answer at all: say from where, not how httpx failed
        try:
            where = str(exc.request.url.copy_with(query=None))
        except RuntimeError:  # httpx raised it before a request existed
            where = tracking_uri or uri
        raise Unavailable(f"Cannot reach {where}: {exc or type(exc).__name__}.") from None


def _credentials() -> str:
    """The credentials ``tracking_client`` sends, in words."""
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return "the token in MLFLOW_TRACKING_TOKEN"
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):
        return f"user {os.environ['MLFLOW_TRACKING_USERNAME']!r} (MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"
    return "a request without credentials (set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"


async def _fetch(uri: str, cache: Path, tracking_uri: str | None) -> FetchedModel:
    parsed = parse_model_uri(uri)
    if parsed.kind == "location" and urlparse(uri).scheme != "mlflow-artifacts":
        path = await _location(uri, cache, None)
        return FetchedModel(path, uri, None)
    async with tracking_client(tracking_uri) as client:
        if parsed.kind == "location":  # mlflow-artifacts:/ is downloaded through the tracking server
            return FetchedModel(await _location(uri, cache, client), uri, None)
        locator = RestModelLocator(client)
        location = await locator.locate(parsed)
        version = await locator.version_of(parsed) if parsed.is_registry else None
        return FetchedModel(await _location(location, cache, client), location, version)


async def _location(location: str, cache: Path, client: httpx.AsyncClient | None) -> Path:
    scheme = urlparse(location).scheme
    if scheme in ("", "file") or (len(scheme) == 1 and location[1:3] in (":\\", ":/")):
        path = Path(urlparse(location).path if scheme == "file" else location).expanduser()
        if not path.exists():
            raise NotFound(f"There is no model at {path}.")
        return path
    target = cache / hashlib.sha256(location.encode()).hexdigest()[:24]
    if (target / COMPLETE).exists():
        return target
    if target.exists():
        shutil.rmtree(target)
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    if scheme == "mlflow-artifacts":
        if client is None:
            raise InvalidParameter("mlflow-artifacts:/ URIs are downloaded through a tracking server: pass --tracking-uri.")
        await _from_proxy(client, urlparse(location).path.lstrip("/"), partial)
    elif scheme == "s3":
        await _from_s3(location, partial)
    elif scheme in ("http", "https"):
        await _from_http(location, partial)
    else:
        raise InvalidParameter(f"Cannot fetch a model from {location!r}: use a local path, s3://, http(s)://, models:/ or runs:/.")
    (partial / COMPLETE).touch()
    partial.rename(target)
    return target


async def _from_proxy(client: httpx.AsyncClient, root: str, into: Path) -> None:
    async def walk(relative: str) -> int:
        listed = await client.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": f"{root}/{relative}".rstrip("/")})
        listed.raise_for_status()
        count = 0
        for item in listed.json().get("files", []):
            child = f"{relative}/{item['path']}".lstrip("/")
            if item.get("is_dir"):
                count += await walk(child)
                continue
            destination = into / child
            destination.parent.mkdir(parents=True, exist_ok=True)
            async with client.stream("GET", f"/api/2.0/mlflow-artifacts/artifacts/{quote(f'{root}/{child}')}") as response:
                response.raise_for_status()
                with open(destination, "wb") as f:
                    async for chunk in response.aiter_bytes(1 << 20):
                        f.write(chunk)
            count += 1
        return count

    try:
        found = await walk("")
    except httpx.HTTPStatusError as exc:
        raise NotFound(f"Cannot download mlflow-artifacts:/{root}: the server answered {exc.response.status_code}.") from None
    if not found:
        raise NotFound(f"There are no files at mlflow-artifacts:/{root}.")


async def _from_s3(location: str, into: Path) -> None:
    from anyio import to_thread

    def download() -> int:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        parsed = urlparse(location)
        bucket, prefix = parsed.netloc, parsed.path.lstrip("/").rstrip("/")
        endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        count = 0
        try:
            client = boto3.client("s3", endpoint_url=endpoint)
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    relative = obj["Key"][len(prefix) :].lstrip("/") or Path(obj["Key"]).name
                    destination = into / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    client.download_file(bucket, obj["Key"], str(destination))
                    count += 1
        except ClientError as exc:  # S3 answered: no such bucket, access denied, ...
            error = exc.response.get("Error", {})
            reason = error.get("Message") or error.get("Code") or str(exc)
            missing = error.get("Code") in ("NoSuchBucket", "NoSuchKey", "404")
            raise (NotFound if missing else LabdeckError)(f"Cannot download {location}: {reason}.") from None
        except BotoCoreError as exc:  # no answer, no credentials, a bad endpoint URL
            raise Unavailable(f"Cannot download {location}: {exc}") from None
        return count

    if not await to_thread.run_sync(download):
        raise NotFound(f"There are no files at {location}.")


async def _from_http(location: str, into: Path) -> None:
    name = Path(urlparse(location).path).name or "model"
    archive = into.parent / (into.name + "-" + name)
    async with httpx.AsyncClient(timeout=300, follow_redirects=True) as client, client.stream("GET", location) as response:
        if response.status_code != 200:
            raise NotFound(f"Cannot download {location}: the server answered {response.status_code}.")
        with open(archive, "wb") as f:
            async for chunk in response.aiter_bytes(1 << 20):
                f.write(chunk)
    try:
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(archive) as tar:
                tar.extractall(into, filter="data")
        elif name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():
                    if member.startswith("/") or ".." in Path(member).parts:
                        raise InvalidParameter(f"The archive {location} holds an unsafe path {member!r}.")
                z.extractall(into)
        else:
            shutil.move(str(archive), into / name)
    except (tarfile.TarError, zipfile.BadZipFile) as exc:
        raise InvalidParameter(f"Cannot unpack {location}: {exc}.") from None
    finally:
        archive.unlink(missing_ok=True)
    _lift_single_folder(into)


def _lift_single_folder(into: Path) -> None:
    """An archive of one folder holding the model: serve that folder's contents."""
    entries = [p for p in into.iterdir() if p.name != COMPLETE]
    if len(entries) == 1 and entries[0].is_dir():
        inner = entries[0]
        for child in inner.iterdir():
            shutil.move(str(child), into / child.name)
        inner.rmdir()
