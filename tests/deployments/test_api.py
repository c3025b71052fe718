"""``/api/v1/deployments`` over a live server, with real ``labdeck serve`` replicas of small
scikit-learn models (``model.joblib`` folders): create (JSON and YAML, a ModelDeployment and
a SeldonDeployment), read, list, change, delete, events and logs, on SQLite and PostgreSQL;
every kind of bad input a 400 in labdeck's error shape that names the field, with nothing
created and nothing running changed; and who may do what (a server with sign-in on).

Every server's teardown (``tests/deployments/conftest.py``) deletes what is left and fails
the module when a replica outlives its deployment.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson
import pytest
import yaml

from labdeck.deployments.spec import json_schema
from tests.auth.access_kit import Identity, auth_server
from tests.conftest import RunningServer
from tests.deployments.conftest import Labs
from tests.deployments.deploy_kit import (
    SETOSA,
    Lab,
    Models,
    as_yaml,
    kill_leftovers,
    model_deployment,
    seldon_body,
    settled,
    v2_body,
    wait_until,
)
from tests.processes import alive

LABDECK_ERROR = {"error_code", "message", "details"}


def iris(name: str, model: Path | str, **predictor: Any) -> dict[str, Any]:
    return model_deployment(name, {"name": "main", "model": str(model), **predictor})


def seldon_iris(name: str, model: Path | str, namespace: str = "prod-data-science") -> str:
    """The seed's SeldonDeployment as YAML text, with another name and a model folder of ours."""
    return f"""\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: {name}
  namespace: {namespace}
spec:
  name: iris
  predictors:
  - graph:
      implementation: SKLEARN_SERVER
      modelUri: {model}
      name: classifier
    name: default
    replicas: 1
"""


def infer(http: httpx.Client, name: str) -> httpx.Response:
    return http.post(f"/deployments/{name}/v2/models/{name}/infer", json=v2_body(name, [SETOSA]))


