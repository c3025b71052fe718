"""Where ``labdeck serve`` gets a model from: every URI form, with real parts.

The unmodified ``mlflow`` client logs models to a live labdeck (an scikit-learn classifier
and two versions of a custom pyfunc, registered, alias ``production`` on version 1); then
``labdeck serve`` serves them by ``models:/name@alias``, ``models:/name/1``,
``models:/name/latest``, ``runs:/<run>/model`` (MLflow 3 keeps that model in a logged
model, not in the run's files), the version's ``mlflow-artifacts:/`` download URI, a local
folder, ``s3://`` on a moto S3 server, and ``http://`` archives (.tar.gz, .zip) from a
local web server. Each answers what the model logged there answers, under the name the URI
gives it. With sign-in on, credentials come from MLFLOW_TRACKING_TOKEN or
MLFLOW_TRACKING_USERNAME/PASSWORD; a wrong one, like any URI that leads nowhere, ends the
server with exit code 1 and the reason in plain words.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import shutil
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from labdeck.app import create_app
from labdeck.config import Settings
from labdeck.model_uri import RestModelLocator, parse_model_uri
from labdeck.registry.locator import InProcessModelLocator
from tests.auth.access_kit import PASSWORD, Identity, auth_server
from tests.conftest import RunningServer, S3Server, free_port, start_labdeck
from tests.serving.serve_kit import (
    COLUMNS_EXAMPLE,
    COLUMNS_MODEL,
    Served,
    assert_plain_failure,
    column_inputs,
    infer,
    log_pyfunc,
    run_serves,
    save_pyfunc,
    start_serve,
    stop_all,
    wait_ready,
)

ROWS = pd.DataFrame({"a": [0.25, -1.5, 3.0], "b": np.array([7, 0, -2], dtype=np.int64), "c": ["x", "", "zzz"]})
IRIS = load_iris(as_frame=True)
IRIS_X = IRIS.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))


@dataclass
class Logged:
    """What the mlflow client logged to the live labdeck, and what each model answers."""

    tracking: RunningServer
    iris_expected: np.ndarray
    scorer_run_ids: list[str]
    scorer_download_uri: str  # version 2's
    scorer_model_id: str  # version 2's logged model
    expected: dict[str, np.ndarray]  # "scorer/1", "scorer/2", "local" -> predictions on ROWS


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    root = tmp_path_factory.mktemp("sources")
    tracking = start_labdeck(Settings.load(None, data_dir=root / "labdeck"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", tracking.url)
        mlflow.set_tracking_uri(tracking.url)
        try:
            client = mlflow.MlflowClient(tracking.url)
            mlflow.set_experiment("serving-sources")
            classifier = LogisticRegression(max_iter=500).fit(IRIS_X, IRIS.target)
            with mlflow.start_run():
                mlflow.sklearn.log_model(
                    classifier,
                    name="model",
                    registered_model_name="iris",
                    signature=infer_signature(IRIS_X, classifier.predict(IRIS_X)),
                    input_example=IRIS_X.head(3),
                    pip_requirements=["scikit-learn"],
                )
            client.set_registered_model_alias("iris", "production", "1")
            runs, infos = [], []
            for factor in (2.0, 5.0):
                with mlflow.start_run() as run:
                    infos.append(log_pyfunc(COLUMNS_MODEL, COLUMNS_EXAMPLE, root / "code", "scorer", factor=factor))
                runs.append(run.info.run_id)
            client.set_registered_model_alias("scorer", "production", "1")
            expected = {
                f"scorer/{v}": mlflow.pyfunc.load_model(f"models:/scorer/{v}").predict(ROWS).to_numpy() for v in ("1", "2")
            }
            assert not np.array_equal(expected["scorer/1"], expected["scorer/2"])
            yield Logged(
                tracking,
                classifier.predict(IRIS_X),
                runs,
                client.get_model_version_download_uri("scorer", "2"),
                infos[1].model_id,
                expected,
            )
        finally:
            mlflow.set_tracking_uri(None)
            tracking.stop()


@pytest.fixture(scope="module")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A scorer saved in a folder (factor 3), and its predictions on ROWS."""
    path = save_pyfunc(tmp_path_factory.mktemp("local") / "scorer-local", COLUMNS_MODEL, COLUMNS_EXAMPLE, {"factor": 3.0})
    return path, mlflow.pyfunc.load_model(str(path)).predict(ROWS).to_numpy()


