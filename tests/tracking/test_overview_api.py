"""labdeck's tracking summaries for the UI (/api/v1/experiments/.../columns, run counts,
down-sampled metric histories) over HTTP against a live server with sign-in on."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from labdeck.tracking.overview import RunOverview
from tests.auth.access_kit import MLFLOW, Identity, auth_server, ok
from tests.conftest import RunningServer

SPIKE_STEP, SPIKE = 3777, 1000.0
DIP_STEP, DIP = 1234, -1000.0


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with auth_server(tmp_path_factory.mktemp("overview"), request.param) as running:
        yield running


@pytest.fixture(scope="module")
def ident(server: RunningServer) -> Identity:
    made = Identity.bootstrap(server)
    made.user("owner")
    made.user("outsider")
    made.team("vault", ["owner"], private=True)
    return made


def _run(http: httpx.Client, experiment_id: str, **batch: Any) -> str:
    run_id = ok(http.post(f"{MLFLOW}/runs/create", json={"experiment_id": experiment_id}))["run"]["info"]["run_id"]
    ok(http.post(f"{MLFLOW}/runs/log-batch", json={"run_id": run_id, **batch}))
    return run_id


def _metrics(key: str, values: list[float], start_step: int = 0) -> list[dict[str, Any]]:
    return [
        {"key": key, "value": value if not math.isnan(value) else "NaN", "timestamp": 1_700_000_000_000 + i, "step": start_step + i}
        for i, value in enumerate(values)
    ]


@pytest.fixture(scope="module")
def world(ident: Identity) -> dict[str, Any]:
    with ident.as_("owner") as http:
        experiment_id = ok(http.post(f"{MLFLOW}/experiments/create", json={"name": "overview"}))["experiment_id"]
        private_id = ok(http.post(f"{MLFLOW}/experiments/create", json={"name": "overview-private"}))["experiment_id"]
        ok(http.put(f"/api/v1/permissions/experiment/{private_id}/team", json={"team": "vault"}))
        first = _run(
            http,
            experiment_id,
            params=[{"key": "lr", "value": "0.1"}, {"key": "depth", "value": "3"}],
            metrics=_metrics("acc", [0.5]) + _metrics("train/loss", [1.0, 0.5]),
            tags=[{"key": "team", "value": "blue"}],
        )
        _run(http, experiment_id, params=[{"key": "batch", "value": "32"}], metrics=_metrics("f1", [0.4]))
        gone = _run(http, experiment_id, params=[{"key": "only_deleted", "value": "x"}], metrics=_metrics("zzz", [1.0]))
        ok(http.post(f"{MLFLOW}/runs/delete", json={"run_id": gone}))
        # a long history: smooth noise-free values with one spike up and one dip down
        values = [math.sin(i / 300) for i in range(5000)]
        values[SPIKE_STEP], values[DIP_STEP] = SPIKE, DIP
        values[10] = float("nan")
        long_run = _run(http, experiment_id)
        for start in range(0, 5000, 1000):
            ok(http.post(f"{MLFLOW}/runs/log-batch", json={"run_id": long_run, "metrics": _metrics("wave", values[start:start + 1000], start)}))
        private_run = _run(http, private_id, metrics=_metrics("secret", [1.0]))
    return {"experiment_id": experiment_id, "private_id": private_id, "first": first, "long": long_run, "private_run": private_run}


def test_columns_list_the_keys_of_active_runs(ident: Identity, world: dict[str, Any]) -> None:
    with ident.as_("owner") as http:
        found = ok(http.get(f"/api/v1/experiments/{world['experiment_id']}/columns"))
    assert found["params"] == ["batch", "depth", "lr"]
    assert found["metrics"] == ["acc", "f1", "train/loss", "wave"]
    assert "team" in found["tags"] and "only_deleted" not in found["params"]
    assert found["run_count"] == 3


def test_both_ways_of_listing_metric_keys_agree(server: RunningServer, world: dict[str, Any]) -> None:
    """Large experiments walk the key index instead of reading every row: same answer."""
    db = server.app.platform.tracking.store.db
    for experiment_id in (world["experiment_id"], world["private_id"]):
        plain = asyncio.run(RunOverview(db).columns(experiment_id))
        walked = asyncio.run(RunOverview(db, large_experiment_runs=0).columns(experiment_id))
        assert walked == plain and plain.metrics
    assert asyncio.run(RunOverview(db, large_experiment_runs=0).columns("0")).metrics == []


def test_columns_refuse_bad_ids_unknown_experiments_and_strangers(ident: Identity, world: dict[str, Any]) -> None:
    with ident.as_("owner") as http:
        bad = http.get("/api/v1/experiments/abc/columns")
        assert bad.status_code == 400 and "Invalid experiment ID 'abc'" in bad.json()["message"]
        missing = http.get("/api/v1/experiments/987654/columns")
        assert missing.status_code == 404 and "987654" in missing.json()["message"]
        assert ok(http.get(f"/api/v1/experiments/{world['private_id']}/columns"))["metrics"] == ["secret"]
    with ident.as_("outsider") as http:
        refused = http.get(f"/api/v1/experiments/{world['private_id']}/columns")
        assert refused.status_code == 403 and "outsider needs READ" in refused.json()["message"]
        assert ok(http.get(f"/api/v1/experiments/{world['experiment_id']}/columns"))["run_count"] == 3


def test_run_counts_leave_out_what_the_caller_may_not_read(ident: Identity, world: dict[str, Any]) -> None:
    ids = [world["experiment_id"], world["private_id"]]
    with ident.as_("owner") as http:
        assert ok(http.get("/api/v1/experiments/run-counts", params={"experiment_ids": ids}))["run_counts"] == {
            world["experiment_id"]: 3,
            world["private_id"]: 1,
        }
    with ident.as_("outsider") as http:
        counts = ok(http.get("/api/v1/experiments/run-counts", params={"experiment_ids": ids}))["run_counts"]
        assert counts == {world["experiment_id"]: 3}
        missing = http.get("/api/v1/experiments/run-counts")
        assert missing.status_code == 400 and "experiment_ids" in missing.json()["message"]
        bad = http.get("/api/v1/experiments/run-counts", params={"experiment_ids": ["x1"]})
        assert bad.status_code == 400 and "x1" in bad.json()["message"]


def test_a_short_history_comes_back_whole(ident: Identity, world: dict[str, Any]) -> None:
    with ident.as_("owner") as http:
        found = ok(http.get(f"/api/v1/runs/{world['first']}/metric-history", params={"key": "train/loss"}))
    assert found["total_count"] == 2 and found["downsampled"] is False and "buckets" not in found
    assert [(p["step"], p["value"]) for p in found["points"]] == [(0, 1.0), (1, 0.5)]


def test_down_sampling_keeps_every_buckets_min_and_max(ident: Identity, world: dict[str, Any]) -> None:
    with ident.as_("owner") as http:
        found = ok(http.get(f"/api/v1/runs/{world['long']}/metric-history", params={"key": "wave", "max_points": 100}))
    assert found["total_count"] == 5000 and found["downsampled"] is True
    points = found["points"]
    assert len(points) <= 100
    by_step = {p["step"]: p["value"] for p in points}
    assert by_step[SPIKE_STEP] == SPIKE and by_step[DIP_STEP] == DIP
    steps = [p["step"] for p in points]
    assert steps == sorted(steps) and steps[0] == 0
    buckets = found["buckets"]
    assert len(buckets) == 50 and sum(b["count"] for b in buckets) == 5000
    assert max(b["max"] for b in buckets) == SPIKE and min(b["min"] for b in buckets) == DIP
    # the NaN point is counted but never chosen as an extreme
    assert all(p["value"] is not None for p in points)
    # every bucket's extremes are exactly the points kept for it
    for bucket in buckets:
        inside = [p["value"] for p in points if bucket["first_step"] <= p["step"] <= bucket["last_step"]]
        assert min(inside) == bucket["min"] and max(inside) == bucket["max"]


def test_history_refuses_bad_input_and_strangers(ident: Identity, world: dict[str, Any]) -> None:
    with ident.as_("owner") as http:
        small = http.get(f"/api/v1/runs/{world['long']}/metric-history", params={"key": "wave", "max_points": 5})
        assert small.status_code == 400 and "max_points" in small.json()["message"]
        word = http.get(f"/api/v1/runs/{world['long']}/metric-history", params={"key": "wave", "max_points": "many"})
        assert word.status_code == 400 and "max_points" in word.json()["message"]
        unknown = http.get("/api/v1/runs/0123456789abcdef0123456789abcdef/metric-history", params={"key": "wave"})
        assert unknown.status_code == 404 and "0123456789abcdef0123456789abcdef" in unknown.json()["message"]
        nothing = ok(http.get(f"/api/v1/runs/{world['long']}/metric-history", params={"key": "never-logged"}))
        assert nothing["total_count"] == 0 and nothing["points"] == []
        no_key = http.get(f"/api/v1/runs/{world['long']}/metric-history")
        assert no_key.status_code == 400 and "key" in no_key.json()["message"]
    with ident.as_("outsider") as http:
        refused = http.get(f"/api/v1/runs/{world['private_run']}/metric-history", params={"key": "secret"})
        assert refused.status_code == 403 and "outsider needs READ" in refused.json()["message"]


def test_the_new_routes_are_in_the_openapi_document(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        paths = http.get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/experiments/{experiment_id}/columns" in paths
    assert "/api/v1/experiments/run-counts" in paths
    assert "/api/v1/runs/{run_id}/metric-history" in paths