def refusal(response: httpx.Response, status: int = 400, code: str = "INVALID_PARAMETER_VALUE") -> dict[str, Any]:
    """labdeck's error body of a refused request."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    body = response.json()
    assert set(body) == LABDECK_ERROR, body
    assert body["error_code"] == code, body
    return body


def names_field(body: dict[str, Any], field: str, *words: str) -> None:
    problems = {d["field"]: d["problem"] for d in body["details"] or []}
    assert field in problems, f"{field} not named: {body}"
    for word in words:
        assert word in problems[field] or word in body["message"], f"{word!r} not said: {body}"
    assert field in body["message"], body


def pids(d: dict[str, Any]) -> set[int]:
    return {r["pid"] for p in d["predictors"] for r in p["replicas"]}


# ------------------------------------------------------------------ create, read, change, delete


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def crud_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    if request.param == "sqlite":
        lab: Lab = request.getfixturevalue("lab")
    else:
        url = request.getfixturevalue("fresh_postgres_url")  # first, so that it is dropped after the server stops
        labs: Labs = request.getfixturevalue("new_lab")
        lab = labs(database={"url": url})
    yield lab
    lab.delete_everything()


def test_create_read_change_and_delete(crud_lab: Lab, models: Models) -> None:
    lab, http = crud_lab, crud_lab.http

    # create (JSON): accepted at once, PENDING until a replica is ready
    created = lab.create(iris("crud", models["iris"]))
    assert (created["name"], created["namespace"], created["kind"], created["generation"]) == ("crud", "default", "ModelDeployment", 1)
    assert created["state"] == "PENDING"
    assert created["spec"] == iris("crud", models["iris"])
    assert created["endpoints"] == {
        "v2": "/deployments/crud/v2/models/crud/infer",
        "seldon": "/seldon/default/crud/api/v1.0/predictions",
        "mlflow": "/deployments/crud/invocations",
    }
    d = lab.wait_available("crud")
    (main,) = d["predictors"]
    assert (main["name"], main["traffic"], main["shadow"], main["ready_replicas"], main["desired_replicas"]) == ("main", 100, False, 1, 1)
    assert main["serving"]["location"] == str(models["iris"]) and main["target"] is None
    (replica,) = main["replicas"]
    assert replica["state"] == "READY" and alive(replica["pid"]) and replica["http"].startswith("127.0.0.1:")
    assert [e["kind"] for e in d["events"]] == ["Serving"]
    assert d["created_by"] and d["created_at"] <= d["updated_at"]

    answer = infer(http, "crud")
    assert answer.status_code == 200 and answer.headers["x-labdeck-predictor"] == "main"
    assert answer.json()["outputs"][0]["data"] == [0]
    assert http.post("/seldon/default/crud/api/v1.0/predictions", json=seldon_body([SETOSA])).status_code == 200

    # create (YAML): the seed's SeldonDeployment, as it is
    created = lab.create(seldon_iris("crud-seldon", models["iris"]))
    assert (created["kind"], created["namespace"]) == ("SeldonDeployment", "prod-data-science")
    d = lab.wait_available("crud-seldon")
    assert d["spec"]["spec"]["predictors"][0] | {"model": "-"} == {"name": "default", "model": "-", "runtime": "sklearn", "method": "predict_proba"}
    answer = http.post("/seldon/prod-data-science/crud-seldon/api/v1.0/predictions", json=seldon_body([SETOSA]))
    assert answer.status_code == 200, answer.text
    (probabilities,) = answer.json()["data"]["ndarray"]  # SKLEARN_SERVER answers predict_proba
    assert len(probabilities) == 3 and probabilities[0] > 0.9

    # list
    listed = {x["name"]: x for x in lab.http.get("/api/v1/deployments").json()["deployments"]}
    assert {"crud", "crud-seldon"} <= set(listed)
    assert listed["crud"]["state"] == "AVAILABLE" and listed["crud-seldon"]["kind"] == "SeldonDeployment"

    # change: the generation moves on, and until the controller has looked at the new
    # spec nobody is told that it is AVAILABLE
    before = pids(lab.get("crud"))
    changed = lab.replace("crud", iris("crud", models["iris"], replicas=2))
    assert changed["generation"] == 2 and changed["state"] == "PROGRESSING"
    d = lab.wait_available("crud")
    assert d["generation"] == 2 and d["predictors"][0]["ready_replicas"] == 2
    assert before < pids(d)  # scaled up: the first replica kept serving

    # change (YAML): only labels, which runs nothing new
    document = iris("crud", models["iris"], replicas=2)
    document["metadata"]["labels"] = {"team": "fraud"}
    changed = lab.replace("crud", as_yaml(document))
    assert changed["generation"] == 3 and changed["spec"]["metadata"]["labels"] == {"team": "fraud"}
    assert pids(lab.wait_available("crud")) == pids(d)

    # events (oldest first) and logs (by predictor and replica)
    events = lab.http.get("/api/v1/deployments/crud/events", params={"limit": 200}).json()["events"]
    assert events[0]["kind"] == "Serving" and events[0]["predictor"] == "main"
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert len(lab.http.get("/api/v1/deployments/crud/events", params={"limit": 1}).json()["events"]) == 1
    logs = lab.http.get("/api/v1/deployments/crud/logs", params={"tail": 50}).json()["predictors"]
    assert set(logs) == {"main"} and set(logs["main"]) == {r["id"] for r in d["predictors"][0]["replicas"]}
    for lines in logs["main"].values():
        assert any("labdeck serve" in line for line in lines), lines

    # delete: DELETING at once, gone once its replicas have stopped
    answer = http.delete("/api/v1/deployments/crud")
    assert answer.status_code == 200 and answer.json()["state"] == "DELETING"
    wait_until(lambda: http.get("/api/v1/deployments/crud").status_code == 404, "crud gone")
    for pid in pids(d):
        assert not alive(pid), pid
    assert refusal(http.get("/api/v1/deployments/crud"), 404, "RESOURCE_DOES_NOT_EXIST")["message"]
    refusal(http.get("/api/v1/deployments/crud/events"), 404, "RESOURCE_DOES_NOT_EXIST")
    refusal(http.put("/api/v1/deployments/crud", json=iris("crud", models["iris"])), 404, "RESOURCE_DOES_NOT_EXIST")
    refusal(http.delete("/api/v1/deployments/crud"), 404, "RESOURCE_DOES_NOT_EXIST")
    gone = infer(http, "crud")
    assert gone.status_code == 404 and set(gone.json()) == {"error"}
    assert "crud" not in {x["name"] for x in lab.http.get("/api/v1/deployments").json()["deployments"]}


def test_the_schema_is_served(lab: Lab) -> None:
    served = lab.http.get("/api/v1/deployments/schema")
    assert served.status_code == 200
    assert served.json() == json_schema()
    jsonschema.validators.validator_for(served.json()).check_schema(served.json())
    jsonschema.validate(iris("x", "/models/iris"), served.json())


# ------------------------------------------------------------------ bad input


def _json(document: Any) -> tuple[str, bytes]:
    return "application/json", orjson.dumps(document)


def _yaml(document: Any) -> tuple[str, bytes]:
    return "application/yaml", yaml.safe_dump(document).encode()


def _seldon(change: Any) -> dict[str, Any]:
    document = yaml.safe_load(seldon_iris("bad", "/models/iris"))
    change(document)
    return document


BAD = {
    "unknown field": (_json(iris("bad", "/m", replica=2)), "spec.predictors[0].replica", "unknown field"),
    "unknown field (yaml)": (_yaml(iris("bad", "/m", replica=2)), "spec.predictors[0].replica", "unknown field"),
    "upper-case name": (_json(iris("Bad", "/m")), "metadata.name", "lower-case"),
    "underscore name": (_yaml(iris("b_ad", "/m")), "metadata.name", "lower-case"),
    "long name": (_json(iris("b" * 41, "/m")), "metadata.name", "at most 40"),
    "leading dash": (_json(iris("-bad", "/m")), "metadata.name", "starting and ending"),
    "reserved name": (_json(iris("schema", "/m")), "metadata.name", "reserved"),
    "replicas 0": (_json(iris("bad", "/m", replicas=0)), "spec.predictors[0].replicas", "greater than or equal to 1"),
    "replicas 65": (_yaml(iris("bad", "/m", replicas=65)), "spec.predictors[0].replicas", "less than or equal to 64"),
    "traffic 90": (
        _json(model_deployment("bad", {"name": "a", "model": "/m", "traffic": 60}, {"name": "b", "model": "/m", "traffic": 30})),
        "spec.predictors", "sum to 100, not 90",
    ),
    "no traffic": (
        _json(model_deployment("bad", {"name": "a", "model": "/m"}, {"name": "b", "model": "/m"})),
        "spec.predictors[0].traffic", "give each non-shadow predictor its traffic",
    ),
    "shadow with traffic": (
        _json(model_deployment("bad", {"name": "a", "model": "/m"}, {"name": "b", "model": "/m", "shadow": True, "traffic": 5})),
        "spec.predictors[1].traffic", "shadow",
    ),
    "duplicate predictors": (
        _json(model_deployment("bad", {"name": "a", "model": "/m", "traffic": 50}, {"name": "a", "model": "/m", "traffic": 50})),
        "spec.predictors[1].name", "used twice",
    ),
    "min without max": (_json(iris("bad", "/m", minReplicas=1)), "spec.predictors[0].maxReplicas", "both minReplicas and maxReplicas"),
    "lots of cpu": (_json(iris("bad", "/m", resources={"limits": {"cpu": "lots"}})), "spec.predictors[0].resources.limits.cpu", "pattern"),
    "env name": (_json(iris("bad", "/m", env={"1X": "y"})), "spec.predictors[0].env.1X", "not valid"),
    "model uri": (_json(iris("bad", "models:/")), "spec.predictors[0].model", "Not a proper models:/ URI"),
    "tensorflow": (
        _yaml(_seldon(lambda d: d["spec"]["predictors"][0]["graph"].update(implementation="TENSORFLOW_SERVER"))),
        "spec.predictors[0].graph.implementation", "SKLEARN_SERVER, MLFLOW_SERVER, XGBOOST_SERVER",
    ),
    "triton": (
        _json(_seldon(lambda d: d["spec"]["predictors"][0]["graph"].update(implementation="TRITON_SERVER"))),
        "spec.predictors[0].graph.implementation", "supported: SKLEARN_SERVER",
    ),
    "custom image": (
        _yaml(_seldon(lambda d: d["spec"]["predictors"][0].update(
            graph={"name": "classifier", "type": "MODEL"},
            componentSpecs=[{"spec": {"containers": [{"name": "classifier", "image": "acme/iris:1"}]}}],
        ))),
        "spec.predictors[0].graph.implementation", "custom image",
    ),
    "graph children": (
        _yaml(_seldon(lambda d: d["spec"]["predictors"][0]["graph"].update(children=[{"name": "t", "implementation": "SKLEARN_SERVER"}]))),
        "spec.predictors[0].graph.children", "not served",
    ),
    "seldon api version": (_yaml(_seldon(lambda d: d.update(apiVersion="machinelearning.seldon.io/v9"))), "apiVersion", "machinelearning.seldon.io/v1"),
    "no modelUri": (
        _yaml(_seldon(lambda d: d["spec"]["predictors"][0]["graph"].pop("modelUri"))),
        "spec.predictors[0].graph.modelUri", "needs a modelUri",
    ),
    "seldon replicas 0": (_yaml(_seldon(lambda d: d["spec"]["predictors"][0].update(replicas=0))), "spec.predictors[0].replicas", "greater than"),
}


@pytest.mark.parametrize(("body", "field", "words"), BAD.values(), ids=BAD.keys())
def test_bad_documents_are_400s_naming_the_field(lab: Lab, body: tuple[str, bytes], field: str, words: str) -> None:
    content_type, content = body
    answer = lab.http.post("/api/v1/deployments", content=content, headers={"content-type": content_type})
    names_field(refusal(answer), field, words)
    assert lab.http.get("/api/v1/deployments/bad").status_code == 404


MALFORMED = {
    "broken json": ("application/json", b'{"apiVersion": "labdeck.dev/v1", "metadata": {', "not valid JSON"),
    "empty json": ("application/json", b"", "not valid JSON"),
    "json list": ("application/json", b"[]", "YAML or JSON object"),
    "broken yaml": ("application/yaml", b"metadata: {name: [x\nspec: :::", "not valid YAML"),
    "tabs in yaml": ("application/yaml", b"metadata:\n\tname: x\n", "not valid YAML"),
    "two yaml documents": ("application/yaml", b"kind: ModelDeployment\n---\nkind: ModelDeployment\n", "not valid YAML"),
    "yaml scalar": ("application/yaml", b"just text", "YAML or JSON object"),
    "empty yaml": ("text/yaml", b"", "YAML or JSON object"),
    "unknown kind": ("application/json", orjson.dumps({"apiVersion": "apps/v1", "kind": "Deployment"}), "Unknown kind 'Deployment'"),
    "yaml sent as json": ("application/json", as_yaml(iris("bad", "/m")).encode(), "not valid JSON"),
}


@pytest.mark.parametrize(("content_type", "content", "words"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bodies_are_400s(lab: Lab, content_type: str, content: bytes, words: str) -> None:
    answer = lab.http.post("/api/v1/deployments", content=content, headers={"content-type": content_type})
    body = refusal(answer)
    assert words in body["message"], body


@pytest.fixture(scope="module")
def registered(lab: Lab, models: Models) -> str:
    """A registered model ``known`` with version 1 (the iris folder), made over MLflow's REST API."""
    mlflow = "/api/2.0/mlflow"
    assert lab.http.post(f"{mlflow}/registered-models/create", json={"name": "known"}).status_code == 200
    made = lab.http.post(f"{mlflow}/model-versions/create", json={"name": "known", "source": str(models["iris"])})
    assert made.status_code == 200, made.text
    return "known"


