"""Build the artifact store the settings ask for: a folder, or S3 for ``s3://`` URIs."""

from __future__ import annotations

from labdeck.artifacts.local import LocalArtifactStore
from labdeck.artifacts.store import ArtifactStore
from labdeck.config import Settings
from labdeck.errors import InvalidParameter


def open_artifact_store(settings: Settings) -> ArtifactStore:
    uri = settings.artifacts_uri
    if uri.startswith("s3://"):
        from labdeck.artifacts.s3 import S3ArtifactStore

        return S3ArtifactStore(
            uri,
            endpoint_url=settings.artifacts.s3_endpoint_url,
            region=settings.artifacts.s3_region,
            part_size_mb=settings.artifacts.multipart_upload_chunk_mb,
        )
    if "://" in uri and not uri.startswith("file://"):
        raise InvalidParameter(f"unsupported artifact store URI {uri!r}: use a folder path or s3://bucket/prefix")
    return LocalArtifactStore(uri.removeprefix("file://"))
