"""Deployments outlive what goes wrong around them, with real processes:

- a replica killed with SIGKILL under load: no request fails (the gateway sends it again
  to the other replica), the controller starts a replacement and records why;
- the labdeck server stopped (gracefully) while a deployment runs: its replicas go on
  answering on their own ports; a new server on the same data folder adopts them (the same
  processes, none started twice), the gateway serves again, and deleting the deployment
  stops every one of them.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.deployments.conftest import Labs
from tests.deployments.deploy_kit import (
    SETOSA,
    Lab,
    Models,
    load,
    model_deployment,
    note,
    serve_processes,
    settled,
    v2_answer,
    v2_body,
    wait_until,
)
from tests.processes import alive


def two_replicas(name: str, models: Models) -> dict[str, object]:
    return model_deployment(name, {"name": "main", "model": str(models["iris"]), "replicas": 2})


def test_a_killed_replica_costs_no_request_and_is_replaced(clean_lab: Lab, models: Models) -> None:
    d = clean_lab.deploy(two_replicas("sturdy", models))
    before = {r["id"]: r["pid"] for r in d["predictors"][0]["replicas"]}
    assert set(serve_processes(clean_lab.cache_dir)) == set(before.values())
    victim_id, victim = next(iter(before.items()))

    path = "/deployments/sturdy/v2/models/sturdy/infer"
    with load(clean_lab, path, v2_body("sturdy", [SETOSA]), v2_answer) as loaded:
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        d = clean_lab.wait(
            "sturdy",
            lambda d: settled(d) and victim not in {r["pid"] for r in d["predictors"][0]["replicas"]},
            "two ready replicas again, the killed one replaced",
        )
        replaced_after = time.monotonic() - killed_at
        loaded.wait_for(100)
    note("SIGKILL of 1 of 2 replicas: replaced (2 ready) %.2f s later", replaced_after)

    assert loaded.failures == []
    assert set(loaded.counts()) == {"main:None:0"}
    assert not alive(victim)
    replicas = d["predictors"][0]["replicas"]
    assert [r["state"] for r in replicas] == ["READY", "READY"]
    replaced = next(r for r in replicas if r["id"] == victim_id)
    assert replaced["restarts"] == 1 and replaced["pid"] != victim
    assert set(serve_processes(clean_lab.cache_dir)) == {r["pid"] for r in replicas}
    crashed = [e for e in clean_lab.events("sturdy") if e["kind"] == "ReplicaCrashed"]
    assert len(crashed) == 1, crashed
    assert victim_id in crashed[0]["message"] and "SIGKILL" in crashed[0]["message"], crashed


def test_a_restarted_server_adopts_its_replicas(new_lab: Labs, models: Models) -> None:
    first = new_lab()
    d = first.deploy(two_replicas("lasting", models))
    replicas = d["predictors"][0]["replicas"]
    pids = {r["pid"] for r in replicas}
    body = v2_body("lasting", [SETOSA])

    first.server.stop()
    # a graceful stop: uvicorn ran the lifespan's shutdown (the controller let go of the
    # replicas without stopping them) and returned, within the fixture's join
    assert not first.server.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(first.url + "/health", timeout=5, trust_env=False)
    assert set(serve_processes(first.cache_dir)) == pids
    for replica in replicas:  # each goes on answering on its own port meanwhile
        answer = httpx.post(f"http://{replica['http']}/v2/models/lasting/infer", json=body, timeout=30, trust_env=False)
        assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [0], answer.text

    second = new_lab(data_dir=first.server.settings.data_dir)
    d = second.wait_available("lasting")
    assert {r["pid"] for r in d["predictors"][0]["replicas"]} == pids
    assert [r["restarts"] for r in d["predictors"][0]["replicas"]] == [0, 0]
    assert set(serve_processes(second.cache_dir)) == pids  # adopted, none started twice
    for _ in range(10):
        answer = second.http.post("/deployments/lasting/v2/models/lasting/infer", json=body)
        assert answer.status_code == 200, answer.text
    # a few ticks later it still runs the same two (adoption is not followed by a restart)
    time.sleep(2.5)
    assert {r["pid"] for r in second.replicas("lasting")} == pids
    assert set(serve_processes(second.cache_dir)) == pids
    assert "ReplicaCrashed" not in second.kinds("lasting")

    second.delete("lasting")
    wait_until(lambda: not any(alive(pid) for pid in pids), "the adopted replicas stopped", timeout=30)
    assert serve_processes(second.cache_dir) == {}