def test_unknown_models_are_400s_naming_the_predictor(lab: Lab, models: Models, registered: str, tmp_path: Path) -> None:
    unknown = {
        "models:/nope/1": "nope",
        f"models:/{registered}/7": "7",
        f"models:/{registered}@production": "production",
        f"runs:/{uuid.uuid4().hex}/model": "run",
        str(tmp_path / "missing"): "nothing at",
        f"file://{tmp_path}/missing": "nothing at",
    }
    for uri, words in unknown.items():
        body = refusal(lab.http.post("/api/v1/deployments", json=iris("bad", uri)))
        names_field(body, "spec.predictors[0].model", words)
        assert uri in body["message"]
    # the second predictor's
    document = model_deployment(
        "bad",
        {"name": "a", "model": str(models["iris"]), "traffic": 50},
        {"name": "b", "model": "models:/nope/1", "traffic": 50},
    )
    names_field(refusal(lab.http.post("/api/v1/deployments", json=document)), "spec.predictors[1].model", "nope")
    # a SeldonDeployment's, by its own name
    body = refusal(lab.http.post("/api/v1/deployments", content=seldon_iris("bad", tmp_path / "missing"), headers={"content-type": "application/yaml"}))
    names_field(body, "spec.predictors[0].graph.modelUri", "nothing at")
    assert lab.http.get("/api/v1/deployments/bad").status_code == 404


