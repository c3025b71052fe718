"""Rollouts of registered model versions, under load through the gateway, with the real
``mlflow`` client driving the registry of a live labdeck server.

Registered model ``iris``: version 1 answers setosa with class 0, version 2 with class 1
(its labels were moved by one), version 3 is a folder whose model cannot be loaded. Every
V2 answer carries the version that gave it, so each answer says which replica set served.

- a new spec (version 1 -> 2) rolls out with zero failed requests, answers switch once;
- a broken version fails its rollout: version 2 keeps serving with zero failed requests,
  the deployment is DEGRADED with the failed replica's last words;
- an alias followed by a deployment moves, and the deployment rolls by itself (also on
  PostgreSQL); the registry's history records where the new version went.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.deployments.conftest import Labs
from tests.deployments.deploy_kit import (
    SETOSA,
    Lab,
    Models,
    load,
    model_deployment,
    note,
    register_iris,
    settled,
    v2_answer,
    v2_body,
)


@pytest.fixture(scope="module")
def broken_run(module_labs: Labs, lab: Lab, models: Models) -> str:
    """``iris`` versions 1, 2 and 3 (broken) in the module's server; the broken run's id."""
    run_id = register_iris(module_labs.point_mlflow(lab), models)
    assert run_id is not None
    return run_id


def iris(name: str, model: str, replicas: int = 1) -> dict[str, Any]:
    return model_deployment(name, {"name": "main", "model": model, "replicas": replicas})


def serving_version(d: dict[str, Any]) -> str | None:
    (main,) = d["predictors"]
    return (main["serving"] or {}).get("version")


def infer_path(name: str) -> str:
    return f"/deployments/{name}/v2/models/{name}/infer"


def test_rolling_update_from_version_1_to_2_under_load(clean_lab: Lab, broken_run: str) -> None:
    d = clean_lab.deploy(iris("roll", "models:/iris/1", replicas=2))
    assert serving_version(d) == "1"
    v1, v2 = "main:1:0", "main:2:1"
    with load(clean_lab, infer_path("roll"), v2_body("roll", [SETOSA]), v2_answer) as running:
        put_at = time.monotonic()
        clean_lab.replace("roll", iris("roll", "models:/iris/2", replicas=2))
        d = clean_lab.wait("roll", lambda d: settled(d) and serving_version(d) == "2", "version 2 serving")
        settled_at = time.monotonic()
        running.wait_for(100)  # and it keeps answering afterwards
    during = running.asked(put_at, settled_at)
    note("rolling update 1 -> 2 (2 replicas): %.2f s from PUT to settled; answers meanwhile %s", settled_at - put_at, dict(during))

    assert running.failures == []
    assert set(running.counts()) == {v1, v2}, running.counts()
    before, after = running.asked(before=put_at), running.asked(after=settled_at)
    assert set(before) == {v1} and set(after) == {v2}, (before, after)
    assert set(during) <= {v1, v2}
    replicas = d["predictors"][0]["replicas"]
    assert len(replicas) == 2 and {r["revision"] for r in replicas} == {d["predictors"][0]["serving"]["revision"]}
    kinds = clean_lab.kinds("roll")
    assert kinds[0] == "Serving"
    assert kinds[1:].index("RolloutStarted") < kinds[1:].index("Serving"), kinds
    assert "RolloutFailed" not in kinds


def test_a_broken_version_fails_its_rollout_and_the_old_one_keeps_serving(
    clean_lab: Lab, broken_run: str
) -> None:
    clean_lab.deploy(iris("steady", "models:/iris/2"))
    with load(clean_lab, infer_path("steady"), v2_body("steady", [SETOSA]), v2_answer) as running:
        started = time.monotonic()
        clean_lab.replace("steady", iris("steady", "models:/iris/3"))
        d = clean_lab.wait("steady", lambda d: d["state"] == "DEGRADED", "DEGRADED")
        failed_after = time.monotonic() - started
        running.wait_for(100)
        # it stays so: version 3 is not tried again until the spec or the alias changes
        time.sleep(3)
        later = clean_lab.get("steady")
    note("broken version 3: DEGRADED %.2f s after the PUT; message: %s", failed_after, d["message"])

    assert running.failures == []
    assert set(running.counts()) == {"main:2:1"}, running.counts()
    for status in (d, later):
        assert status["state"] == "DEGRADED"
        assert serving_version(status) == "2"
        (main,) = status["predictors"]
        assert main["state"] == "DEGRADED" and main["ready_replicas"] == 1
        # why: the failed replica's exit and its last log lines (which name the model's files)
        for message in (status["message"], main["message"]):
            assert "version 3" in message and "exited with status 1" in message, message
            assert broken_run in message, message
    assert [r["revision"] for r in later["predictors"][0]["replicas"]] == [d["predictors"][0]["serving"]["revision"]]
    kinds = clean_lab.kinds("steady")
    assert kinds.count("RolloutFailed") == 1, kinds
    assert kinds.index("RolloutStarted") < kinds.index("RolloutFailed"), kinds
    failed = next(e for e in clean_lab.events("steady") if e["kind"] == "RolloutFailed")
    assert broken_run in failed["message"]


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_moved_alias_rolls_the_deployment(database: str, request: pytest.FixtureRequest, models: Models) -> None:
    if database == "sqlite":
        lab: Lab = request.getfixturevalue("clean_lab")
        request.getfixturevalue("broken_run")
        client = request.getfixturevalue("module_labs").point_mlflow(lab)
    else:
        database_url = request.getfixturevalue("fresh_postgres_url")  # first: it must outlive the server
        labs: Labs = request.getfixturevalue("new_lab")
        lab = labs(database={"url": database_url})
        client = labs.point_mlflow(lab)
        register_iris(client, models, broken=False)
    client.set_registered_model_alias("iris", "production", "1")
    d = lab.deploy(iris("follow", "models:/iris@production"))
    assert serving_version(d) == "1"
    path, body = infer_path("follow"), v2_body("follow", [SETOSA])
    assert v2_answer(lab.http.post(path, json=body)) == "main:1:0"

    started = time.monotonic()
    client.set_registered_model_alias("iris", "production", "2")
    d = lab.wait("follow", lambda d: settled(d) and serving_version(d) == "2", "version 2 serving")
    note("alias moved to version 2 (%s): rolled in %.2f s", database, time.monotonic() - started)
    assert v2_answer(lab.http.post(path, json=body)) == "main:2:1"
    assert d["predictors"][0]["model"] == "models:/iris@production"

    history = lab.http.get("/api/v1/models/iris/history").json()["events"]
    deployed = [(e["version"], e["deployment"]) for e in history if e["kind"] == "DEPLOYED"]
    assert (2, "follow/main") in deployed and (1, "follow/main") in deployed, history
    kinds = lab.kinds("follow")
    assert kinds.index("RolloutStarted") < len(kinds) - 1 - kinds[::-1].index("Serving"), kinds
