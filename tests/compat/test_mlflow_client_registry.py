"""The unmodified ``mlflow`` client against labdeck's model registry, on SQLite and on
PostgreSQL: registering (from a run, from ``log_model``'s logged model, from threads at
once), aliases, stages, tags, renames, deletes, loading a model by every URI form the
client knows (S3 included), a version's files over plain HTTP, and search compared with
an oracle of MLflow's rules.

The oracle (``ModelRow``/``VersionRow`` and ``expected_*``) restates MLflow's SQL store:
clauses are ANDed; a clause on a tag the entity lacks never matches; a clause on a version
without a run id never matches a ``run_id`` condition (SQL's NULL, ``NOT IN`` included);
LIKE is case-sensitive and ILIKE is not; prompts (``mlflow.prompt.is_prompt = 'true'``)
are left out unless the filter asks for them; models sort by the order given, then name;
versions by the order given (default ``last_updated_timestamp DESC``), then name ASC,
then version DESC.
"""

from __future__ import annotations

import base64
import json
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

X, Y = load_iris(return_X_y=True)
SAMPLE = X[::10]
PROMPT_TAG = "mlflow.prompt.is_prompt"
# given, so that logging a model does not spend seconds inferring them
REQUIREMENTS = ["scikit-learn"]


@pytest.fixture(scope="module")
def classifier() -> LogisticRegression:
    return LogisticRegression(max_iter=300).fit(X, Y)


@pytest.fixture(scope="module")
def constant() -> DummyClassifier:
    """A second model whose predictions differ from ``classifier``'s on ``SAMPLE``."""
    return DummyClassifier(strategy="constant", constant=1).fit(X, Y)


@pytest.fixture
def client(server, mlflow_at) -> MlflowClient:
    return mlflow_at(server)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def error_of(call: Callable[[], Any]) -> MlflowException:
    with pytest.raises(MlflowException) as caught:
        call()
    return caught.value


def log_model(model: Any, registered_model_name: str) -> Any:
    return mlflow.sklearn.log_model(
        model, name="model", registered_model_name=registered_model_name, pip_requirements=REQUIREMENTS
    )


def predicts_like(uri: str, model: Any) -> None:
    loaded = mlflow.pyfunc.load_model(uri)
    assert np.array_equal(loaded.predict(SAMPLE), model.predict(SAMPLE)), uri


def version_numbers(versions: list[Any]) -> list[int]:
    return sorted(int(v.version) for v in versions)


# ---------------------------------------------------------------------------- registering


def test_log_model_and_register_model_create_versions(server, client, api, classifier, tmp_path):
    """MLflow 3's flow (a.7): the version's source is the logged model, which is tagged with
    the versions made from it; and the MLflow 2 flow: a run's own artifact folder."""
    assert classifier.predict(SAMPLE).tolist() != [1] * len(SAMPLE)
    mlflow.set_experiment("registry")
    with mlflow.start_run() as run:
        info = log_model(classifier, "iris")
    run_id = run.info.run_id
    assert info.registered_model_version == "1"
    assert info.model_id.startswith("m-")

    version = client.get_model_version("iris", "1")
    assert (version.source, version.run_id, version.status, version.current_stage) == (
        f"models:/{info.model_id}",
        run_id,
        "READY",
        "None",
    )
    raw = ok(api.get("/model-versions/get", params={"name": "iris", "version": "1"}))["model_version"]
    assert raw["model_id"] == info.model_id and raw["version"] == "1"

    logged = client.get_logged_model(info.model_id)
    assert json.loads(logged.tags["mlflow.modelVersions"]) == [{"name": "iris", "version": "1"}]
    assert [o.model_id for o in client.get_run(run_id).outputs.model_outputs] == [info.model_id]
    download_uri = client.get_model_version_download_uri("iris", "1")
    assert download_uri == logged.artifact_location
    assert re.fullmatch(rf"mlflow-artifacts:/\d+/models/{info.model_id}/artifacts", download_uri)

    # the files come back through the artifact proxy
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=download_uri, dst_path=str(tmp_path / "dl")))
    listed = {f.path.rsplit("/", 1)[-1] for f in mlflow.artifacts.list_artifacts(artifact_uri=download_uri)}
    assert {p.name for p in local.iterdir()} == listed
    assert {"MLmodel", "requirements.txt"} <= listed and len(listed) >= 4
    assert "sklearn" in (local / "MLmodel").read_text()

    # a second log_model: the existing model is reused, the next number is given
    with mlflow.start_run():
        again = log_model(classifier, "iris")
    assert again.registered_model_version == "2"
    assert client.get_model_version("iris", "2").source == f"models:/{again.model_id}"

    # runs:/<id>/model with no files under the run resolves to the run's logged model
    from_run = mlflow.register_model(f"runs:/{run_id}/model", "iris")
    assert from_run.version == "3"
    assert (from_run.source, from_run.run_id) == (f"models:/{info.model_id}", run_id)
    assert json.loads(client.get_logged_model(info.model_id).tags["mlflow.modelVersions"]) == [
        {"name": "iris", "version": "1"},
        {"name": "iris", "version": "3"},
    ]

    # a model saved into a run's own artifacts: the source is that folder
    saved = tmp_path / "saved"
    mlflow.sklearn.save_model(classifier, str(saved), pip_requirements=REQUIREMENTS)
    with mlflow.start_run() as files_run:
        mlflow.log_artifacts(str(saved), artifact_path="files-model")
    folder = f"{files_run.info.artifact_uri}/files-model"
    plain = mlflow.register_model(f"runs:/{files_run.info.run_id}/files-model", "plain")
    assert (plain.version, plain.source, plain.run_id) == ("1", folder, files_run.info.run_id)
    assert client.get_model_version_download_uri("plain", "1") == folder

    # the server resolves a model URI given as the source, once, at registration
    def create(source: str) -> dict[str, Any]:
        return ok(api.post("/model-versions/create", json={"name": "plain", "source": source}))["model_version"]

    created = create(f"runs:/{files_run.info.run_id}/files-model")
    assert (created["version"], created["run_id"]) == ("2", files_run.info.run_id)
    created = create("models:/iris/3")
    assert (created["version"], created["run_id"]) == ("3", run_id)
    assert client.get_model_version_download_uri("plain", "2") == folder
    assert client.get_model_version_download_uri("plain", "3") == download_uri
    for bad in (f"runs:/{'0' * 32}/model", "models:/absent/1", "models:/m-absent"):
        response = api.post("/model-versions/create", json={"name": "plain", "source": bad})
        assert response.status_code == 400 and "Unable to fetch model" in response.json()["message"], bad
    predicts_like("models:/plain/2", classifier)
    assert version_numbers(client.search_model_versions("name = 'plain'")) == [1, 2, 3]


