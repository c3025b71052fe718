"""Real parts for the browser tests of the platform pages and the journey: a labdeck with
password sign-in and workspaces in an environment that can train a model (mlflow-skinny,
pandas, scikit-learn; built once per machine into the shared test cache), the ``mlflow``
client pointed at it, and waits that say what they saw when they give up.

``platform_server`` is module-scoped; when the module ends it deletes every deployment and
stops every workspace through the API, then stops the server, so no model server or
JupyterLab outlives it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from labdeck.config import EnvironmentSettings
from tests.auth.access_kit import PASSWORD, auth_server
from tests.conftest import RunningServer
from tests.waiting import wait_until
from tests.web.conftest import mlflow_pointed_at, off_main_thread
from tests.workspaces.conftest import workspace_settings

SKLEARN_ENV = EnvironmentSettings(
    name="sklearn",
    # skops: mlflow saves scikit-learn models with it by default (the full mlflow package brings it)
    description="Python with scikit-learn (cut down for the tests)",
    packages=["mlflow-skinny", "pandas<3", "scikit-learn", "skops"],
)
SETOSA = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def platform_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = auth_server(
        tmp_path_factory.mktemp("labdeck-platform-ui"), "sqlite", settings={"workspaces": workspace_settings(SKLEARN_ENV)}
    )
    server = off_main_thread(running.__enter__)
    try:
        yield server
    finally:
        try:
            off_main_thread(lambda: clean_up(server))
        finally:
            off_main_thread(lambda: running.__exit__(None, None, None))


def admin_client(server: RunningServer) -> httpx.Client:
    from tests.auth.access_kit import ROOT, ROOT_PASSWORD

    with httpx.Client(base_url=server.url, timeout=60, auth=(ROOT, ROOT_PASSWORD)) as client:
        made = client.post("/api/v1/tokens", json={"name": f"platform-ui-{time.monotonic_ns()}"})
        assert made.status_code == 201, made.text
    return httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {made.json()['token']}"})


@pytest.fixture(scope="module")
def admin_api(platform_server: RunningServer) -> Iterator[httpx.Client]:
    with admin_client(platform_server) as client:
        yield client


def clean_up(server: RunningServer) -> None:
    with admin_client(server) as api:
        for d in api.get("/api/v1/deployments").json()["deployments"]:
            api.delete(f"/api/v1/deployments/{d['name']}")
        for s in api.get("/api/v1/workspaces", params={"all": "true"}).json()["workspaces"]:
            if s["state"] in ("STARTING", "RUNNING"):
                path = f"/api/v1/workspaces/{s['user']}" + (f"/{s['server']}" if s["server"] else "")
                api.delete(path)
        wait_until(lambda: not api.get("/api/v1/deployments").json()["deployments"], "every deployment gone")
        wait_until(
            lambda: all(
                s["state"] in ("STOPPED", "FAILED")
                for s in api.get("/api/v1/workspaces", params={"all": "true"}).json()["workspaces"]
            ),
            "every workspace stopped",
        )


def make_user(api: httpx.Client, username: str) -> str:
    """A user (password ``PASSWORD``), made through the API as an admin would."""
    made = api.post("/api/v1/users", json={"username": username, "password": PASSWORD})
    assert made.status_code == 201, made.text
    return username


def grant(api: httpx.Client, kind: str, resource: str, user: str, level: str) -> None:
    done = api.put(f"/api/v1/permissions/{kind}/{resource}", json={"user": user, "level": level})
    assert done.status_code == 200, done.text


def register_iris(server: RunningServer, api: httpx.Client, name: str, versions: int = 2) -> None:
    """``versions`` versions of an iris LogisticRegression with its signature, logged and
    registered with the real ``mlflow`` client (as the admin)."""

    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    token = api.post("/api/v1/tokens", json={"name": "mlflow-client"}).json()["token"]
    with mlflow_pointed_at(server.url, token):
        mlflow.set_experiment(f"{name}-training")
        X, y = load_iris(return_X_y=True, as_frame=True)
        for i in range(versions):
            model = LogisticRegression(max_iter=200 + 100 * i).fit(X, y)
            with mlflow.start_run(run_name=f"{name}-{i + 1}"):
                mlflow.log_metric("accuracy", model.score(X, y))
                mlflow.sklearn.log_model(
                    model,
                    name="model",
                    signature=infer_signature(X, model.predict(X)),
                    registered_model_name=name,
                    pip_requirements=["scikit-learn"],
                )