@pytest.fixture(scope="module")
def web(local_model: tuple[Path, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A local web server (its URL, and the folder it serves) with the local model as
    scorer.tar.gz (one folder inside) and scorer.zip (the files at the top), and a file
    that is no archive."""
    folder, _ = local_model
    site = tmp_path_factory.mktemp("site")
    with tarfile.open(site / "scorer.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="scorer")
    with zipfile.ZipFile(site / "scorer.zip", "w") as z:
        for path in folder.rglob("*"):
            z.write(path, path.relative_to(folder).as_posix())
    (site / "broken.tar.gz").write_bytes(b"this is not a tar file")
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", site
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def bucket(s3: S3Server, local_model: tuple[Path, np.ndarray]) -> str:
    """A bucket holding the local model under models/scorer/."""
    folder, _ = local_model
    name = s3.new_bucket()
    client = s3.client()
    for path in folder.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), name, f"models/scorer/{path.relative_to(folder).as_posix()}")
    return name


@dataclass
class Source:
    uri: str
    name: str  # on the V2 paths
    expected: str  # a key of Logged.expected, "local" or "iris"
    version: str | None = None
    tracking: bool = True
    s3: bool = False


def _sources(logged: Logged, local: Path, web: str, bucket: str) -> dict[str, Source]:
    return {
        "alias": Source("models:/scorer@production", "scorer", "scorer/1", "1"),
        "version": Source("models:/scorer/1", "scorer", "scorer/1", "1"),
        "latest": Source("models:/scorer/latest", "scorer", "scorer/2", "2"),
        "sklearn alias": Source("models:/iris@production", "iris", "iris", "1"),
        "run": Source(f"runs:/{logged.scorer_run_ids[1]}/model", "model", "scorer/2"),
        "logged model": Source(f"models:/{logged.scorer_model_id}", logged.scorer_model_id, "scorer/2"),
        "download uri": Source(logged.scorer_download_uri, logged.scorer_model_id, "scorer/2"),
        "folder": Source(str(local), "scorer-local", "local", tracking=False),
        "s3": Source(f"s3://{bucket}/models/scorer", "scorer", "local", tracking=False, s3=True),
        "tar.gz": Source(f"{web}/scorer.tar.gz", "scorer", "local", tracking=False),
        "zip": Source(f"{web}/scorer.zip", "scorer", "local", tracking=False),
    }


@pytest.fixture(scope="module")
def served(
    logged: Logged,
    local_model: tuple[Path, np.ndarray],
    web: tuple[str, Path],
    bucket: str,
    s3: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[Source, Served]]]:
    """A server per source, started all at once."""
    root = tmp_path_factory.mktemp("sources-serve")
    sources = _sources(logged, local_model[0], web[0], bucket)
    servers: dict[str, tuple[Source, Served]] = {}
    try:
        for key, source in sources.items():
            args = ["--tracking-uri", logged.tracking.url] if source.tracking else []
            env = {"MLFLOW_S3_ENDPOINT_URL": s3.endpoint} if source.s3 else None
            servers[key] = (source, start_serve(source.uri, root / key.replace(" ", "-"), *args, env=env, grpc=False, ready=False))
        for _, server in servers.values():
            wait_ready(server)
        yield servers
    finally:
        stop_all([server for _, server in servers.values()])


@pytest.mark.parametrize(
    "key", ["alias", "version", "latest", "sklearn alias", "run", "logged model", "download uri", "folder", "s3", "tar.gz", "zip"]
)
def test_serves_a_model_from(served, logged, local_model, key):
    source, server = served[key]
    metadata = server.get(f"/v2/models/{source.name}")
    assert metadata.status_code == 200, (metadata.text, server.log())
    assert metadata.json().get("versions") == ([source.version] if source.version else None)
    if source.expected == "iris":
        answer = infer(server, source.name, column_inputs(IRIS_X))
        expected = logged.iris_expected
    else:
        answer = infer(server, source.name, column_inputs(ROWS))
        expected = local_model[1] if source.expected == "local" else logged.expected[source.expected]
    assert answer.status_code == 200, answer.text
    assert np.array_equal(np.asarray(answer.json()["outputs"][0]["data"]), expected)


def test_a_download_is_cached_and_reused(web, tmp_path):
    """A second server with the same cache folder serves the files the first one
    downloaded, without downloading again (here: the archive is gone by then)."""
    url, site = web
    shutil.copy(site / "scorer.zip", site / "once.zip")
    first = start_serve(f"{url}/once.zip", tmp_path, grpc=False)
    assert first.stop() == 0, first.log()
    (site / "once.zip").unlink()
    second = start_serve(f"{url}/once.zip", tmp_path, grpc=False)
    try:
        assert infer(second, "once", column_inputs(ROWS)).status_code == 200
    finally:
        assert second.stop() == 0, second.log()
    (complete,) = [p for p in (tmp_path / "cache").iterdir() if (p / ".labdeck-complete").exists()]
    assert (complete / "MLmodel").is_file()


# ---------------------------------------------------------------------------- the in-process twin


def test_both_locators_find_a_runs_model_in_its_logged_model(tmp_path):
    """``runs:/<run>/<name>`` is the run's logged model called ``name`` when there is one
    (MLflow 3), else the run's own files, in ``RestModelLocator`` and ``InProcessModelLocator`` alike."""

    async def scenario() -> None:
        app = create_app(Settings.load(None, data_dir=tmp_path))
        await app.platform.start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://labdeck") as client:

                async def call(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
                    response = await client.request(method, f"/api/2.0/mlflow{path}", **kwargs)
                    assert response.status_code == 200, response.text
                    return response.json()

                experiment = (await call("POST", "/experiments/create", json={"name": "twins"}))["experiment_id"]
                run = (await call("POST", "/runs/create", json={"experiment_id": experiment}))["run"]["info"]
                other = (await call("POST", "/runs/create", json={"experiment_id": experiment}))["run"]["info"]
                models = {}
                for name, source_run in (("model", run), ("model", other), ("extra", run)):
                    body = {"experiment_id": experiment, "name": name, "source_run_id": source_run["run_id"]}
                    created = (await call("POST", "/logged-models", json=body))["model"]["info"]
                    models[(name, source_run["run_id"])] = created["artifact_uri"]
                expected = {
                    f"runs:/{run['run_id']}/model": models[("model", run["run_id"])],
                    f"runs:/{run['run_id']}/model/sub/file": models[("model", run["run_id"])] + "/sub/file",
                    f"runs:/{run['run_id']}/extra": models[("extra", run["run_id"])],
                    f"runs:/{other['run_id']}/model": models[("model", other["run_id"])],
                    f"runs:/{run['run_id']}/files": run["artifact_uri"] + "/files",
                    f"runs:/{run['run_id']}": run["artifact_uri"],
                }
                rest, in_process = RestModelLocator(client), InProcessModelLocator(app.platform.registry)
                for uri, location in expected.items():
                    assert await rest.locate(parse_model_uri(uri)) == location, uri
                    assert await in_process.locate(parse_model_uri(uri)) == location, uri
        finally:
            await app.platform.stop()

    asyncio.run(scenario())


# ---------------------------------------------------------------------------- sign-in


@pytest.fixture(scope="module")
def signed_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    """A labdeck with sign-in, where alice logged and registered ``secret`` (alias
    production); the server and alice's token."""
    root = tmp_path_factory.mktemp("signed-in")
    with auth_server(root / "labdeck", "sqlite") as server, pytest.MonkeyPatch.context() as env:
        token = Identity.bootstrap(server).user("alice")
        env.setenv("MLFLOW_TRACKING_URI", server.url)
        env.setenv("MLFLOW_TRACKING_TOKEN", token)
        mlflow.set_tracking_uri(server.url)
        try:
            mlflow.set_experiment("alice-models")
            with mlflow.start_run():
                log_pyfunc(COLUMNS_MODEL, COLUMNS_EXAMPLE, root / "code", "secret", factor=4.0)
            mlflow.MlflowClient(server.url).set_registered_model_alias("secret", "production", "1")
        finally:
            mlflow.set_tracking_uri(None)
        yield server, token


def test_credentials_for_a_tracking_server_with_sign_in(signed_in, tmp_path):
    server, token = signed_in
    with_token = start_serve(
        "models:/secret@production", tmp_path / "token", env={"MLFLOW_TRACKING_URI": server.url, "MLFLOW_TRACKING_TOKEN": token}, grpc=False, ready=False
    )
    with_password = start_serve(
        "models:/secret@production",
        tmp_path / "password",
        "--tracking-uri",
        server.url,
        env={"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": PASSWORD},
        grpc=False,
        ready=False,
    )
    try:
        for served in (with_token, with_password):
            wait_ready(served)
            answer = infer(served, "secret", column_inputs(ROWS))
            assert answer.status_code == 200, answer.text
            assert np.array_equal(np.asarray(answer.json()["outputs"][0]["data"]), ROWS.a * 4.0 + ROWS.b + ROWS.c.str.len())
    finally:
        stop_all([with_token, with_password])

    args = ["models:/secret@production", "--tracking-uri", server.url]
    wrong, password, anonymous = run_serves(
        [
            (args, {"MLFLOW_TRACKING_TOKEN": "not-a-token"}),
            (args, {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "wrong"}),
            (args, None),
        ],
        tmp_path / "refused",
    )
    prefix = "cannot fetch the model models:/secret@production: The tracking server refused"
    assert_plain_failure(wrong, f"{prefix} the token in MLFLOW_TRACKING_TOKEN")
    assert_plain_failure(password, f"{prefix} user 'alice' (MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)")
    assert_plain_failure(anonymous, f"{prefix} a request without credentials (set MLFLOW_TRACKING_TOKEN")


# ---------------------------------------------------------------------------- URIs that lead nowhere


def test_a_uri_that_leads_nowhere_ends_the_server_with_the_reason(logged, web, s3, tmp_path):
    url = web[0]
    tracking = ("--tracking-uri", logged.tracking.url)
    run = logged.scorer_run_ids[0]
    cases = [
        (("models:/absent@production", *tracking), {}, ["cannot fetch the model models:/absent@production", "absent"]),
        (("models:/scorer@staging", *tracking), {}, ["staging"]),
        (("models:/scorer/9", *tracking), {}, ["scorer", "9"]),
        ((f"runs:/{'0' * 32}/model", *tracking), {}, ["cannot fetch the model", "0" * 32]),
        ((f"runs:/{run}/nothing-here", *tracking), {}, ["There are no files at mlflow-artifacts:/"]),
        (("models:/scorer/1",), {}, ["needs a tracking server", "--tracking-uri"]),
        (("models:/scorer/1", "--tracking-uri", f"http://127.0.0.1:{free_port()}"), {}, ["Cannot reach http://127.0.0.1:"]),
        (("s3://no-such-bucket-labdeck/models/x",), {"MLFLOW_S3_ENDPOINT_URL": s3.endpoint}, ["Cannot download s3://no-such-bucket-labdeck/models/x", "bucket"]),
        ((f"s3://{s3.new_bucket()}/empty",), {"AWS_ENDPOINT_URL": s3.endpoint}, ["There are no files at s3://"]),
        ((f"{url}/absent.tar.gz",), {}, ["Cannot download", "404"]),
        ((f"{url}/broken.tar.gz",), {}, ["Cannot unpack", "broken.tar.gz"]),
        ((f"http://127.0.0.1:{free_port()}/scorer.zip",), {}, ["Cannot reach http://127.0.0.1:"]),
        (("gs://bucket/model",), {}, ["Cannot fetch a model from 'gs://bucket/model'"]),
    ]
    for done, (_, _, phrases) in zip(run_serves([(list(args), env) for args, env, _ in cases], tmp_path), cases, strict=True):
        assert_plain_failure(done, *phrases)
    # a failed download leaves nothing in the cache that a later server would take for the model
    assert not list((tmp_path / f"cache-{len(cases) - 3}").glob("*/.labdeck-complete"))