def test_eight_threads_create_versions_of_one_model(server, client):
    client.create_registered_model("busy")
    barrier = threading.Barrier(8)
    got: dict[int, str] = {}
    errors: list[BaseException] = []

    def create(i: int) -> None:
        try:
            own = MlflowClient(server.url)
            barrier.wait()
            got[i] = own.create_model_version("busy", f"s3://bucket/busy/{i}", run_id=None).version
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(int(v) for v in got.values()) == list(range(1, 9))
    found = client.search_model_versions("name = 'busy'")
    assert version_numbers(found) == list(range(1, 9))
    assert {v.source: v.version for v in found} == {f"s3://bucket/busy/{i}": got[i] for i in range(8)}
    assert client.create_model_version("busy", "s3://bucket/busy/last").version == "9"


# ---------------------------------------------------------------------------- aliases, stages


def make_versions(client: MlflowClient, name: str, count: int) -> None:
    client.create_registered_model(name)
    for n in range(count):
        client.create_model_version(name, f"s3://bucket/{name}/{n + 1}")


def test_aliases_set_move_and_delete(client, api):
    make_versions(client, "m", 3)
    client.set_registered_model_alias("m", "champion", 1)
    assert client.get_model_version_by_alias("m", "champion").version == "1"
    assert client.get_registered_model("m").aliases == {"champion": "1"}
    assert client.get_model_version("m", "1").aliases == ["champion"]

    client.set_registered_model_alias("m", "champion", "2")  # moves it
    client.set_registered_model_alias("m", "challenger", 2)
    client.set_registered_model_alias("m", "shadow", 3)
    by_alias = client.get_model_version_by_alias("m", "champion")
    assert (by_alias.version, by_alias.aliases) == ("2", ["challenger", "champion"])
    assert client.get_model_version("m", "1").aliases == []
    assert client.get_registered_model("m").aliases == {"champion": "2", "challenger": "2", "shadow": "3"}
    raw = ok(api.get("/registered-models/get", params={"name": "m"}))["registered_model"]
    assert sorted((a["alias"], a["version"]) for a in raw["aliases"]) == [
        ("challenger", "2"),
        ("champion", "2"),
        ("shadow", "3"),
    ]
    assert {v.version: v.aliases for v in client.search_model_versions("name = 'm'")} == {
        "1": [],
        "2": ["challenger", "champion"],
        "3": ["shadow"],
    }

    client.delete_registered_model_alias("m", "challenger")
    assert client.get_registered_model("m").aliases == {"champion": "2", "shadow": "3"}
    assert "not found" in error_of(lambda: client.get_model_version_by_alias("m", "challenger")).message
    assert client.get_model_version_by_alias("m", "latest").version == "3"  # 'latest' is the highest version

    # reserved and invalid names, and aliases to versions that do not exist
    for reserved, message in (
        ("latest", "'latest' alias name (case insensitive) is reserved."),
        ("LaTeSt", "'latest' alias name (case insensitive) is reserved."),
        ("v1", "Version alias name 'v1' is reserved."),
        ("V27", "Version alias name 'V27' is reserved."),
    ):
        response = api.post("/registered-models/alias", json={"name": "m", "alias": reserved, "version": "1"})
        assert response.status_code == 400 and response.json() == {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": message,
        }
        refused = error_of(lambda r=reserved: client.set_registered_model_alias("m", r, 1))
        assert refused.error_code == "INVALID_PARAMETER_VALUE"
    assert error_of(lambda: client.set_registered_model_alias("m", "a b", 1)).error_code == "INVALID_PARAMETER_VALUE"
    assert error_of(lambda: client.set_registered_model_alias("m", "ghost", 7)).error_code == "RESOURCE_DOES_NOT_EXIST"
    assert error_of(lambda: client.set_registered_model_alias("nope", "x", 1)).error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_registered_model("m").aliases == {"champion": "2", "shadow": "3"}
    client.set_registered_model_alias("m", "v2x", 1)  # only v<digits> is reserved
    assert client.get_model_version_by_alias("m", "v2x").version == "1"


def test_stages_transitions_and_latest_versions(client, api):
    make_versions(client, "s", 5)
    assert [(v.version, v.current_stage) for v in client.get_latest_versions("s")] == [("5", "None")]

    client.transition_model_version_stage("s", 1, "Staging")
    client.transition_model_version_stage("s", 2, "production")
    client.transition_model_version_stage("s", 3, "PRODUCTION")
    moved = client.transition_model_version_stage("s", 4, "Staging")
    assert moved.current_stage == "Staging"
    latest = {v.current_stage: v.version for v in client.get_latest_versions("s")}
    assert latest == {"None": "5", "Staging": "4", "Production": "3"}
    assert [v.version for v in client.get_latest_versions("s", stages=["Production"])] == ["3"]
    assert sorted(v.version for v in client.get_latest_versions("s", stages=["staging", "None"])) == ["4", "5"]
    assert client.get_latest_versions("s", stages=["Archived"]) == []
    # the REST endpoint also answers GET, with repeated stages
    params = [("name", "s"), ("stages", "Production"), ("stages", "Staging")]
    found = ok(api.get("/registered-models/get-latest-versions", params=params))
    assert sorted(v["version"] for v in found["model_versions"]) == ["3", "4"]

    # archiving the others in the target stage
    moved = client.transition_model_version_stage("s", 5, "Production", archive_existing_versions=True)
    assert moved.current_stage == "Production"
    stages = {v.version: v.current_stage for v in client.search_model_versions("name = 's'")}
    assert stages == {"1": "Staging", "2": "Archived", "3": "Archived", "4": "Staging", "5": "Production"}
    client.transition_model_version_stage("s", 1, "Staging", archive_existing_versions=True)
    stages = {v.version: v.current_stage for v in client.search_model_versions("name = 's'")}
    assert stages == {"1": "Staging", "2": "Archived", "3": "Archived", "4": "Archived", "5": "Production"}
    latest = {v.current_stage: v.version for v in client.get_latest_versions("s")}
    assert latest == {"Staging": "1", "Production": "5", "Archived": "4"}
    latest = client.get_registered_model("s").latest_versions
    assert sorted((v.current_stage, v.version) for v in latest) == [("Archived", "4"), ("Production", "5"), ("Staging", "1")]

    bad = error_of(lambda: client.transition_model_version_stage("s", 1, "Prod"))
    assert "Invalid Model Version stage: Prod. Value must be one of None, Staging, Production, Archived." in bad.message
    bad = error_of(lambda: client.transition_model_version_stage("s", 1, "Archived", archive_existing_versions=True))
    assert "is not an Active stage" in bad.message
    missing = error_of(lambda: client.transition_model_version_stage("s", 9, "Staging"))
    assert missing.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert error_of(lambda: client.get_latest_versions("s", stages=["Prod"])).error_code == "INVALID_PARAMETER_VALUE"


