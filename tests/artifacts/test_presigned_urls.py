"""``artifacts/presigned-upload-url`` and ``presigned-download-url``: on S3 the URLs are
signed by the store and work with a plain HTTP client; the local store says it cannot."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def s3_server(start_server, s3):
    bucket = s3.new_bucket()
    return start_server(artifacts={"uri": f"s3://{bucket}/root", "s3_endpoint_url": s3.endpoint})


def _run(url: str) -> str:
    created = httpx.post(url + "/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}).json()
    return created["run"]["info"]["run_id"]


def test_presigned_upload_then_download_of_a_run_file(s3_server):
    api = s3_server.url + "/api/2.0/mlflow"
    run_id = _run(s3_server.url)
    upload = httpx.post(api + "/artifacts/presigned-upload-url", json={"run_id": run_id, "path": "data/blob.bin"}).json()
    assert httpx.put(upload["presigned_url"], content=b"direct bytes").status_code == 200

    proxied = httpx.get(s3_server.url + f"/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts/data/blob.bin")
    assert proxied.content == b"direct bytes"

    download = httpx.post(
        api + "/artifacts/presigned-download-url", json={"run_id": run_id, "path": "data/blob.bin", "expiration": 60}
    ).json()
    assert download["file_size"] == len(b"direct bytes")
    assert httpx.get(download["presigned_url"]).content == b"direct bytes"


def test_presigned_url_requests_are_checked(s3_server):
    api = s3_server.url + "/api/2.0/mlflow"
    run_id = _run(s3_server.url)
    both = httpx.post(api + "/artifacts/presigned-upload-url", json={"run_id": run_id, "model_id": "m-1", "path": "x"})
    assert both.status_code == 400 and "Exactly one of run_id and model_id" in both.json()["message"]
    escape = httpx.post(api + "/artifacts/presigned-upload-url", json={"run_id": run_id, "path": "../../other"})
    assert escape.status_code == 400 and escape.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    too_long = httpx.post(
        api + "/artifacts/presigned-download-url", json={"run_id": run_id, "path": "x", "expiration": 10**7}
    )
    assert too_long.status_code == 400 and "expiration" in too_long.json()["message"]
    missing = httpx.post(api + "/artifacts/presigned-download-url", json={"run_id": run_id, "path": "absent"})
    assert missing.status_code == 404


def test_the_local_store_does_not_presign(start_server):
    server = start_server()
    run_id = _run(server.url)
    answer = httpx.post(
        server.url + "/api/2.0/mlflow/artifacts/presigned-upload-url", json={"run_id": run_id, "path": "x.txt"}
    )
    assert answer.status_code == 501
    assert answer.json() == {
        "error_code": "NOT_IMPLEMENTED",
        "message": "Presigned URLs are not supported for the current artifact repository",
    }