def test_events_and_logs_parameters_are_checked(lab: Lab) -> None:
    refusal(lab.http.get("/api/v1/deployments/nope/events"), 404, "RESOURCE_DOES_NOT_EXIST")
    refusal(lab.http.get("/api/v1/deployments/nope/logs"), 404, "RESOURCE_DOES_NOT_EXIST")
    for path, params in (("events", {"limit": 0}), ("events", {"limit": 201}), ("logs", {"tail": 0}), ("logs", {"tail": "all"})):
        names_field(refusal(lab.http.get(f"/api/v1/deployments/nope/{path}", params=params)), next(iter(params)))


def test_bad_changes_leave_the_running_deployment_as_it_was(lab: Lab, models: Models) -> None:
    good = iris("steady", models["iris"])
    before = lab.deploy(good)
    serving = pids(before)
    events = lab.events("steady")
    path = "/api/v1/deployments/steady"

    bad_changes = [
        (iris("steady", models["shifted"], replicas=0), "spec.predictors[0].replicas"),
        (iris("steady", models["shifted"], replica=2), "spec.predictors[0].replica"),
        (iris("steady", "models:/nope/1"), "spec.predictors[0].model"),
        (iris("steady", str(models["iris"]) + "-missing"), "spec.predictors[0].model"),
        (iris("other", models["shifted"]), "metadata.name"),
        (model_deployment("steady", {"name": "a", "model": str(models["iris"])}, {"name": "b", "model": str(models["iris"]), "shadow": True, "traffic": 1}), "spec.predictors[1].traffic"),
        (yaml.safe_load(seldon_iris("steady", models["iris"]).replace("SKLEARN_SERVER", "TENSORFLOW_SERVER")), "spec.predictors[0].graph.implementation"),
    ]
    for document, field in bad_changes:
        names_field(refusal(lab.http.put(path, json=document)), field)
    refusal(lab.http.put(path, content=b"{not json", headers={"content-type": "application/json"}))
    refusal(lab.http.put(path, content=b"spec: [", headers={"content-type": "application/yaml"}))

    # creating it again is refused too, and says how to change it
    body = refusal(lab.http.post("/api/v1/deployments", json=iris("steady", models["shifted"])), 400, "RESOURCE_ALREADY_EXISTS")
    assert "already exists" in body["message"] and "PUT" in body["message"]

    after = lab.get("steady")
    assert after["generation"] == 1 and after["state"] == "AVAILABLE"
    assert after["spec"] == before["spec"] == good
    assert pids(after) == serving and all(alive(pid) for pid in serving)
    assert lab.events("steady") == events
    answer = infer(lab.http, "steady")
    assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [0]  # still the iris model
    lab.delete("steady")