# ---------------------------------------------------------------------------- tags, rename, delete


def test_tags_descriptions_and_rename(client, api):
    client.create_registered_model("old", tags={"team": "ds"}, description="first")
    client.create_model_version("old", "s3://b/1", tags={"kind": "sk"}, description="v1")
    client.create_model_version("old", "s3://b/2")
    client.set_registered_model_tag("old", "tier", "gold")
    client.set_registered_model_tag("old", "team", "ml")  # overwrites
    client.delete_registered_model_tag("old", "tier")
    client.set_model_version_tag("old", "2", "kind", "xgb")
    client.set_model_version_tag("old", "2", "note", "n")
    client.delete_model_version_tag("old", "2", "note")
    client.update_registered_model("old", description="second")
    client.update_model_version("old", "1", description="v1 again")
    client.set_registered_model_alias("old", "champion", 2)
    client.transition_model_version_stage("old", 2, "Staging")

    model = client.get_registered_model("old")
    assert (model.tags, model.description) == ({"team": "ml"}, "second")
    assert client.get_model_version("old", "1").tags == {"kind": "sk"}
    assert client.get_model_version("old", "1").description == "v1 again"
    assert client.get_model_version("old", "2").tags == {"kind": "xgb"}

    client.rename_registered_model("old", "new")
    for lookup in (lambda: client.get_registered_model("old"), lambda: client.get_model_version("old", "1")):
        assert error_of(lookup).error_code == "RESOURCE_DOES_NOT_EXIST"
    response = api.get("/registered-models/get", params={"name": "old"})
    assert response.status_code == 404 and response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    model = client.get_registered_model("new")
    assert (model.tags, model.description, model.aliases) == ({"team": "ml"}, "second", {"champion": "2"})
    versions = client.search_model_versions("name = 'new'", order_by=["version_number ASC"])
    assert [(v.name, v.version, v.tags, v.description) for v in versions] == [
        ("new", "1", {"kind": "sk"}, "v1 again"),
        ("new", "2", {"kind": "xgb"}, None),
    ]
    assert client.get_model_version_by_alias("new", "champion").name == "new"
    assert [v.version for v in client.get_latest_versions("new", stages=["Staging"])] == ["2"]
    assert client.search_model_versions("name = 'old'") == []
    assert client.create_model_version("new", "s3://b/3").version == "3"

    # the old name is free; an existing name cannot be taken
    client.create_registered_model("old")
    assert error_of(lambda: client.rename_registered_model("new", "old")).error_code == "RESOURCE_ALREADY_EXISTS"
    assert error_of(lambda: client.create_registered_model("new")).error_code == "RESOURCE_ALREADY_EXISTS"
    assert error_of(lambda: client.rename_registered_model("ghost", "x")).error_code == "RESOURCE_DOES_NOT_EXIST"


def test_deleted_versions_and_models_leave_nothing_behind(client):
    client.create_registered_model("d", tags={"team": "ds"})
    for n in range(3):
        client.create_model_version("d", f"s3://b/{n + 1}", tags={"n": str(n + 1)})
    client.set_registered_model_alias("d", "champion", 3)
    client.set_registered_model_alias("d", "keep", 2)
    client.transition_model_version_stage("d", 3, "Production")

    client.delete_model_version("d", 3)
    assert error_of(lambda: client.get_model_version("d", "3")).error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_registered_model("d").aliases == {"keep": "2"}
    assert error_of(lambda: client.get_model_version_by_alias("d", "champion")).error_code == "INVALID_PARAMETER_VALUE"
    assert client.get_latest_versions("d", stages=["Production"]) == []
    assert version_numbers(client.search_model_versions("name = 'd'")) == [1, 2]
    assert error_of(lambda: client.delete_model_version("d", 3)).error_code == "RESOURCE_DOES_NOT_EXIST"
    assert error_of(lambda: client.set_model_version_tag("d", "3", "k", "v")).error_code == "RESOURCE_DOES_NOT_EXIST"

    # the number is never reused, and nothing of version 3 comes back with version 4
    fresh = client.create_model_version("d", "s3://b/4")
    assert (fresh.version, fresh.tags, fresh.aliases, fresh.current_stage) == ("4", {}, [], "None")
    assert client.get_model_version_by_alias("d", "latest").version == "4"
    assert error_of(lambda: client.get_model_version("d", "3")).error_code == "RESOURCE_DOES_NOT_EXIST"

    # a deleted model takes everything with it; the name starts again from version 1
    client.delete_registered_model("d")
    assert error_of(lambda: client.get_registered_model("d")).error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.search_model_versions("name = 'd'") == []
    assert client.search_registered_models("name = 'd'") == []
    client.create_registered_model("d")
    model = client.get_registered_model("d")
    assert (model.tags, model.aliases, model.latest_versions) == ({}, {}, [])
    again = client.create_model_version("d", "s3://b/again")
    assert (again.version, again.tags, again.aliases) == ("1", {}, [])
    assert error_of(lambda: client.get_model_version_by_alias("d", "keep")).error_code == "INVALID_PARAMETER_VALUE"
    assert error_of(lambda: client.get_model_version("d", "2")).error_code == "RESOURCE_DOES_NOT_EXIST"
    assert version_numbers(client.search_model_versions("name = 'd'")) == [1]


