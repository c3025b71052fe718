"""Endpoints the mlflow client flow does not reach by itself: dataset summaries, the
metric-history variants the UI charts use, server-info, health and version, log-model, and
the MLflow JSON conventions (int64 as numbers, NaN as "NaN", empty fields left out)."""

from __future__ import annotations

import json

import httpx


def _run(api: httpx.Client, experiment_id: str = "0") -> str:
    return api.post("/runs/create", json={"experiment_id": experiment_id, "start_time": 1}).json()["run"]["info"]["run_id"]


def test_health_version_and_server_info(server):
    assert httpx.get(server.url + "/health").text == "OK"
    assert httpx.get(server.url + "/version").text
    info = httpx.get(server.url + "/api/3.0/mlflow/server-info").json()
    assert info["store_type"] == "SqlStore"
    assert info["multipart_uploads_enabled"] is False
    assert httpx.get(server.url + "/ajax-api/3.0/mlflow/server-info").status_code == 200


def test_every_endpoint_is_also_under_ajax_api(server):
    ajax = httpx.post(server.url + "/ajax-api/2.0/mlflow/experiments/create", json={"name": "via-ajax"})
    assert ajax.status_code == 200
    got = httpx.get(server.url + "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "via-ajax"})
    assert got.json()["experiment"]["experiment_id"] == ajax.json()["experiment_id"]


def test_json_conventions(api):
    run_id = _run(api)
    api.post("/runs/log-metric", json={"run_id": run_id, "key": "nan", "value": "NaN", "timestamp": 2**40, "step": 2**40})
    body = api.get("/runs/get", params={"run_id": run_id}).json()
    raw = json.dumps(body)
    info = body["run"]["info"]
    assert isinstance(info["start_time"], int) and "end_time" not in info
    assert body["run"]["data"]["metrics"] == [{"key": "nan", "value": "NaN", "timestamp": 2**40, "step": 2**40}]
    assert "params" not in body["run"]["data"] and body["run"]["inputs"] == {}
    assert info["run_uuid"] == info["run_id"] == run_id
    assert '"experiment_id": "0"' in raw


def test_search_datasets_summarises_inputs(api):
    experiment_id = api.post("/experiments/create", json={"name": "data"}).json()["experiment_id"]
    run_id = _run(api, experiment_id)
    dataset = {"name": "iris", "digest": "abc123", "source_type": "local", "source": '{"uri": "/tmp/iris.csv"}'}
    api.post(
        "/runs/log-inputs",
        json={"run_id": run_id, "datasets": [{"dataset": dataset, "tags": [{"key": "mlflow.data.context", "value": "train"}]}]},
    ).raise_for_status()
    api.post("/runs/log-inputs", json={"run_id": run_id, "datasets": [{"dataset": {**dataset, "digest": "def456"}}]})
    summaries = api.post("/experiments/search-datasets", json={"experiment_ids": [experiment_id]}).json()
    assert summaries == {
        "dataset_summaries": [
            {"experiment_id": experiment_id, "name": "iris", "digest": "abc123", "context": "train"},
            {"experiment_id": experiment_id, "name": "iris", "digest": "def456"},
        ]
    }
    assert api.post("/experiments/search-datasets", json={"experiment_ids": []}).status_code == 400
    too_many = api.post("/experiments/search-datasets", json={"experiment_ids": [str(i) for i in range(21)]})
    assert too_many.status_code == 400 and "more than 20" in too_many.json()["message"]


def test_history_paging_and_bulk_interval(server, api):
    run_a, run_b = _run(api), _run(api)
    metrics = [{"key": "loss", "value": float(s), "timestamp": 100 + s, "step": s} for s in range(1000)]
    for run_id in (run_a, run_b):
        api.post("/runs/log-batch", json={"run_id": run_id, "metrics": metrics}).raise_for_status()

    seen, token, pages = [], None, 0
    while True:
        params = {"run_id": run_a, "metric_key": "loss", "max_results": 300}
        if token:
            params["page_token"] = token
        page = api.get("/metrics/get-history", params=params).json()
        seen += [m["step"] for m in page["metrics"]]
        pages += 1
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == list(range(1000)) and pages == 4

    sampled = api.get(
        "/metrics/get-history-bulk-interval",
        params={"run_ids": [run_a, run_b], "metric_key": "loss", "max_results": 10},
    ).json()["metrics"]
    for run_id in (run_a, run_b):
        steps = [m["step"] for m in sampled if m["run_id"] == run_id]
        assert len(steps) == 10 and steps[0] == 0 and steps[-1] == 999 and steps == sorted(steps)

    window = api.get(
        "/metrics/get-history-bulk-interval",
        params={"run_ids": run_a, "metric_key": "loss", "start_step": 100, "end_step": 199, "max_results": 2500},
    ).json()["metrics"]
    assert [m["step"] for m in window] == list(range(100, 200))

    bulk = httpx.get(
        server.url + "/ajax-api/2.0/mlflow/metrics/get-history-bulk",
        params={"run_id": [run_a, run_b], "metric_key": "loss", "max_results": 1500},
    ).json()["metrics"]
    assert len(bulk) == 1500 and {m["run_id"] for m in bulk} == {run_a, run_b}


def test_log_model_appends_to_the_history_tag(api):
    run_id = _run(api)
    for path in ("model", "model2"):
        model = {"artifact_path": path, "flavors": {"python_function": {}}, "utc_time_created": "2026-01-01", "run_id": run_id}
        api.post("/runs/log-model", json={"run_id": run_id, "model_json": json.dumps(model)}).raise_for_status()
    tags = {t["key"]: t["value"] for t in api.get("/runs/get", params={"run_id": run_id}).json()["run"]["data"]["tags"]}
    history = json.loads(tags["mlflow.log-model.history"])
    assert [m["artifact_path"] for m in history] == ["model", "model2"]
    bad = api.post("/runs/log-model", json={"run_id": run_id, "model_json": json.dumps({"flavors": {}})})
    assert bad.status_code == 400 and "artifact_path" in bad.json()["message"]


def test_numbers_beyond_64_bits_in_filters(server, api):
    run_id = _run(api)
    api.post("/runs/log-metric", json={"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1}).raise_for_status()
    for text, expected in (
        ("metrics.m < 1e400", [run_id]),
        ("attributes.start_time < 99999999999999999999", [run_id]),
        ("attributes.start_time > -99999999999999999999", [run_id]),
        ("metrics.m > 99999999999999999999", []),
    ):
        found = api.post("/runs/search", json={"experiment_ids": ["0"], "filter": text}).json()
        assert [r["info"]["run_id"] for r in found.get("runs", [])] == expected, text
    versions = api.get("/model-versions/search", params={"filter": "version_number >= 99999999999999999999"})
    assert versions.status_code == 200 and versions.json() == {}