# ------------------------------------------------------------------ who may do what


class Access:
    """A labdeck with sign-in on: ``root`` (admin), ``owner`` and ``other`` (default
    permission), ``member`` of the private team ``vault``; ``viewer`` holds only a
    read-only token. ``secret`` is a registered model of ``vault``'s and ``hidden`` an
    experiment of it, with a run."""

    def __init__(self, server: RunningServer, ident: Identity):
        self.server = server
        self.ident = ident
        self.run_id = ""

    def as_(self, who: str) -> httpx.Client:
        return self.ident.as_(who)

    def anonymous(self) -> httpx.Client:
        return self.ident.client()

    def wait_available(self, name: str) -> dict[str, Any]:
        with self.ident.admin() as http:
            wait_until(lambda: settled(http.get(f"/api/v1/deployments/{name}").json()), f"{name} AVAILABLE")
            return http.get(f"/api/v1/deployments/{name}").json()

    def delete(self, name: str, who: str = "root") -> None:
        with self.as_(who) as http:
            assert http.delete(f"/api/v1/deployments/{name}").status_code in (200, 404)
        with self.ident.admin() as http:
            wait_until(lambda: http.get(f"/api/v1/deployments/{name}").status_code == 404, f"{name} deleted")


def _access_server(tmp_path_factory: pytest.TempPathFactory, models: Models, **auth: Any) -> Iterator[Access]:
    with auth_server(tmp_path_factory.mktemp("deploy-auth"), "sqlite", **auth) as server:
        cache_dir = server.settings.data_dir / "cache" / "models"
        try:
            ident = Identity.bootstrap(server)
            for username in ("owner", "other", "member", "viewer"):
                ident.user(username)
            ident.tokens["viewer"] = ident.token("viewer", read_only=True, name="read-only")
            ident.team("vault", ["member"], private=True)
            access = Access(server, ident)
            mlflow = "/api/2.0/mlflow"
            with ident.as_("member") as http:
                assert http.post(f"{mlflow}/registered-models/create", json={"name": "secret"}).status_code == 200
                made = http.post(f"{mlflow}/model-versions/create", json={"name": "secret", "source": str(models["iris"])})
                assert made.status_code == 200, made.text
                experiment = http.post(f"{mlflow}/experiments/create", json={"name": "hidden"}).json()["experiment_id"]
                access.run_id = http.post(f"{mlflow}/runs/create", json={"experiment_id": experiment}).json()["run"]["info"]["run_id"]
                for kind, key in (("registered_model", "secret"), ("experiment", experiment)):
                    answer = http.put(f"/api/v1/permissions/{kind}/{key}/team", json={"team": "vault"})
                    assert answer.status_code == 200, answer.text
            yield access
        finally:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                token = ident.admin_token
                for d in http.get("/api/v1/deployments", headers={"Authorization": f"Bearer {token}"}).json().get("deployments", []):
                    http.delete(f"/api/v1/deployments/{d['name']}", headers={"Authorization": f"Bearer {token}"})
                wait_until(
                    lambda: not http.get("/api/v1/deployments", headers={"Authorization": f"Bearer {token}"}).json()["deployments"],
                    "every deployment deleted",
                )
    leftovers = kill_leftovers(cache_dir)
    assert not leftovers, f"replicas outlived their deployments (killed now): {leftovers}"