# ---------------------------------------------------------------------------- loading by URI


def test_load_model_by_every_uri_form(server, client, classifier, constant, tmp_path):
    mlflow.set_experiment("loading")
    with mlflow.start_run() as run:
        info = log_model(classifier, "iris")  # version 1
        saved = tmp_path / "constant"
        mlflow.sklearn.save_model(constant, str(saved), pip_requirements=REQUIREMENTS)
        mlflow.log_artifacts(str(saved), artifact_path="constant")
    run_id = run.info.run_id
    assert mlflow.register_model(f"runs:/{run_id}/constant", "iris").version == "2"
    client.transition_model_version_stage("iris", 1, "Production")
    client.set_registered_model_alias("iris", "champion", 1)
    client.set_registered_model_alias("iris", "challenger", 2)
    copied = client.copy_model_version("models:/iris@champion", "iris-copy")
    assert (copied.name, copied.version, copied.source) == ("iris-copy", "1", "models:/iris/1")

    for uri in (
        "models:/iris/1",
        "models:/iris-copy/1",
        "models:/iris/Production",
        "models:/iris/production",
        "models:/iris/PRODUCTION",
        "models:/iris@champion",
        f"models:/{info.model_id}",
        client.get_model_version_download_uri("iris", "1"),
    ):
        predicts_like(uri, classifier)
    for uri in (
        "models:/iris/2",
        "models:/iris/latest",
        "models:/iris/LATEST",
        "models:/iris/None",
        "models:/iris@challenger",
        "models:/iris@latest",
        f"runs:/{run_id}/constant",
        client.get_model_version_download_uri("iris", "2"),
    ):
        predicts_like(uri, constant)
    assert client.get_model_version_download_uri("iris", "2").startswith("mlflow-artifacts:/")

    # downloaded first, then loaded from a plain path
    local = mlflow.artifacts.download_artifacts("models:/iris@champion", dst_path=str(tmp_path / "local"))
    predicts_like(local, classifier)
    predicts_like(Path(local).as_uri(), classifier)

    # a stage or alias that names nothing is an error, not some other version
    for uri in ("models:/iris/Staging", "models:/iris@ghost", "models:/iris/7", "models:/ghost/1"):
        with pytest.raises(MlflowException):
            mlflow.pyfunc.load_model(uri)


def test_a_versions_files_over_plain_http(server, client, classifier, tmp_path):
    mlflow.set_experiment("files")
    with mlflow.start_run():
        log_model(classifier, "files")
    uri = client.get_model_version_download_uri("files", "1")
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path)))

    with server.http() as http:
        for path in ("MLmodel", "requirements.txt"):
            got = http.get("/model-versions/get-artifact", params={"name": "files", "version": "1", "path": path})
            assert got.status_code == 200
            assert got.content == (local / path).read_bytes()

        for params, status, code in (
            ({"name": "files", "version": "1", "path": "absent.txt"}, 404, "RESOURCE_DOES_NOT_EXIST"),
            ({"name": "files", "version": "2", "path": "MLmodel"}, 404, "RESOURCE_DOES_NOT_EXIST"),
            ({"name": "ghost", "version": "1", "path": "MLmodel"}, 404, "RESOURCE_DOES_NOT_EXIST"),
            ({"name": "files", "version": "1", "path": "../../etc/passwd"}, 400, "INVALID_PARAMETER_VALUE"),
            ({"name": "files", "version": "1"}, 400, "INVALID_PARAMETER_VALUE"),
        ):
            got = http.get("/model-versions/get-artifact", params=params)
            assert got.status_code == status and got.json()["error_code"] == code, (params, got.text)


@pytest.mark.s3
def test_load_model_from_s3(backend, request, start_server, mlflow_at, s3, classifier, monkeypatch, tmp_path):
    bucket = s3.new_bucket()
    settings: dict[str, Any] = {"artifacts": {"uri": f"s3://{bucket}/root", "s3_endpoint_url": s3.endpoint}}
    if backend == "postgres":
        settings["database"] = {"url": request.getfixturevalue("fresh_postgres_url")}
    server = start_server(**settings)
    client = mlflow_at(server)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3.endpoint)

    mlflow.set_experiment("on-s3")
    with mlflow.start_run():
        log_model(classifier, "on-s3")
    proxied = client.get_model_version_download_uri("on-s3", "1")
    assert proxied.startswith("mlflow-artifacts:/")
    direct = f"s3://{bucket}/root/{proxied.removeprefix('mlflow-artifacts:').lstrip('/')}"
    keys = {o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket, Prefix="root/")["Contents"]}
    assert direct.removeprefix(f"s3://{bucket}/") + "/MLmodel" in keys

    predicts_like("models:/on-s3/1", classifier)  # through the server's proxy
    predicts_like(direct, classifier)  # straight from the bucket
    assert client.create_model_version("on-s3", direct).version == "2"
    assert client.get_model_version_download_uri("on-s3", "2") == direct
    predicts_like("models:/on-s3/2", classifier)  # the client resolves to s3:// and reads the bucket
    with server.http() as http:
        got = http.get("/model-versions/get-artifact", params={"name": "on-s3", "version": "2", "path": "MLmodel"})
        assert got.status_code == 200 and b"sklearn" in got.content


# ---------------------------------------------------------------------------- search


@dataclass
class ModelRow:
    name: str
    tags: dict[str, str]
    creation: int = 0
    updated: int = 0

    @property
    def prompt(self) -> bool:
        return self.tags.get(PROMPT_TAG) == "true"


@dataclass
class VersionRow:
    name: str
    version: int
    source: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    prompt: bool = False
    stage: str = "None"
    creation: int = 0
    updated: int = 0


def like(value: str, pattern: str, *, case_sensitive: bool) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.DOTALL if case_sensitive else re.IGNORECASE | re.DOTALL) is not None


