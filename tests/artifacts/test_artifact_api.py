"""The proxied artifact service over HTTP (``/api/2.0/mlflow-artifacts/...``) and MLflow's
plain ``/get-artifact`` route, on a live labdeck backed by a folder and by S3 (moto).

Requests go through httpx with hand-encoded paths, so that ``..`` reaches the server
un-normalised; every deployment has neighbours outside its artifact root that must be
unchanged when a test ends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MPU = "/api/2.0/mlflow-artifacts/mpu"
MiB = 1024 * 1024
NO_MULTIPART = "Multipart upload is not supported for the current artifact repository"


@dataclass
class Deployment:
    kind: str
    http: httpx.Client
    outside: Callable[[], set[str]]
    stored: Callable[[str], bytes | None]
    """The bytes stored at a root-relative path, read behind the server's back."""


def local_deployment(start_server, tmp_path: Path) -> Deployment:
    store_dir = tmp_path / "store"
    root = store_dir / "root"
    store_dir.mkdir()
    (store_dir / "decoy.txt").write_bytes(b"decoy")
    (store_dir / "root-sibling").mkdir()
    server = start_server(artifacts={"uri": str(root)})

    def outside() -> set[str]:
        return {
            str(p.relative_to(store_dir))
            for p in store_dir.rglob("*")
            if p != root and root not in p.parents
        }

    def stored(path: str) -> bytes | None:
        target = root / path
        return target.read_bytes() if target.is_file() else None

    return Deployment("local", server.http(), outside, stored)