@pytest.fixture(scope="module")
def access(tmp_path_factory: pytest.TempPathFactory, models: Models) -> Iterator[Access]:
    yield from _access_server(tmp_path_factory, models)


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory, models: Models) -> Iterator[Access]:
    """The same, on a server whose default permission is NONE."""
    yield from _access_server(tmp_path_factory, models, default_permission="NONE")


def test_the_creator_owns_a_deployment_and_others_read_and_predict(access: Access, models: Models) -> None:
    with access.as_("owner") as owner:
        created = owner.post("/api/v1/deployments", json=iris("owned", models["iris"]))
        assert created.status_code == 201, created.text
        assert created.json()["created_by"] == "owner"
    access.wait_available("owned")
    with access.as_("owner") as owner:
        permissions = owner.get("/api/v1/permissions/deployment/owned").json()
        assert permissions["owner"] == "owner", permissions

    with access.as_("other") as other:
        assert other.get("/api/v1/deployments/owned").status_code == 200
        assert "owned" in {d["name"] for d in other.get("/api/v1/deployments").json()["deployments"]}
        assert other.get("/api/v1/deployments/owned/events").status_code == 200
        assert other.get("/api/v1/deployments/owned/logs").status_code == 200
        assert infer(other, "owned").status_code == 200
        assert other.post("/seldon/default/owned/api/v1.0/predictions", json=seldon_body([SETOSA])).status_code == 200
        # reading is not changing
        refusal(other.put("/api/v1/deployments/owned", json=iris("owned", models["iris"], replicas=2)), 403, "PERMISSION_DENIED")
        refusal(other.delete("/api/v1/deployments/owned"), 403, "PERMISSION_DENIED")
        refusal(other.put("/api/v1/permissions/deployment/owned", json={"user": "other", "level": "MANAGE"}), 403, "PERMISSION_DENIED")

    # a read-only token predicts, and creates nothing
    with access.as_("viewer") as viewer:
        assert infer(viewer, "owned").status_code == 200
        body = refusal(viewer.post("/api/v1/deployments", json=iris("viewed", models["iris"])), 403, "PERMISSION_DENIED")
        assert "read-only" in body["message"]
    with access.ident.client(access.ident.token("owner", read_only=True, name="owner-ro")) as owner_ro:
        refusal(owner_ro.delete("/api/v1/deployments/owned"), 403, "PERMISSION_DENIED")

    # a grant of EDIT lets other change it, not delete it
    with access.as_("owner") as owner:
        assert owner.put("/api/v1/permissions/deployment/owned", json={"user": "other", "level": "EDIT"}).status_code == 200
    with access.as_("other") as other:
        document = iris("owned", models["iris"])
        document["metadata"]["labels"] = {"changed-by": "other"}
        changed = other.put("/api/v1/deployments/owned", json=document)
        assert changed.status_code == 200 and changed.json()["generation"] == 2, changed.text
        refusal(other.delete("/api/v1/deployments/owned"), 403, "PERMISSION_DENIED")
    access.delete("owned", "owner")