def compare(lhs: Any, op: str, rhs: Any) -> bool:
    if lhs is None:
        return False  # a missing tag or run id never matches
    return {
        "=": lambda: lhs == rhs,
        "!=": lambda: lhs != rhs,
        ">": lambda: lhs > rhs,
        ">=": lambda: lhs >= rhs,
        "<": lambda: lhs < rhs,
        "<=": lambda: lhs <= rhs,
        "LIKE": lambda: like(lhs, rhs, case_sensitive=True),
        "ILIKE": lambda: like(lhs, rhs, case_sensitive=False),
        "IN": lambda: lhs in rhs,
        "NOT IN": lambda: lhs not in rhs,
    }[op]()


@dataclass(frozen=True)
class Cond:
    text: str
    key: str  # "name", "run_id", "source", "version", or "tags.<key>"
    op: str
    value: Any

    def matches(self, row: ModelRow | VersionRow) -> bool:
        if self.key.startswith("tags."):
            return compare(row.tags.get(self.key[5:]), self.op, self.value)
        return compare(getattr(row, self.key), self.op, self.value)


def asks_for_prompts(conds: list[Cond]) -> bool:
    for cond in conds:
        if cond.key == f"tags.{PROMPT_TAG}":
            value = str(cond.value).lower()
            return (cond.op == "=" and value == "true") or (cond.op == "!=" and value == "false")
    return False


def applied(conds: list[Cond]) -> tuple[list[Cond], bool]:
    """MLflow's prompt rule: the clauses that apply, and whether prompts are left out."""
    if asks_for_prompts(conds):
        return conds, False
    return [c for c in conds if c.key != f"tags.{PROMPT_TAG}"], True


MODEL_ORDER_KEYS = {
    "name": "name",
    "creation_timestamp": "creation",
    "timestamp": "creation",
    "last_updated_timestamp": "updated",
}
VERSION_ORDER_KEYS = {
    "name": "name",
    "version_number": "version",
    "creation_timestamp": "creation",
    "last_updated_timestamp": "updated",
}


def parse_orders(orders: list[str], keys: dict[str, str]) -> list[tuple[str, bool]]:
    parsed = []
    for text in orders:
        word, _, direction = text.partition(" ")
        parsed.append((keys[word], direction.strip().upper() != "DESC"))
    return parsed


def sort_rows(rows: list[Any], orders: list[tuple[str, bool]]) -> list[Any]:
    for attr, ascending in reversed(orders):  # stable sorts, last key first
        rows.sort(key=lambda r, a=attr: getattr(r, a), reverse=not ascending)
    return rows


def expected_models(models: list[ModelRow], conds: list[Cond], orders: list[str]) -> list[str]:
    conds, no_prompts = applied(conds)
    found = [m for m in models if not (no_prompts and m.prompt) and all(c.matches(m) for c in conds)]
    parsed = parse_orders(orders, MODEL_ORDER_KEYS)
    if not any(attr == "name" for attr, _ in parsed):
        parsed.append(("name", True))
    return [m.name for m in sort_rows(found, parsed)]


DEFAULT_VERSION_ORDER = ["last_updated_timestamp DESC", "name ASC", "version_number DESC"]


def expected_versions(versions: list[VersionRow], conds: list[Cond], orders: list[str]) -> list[tuple[str, int]]:
    conds, no_prompts = applied(conds)
    found = [v for v in versions if not (no_prompts and v.prompt) and all(c.matches(v) for c in conds)]
    parsed = parse_orders(orders or DEFAULT_VERSION_ORDER, VERSION_ORDER_KEYS)
    if not any(attr == "name" for attr, _ in parsed):
        parsed.append(("name", True))
    if not any(attr == "version" for attr, _ in parsed):
        parsed.append(("version", False))
    return [(v.name, v.version) for v in sort_rows(found, parsed)]


WORDS = ["churn", "Churn", "fraud", "FRAUD", "rec_sys", "rec%sys", "ranker"]
TEAMS = ["ds", "DS", "ml-platform", "ml_platform", "a%b"]
TIERS = ["gold", "Gold", "silver"]
KINDS = ["sklearn", "Sklearn", "xgboost"]
NOTES = ["a_b", "a%b", "axb", "A_B"]
SOURCE_ROOTS = ["s3://Bucket-A/models/", "s3://bucket-b/models/", "file:///srv/models/", "gs://bucket-a/m/"]


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def build_registry(api: httpx.Client, seed: int) -> tuple[list[ModelRow], list[VersionRow], list[str]]:
    """~60 models with tags and 1-5 versions each (versions created interleaved, a few
    deleted, staged or described), one prompt, and run ids from real runs."""
    rng = random.Random(seed)
    run_ids = [ok(api.post("/runs/create", json={"experiment_id": "0"}))["run"]["info"]["run_id"] for _ in range(5)]
    # a unique numeric prefix decides name order in any collation; the word carries case traps
    names = [f"m{i:03d}-{rng.choice(WORDS)}" for i in range(60)]
    creation_order = names[:]
    rng.shuffle(creation_order)
    models: dict[str, ModelRow] = {}
    for name in creation_order:
        tags = {}
        if rng.random() < 0.8:
            tags["team"] = rng.choice(TEAMS)
        if rng.random() < 0.5:
            tags["tier"] = rng.choice(TIERS)
        ok(api.post("/registered-models/create", json={"name": name, "tags": tag_list(tags)}))
        models[name] = ModelRow(name, tags)
    prompt_tags = {PROMPT_TAG: "true", "team": "ds"}
    ok(api.post("/registered-models/create", json={"name": "m999-prompt", "tags": tag_list(prompt_tags)}))
    models["m999-prompt"] = ModelRow("m999-prompt", prompt_tags)

    plan = [name for name in names for _ in range(rng.randint(1, 5))] + ["m999-prompt"] * 2
    rng.shuffle(plan)
    versions: list[VersionRow] = []
    counts: dict[str, int] = {}
    for name in plan:
        counts[name] = counts.get(name, 0) + 1
        prompt = name == "m999-prompt"
        tags = {PROMPT_TAG: "true"} if prompt else {}
        if rng.random() < 0.7:
            tags["kind"] = rng.choice(KINDS)
        if rng.random() < 0.3:
            tags["note"] = rng.choice(NOTES)
        run_id = rng.choice(run_ids) if rng.random() < 0.8 else None
        source = f"{rng.choice(SOURCE_ROOTS)}{name}/{counts[name]}"
        body = {"name": name, "source": source, "tags": tag_list(tags)}
        if run_id:
            body["run_id"] = run_id
        created = ok(api.post("/model-versions/create", json=body))["model_version"]
        assert created["version"] == str(counts[name])
        versions.append(VersionRow(name, counts[name], source, run_id, tags, prompt))

    for row in rng.sample([v for v in versions if not v.prompt], 8):
        ok(api.request("DELETE", "/model-versions/delete", json={"name": row.name, "version": str(row.version)}))
        versions.remove(row)
    for row in rng.sample(versions, 10):
        row.stage = rng.choice(["Staging", "Production"])
        body = {"name": row.name, "version": str(row.version), "stage": row.stage}
        ok(api.post("/model-versions/transition-stage", json={**body, "archive_existing_versions": False}))
    for row in rng.sample(versions, 6):
        body = {"name": row.name, "version": str(row.version), "description": "d"}
        ok(api.patch("/model-versions/update", json=body))
    for name in rng.sample(names, 6):
        ok(api.patch("/registered-models/update", json={"name": name, "description": "d"}))

    # the timestamps, as the server keeps them, read one entity at a time
    for model in models.values():
        got = ok(api.get("/registered-models/get", params={"name": model.name}))["registered_model"]
        model.creation, model.updated = got["creation_timestamp"], got["last_updated_timestamp"]
    for row in versions:
        params = {"name": row.name, "version": str(row.version)}
        got = ok(api.get("/model-versions/get", params=params))["model_version"]
        row.creation, row.updated = got["creation_timestamp"], got["last_updated_timestamp"]
    return list(models.values()), versions, run_ids


