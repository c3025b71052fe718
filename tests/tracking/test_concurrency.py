"""Sixteen threads logging through the REST API at once: to one shared run and to a run
each. No request fails and every value is stored (SQLite's single writer with group commit
and PostgreSQL's own concurrency)."""

from __future__ import annotations

import threading

import httpx

THREADS = 16
POINTS = 60


def _log(url: str, run_ids: list[str], errors: list[str], thread: int) -> None:
    with httpx.Client(base_url=url + "/api/2.0/mlflow", timeout=60) as client:
        for step in range(POINTS):
            for run_id in run_ids:
                r = client.post(
                    "/runs/log-metric",
                    json={"run_id": run_id, "key": f"t{thread}", "value": step * 0.5, "timestamp": 1000 + step, "step": step},
                )
                if r.status_code != 200:
                    errors.append(r.text)
            r = client.post("/runs/log-parameter", json={"run_id": run_ids[0], "key": f"p{thread}", "value": "same"})
            if r.status_code != 200:
                errors.append(r.text)


def test_sixteen_threads_log_to_shared_and_own_runs(server, api):
    shared = api.post("/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]["run_id"]
    own = [api.post("/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]["run_id"] for _ in range(THREADS)]
    errors: list[str] = []
    threads = [threading.Thread(target=_log, args=(server.url, [shared, own[n]], errors, n)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    for n in range(THREADS):
        for run_id in (shared, own[n]):
            history = api.get("/metrics/get-history", params={"run_id": run_id, "metric_key": f"t{n}"}).json()["metrics"]
            assert [(m["step"], m["value"]) for m in history] == [(s, s * 0.5) for s in range(POINTS)]
    shared_run = api.get("/runs/get", params={"run_id": shared}).json()["run"]
    latest = {m["key"]: m["value"] for m in shared_run["data"]["metrics"]}
    assert latest == {f"t{n}": (POINTS - 1) * 0.5 for n in range(THREADS)}
    assert {p["key"] for p in shared_run["data"]["params"]} == {f"p{n}" for n in range(THREADS)}