def test_unauthenticated_predictions_are_401s_in_each_protocols_shape(access: Access, models: Models) -> None:
    with access.anonymous() as anonymous:
        for path, shape in (
            ("/deployments/anything/v2/models/anything/infer", {"error"}),
            ("/seldon/default/anything/api/v1.0/predictions", {"status"}),
            ("/deployments/anything/invocations", LABDECK_ERROR),
        ):
            answer = anonymous.post(path, json={})
            assert answer.status_code == 401, (path, answer.text)
            assert "Bearer" in answer.headers["www-authenticate"]
            assert set(answer.json()) == shape, answer.json()
        seldon = anonymous.post("/seldon/default/anything/api/v1.0/predictions", json={}).json()["status"]
        assert seldon["status"] == 1 and seldon["info"]
        refusal(anonymous.get("/api/v1/deployments"), 401, "UNAUTHENTICATED")
        refusal(anonymous.post("/api/v1/deployments", json=iris("anon", models["iris"])), 401, "UNAUTHENTICATED")


def test_nobody_deploys_a_model_they_cannot_read(access: Access, models: Models) -> None:
    run_model = f"runs:/{access.run_id}/model"
    with access.as_("other") as other:
        for uri in ("models:/secret/1", run_model):
            body = refusal(other.post("/api/v1/deployments", json=iris("stolen", uri)), 403, "PERMISSION_DENIED")
            assert "other needs READ" in body["message"], body
        # second predictor too; and a SeldonDeployment
        document = model_deployment(
            "stolen",
            {"name": "a", "model": str(models["iris"]), "traffic": 90},
            {"name": "b", "model": "models:/secret/1", "traffic": 10},
        )
        refusal(other.post("/api/v1/deployments", json=document), 403, "PERMISSION_DENIED")
        # models that do not exist are still bad input, not a permission question
        names_field(refusal(other.post("/api/v1/deployments", json=iris("stolen", "models:/nope/1"))), "spec.predictors[0].model", "nope")
        names_field(refusal(other.post("/api/v1/deployments", json=iris("stolen", f"runs:/{uuid.uuid4().hex}/model"))), "spec.predictors[0].model")
        assert other.get("/api/v1/deployments/stolen").status_code == 404
    # the team's member may (the existence of the run's files is checked after permission)
    with access.as_("member") as member:
        names_field(refusal(member.post("/api/v1/deployments", json=iris("stolen", run_model))), "spec.predictors[0].model")