def model_cases(models: list[ModelRow], rng: random.Random) -> list[tuple[list[Cond], list[str]]]:
    some = [m.name for m in rng.sample(models[:60], 5)]
    listed = ", ".join(f"'{n}'" for n in some[:3])
    fixed: list[tuple[list[Cond], list[str]]] = [
        ([], []),
        ([], ["name DESC"]),
        ([], ["creation_timestamp DESC"]),
        ([], ["timestamp ASC"]),
        ([], ["last_updated_timestamp DESC"]),
        ([], ["last_updated_timestamp ASC", "name DESC"]),
        ([Cond(f"name = '{some[0]}'", "name", "=", some[0])], []),
        ([Cond(f"name != '{some[0]}'", "name", "!=", some[0])], ["creation_timestamp ASC"]),
        ([Cond("name LIKE '%churn'", "name", "LIKE", "%churn")], []),
        ([Cond("name ILIKE '%CHURN'", "name", "ILIKE", "%CHURN")], ["name DESC"]),
        ([Cond("name LIKE '%rec_sys'", "name", "LIKE", "%rec_sys")], []),
        ([Cond("name LIKE 'm01%'", "name", "LIKE", "m01%")], ["last_updated_timestamp DESC"]),
        ([Cond(f"name IN ({listed})", "name", "IN", tuple(some[:3]))], ["name DESC"]),
        ([Cond(f"name NOT IN ({listed})", "name", "NOT IN", tuple(some[:3]))], []),
        ([Cond("tags.team = 'ds'", "tags.team", "=", "ds")], []),
        ([Cond("tags.team != 'ds'", "tags.team", "!=", "ds")], []),
        ([Cond("tags.`team` LIKE 'ml%'", "tags.team", "LIKE", "ml%")], []),
        ([Cond("tag.team ILIKE 'DS'", "tags.team", "ILIKE", "DS")], []),
        ([Cond("tags.team LIKE 'a_b'", "tags.team", "LIKE", "a_b")], []),
        ([Cond("tags.tier = 'gold'", "tags.tier", "=", "gold"), Cond("name LIKE 'm0%'", "name", "LIKE", "m0%")], []),
        (
            [
                Cond("tags.team ILIKE 'ml%'", "tags.team", "ILIKE", "ml%"),
                Cond("tags.tier ILIKE 'GOLD'", "tags.tier", "ILIKE", "GOLD"),
            ],
            [],
        ),
        ([Cond(f"tags.`{PROMPT_TAG}` = 'true'", f"tags.{PROMPT_TAG}", "=", "true")], []),
        ([Cond(f"tags.`{PROMPT_TAG}` != 'false'", f"tags.{PROMPT_TAG}", "!=", "false")], []),
        ([Cond(f"tags.`{PROMPT_TAG}` = 'false'", f"tags.{PROMPT_TAG}", "=", "false")], []),
        (
            [
                Cond(f"tags.`{PROMPT_TAG}` != 'true'", f"tags.{PROMPT_TAG}", "!=", "true"),
                Cond("tags.team = 'ds'", "tags.team", "=", "ds"),
            ],
            [],
        ),
    ]
    def random_cond() -> Cond:
        roll = rng.randrange(6)
        if roll < 2:
            op, word = rng.choice(["LIKE", "ILIKE"]), rng.choice(WORDS)
            return Cond(f"name {op} '%{word}%'", "name", op, f"%{word}%")
        if roll == 2:
            team = rng.choice(TEAMS)
            return Cond(f"tags.team = '{team}'", "tags.team", "=", team)
        if roll == 3:
            op, tier = rng.choice(["!=", "ILIKE"]), rng.choice(TIERS)
            return Cond(f"tags.tier {op} '{tier}'", "tags.tier", op, tier)
        name = rng.choice(some)
        return Cond(f"name != '{name}'", "name", "!=", name)

    orders = [
        [],
        ["name ASC"],
        ["name DESC"],
        ["creation_timestamp DESC"],
        ["last_updated_timestamp ASC"],
        ["timestamp DESC", "name DESC"],
    ]
    randomized = [([random_cond() for _ in range(rng.choice([1, 2]))], rng.choice(orders)) for _ in range(15)]
    return fixed + randomized


