"""The unmodified ``mlflow`` client logging and downloading artifacts through a labdeck
whose artifact store is S3 (moto): plain proxied uploads of nested folders, and large
files sent as presigned multipart uploads straight to the bucket."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest

pytestmark = pytest.mark.s3

MiB = 1024 * 1024
# S3 refuses parts below 5 MiB (except the last), so that is the smallest usable chunk
PART = 5 * MiB


@pytest.fixture
def bucket(s3) -> str:
    return s3.new_bucket()


@pytest.fixture
def client(start_server, mlflow_at, s3, bucket):
    server = start_server(artifacts={"uri": f"s3://{bucket}/root", "s3_endpoint_url": s3.endpoint})
    return mlflow_at(server)


def object_key(run, artifact_path: str) -> str:
    uri = run.info.artifact_uri
    assert uri.startswith("mlflow-artifacts:/")
    return f"root/{uri.removeprefix('mlflow-artifacts:').lstrip('/')}/{artifact_path}"


def test_large_file_goes_up_as_a_presigned_multipart_upload(client, s3, bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(PART))
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(PART))
    data = os.urandom(2 * PART + 12345)
    source = tmp_path / "upload" / "weights.bin"
    source.parent.mkdir()
    source.write_bytes(data)

    with mlflow.start_run() as run:
        mlflow.log_artifact(str(source), artifact_path="checkpoints")

    head = s3.client().head_object(Bucket=bucket, Key=object_key(run, "checkpoints/weights.bin"))
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3"), "the file must have arrived as three parts"
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    listed = client.list_artifacts(run.info.run_id, "checkpoints")
    assert [(f.path, f.is_dir, f.file_size) for f in listed] == [("checkpoints/weights.bin", False, len(data))]

    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="checkpoints/weights.bin", dst_path=str(tmp_path / "down")
    )
    assert Path(local).read_bytes() == data


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_nested_folders_log_and_download_unchanged(client, s3, bucket, tmp_path):
    source = tmp_path / "bundle"
    (source / "sub" / "deeper").mkdir(parents=True)
    (source / "README.md").write_text("# bundle\n")
    (source / "empty.txt").write_bytes(b"")
    (source / "sub" / "config.json").write_text('{"lr": 0.1}')
    (source / "sub" / "deeper" / "blob.bin").write_bytes(os.urandom(3 * MiB + 5))

    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(source), artifact_path="bundle")
        mlflow.log_text("hello", "notes/hello.txt")

    run_id = run.info.run_id
    assert [(f.path, f.is_dir) for f in client.list_artifacts(run_id)] == [("bundle", True), ("notes", True)]
    assert [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id, "bundle/sub")] == [
        ("bundle/sub/config.json", False, 11),
        ("bundle/sub/deeper", True, None),
    ]
    key = object_key(run, "bundle/sub/deeper/blob.bin")
    assert s3.client().head_object(Bucket=bucket, Key=key)["ContentLength"] == 3 * MiB + 5

    down = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "down")))
    assert tree(down / "bundle") == tree(source)
    assert (down / "notes" / "hello.txt").read_text() == "hello"
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/notes/hello.txt") == "hello"