def test_with_default_permission_none_only_what_was_granted_is_seen(closed: Access, models: Models) -> None:
    with closed.as_("owner") as owner:
        assert owner.post("/api/v1/deployments", json=iris("mine", models["iris"])).status_code == 201
    closed.wait_available("mine")
    with closed.as_("other") as other:
        assert "mine" not in {d["name"] for d in other.get("/api/v1/deployments").json()["deployments"]}
        refusal(other.get("/api/v1/deployments/mine"), 403, "PERMISSION_DENIED")
        denied = infer(other, "mine")
        assert denied.status_code == 403 and set(denied.json()) == {"error"}
    with closed.as_("owner") as owner:
        assert [d["name"] for d in owner.get("/api/v1/deployments").json()["deployments"]] == ["mine"]
        granted = owner.put("/api/v1/permissions/deployment/mine", json={"user": "other", "level": "READ"})
        assert granted.status_code == 200, granted.text
    with closed.as_("other") as other:
        assert [d["name"] for d in other.get("/api/v1/deployments").json()["deployments"]] == ["mine"]
        assert other.get("/api/v1/deployments/mine").status_code == 200
        assert infer(other, "mine").status_code == 200

    # the owner still sees it while its replicas stop
    with closed.as_("owner") as owner:
        assert owner.delete("/api/v1/deployments/mine").status_code == 200
        seen = owner.get("/api/v1/deployments/mine")
        assert seen.status_code in (200, 404), seen.text
        wait_until(lambda: owner.get("/api/v1/deployments/mine").status_code == 404, "mine deleted")

    # a new deployment of the same name does not inherit the old one's grants
    with closed.as_("member") as member:
        assert member.post("/api/v1/deployments", json=iris("mine", models["iris"])).status_code == 201
    with closed.as_("other") as other:
        refusal(other.get("/api/v1/deployments/mine"), 403, "PERMISSION_DENIED")
    with closed.as_("owner") as owner:
        refusal(owner.get("/api/v1/deployments/mine"), 403, "PERMISSION_DENIED")
    closed.delete("mine", "member")