def version_cases(
    versions: list[VersionRow], run_ids: list[str], rng: random.Random
) -> list[tuple[list[Cond], list[str]]]:
    name = rng.choice(versions).name
    two = tuple(run_ids[:2])
    listed = ", ".join(f"'{r}'" for r in two)
    source = rng.choice(versions).source
    fixed: list[tuple[list[Cond], list[str]]] = [
        ([], []),
        ([], ["name ASC"]),
        ([], ["version_number ASC"]),
        ([], ["creation_timestamp DESC"]),
        ([], ["last_updated_timestamp ASC", "name DESC"]),
        ([], ["name DESC", "version_number ASC"]),
        ([Cond(f"name = '{name}'", "name", "=", name)], []),
        ([Cond(f"name != '{name}'", "name", "!=", name)], ["version_number DESC"]),
        ([Cond("name LIKE '%FRAUD'", "name", "LIKE", "%FRAUD")], []),
        ([Cond("name ILIKE '%fraud'", "name", "ILIKE", "%fraud")], ["creation_timestamp ASC"]),
        ([Cond(f"name IN ('{name}', 'm999-prompt')", "name", "IN", (name, "m999-prompt"))], []),
        ([Cond(f"name NOT IN ('{name}')", "name", "NOT IN", (name,))], []),
        ([Cond(f"run_id = '{run_ids[0]}'", "run_id", "=", run_ids[0])], []),
        ([Cond(f"run_id != '{run_ids[0]}'", "run_id", "!=", run_ids[0])], []),
        ([Cond(f"run_id IN ({listed})", "run_id", "IN", two)], ["name ASC"]),
        ([Cond(f"run_id NOT IN ({listed})", "run_id", "NOT IN", two)], []),
        ([Cond("version_number = 1", "version", "=", 1)], []),
        ([Cond("version_number > 2", "version", ">", 2)], ["version_number ASC"]),
        ([Cond("version_number >= 4", "version", ">=", 4)], []),
        ([Cond("version_number < 2", "version", "<", 2)], []),
        ([Cond("version_number <= 3", "version", "<=", 3), Cond("version_number != 2", "version", "!=", 2)], []),
        ([Cond("source_path LIKE 's3://%'", "source", "LIKE", "s3://%")], []),
        ([Cond("source_path ILIKE 's3://bucket-a/%'", "source", "ILIKE", "s3://bucket-a/%")], []),
        ([Cond("source_path LIKE '%/3'", "source", "LIKE", "%/3")], []),
        ([Cond(f"source_path = '{source}'", "source", "=", source)], []),
        ([Cond("tags.kind = 'sklearn'", "tags.kind", "=", "sklearn")], []),
        ([Cond("tags.kind != 'sklearn'", "tags.kind", "!=", "sklearn")], []),
        ([Cond("tags.kind ILIKE 'SKLEARN'", "tags.kind", "ILIKE", "SKLEARN")], []),
        ([Cond("tags.note LIKE 'a_b'", "tags.note", "LIKE", "a_b")], []),
        ([Cond(f"tags.`{PROMPT_TAG}` = 'true'", f"tags.{PROMPT_TAG}", "=", "true")], []),
        (
            [
                Cond(f"run_id = '{run_ids[1]}'", "run_id", "=", run_ids[1]),
                Cond("tags.kind LIKE 'S%'", "tags.kind", "LIKE", "S%"),
            ],
            [],
        ),
    ]
    def random_cond() -> Cond:
        roll = rng.randrange(5)
        if roll == 0:
            op, number = rng.choice(["=", "!=", ">", "<=", ">="]), rng.randint(1, 5)
            return Cond(f"version_number {op} {number}", "version", op, number)
        if roll == 1:
            run_id = rng.choice(run_ids)
            return Cond(f"run_id = '{run_id}'", "run_id", "=", run_id)
        if roll == 2:
            kind = rng.choice(KINDS)
            return Cond(f"tags.kind = '{kind}'", "tags.kind", "=", kind)
        if roll == 3:
            root = rng.choice(SOURCE_ROOTS)
            return Cond(f"source_path LIKE '{root}%'", "source", "LIKE", f"{root}%")
        word = rng.choice(WORDS)
        return Cond(f"name LIKE '%{word}'", "name", "LIKE", f"%{word}")

    orders = [
        [],
        ["name ASC"],
        ["version_number ASC"],
        ["creation_timestamp DESC"],
        ["last_updated_timestamp ASC", "version_number ASC"],
    ]
    randomized = [([random_cond() for _ in range(rng.choice([1, 2]))], rng.choice(orders)) for _ in range(15)]
    return fixed + randomized


def pages(fetch: Callable[[str | None], tuple[list[Any], str | None]], size: int) -> list[Any]:
    """Every page until there is no token; a page that promises more is full."""
    items: list[Any] = []
    token: str | None = None
    for _ in range(1000):
        page, token = fetch(token)
        items.extend(page)
        if not token:
            assert len(page) <= size
            return items
        assert len(page) == size
    raise AssertionError("paging did not end")


def rest_search(api: httpx.Client, path: str, text: str, orders: list[str], size: int | None, token: str | None) -> Any:
    params: list[tuple[str, Any]] = [("filter", text), *(("order_by", o) for o in orders)]
    if size is not None:
        params.append(("max_results", size))
    if token is not None:
        params.append(("page_token", token))
    return ok(api.get(path, params=params))


def rest_models(
    api: httpx.Client, text: str, orders: list[str], size: int | None = None, token: str | None = None
) -> tuple[list[str], str | None]:
    got = rest_search(api, "/registered-models/search", text, orders, size, token)
    return [m["name"] for m in got.get("registered_models", [])], got.get("next_page_token")


def rest_versions(
    api: httpx.Client, text: str, orders: list[str], size: int | None = None, token: str | None = None
) -> tuple[list[tuple[str, int]], str | None]:
    got = rest_search(api, "/model-versions/search", text, orders, size, token)
    return [(v["name"], int(v["version"])) for v in got.get("model_versions", [])], got.get("next_page_token")