def s3_deployment(start_server, s3) -> Deployment:
    bucket = s3.new_bucket()
    client = s3.client()
    client.put_object(Bucket=bucket, Key="decoy.txt", Body=b"decoy")
    client.put_object(Bucket=bucket, Key="root-sibling/keep.txt", Body=b"keep")
    server = start_server(artifacts={"uri": f"s3://{bucket}/root", "s3_endpoint_url": s3.endpoint})

    def outside() -> set[str]:
        keys = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {k["Key"] for k in keys if not k["Key"].startswith("root/")}

    def stored(path: str) -> bytes | None:
        try:
            return client.get_object(Bucket=bucket, Key=f"root/{path}")["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    return Deployment("s3", server.http(), outside, stored)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def deployment(request: pytest.FixtureRequest, start_server, tmp_path: Path) -> Iterator[Deployment]:
    if request.param == "local":
        made = local_deployment(start_server, tmp_path)
    else:
        made = s3_deployment(start_server, request.getfixturevalue("s3"))
    before = made.outside()
    assert before
    with made.http:
        yield made
    assert made.outside() == before


@pytest.fixture
def on_s3(start_server, s3) -> Iterator[Deployment]:
    made = s3_deployment(start_server, s3)
    with made.http:
        yield made


@pytest.fixture
def on_local(start_server, tmp_path: Path) -> Iterator[Deployment]:
    made = local_deployment(start_server, tmp_path)
    with made.http:
        yield made


def error_of(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json"
    return response.json()["error_code"]


def streamed(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_upload_download_list_and_delete(deployment):
    http = deployment.http
    blob = os.urandom(3 * MiB + 17)
    assert http.put(f"{ARTIFACTS}/dir/hello.txt", content=b"hello").json() == {}
    assert http.put(f"{ARTIFACTS}/dir/sub/data.json", content=b'{"a": 1}').status_code == 200
    assert http.put(f"{ARTIFACTS}/dir/blob.bin", content=streamed(blob)).status_code == 200
    assert deployment.stored("dir/blob.bin") == blob

    hello = http.get(f"{ARTIFACTS}/dir/hello.txt")
    assert hello.status_code == 200 and hello.content == b"hello"
    assert hello.headers["content-type"] == "text/plain; charset=utf-8"
    assert hello.headers["content-disposition"] == "attachment; filename*=UTF-8''hello.txt"
    assert hello.headers["content-length"] == "5"
    data = http.get(f"{ARTIFACTS}/dir/sub/data.json")
    assert (data.content, data.headers["content-type"]) == (b'{"a": 1}', "application/json; charset=utf-8")
    got = http.get(f"{ARTIFACTS}/dir/blob.bin")
    assert got.content == blob
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-length"] == str(len(blob))

    assert http.get(ARTIFACTS, params={"path": "dir"}).json() == {
        "files": [
            {"path": "blob.bin", "is_dir": False, "file_size": len(blob)},
            {"path": "hello.txt", "is_dir": False, "file_size": 5},
            {"path": "sub", "is_dir": True},
        ]
    }
    assert http.get(ARTIFACTS, params={"path": "dir/sub"}).json() == {
        "files": [{"path": "data.json", "is_dir": False, "file_size": 8}]
    }
    assert http.get(ARTIFACTS).json() == {"files": [{"path": "dir", "is_dir": True}]}
    assert http.get(ARTIFACTS, params={"path": "missing"}).json() == {}

    assert http.delete(f"{ARTIFACTS}/dir/hello.txt").json() == {}
    missing = http.get(f"{ARTIFACTS}/dir/hello.txt")
    assert missing.status_code == 404 and error_of(missing) == "RESOURCE_DOES_NOT_EXIST"
    assert http.delete(f"{ARTIFACTS}/dir").status_code == 200
    assert http.get(ARTIFACTS).json() == {}
    again = http.delete(f"{ARTIFACTS}/dir")
    assert again.status_code == 404 and error_of(again) == "RESOURCE_DOES_NOT_EXIST"


def test_percent_encoded_names_are_decoded_exactly_once(deployment):
    http = deployment.http
    assert http.put(f"{ARTIFACTS}/odd/100%25%20done.txt", content=b"spaces").status_code == 200
    assert http.put(f"{ARTIFACTS}/odd/a%2541.txt", content=b"literal").status_code == 200
    names = [f["path"] for f in http.get(ARTIFACTS, params={"path": "odd"}).json()["files"]]
    assert names == ["100% done.txt", "a%41.txt"]
    assert deployment.stored("odd/a%41.txt") == b"literal"
    got = http.get(f"{ARTIFACTS}/odd/a%2541.txt")
    assert got.content == b"literal"
    assert got.headers["content-disposition"] == "attachment; filename*=UTF-8''a%2541.txt"


TRAVERSALS = [
    "%2e%2e/{name}",
    "%2E%2E%2F{name}",
    "a/%2e%2e/%2e%2e/{name}",
    "/tmp/{name}",
    "%2Fetc%2F{name}",
    "C:/{name}",
    "a%5C{name}",
    "{name}%00.txt",
]


@pytest.mark.parametrize("form", TRAVERSALS)
def test_paths_leaving_the_root_are_refused_over_http(deployment, form):
    http = deployment.http
    name = f"escaped-{uuid.uuid4().hex[:8]}.txt"
    url = f"{ARTIFACTS}/{form.format(name=name)}"
    for method in ("PUT", "GET", "DELETE"):
        response = http.request(method, url, content=b"escaped" if method == "PUT" else None)
        assert response.status_code == 400, (method, response.text)
        assert error_of(response) == "INVALID_PARAMETER_VALUE"
        assert "Invalid" in response.json()["message"]
        assert form.split("{")[0].encode() in response.request.url.raw_path
    assert not Path("/tmp", name).exists() and not Path("/etc", name).exists()
    assert deployment.stored(name) is None


def test_listing_and_get_artifact_refuse_paths_leaving_the_root(deployment):
    http = deployment.http
    for bad in ["..", "../", "a/../..", "/etc", "C:/Windows", "a\\b", "a\x00b"]:
        response = http.get(ARTIFACTS, params={"path": bad})
        assert response.status_code == 400 and error_of(response) == "INVALID_PARAMETER_VALUE", bad
    run_id = create_run(http)["info"]["run_id"]
    for bad in ["../../../decoy.txt", "/etc/passwd", "a\x00b"]:
        response = http.get("/get-artifact", params={"run_id": run_id, "path": bad})
        assert response.status_code == 400 and error_of(response) == "INVALID_PARAMETER_VALUE", bad


def create_run(http: httpx.Client) -> dict:
    response = http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0"})
    assert response.status_code == 200, response.text
    return response.json()["run"]


def test_get_artifact_serves_a_file_of_a_run(deployment):
    http = deployment.http
    run = create_run(http)
    uri = run["info"]["artifact_uri"]
    assert uri.startswith("mlflow-artifacts:/")
    run_path = uri.removeprefix("mlflow-artifacts:").lstrip("/")
    assert http.put(f"{ARTIFACTS}/{run_path}/notes/readme.md", content=b"# read me").status_code == 200
    assert deployment.stored(f"{run_path}/notes/readme.md") == b"# read me"

    got = http.get("/get-artifact", params={"run_id": run["info"]["run_id"], "path": "notes/readme.md"})
    assert got.status_code == 200 and got.content == b"# read me"
    assert got.headers["content-type"] == "text/markdown; charset=utf-8"
    assert got.headers["content-disposition"] == "attachment; filename*=UTF-8''readme.md"
    assert got.headers["content-length"] == "9"
    absent = http.get("/get-artifact", params={"run_id": run["info"]["run_id"], "path": "notes/absent.md"})
    assert absent.status_code == 404 and error_of(absent) == "RESOURCE_DOES_NOT_EXIST"
    no_run = http.get("/get-artifact", params={"run_id": "0" * 32, "path": "notes/readme.md"})
    assert no_run.status_code == 404 and error_of(no_run) == "RESOURCE_DOES_NOT_EXIST"


def test_server_info_reports_multipart_support(deployment):
    info = deployment.http.get("/api/3.0/mlflow/server-info")
    assert info.status_code == 200
    assert info.json()["multipart_uploads_enabled"] is (deployment.kind == "s3")


def put_part(credential: dict, body: bytes) -> dict:
    headers = {h["key"]: h["value"] for h in credential.get("headers", [])}
    response = httpx.put(credential["url"], content=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return {"part_number": credential["part_number"], "etag": response.headers["etag"], "url": credential["url"]}


@pytest.mark.s3
def test_multipart_upload_through_presigned_urls(on_s3):
    http = on_s3.http
    # the mlflow client sends the path of its local file; only the file name counts
    local_file = "/home/someone/data/model.bin"
    created = http.post(f"{MPU}/create/exp/big", json={"path": local_file, "num_parts": 2})
    assert created.status_code == 200, created.text
    body = created.json()
    assert [c["part_number"] for c in body["credentials"]] == [1, 2]
    first, second = os.urandom(5 * MiB), os.urandom(4321)
    parts = [put_part(body["credentials"][0], first), put_part(body["credentials"][1], second)]

    done = http.post(f"{MPU}/complete/exp/big", json={"path": local_file, "upload_id": body["upload_id"], "parts": parts})
    assert done.status_code == 200 and done.json() == {}
    got = http.get(f"{ARTIFACTS}/exp/big/model.bin")
    assert got.status_code == 200 and got.content == first + second
    assert http.get(ARTIFACTS, params={"path": "exp/big"}).json() == {
        "files": [{"path": "model.bin", "is_dir": False, "file_size": len(first) + len(second)}]
    }


@pytest.mark.s3
def test_multipart_bad_input_and_abort(on_s3):
    http = on_s3.http
    created = http.post(f"{MPU}/create/exp", json={"path": "weights.bin", "num_parts": 1}).json()
    part = put_part(created["credentials"][0], b"weights")
    wrong = http.post(
        f"{MPU}/complete/exp",
        json={"path": "weights.bin", "upload_id": created["upload_id"], "parts": [{**part, "etag": '"' + "0" * 32 + '"'}]},
    )
    assert wrong.status_code == 400 and error_of(wrong) == "INVALID_PARAMETER_VALUE"
    assert "InvalidPart" in wrong.json()["message"]

    aborted = http.post(f"{MPU}/abort/exp", json={"path": "weights.bin", "upload_id": created["upload_id"]})
    assert aborted.status_code == 200 and aborted.json() == {}
    again = http.post(f"{MPU}/abort/exp", json={"path": "weights.bin", "upload_id": created["upload_id"]})
    assert again.status_code == 404 and error_of(again) == "RESOURCE_DOES_NOT_EXIST"
    assert http.get(f"{ARTIFACTS}/exp/weights.bin").status_code == 404

    refused = [
        (f"{MPU}/create/%2e%2e", {"path": "x.bin", "num_parts": 1}),
        (f"{MPU}/create//etc", {"path": "x.bin", "num_parts": 1}),
        (f"{MPU}/abort/a%5Cb", {"path": "x.bin", "upload_id": "u"}),
        (f"{MPU}/create/exp", {"path": "..", "num_parts": 1}),
        (f"{MPU}/create/exp", {"path": "x.bin", "num_parts": 0}),
        (f"{MPU}/create/exp", {"num_parts": 1}),
        (f"{MPU}/create/exp", {"path": "/home/someone/", "num_parts": 1}),
        (f"{MPU}/complete/exp", {"path": "x.bin", "upload_id": "u", "parts": [{"part_number": 0, "etag": "e"}]}),
    ]
    for url, payload in refused:
        response = http.post(url, json=payload)
        assert response.status_code == 400 and error_of(response) == "INVALID_PARAMETER_VALUE", (url, payload)
    assert http.get(ARTIFACTS).json() == {}


def test_local_store_answers_multipart_with_mlflows_not_implemented(on_local):
    http = on_local.http
    calls = [
        (f"{MPU}/create/exp", {"path": "x.bin", "num_parts": 2}),
        (f"{MPU}/complete/exp", {"path": "x.bin", "upload_id": "u", "parts": [{"part_number": 1, "etag": "e"}]}),
        (f"{MPU}/abort/exp", {"path": "x.bin", "upload_id": "u"}),
    ]
    for url, payload in calls:
        response = http.post(url, json=payload)
        assert response.status_code == 501
        assert response.json() == {"error_code": "NOT_IMPLEMENTED", "message": NO_MULTIPART}


def test_ui_upload_into_a_run(start_server):
    server = start_server()
    run_id = httpx.post(server.url + "/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]["run_id"]
    upload = server.url + "/ajax-api/2.0/mlflow/upload-artifact"
    ok = httpx.post(upload, params={"run_uuid": run_id, "path": "notes/a.txt"}, content=b"from the UI")
    assert ok.status_code == 200
    got = httpx.get(server.url + "/get-artifact", params={"run_id": run_id, "path": "notes/a.txt"})
    assert got.content == b"from the UI"

    assert httpx.post(upload, params={"path": "x"}, content=b"x").json()["message"] == "Request must specify run_uuid."
    empty = httpx.post(upload, params={"run_uuid": run_id, "path": "empty.txt"}, content=b"")
    assert empty.status_code == 400 and empty.json()["message"] == "Request must specify data."
    big = httpx.post(upload, params={"run_uuid": run_id, "path": "big.bin"}, content=b"x" * (10 * 1024 * 1024 + 1))
    assert big.status_code == 400 and "Max size is 10MB" in big.json()["message"]
    escape = httpx.post(upload, params={"run_uuid": run_id, "path": "../../x"}, content=b"x")
    assert escape.status_code == 400
    listing = httpx.get(server.url + "/api/2.0/mlflow/artifacts/list", params={"run_id": run_id}).json()
    assert [f["path"] for f in listing["files"]] == ["notes"]


def test_over_long_paths_are_refused(start_server):
    server = start_server()
    long_name = "n" * 256
    for method, url in (
        ("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{long_name}"),
        ("GET", f"/api/2.0/mlflow-artifacts/artifacts/{long_name}"),
        ("GET", f"/api/2.0/mlflow-artifacts/artifacts?path={long_name}"),
        ("GET", "/api/2.0/mlflow-artifacts/artifacts?path=" + "/".join(["d" * 200] * 6)),
    ):
        answer = httpx.request(method, server.url + url, content=b"x" if method == "PUT" else None)
        assert answer.status_code == 400, (method, url, answer.text)
        assert "longer than" in answer.json()["message"]