def test_search_matches_the_oracle(server, api, client):
    models, versions, run_ids = build_registry(api, seed=11)
    # the data has what the rules are about
    assert len({m.creation for m in models}) > 20 and len({m.updated for m in models}) > 20
    assert [m.name for m in sorted(models, key=lambda m: m.creation)] != sorted(m.name for m in models)
    assert any(v.run_id is None for v in versions) and any("kind" not in v.tags for v in versions)
    assert len(versions) > 120

    rng = random.Random(5)
    sizes = []
    for number, (conds, orders) in enumerate(model_cases(models, rng)):
        text = " AND ".join(c.text for c in conds)
        expected = expected_models(models, conds, orders)
        where = f"model case {number}: filter={text!r} order_by={orders}"
        sizes.append(len(expected))
        assert rest_models(api, text, orders) == (expected, None), where
        assert pages(lambda token, t=text, o=orders: rest_models(api, t, o, 7, token), 7) == expected, where
        # the client adds "tag.`mlflow.prompt.is_prompt` != 'true'" unless the filter names the tag
        found = client.search_registered_models(text or None, 1000, orders or None)
        assert ([m.name for m in found], found.token or None) == (expected, None), where
        if number % 3 == 0:

            def client_page(token: str | None, t: str = text, o: list[str] = orders) -> tuple[list[str], str | None]:
                page = client.search_registered_models(t or None, 9, o or None, token)
                return [m.name for m in page], page.token or None

            assert pages(client_page, 9) == expected, where
    assert sum(1 for s in sizes if s) >= 0.8 * len(sizes)
    assert sum(1 for s in sizes if 1 < s < 61) >= 15

    sizes = []
    for number, (conds, orders) in enumerate(version_cases(versions, run_ids, rng)):
        text = " AND ".join(c.text for c in conds)
        expected = expected_versions(versions, conds, orders)
        where = f"version case {number}: filter={text!r} order_by={orders}"
        sizes.append(len(expected))
        assert rest_versions(api, text, orders) == (expected, None), where
        assert pages(lambda token, t=text, o=orders: rest_versions(api, t, o, 13, token), 13) == expected, where
        found = client.search_model_versions(text or None, 10_000, orders or None)
        assert ([(v.name, int(v.version)) for v in found], found.token or None) == (expected, None), where
        if number % 3 == 0:

            def client_versions(token: str | None, t: str = text, o: list[str] = orders) -> tuple[list[Any], str | None]:
                page = client.search_model_versions(t or None, 11, o or None, token)
                return [(v.name, int(v.version)) for v in page], page.token or None

            assert pages(client_versions, 11) == expected, where
    assert sum(1 for s in sizes if s) >= 0.8 * len(sizes)
    assert sum(1 for s in sizes if 1 < s < len(versions)) >= 15

    # what search returns is what was stored
    by_key = {(v.name, v.version): v for v in versions}
    for found in client.search_model_versions(None, 10_000):
        row = by_key[(found.name, int(found.version))]
        assert (found.source, found.run_id or None, found.tags) == (row.source, row.run_id, row.tags)
        assert (found.creation_timestamp, found.last_updated_timestamp) == (row.creation, row.updated)
    by_name = {m.name: m for m in models}
    everything = mlflow.search_registered_models()  # the fluent API pages through everything
    assert sorted(m.name for m in everything) == sorted(n for n, m in by_name.items() if not m.prompt)
    for found in everything:
        row = by_name[found.name]
        assert (found.tags, found.creation_timestamp, found.last_updated_timestamp) == (row.tags, row.creation, row.updated)
        newest: dict[str, int] = {}  # the newest live version in each stage
        for v in versions:
            if v.name == found.name:
                newest[v.stage] = max(newest.get(v.stage, 0), v.version)
        assert sorted((v.current_stage, int(v.version)) for v in found.latest_versions) == sorted(newest.items())


def test_search_limits_and_page_tokens(server, api, client):
    for i in range(105):
        ok(api.post("/registered-models/create", json={"name": f"bulk-{i:03d}"}))
    for _ in range(12):
        ok(api.post("/model-versions/create", json={"name": "bulk-000", "source": "s3://b/k"}))
    names = [f"bulk-{i:03d}" for i in range(105)]

    # registered models: 100 by default, at most 1000
    assert rest_models(api, "", [])[0] == names[:100]
    first, token = rest_models(api, "", [])
    assert token and rest_models(api, "", [], None, token) == (names[100:], None)
    assert rest_models(api, "", [], 1000) == (names, None)
    assert [m.name for m in client.search_registered_models()] == names[:100]
    assert client.search_registered_models().token
    # model versions: everything by default, at most 200000
    everything = [("bulk-000", n) for n in range(12, 0, -1)]
    assert sorted(rest_versions(api, "", [])[0]) == sorted(everything)
    assert rest_versions(api, "", [], 200_000)[1] is None
    assert rest_versions(api, "", ["version_number DESC"], 5)[0] == everything[:5]

    def refused(path: str, params: dict[str, Any]) -> str:
        response = api.get(path, params=params)
        assert response.status_code == 400, response.text
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        return response.json()["message"]

    for bad in (1001, 0, -5):
        refused("/registered-models/search", {"max_results": bad})
    for bad in (200_001, 0, -1):
        refused("/model-versions/search", {"max_results": bad})
    assert "1000" in error_of(lambda: client.search_registered_models(max_results=1001)).message
    assert "200000" in error_of(lambda: client.search_model_versions(max_results=200_001)).message

    # tokens are URL-safe, reusable, and belong to their search
    names_page, token = rest_models(api, "name LIKE 'bulk-0%'", ["name DESC"], 10)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert names_page == names[99::-1][:10]
    assert rest_models(api, "name LIKE 'bulk-0%'", ["name DESC"], 10, token)[0] == names[99::-1][10:20]
    assert rest_models(api, "name LIKE 'bulk-0%'", ["name DESC"], 25, token)[0] == names[99::-1][10:35]
    _, version_token = rest_versions(api, "name = 'bulk-000'", [], 5)
    mlflow_style = base64.b64encode(b'{"offset": 10}').decode()
    for path, params in (
        ("/registered-models/search", {"page_token": "garbage"}),
        ("/registered-models/search", {"page_token": mlflow_style}),
        ("/registered-models/search", {"filter": "name LIKE 'bulk-1%'", "order_by": "name DESC", "page_token": token}),
        ("/registered-models/search", {"filter": "name LIKE 'bulk-0%'", "page_token": token}),
        ("/registered-models/search", {"page_token": version_token}),
        ("/model-versions/search", {"page_token": "%%%"}),
        ("/model-versions/search", {"page_token": token}),
        ("/model-versions/search", {"filter": "name = 'other'", "page_token": version_token}),
    ):
        assert "page token" in refused(path, params).lower(), (path, params)
    for search in (client.search_registered_models, client.search_model_versions):
        assert error_of(lambda s=search: s(page_token="garbage")).error_code == "INVALID_PARAMETER_VALUE"
