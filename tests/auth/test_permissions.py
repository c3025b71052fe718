"""The permission model, end to end, on SQLite and PostgreSQL.

One server per backend (``auth.mode = password``). ``owner`` creates two sets of things,
each an experiment with a run (metrics, artifacts), a logged model (with a file), and a
registered model with a version (from the run) and an alias:

- the shared set: owning team ``crew`` (public), a READ grant to ``reader``, an EDIT grant
  to team ``helpers``;
- the private set: owning team ``vault``, which is private.

Who may do what (``LEVELS``): ``owner`` (creator: MANAGE), ``member`` (of ``crew`` and
``vault``: the team permission, EDIT), ``reader`` (an explicit READ grant), ``editor``
(EDIT through the ``helpers`` team's grant), ``other`` (nobody granted anything: the
default READ, and NONE facing the private team), an admin, and a read-only token of the
owner (READ, never writes). ``test_matrix`` tries every operation of each level on both
sets as each of them: 200 when allowed, 403 when not (MLflow or /api/v1 error shape).

Then: not-found answers, grants, what searches show (the real mlflow client), the mlflow
client's credentials (token, password, token as password), revoking access, sources of
model versions, names of renamed and deleted models, and a server whose default
permission is NONE.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from labdeck.auth.entities import Level
from tests.auth.access_kit import ARTIFACTS, MLFLOW, PASSWORD, Identity, auth_server, basic, ok
from tests.conftest import RunningServer

NONE, READ, EDIT, MANAGE = Level.NONE, Level.READ, Level.EDIT, Level.MANAGE

# principal -> (level on the shared set, level on the private set)
LEVELS = {
    "owner": (MANAGE, MANAGE),
    "member": (EDIT, EDIT),
    "reader": (READ, NONE),
    "editor": (EDIT, NONE),
    "other": (READ, NONE),
    "boss": (MANAGE, MANAGE),  # an admin
    "owner:ro": (READ, READ),  # the owner's read-only token
}
ARTIFACT_TEXT = b"hello from the run"
MLMODEL_TEXT = b"flavors: {}\n"


@dataclass
class Things:
    """One set of the owner's things, and the spare ones operations may consume."""

    private: bool
    team: str
    experiment_id: str
    experiment_name: str
    run_id: str
    run_path: str  # the run's artifact folder, relative to the store
    logged_model_id: str
    logged_model_path: str
    model: str
    spare_version: str | None = None
    spare_logged_model: str | None = None
    spare_model: str | None = None
    spare_file: str | None = None


@dataclass
class World:
    backend: str
    server: RunningServer
    ident: Identity
    shared: Things = field(init=False)
    private: Things = field(init=False)

    def things(self, private: bool) -> Things:
        return self.private if private else self.shared

    def http(self, who: str) -> httpx.Client:
        return self.ident.as_(who)

    def admin(self) -> httpx.Client:
        return self.ident.admin()


def _store_path(uri: str) -> str:
    assert uri.startswith("mlflow-artifacts:"), uri
    return urlparse(uri).path.strip("/")


def _configure(
    http: httpx.Client, resource_type: str, resource_id: str, team: str, private: bool
) -> None:
    ok(http.put(f"/api/v1/permissions/{resource_type}/{resource_id}/team", json={"team": team}))
    if not private:
        ok(
            http.put(
                f"/api/v1/permissions/{resource_type}/{resource_id}",
                json={"user": "reader", "level": "READ"},
            )
        )
        ok(
            http.put(
                f"/api/v1/permissions/{resource_type}/{resource_id}",
                json={"team": "helpers", "level": "EDIT"},
            )
        )


def _make_things(world: World, private: bool) -> Things:
    tag = "private" if private else "shared"
    team = "vault" if private else "crew"
    with world.http("owner") as http:
        name = f"{tag}-experiment"
        experiment_id = ok(http.post(f"{MLFLOW}/experiments/create", json={"name": name}))[
            "experiment_id"
        ]
        run = ok(
            http.post(
                f"{MLFLOW}/runs/create", json={"experiment_id": experiment_id, "run_name": tag}
            )
        )["run"]
        run_id = run["info"]["run_id"]
        ok(
            http.post(
                f"{MLFLOW}/runs/log-metric",
                json={"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 1, "step": 0},
            )
        )
        run_path = _store_path(run["info"]["artifact_uri"])
        ok(http.put(f"{ARTIFACTS}/{run_path}/hello.txt", content=ARTIFACT_TEXT))
        ok(http.put(f"{ARTIFACTS}/{run_path}/model/MLmodel", content=MLMODEL_TEXT))
        logged = ok(
            http.post(
                f"{MLFLOW}/logged-models",
                json={"experiment_id": experiment_id, "name": f"{tag}-lm"},
            )
        )["model"]
        logged_path = _store_path(logged["info"]["artifact_uri"])
        ok(http.put(f"{ARTIFACTS}/{logged_path}/MLmodel", content=MLMODEL_TEXT))
        model = f"{tag}-model"
        ok(http.post(f"{MLFLOW}/registered-models/create", json={"name": model}))
        ok(
            http.post(
                f"{MLFLOW}/model-versions/create",
                json={"name": model, "source": f"runs:/{run_id}/model", "run_id": run_id},
            )
        )
        ok(
            http.post(
                f"{MLFLOW}/registered-models/alias",
                json={"name": model, "alias": "champion", "version": "1"},
            )
        )
        _configure(http, "experiment", experiment_id, team, private)
        _configure(http, "registered_model", model, team, private)
    return Things(
        private,
        team,
        experiment_id,
        name,
        run_id,
        run_path,
        logged["info"]["model_id"],
        logged_path,
        model,
    )


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    backend = request.param
    with auth_server(tmp_path_factory.mktemp(f"perm-{backend}"), backend) as server:
        ident = Identity.bootstrap(server)
        for username in ("owner", "member", "reader", "editor", "other", "spare"):
            ident.user(username)
        ident.user("boss", admin=True)
        ident.tokens["owner:ro"] = ident.token("owner", read_only=True, name="read-only")
        ident.team("crew", ["member"])
        ident.team("vault", ["member"], private=True)
        ident.team("helpers", ["editor"])
        world = World(backend, server, ident)
        world.shared = _make_things(world, private=False)
        world.private = _make_things(world, private=True)
        yield world


# ---------------------------------------------------------------------- the matrix


@dataclass
class Ctx:
    world: World
    who: str
    http: httpx.Client
    t: Things


def _v1(method: str, path: str) -> Callable[[Ctx], httpx.Response]:
    return lambda c: c.http.request(method, path.format(t=c.t))


def _mlflow_get(path: str, **params: Any) -> Callable[[Ctx], httpx.Response]:
    return lambda c: c.http.get(
        MLFLOW + path, params={k: v.format(t=c.t) for k, v in params.items()}
    )


def _mlflow_post(path: str, method: str = "POST", **body: Any) -> Callable[[Ctx], httpx.Response]:
    def call(c: Ctx) -> httpx.Response:
        fields = {
            k: v.format(t=c.t, who=c.who) if isinstance(v, str) else v for k, v in body.items()
        }
        return c.http.request(method, MLFLOW + path, json=fields)

    return call


def _then_undo(
    do: Callable[[Ctx], httpx.Response], undo: Callable[[Ctx], httpx.Response]
) -> Callable[[Ctx], httpx.Response]:
    """``do``; when it worked, ``undo`` must work too (the same level), leaving things as they
    were; when it was refused, so is ``undo`` (or what it names does not exist)."""

    def call(c: Ctx) -> httpx.Response:
        done = do(c)
        undone = undo(c)
        refused_too = done.status_code == 403 and undone.status_code == 404
        assert undone.status_code == done.status_code or refused_too, (
            f"{c.who}: {done.text} / {undone.text}"
        )
        return done

    return call


def _get_artifact(c: Ctx) -> httpx.Response:
    response = c.http.get("/get-artifact", params={"run_id": c.t.run_id, "path": "hello.txt"})
    if response.status_code == 200:
        assert response.content == ARTIFACT_TEXT
    return response


def _proxied_download(c: Ctx) -> httpx.Response:
    response = c.http.get(f"{ARTIFACTS}/{c.t.run_path}/hello.txt")
    if response.status_code == 200:
        assert response.content == ARTIFACT_TEXT
    return response


def _version_artifact(c: Ctx) -> httpx.Response:
    response = c.http.get(
        "/model-versions/get-artifact",
        params={"name": c.t.model, "version": "1", "path": "MLmodel"},
    )
    if response.status_code == 200:
        assert response.content == MLMODEL_TEXT
    return response


def _history(c: Ctx) -> httpx.Response:
    response = c.http.get(f"/api/v1/models/{c.t.model}/history")
    if response.status_code == 200:
        assert response.json()["events"], response.text
    return response


READS: dict[str, Callable[[Ctx], httpx.Response]] = {
    "get experiment": _mlflow_get("/experiments/get", experiment_id="{t.experiment_id}"),
    "get experiment by name": _mlflow_get(
        "/experiments/get-by-name", experiment_name="{t.experiment_name}"
    ),
    "get run": _mlflow_get("/runs/get", run_id="{t.run_id}"),
    "metric history": _mlflow_get("/metrics/get-history", run_id="{t.run_id}", metric_key="loss"),
    "bulk interval history": _mlflow_get(
        "/metrics/get-history-bulk-interval", run_ids="{t.run_id}", metric_key="loss"
    ),
    "bulk history": _mlflow_get(
        "/metrics/get-history-bulk", run_id="{t.run_id}", metric_key="loss"
    ),
    "list run artifacts": _mlflow_get("/artifacts/list", run_id="{t.run_id}"),
    "get-artifact": _get_artifact,
    "proxied download": _proxied_download,
    "proxied list": lambda c: c.http.get(ARTIFACTS, params={"path": c.t.run_path}),
    "get logged model": lambda c: c.http.get(f"{MLFLOW}/logged-models/{c.t.logged_model_id}"),
    "list logged model artifacts": lambda c: c.http.get(
        f"{MLFLOW}/logged-models/{c.t.logged_model_id}/artifacts/directories"
    ),
    "get registered model": _mlflow_get("/registered-models/get", name="{t.model}"),
    "latest versions": _mlflow_post("/registered-models/get-latest-versions", name="{t.model}"),
    "get version": _mlflow_get("/model-versions/get", name="{t.model}", version="1"),
    "download uri": _mlflow_get("/model-versions/get-download-uri", name="{t.model}", version="1"),
    "version by alias": _mlflow_get("/registered-models/alias", name="{t.model}", alias="champion"),
    "version artifact": _version_artifact,
    "model history": _history,
    "experiment permissions": _v1("GET", "/api/v1/permissions/experiment/{t.experiment_id}"),
    "model permissions": _v1("GET", "/api/v1/permissions/registered_model/{t.model}"),
}

EDITS: dict[str, Callable[[Ctx], httpx.Response]] = {
    "set experiment tag": _mlflow_post(
        "/experiments/set-experiment-tag", experiment_id="{t.experiment_id}", key="k", value="{who}"
    ),
    "create run": _mlflow_post(
        "/runs/create", experiment_id="{t.experiment_id}", run_name="by-{who}"
    ),
    "log metric": _mlflow_post(
        "/runs/log-metric", run_id="{t.run_id}", key="acc", value=1.0, timestamp=2, step=1
    ),
    "log batch": _mlflow_post(
        "/runs/log-batch", run_id="{t.run_id}", params=[{"key": "p", "value": "1"}]
    ),
    "set run tag": _mlflow_post("/runs/set-tag", run_id="{t.run_id}", key="k", value="{who}"),
    "update run": _mlflow_post("/runs/update", run_id="{t.run_id}", status="FINISHED"),
    "create logged model": _mlflow_post(
        "/logged-models", experiment_id="{t.experiment_id}", name="lm-{who}"
    ),
    "tag logged model": lambda c: c.http.patch(
        f"{MLFLOW}/logged-models/{c.t.logged_model_id}/tags",
        json={"tags": [{"key": "k", "value": c.who}]},
    ),
    "proxied upload": lambda c: c.http.put(
        f"{ARTIFACTS}/{c.t.run_path}/by-{c.who}.txt", content=b"x"
    ),
    "UI upload": lambda c: c.http.post(
        f"{MLFLOW}/upload-artifact",
        params={"run_id": c.t.run_id, "path": f"ui-{c.who}.txt"},
        content=b"x",
    ),
    "set model tag": _mlflow_post(
        "/registered-models/set-tag", name="{t.model}", key="k", value="{who}"
    ),
    "update model": _mlflow_post(
        "/registered-models/update", "PATCH", name="{t.model}", description="by {who}"
    ),
    "create version": _mlflow_post(
        "/model-versions/create", name="{t.model}", source="runs:/{t.run_id}/model"
    ),
    "set version tag": _mlflow_post(
        "/model-versions/set-tag", name="{t.model}", version="1", key="k", value="{who}"
    ),
    "update version": _mlflow_post(
        "/model-versions/update", "PATCH", name="{t.model}", version="1", description="{who}"
    ),
    "transition stage": _mlflow_post(
        "/model-versions/transition-stage", name="{t.model}", version="1", stage="Staging"
    ),
    "set and delete an alias": _then_undo(
        _mlflow_post("/registered-models/alias", name="{t.model}", alias="temp", version="1"),
        _mlflow_post("/registered-models/alias", "DELETE", name="{t.model}", alias="temp"),
    ),
}


def _spare_version(c: Ctx) -> httpx.Response:
    if c.t.spare_version is None:
        with c.world.admin() as admin:
            made = ok(
                admin.post(
                    f"{MLFLOW}/model-versions/create",
                    json={"name": c.t.model, "source": f"runs:/{c.t.run_id}/model"},
                )
            )
        c.t.spare_version = made["model_version"]["version"]
    response = c.http.request(
        "DELETE",
        f"{MLFLOW}/model-versions/delete",
        json={"name": c.t.model, "version": c.t.spare_version},
    )
    if response.status_code == 200:
        c.t.spare_version = None
    return response


def _spare_logged_model(c: Ctx) -> httpx.Response:
    if c.t.spare_logged_model is None:
        with c.world.admin() as admin:
            made = ok(
                admin.post(
                    f"{MLFLOW}/logged-models",
                    json={"experiment_id": c.t.experiment_id, "name": "spare"},
                )
            )
        c.t.spare_logged_model = made["model"]["info"]["model_id"]
    response = c.http.delete(f"{MLFLOW}/logged-models/{c.t.spare_logged_model}")
    if response.status_code == 200:
        c.t.spare_logged_model = None
    return response


def _spare_file(c: Ctx) -> httpx.Response:
    path = f"{ARTIFACTS}/{c.t.run_path}/spare.txt"
    if c.t.spare_file is None:
        with c.world.admin() as admin:
            ok(admin.put(path, content=b"spare"))
        c.t.spare_file = path
    response = c.http.delete(path)
    if response.status_code == 200:
        c.t.spare_file = None
        with c.world.admin() as admin:
            assert admin.get(path).status_code == 404
    return response


def _spare_model(c: Ctx) -> httpx.Response:
    """A registered model with the same owner, team and grants as the set's; deleted."""
    if c.t.spare_model is None:
        name = f"spare-{uuid.uuid4().hex[:8]}"
        with c.world.http("owner") as owner:
            ok(owner.post(f"{MLFLOW}/registered-models/create", json={"name": name}))
            _configure(owner, "registered_model", name, c.t.team, c.t.private)
        c.t.spare_model = name
    response = c.http.request(
        "DELETE", f"{MLFLOW}/registered-models/delete", json={"name": c.t.spare_model}
    )
    if response.status_code == 200:
        c.t.spare_model = None
    return response


def _grant(c: Ctx, resource: str) -> httpx.Response:
    rid = c.t.experiment_id if resource == "experiment" else c.t.model
    path = f"/api/v1/permissions/{resource}/{rid}"
    response = c.http.put(path, json={"user": "spare", "level": "EDIT"})
    revoked = c.http.delete(path, params={"user": "spare"})
    assert revoked.status_code == response.status_code, revoked.text
    if response.status_code == 200:
        assert {"user": "spare", "level": "EDIT"} in response.json()["grants"]
        assert {"user": "spare", "level": "EDIT"} not in revoked.json()["grants"]
    return response


MANAGES: dict[str, Callable[[Ctx], httpx.Response]] = {
    "delete and restore experiment": _then_undo(
        _mlflow_post("/experiments/delete", experiment_id="{t.experiment_id}"),
        _mlflow_post("/experiments/restore", experiment_id="{t.experiment_id}"),
    ),
    "rename experiment": _then_undo(
        _mlflow_post(
            "/experiments/update",
            experiment_id="{t.experiment_id}",
            new_name="{t.experiment_name}-renamed",
        ),
        _mlflow_post(
            "/experiments/update", experiment_id="{t.experiment_id}", new_name="{t.experiment_name}"
        ),
    ),
    "delete and restore run": _then_undo(
        _mlflow_post("/runs/delete", run_id="{t.run_id}"),
        _mlflow_post("/runs/restore", run_id="{t.run_id}"),
    ),
    "delete logged model": _spare_logged_model,
    "delete artifact": _spare_file,
    "rename model": _then_undo(
        _mlflow_post("/registered-models/rename", name="{t.model}", new_name="{t.model}-renamed"),
        _mlflow_post("/registered-models/rename", name="{t.model}-renamed", new_name="{t.model}"),
    ),
    "delete version": _spare_version,
    "delete model": _spare_model,
    "grant on experiment": lambda c: _grant(c, "experiment"),
    "grant on model": lambda c: _grant(c, "registered_model"),
    "set experiment's team": lambda c: c.http.put(
        f"/api/v1/permissions/experiment/{c.t.experiment_id}/team", json={"team": c.t.team}
    ),
    "set model's team": lambda c: c.http.put(
        f"/api/v1/permissions/registered_model/{c.t.model}/team", json={"team": c.t.team}
    ),
}


def _check(response: httpx.Response, allowed: bool, where: str) -> None:
    if allowed:
        assert response.status_code == 200, (
            f"{where}: expected 200, got {response.status_code} {response.text}"
        )
        return
    assert response.status_code == 403, (
        f"{where}: expected 403, got {response.status_code} {response.text}"
    )
    body = response.json()
    family = (
        {"error_code", "message", "details"}
        if "/api/v1/" in str(response.request.url)
        else {"error_code", "message"}
    )
    assert set(body) == family, f"{where}: {body}"
    assert body["error_code"] == "PERMISSION_DENIED", f"{where}: {body}"


@pytest.mark.parametrize("who", list(LEVELS))
def test_matrix(world: World, who: str) -> None:
    for private in (False, True):
        have = LEVELS[who][private]
        t = world.things(private)
        with world.http(who) as http:
            c = Ctx(world, who, http, t)
            for level, ops in ((READ, READS), (EDIT, EDITS), (MANAGE, MANAGES)):
                for name, op in ops.items():
                    where = f"{who} / {'private' if private else 'shared'} / {name}"
                    _check(op(c), have >= level, where)


def test_the_matrix_denies_for_the_right_reason(world: World) -> None:
    """403 messages say who needs what; a read-only token's say it is read-only."""
    with world.http("reader") as http:
        denied = http.post(
            f"{MLFLOW}/runs/log-metric",
            json={"run_id": world.shared.run_id, "key": "a", "value": 1, "timestamp": 1},
        )
    assert denied.json()["message"].startswith(
        "Permission denied: reader needs EDIT on the experiment of run"
    )
    with world.http("owner:ro") as http:
        denied = http.post(
            f"{MLFLOW}/runs/log-metric",
            json={"run_id": world.shared.run_id, "key": "a", "value": 1, "timestamp": 1},
        )
    assert denied.status_code == 403 and "read-only" in denied.json()["message"]
    with world.http("other") as http:
        denied = http.get(
            f"{MLFLOW}/experiments/get", params={"experiment_id": world.private.experiment_id}
        )
    assert (
        denied.json()["message"]
        == f"Permission denied: other needs READ on experiment {world.private.experiment_id}."
    )


# ---------------------------------------------------------------------- not found


def test_missing_things_are_404_for_anyone_who_could_read_them(world: World) -> None:
    missing_run = uuid.uuid4().hex
    with world.http("other") as http:
        for response in (
            http.get(f"{MLFLOW}/runs/get", params={"run_id": missing_run}),
            http.post(
                f"{MLFLOW}/runs/log-metric",
                json={"run_id": missing_run, "key": "a", "value": 1, "timestamp": 1},
            ),
            http.get(f"{MLFLOW}/logged-models/m-{uuid.uuid4().hex}"),
            http.get(f"{MLFLOW}/registered-models/get", params={"name": "no-such-model"}),
            http.get(
                f"{MLFLOW}/model-versions/get", params={"name": world.shared.model, "version": "99"}
            ),
            http.get(
                f"{MLFLOW}/experiments/get-by-name",
                params={"experiment_name": "no-such-experiment"},
            ),
            http.get(f"{MLFLOW}/experiments/get", params={"experiment_id": "987654"}),
            http.get(
                "/get-artifact", params={"run_id": world.shared.run_id, "path": "no-such-file.txt"}
            ),
            http.get(f"{ARTIFACTS}/{world.shared.run_path}/no-such-file.txt"),
            http.get(
                "/model-versions/get-artifact",
                params={"name": "no-such-model", "version": "1", "path": "MLmodel"},
            ),
        ):
            assert response.status_code == 404, f"{response.request.url}: {response.text}"
            assert set(response.json()) == {"error_code", "message"}
        for response in (
            http.get("/api/v1/models/no-such-model/history"),
            http.get("/api/v1/permissions/registered_model/no-such-model"),
            http.get("/api/v1/permissions/experiment/987654"),
            http.put(
                "/api/v1/permissions/registered_model/no-such-model",
                json={"user": "other", "level": "READ"},
            ),
        ):
            assert response.status_code == 404, f"{response.request.url}: {response.text}"
            assert set(response.json()) == {"error_code", "message", "details"}
    with world.admin() as admin:  # an admin may do anything, but not to what does not exist
        for response in (
            admin.put(
                "/api/v1/permissions/experiment/987654", json={"user": "other", "level": "READ"}
            ),
            admin.put("/api/v1/permissions/experiment/987654/team", json={"team": "crew"}),
            admin.put(
                "/api/v1/permissions/registered_model/no-such-model/team", json={"team": "crew"}
            ),
        ):
            assert response.status_code == 404, f"{response.request.url}: {response.text}"


# ---------------------------------------------------------------------- grants


def test_grants_name_real_users_teams_and_levels(world: World) -> None:
    path = f"/api/v1/permissions/experiment/{world.shared.experiment_id}"
    with world.http("owner") as http:
        for body, status, code in (
            ({"user": "nobody-like-this", "level": "READ"}, 404, "RESOURCE_DOES_NOT_EXIST"),
            ({"team": "no-such-team", "level": "READ"}, 404, "RESOURCE_DOES_NOT_EXIST"),
            ({"user": "spare", "level": "SUPERUSER"}, 400, "INVALID_PARAMETER_VALUE"),
            ({"user": "spare", "level": "read"}, 400, "INVALID_PARAMETER_VALUE"),
            ({"user": "spare"}, 400, "INVALID_PARAMETER_VALUE"),
            ({"level": "READ"}, 400, "INVALID_PARAMETER_VALUE"),
            ({"user": "spare", "team": "crew", "level": "READ"}, 400, "INVALID_PARAMETER_VALUE"),
        ):
            response = http.put(path, json=body)
            assert (response.status_code, response.json()["error_code"]) == (status, code), (
                f"{body}: {response.text}"
            )
            assert set(response.json()) == {"error_code", "message", "details"}
        assert http.delete(path, params={"user": "nobody-like-this"}).status_code == 404
        assert http.put(f"{path}/team", json={"team": "no-such-team"}).status_code == 404
        wrong_type = http.put(
            f"/api/v1/permissions/notebook/{world.shared.experiment_id}",
            json={"user": "spare", "level": "READ"},
        )
        assert wrong_type.status_code == 400, wrong_type.text
        assert http.get(path).json()["owner"] == "owner"


def test_a_grant_takes_effect_at_once_and_so_does_its_revocation(world: World) -> None:
    p = world.private
    log = {"run_id": p.run_id, "key": "granted", "value": 1.0, "timestamp": 1}
    path = f"/api/v1/permissions/experiment/{p.experiment_id}"
    with world.http("spare") as spare, world.http("owner") as owner:
        assert spare.get(f"{MLFLOW}/runs/get", params={"run_id": p.run_id}).status_code == 403
        ok(owner.put(path, json={"user": "spare", "level": "EDIT"}))
        try:
            ok(spare.post(f"{MLFLOW}/runs/log-metric", json=log))
            # EDIT is not MANAGE: spare may not pass it on
            assert spare.put(path, json={"user": "other", "level": "READ"}).status_code == 403
            ok(owner.put(path, json={"user": "spare", "level": "READ"}))  # a grant can be lowered
            assert spare.post(f"{MLFLOW}/runs/log-metric", json=log).status_code == 403
            ok(spare.get(f"{MLFLOW}/runs/get", params={"run_id": p.run_id}))
        finally:
            ok(owner.delete(path, params={"user": "spare"}))
        assert spare.get(f"{MLFLOW}/runs/get", params={"run_id": p.run_id}).status_code == 403
        # through a team: membership counts at once, both ways
        ok(owner.put(path, json={"team": "helpers", "level": "READ"}))
        try:
            with world.admin() as admin:
                ok(admin.put("/api/v1/teams/helpers/members/spare"))
                ok(spare.get(f"{MLFLOW}/runs/get", params={"run_id": p.run_id}))
                ok(admin.delete("/api/v1/teams/helpers/members/spare"))
            assert spare.get(f"{MLFLOW}/runs/get", params={"run_id": p.run_id}).status_code == 403
        finally:
            ok(owner.request("DELETE", path, params={"team": "helpers"}))


def test_a_private_team_made_public_shows_its_things(world: World) -> None:
    p = world.private
    with world.http("other") as other, world.admin() as admin:
        assert (
            other.get(f"{MLFLOW}/registered-models/get", params={"name": p.model}).status_code
            == 403
        )
        ok(admin.patch("/api/v1/teams/vault", json={"private": False}))
        try:
            ok(other.get(f"{MLFLOW}/registered-models/get", params={"name": p.model}))
            ok(other.get(f"{MLFLOW}/experiments/get", params={"experiment_id": p.experiment_id}))
        finally:
            ok(admin.patch("/api/v1/teams/vault", json={"private": True}))
        assert (
            other.get(f"{MLFLOW}/registered-models/get", params={"name": p.model}).status_code
            == 403
        )


# ---------------------------------------------------------------------- the real mlflow client


@pytest.fixture
def as_user(
    world: World, monkeypatch: pytest.MonkeyPatch, mlflow_at: Callable[[RunningServer], Any]
) -> Callable[..., Any]:
    """The mlflow client, acting as ``as_user(token=)`` or ``as_user(username=, password=)``."""
    mlflow_at(world.server)

    def act(
        *, token: str | None = None, username: str | None = None, password: str | None = None
    ) -> Any:
        import mlflow

        for name in (
            "MLFLOW_TRACKING_TOKEN",
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
        ):
            monkeypatch.delenv(name, raising=False)
        if token is not None:
            monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
        if username is not None:
            monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
            monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password or "")
        return mlflow.MlflowClient(world.server.url)

    return act


def _denied(error: Exception, status: int = 403) -> None:
    from mlflow.exceptions import MlflowException

    assert isinstance(error, MlflowException), repr(error)
    assert error.get_http_status_code() == status, f"{error.get_http_status_code()}: {error}"
    assert error.error_code == ("PERMISSION_DENIED" if status == 403 else "UNAUTHENTICATED"), (
        error.error_code
    )


def test_mlflow_client_logs_as_the_owner_and_is_refused_for_a_reader(
    world: World, as_user: Callable[..., Any]
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    s = world.shared
    as_user(token=world.ident.tokens["owner"])
    mlflow.set_experiment(s.experiment_name)
    with mlflow.start_run() as run:
        mlflow.log_metric("auc", 0.9)
        mlflow.log_param("lr", "0.1")
        mlflow.log_text("logged by the owner", "notes.txt")
    owned = mlflow.MlflowClient().get_run(run.info.run_id)
    assert owned.data.metrics == {"auc": 0.9} and owned.info.user_id == "owner"

    client = as_user(token=world.ident.tokens["reader"])
    assert client.get_run(run.info.run_id).data.metrics == {"auc": 0.9}
    assert client.download_artifacts(run.info.run_id, "notes.txt")
    with pytest.raises(MlflowException) as refused, mlflow.start_run(experiment_id=s.experiment_id):
        pass
    _denied(refused.value)
    with pytest.raises(MlflowException) as refused:
        client.log_metric(run.info.run_id, "auc", 0.1)
    _denied(refused.value)
    assert "reader needs EDIT" in refused.value.message
    with pytest.raises(MlflowException) as refused:
        client.set_registered_model_alias(s.model, "mine", "1")
    _denied(refused.value)

    client = as_user(token=world.ident.tokens["owner:ro"])
    assert client.get_experiment(s.experiment_id).name == s.experiment_name
    with pytest.raises(MlflowException) as refused:
        client.log_metric(run.info.run_id, "auc", 0.1)
    _denied(refused.value)
    assert "read-only" in refused.value.message

    client = as_user(token=world.ident.tokens["other"])
    with pytest.raises(MlflowException) as refused:
        client.get_experiment(world.private.experiment_id)
    _denied(refused.value)
    with pytest.raises(MlflowException) as refused:
        client.get_registered_model(world.private.model)
    _denied(refused.value)
    assert mlflow.MlflowClient().get_run(run.info.run_id).data.metrics == {
        "auc": 0.9
    }  # nothing changed


def test_mlflow_client_with_a_password_or_a_token_as_password(
    world: World, as_user: Callable[..., Any]
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    s = world.shared
    for password in (PASSWORD, world.ident.tokens["member"]):
        client = as_user(username="member", password=password)
        run = client.create_run(s.experiment_id)
        client.log_metric(run.info.run_id, "m", 1.0)
        assert client.get_run(run.info.run_id).info.user_id == "member"
        assert client.get_registered_model(world.private.model).name == world.private.model
    client = as_user(
        username="other", password=world.ident.tokens["member"]
    )  # someone else's token
    with pytest.raises(MlflowException) as refused:
        client.get_experiment(s.experiment_id)
    _denied(refused.value, 401)
    client = as_user(username="member", password="not-the-password")
    with pytest.raises(MlflowException) as refused:
        client.get_experiment(s.experiment_id)
    _denied(refused.value, 401)
    client = as_user()
    with pytest.raises(MlflowException) as refused:
        mlflow.search_experiments()
    _denied(refused.value, 401)


def _ids(items: list[Any], attr: str) -> set[str]:
    return {getattr(i, attr) for i in items}


def test_searches_show_only_what_the_caller_may_read(
    world: World, as_user: Callable[..., Any]
) -> None:
    import mlflow

    s, p = world.shared, world.private
    experiments = [s.experiment_id, p.experiment_id]
    for who, sees_private in (
        ("other", False),
        ("reader", False),
        ("editor", False),
        ("member", True),
        ("owner", True),
        ("boss", True),
        ("owner:ro", True),
    ):
        client = as_user(token=world.ident.tokens[who])
        found = _ids(mlflow.search_experiments(), "experiment_id")
        assert s.experiment_id in found and (p.experiment_id in found) == sees_private, who
        runs = client.search_runs(experiments, max_results=1000)
        assert s.run_id in _ids([r.info for r in runs], "run_id")
        assert (p.run_id in _ids([r.info for r in runs], "run_id")) == sees_private, who
        assert {r.info.experiment_id for r in runs} <= (
            {s.experiment_id, p.experiment_id} if sees_private else {s.experiment_id}
        )
        frame = mlflow.search_runs(experiment_ids=experiments)
        assert (p.run_id in set(frame["run_id"])) == sees_private, who
        models = _ids(client.search_registered_models(), "name")
        assert s.model in models and (p.model in models) == sees_private, who
        versions = {v.name for v in client.search_model_versions()}
        assert s.model in versions and (p.model in versions) == sees_private, who
        logged = client.search_logged_models(experiment_ids=experiments)
        assert (p.logged_model_id in _ids(logged, "model_id")) == sees_private, who
        assert s.logged_model_id in _ids(logged, "model_id"), who
        # asking only for what is hidden gives nothing, not an error
        assert bool(client.search_runs([p.experiment_id])) == sees_private, who
        with world.http(who) as http:
            only_private = ok(
                http.post(
                    f"{MLFLOW}/logged-models/search", json={"experiment_ids": [p.experiment_id]}
                )
            )
            assert bool(only_private.get("models")) == sees_private, who
            filtered = ok(
                http.get(
                    f"{MLFLOW}/registered-models/search", params={"filter": f"name = '{p.model}'"}
                )
            )
            assert bool(filtered.get("registered_models")) == sees_private, who


# ---------------------------------------------------------------------- losing access


def test_revoked_deleted_and_deactivated_users_are_refused_at_once(world: World) -> None:
    ident = world.ident
    probe = f"{MLFLOW}/experiments/get"
    params = {"experiment_id": world.shared.experiment_id}
    for who in ("gone-token", "gone-user", "gone-active"):
        ident.user(who)
    # a revoked token (revoked by its owner)
    second = ident.token("gone-token", name="second")
    with ident.client(second) as http:
        ok(http.get(probe, params=params))
        mine = ok(http.get("/api/v1/tokens"))["tokens"]
        token_id = next(t["id"] for t in mine if t["name"] == "second")
        with world.http("other") as other:  # nobody else's to revoke
            assert other.delete(f"/api/v1/tokens/{token_id}").status_code == 404
        ok(http.delete(f"/api/v1/tokens/{token_id}"))
        assert http.get(probe, params=params).status_code == 401
    with ident.as_("gone-token") as http:  # the user's other token still works
        ok(http.get(probe, params=params))
    # a deleted user: token, password and even the same name made again
    password = {"Authorization": basic("gone-user", PASSWORD)}
    with ident.as_("gone-user") as http:
        ok(http.get(probe, params=params))
        ok(http.get(probe, params=params, headers=password))
        ok(world.admin().delete("/api/v1/users/gone-user"))
        assert http.get(probe, params=params).status_code == 401
        assert http.get(probe, params=params, headers=password).status_code == 401
        ident.call(
            "POST", "/api/v1/users", 201, json={"username": "gone-user", "password": PASSWORD}
        )
        assert (
            http.get(probe, params=params).status_code == 401
        )  # the old token belonged to the old account
    # deactivated, then active again
    password = {"Authorization": basic("gone-active", PASSWORD)}
    with ident.as_("gone-active") as http:
        ok(http.get(probe, params=params, headers=password))
        ident.call("PATCH", "/api/v1/users/gone-active", json={"active": False})
        response = http.get(probe, params=params)
        assert response.status_code == 401 and response.headers["www-authenticate"]
        assert http.get(probe, params=params, headers=password).status_code == 401
        assert http.get("/api/v1/me").status_code == 401
        ident.call("PATCH", "/api/v1/users/gone-active", json={"active": True})
        ok(http.get(probe, params=params))
        ok(http.get(probe, params=params, headers=password))


# ---------------------------------------------------------------------- holes that were open


def test_bulk_history_checks_every_run(world: World) -> None:
    """?run_id=a&run_id=b: each run is checked, not only the first."""
    query = [
        ("run_id", world.shared.run_id),
        ("run_id", world.private.run_id),
        ("metric_key", "loss"),
    ]
    with world.http("other") as other, world.http("member") as member:
        assert other.get(f"{MLFLOW}/metrics/get-history-bulk", params=query).status_code == 403
        reversed_query = [query[1], query[0], query[2]]
        assert (
            other.get(f"{MLFLOW}/metrics/get-history-bulk", params=reversed_query).status_code
            == 403
        )
        points = ok(member.get(f"{MLFLOW}/metrics/get-history-bulk", params=query))["metrics"]
        assert {p["run_id"] for p in points} == {world.shared.run_id, world.private.run_id}
        interval = [
            ("run_ids", world.shared.run_id),
            ("run_ids", world.private.run_id),
            ("metric_key", "loss"),
        ]
        assert (
            other.get(f"{MLFLOW}/metrics/get-history-bulk-interval", params=interval).status_code
            == 403
        )


def test_a_field_given_twice_cannot_split_what_is_checked_from_what_is_served(world: World) -> None:
    s, p = world.shared, world.private
    with world.http("other") as other:
        for path, name, values in (
            (f"{MLFLOW}/runs/get", "run_id", (s.run_id, p.run_id)),
            (f"{MLFLOW}/metrics/get-history", "run_id", (s.run_id, p.run_id)),
            (f"{MLFLOW}/experiments/get", "experiment_id", (s.experiment_id, p.experiment_id)),
            (f"{MLFLOW}/registered-models/get", "name", (s.model, p.model)),
            (f"{MLFLOW}/model-versions/get", "name", (s.model, p.model)),
            (ARTIFACTS, "path", (s.run_path, p.run_path)),
            ("/get-artifact", "run_id", (s.run_id, p.run_id)),
        ):
            for ordered in (values, values[::-1]):
                query = [(name, v) for v in ordered] + [
                    ("version", "1"),
                    ("metric_key", "loss"),
                    ("path", "hello.txt"),
                ]
                query = [
                    q
                    for i, q in enumerate(query)
                    if q[0] != name or q in [(name, v) for v in ordered]
                ]
                response = other.get(path, params=query)
                where = f"{path} {ordered}: {response.status_code} {response.text}"
                if path == "/get-artifact" and ordered[-1] == s.run_id:
                    # plain routes read the last value, for the check and the answer alike
                    assert response.status_code == 200, where
                    continue
                assert response.status_code in (400, 403), where
                assert response.json()["error_code"] != "INTERNAL_ERROR"


def test_dataset_search_shows_only_readable_experiments(world: World) -> None:
    dataset = {
        "dataset": {
            "name": "secret-data",
            "digest": "abc123",
            "source_type": "local",
            "source": "{}",
        },
        "tags": [],
    }
    with world.http("owner") as owner:
        ok(
            owner.post(
                f"{MLFLOW}/runs/log-inputs",
                json={"run_id": world.private.run_id, "datasets": [dataset]},
            )
        )
    body = {"experiment_ids": [world.shared.experiment_id, world.private.experiment_id]}
    for who, sees in (("other", False), ("reader", False), ("member", True), ("boss", True)):
        with world.http(who) as http:
            found = ok(http.post(f"{MLFLOW}/experiments/search-datasets", json=body)).get(
                "dataset_summaries", []
            )
            assert any(d["name"] == "secret-data" for d in found) == sees, who


def test_a_version_cannot_copy_a_source_its_creator_may_not_read(world: World) -> None:
    """Anyone may create a model; its versions' files are served to its readers, so a
    version's source (a run, a logged model, another model's version, a store path) must
    be readable by whoever creates it."""
    p = world.private
    store_root = world.server.app.platform.artifacts.root_uri.rstrip("/")  # a plain store path
    sources = [
        {"source": f"runs:/{p.run_id}/model"},
        {"source": f"mlflow-artifacts:/{p.run_path}/model"},
        {"source": f"{store_root}/{p.run_path}/model"},
        {"source": f"models:/{p.model}/1"},
        {"source": f"models:/{p.model}@champion"},
        {"source": f"models:/{p.logged_model_id}"},
        {"source": "mlflow-artifacts:/elsewhere/model", "run_id": p.run_id},
        {"source": "mlflow-artifacts:/elsewhere/model", "model_id": p.logged_model_id},
    ]
    mine = f"copies-{uuid.uuid4().hex[:6]}"
    with world.http("other") as other:
        ok(other.post(f"{MLFLOW}/registered-models/create", json={"name": mine}))
        for fields in sources:
            response = other.post(f"{MLFLOW}/model-versions/create", json={"name": mine, **fields})
            assert response.status_code == 403, f"{fields}: {response.text}"
        assert not ok(
            other.get(f"{MLFLOW}/model-versions/search", params={"filter": f"name = '{mine}'"})
        ).get("model_versions")
        # from what other may read, it works
        s = world.shared
        made = ok(
            other.post(
                f"{MLFLOW}/model-versions/create",
                json={"name": mine, "source": f"runs:/{s.run_id}/model"},
            )
        )
        version = made["model_version"]["version"]
        served = other.get(
            "/model-versions/get-artifact",
            params={"name": mine, "version": version, "path": "MLmodel"},
        )
        assert served.status_code == 200 and served.content == MLMODEL_TEXT
    with world.http("member") as member:  # member may read the private set
        ours = f"ours-{uuid.uuid4().hex[:6]}"
        ok(member.post(f"{MLFLOW}/registered-models/create", json={"name": ours}))
        for fields in sources[:6]:
            ok(member.post(f"{MLFLOW}/model-versions/create", json={"name": ours, **fields}))


def test_a_renamed_or_deleted_models_name_gives_nothing_to_whoever_takes_it(world: World) -> None:
    """Permissions follow a model's stable key, never its old name."""
    base = uuid.uuid4().hex[:6]
    first, renamed, gone = f"first-{base}", f"renamed-{base}", f"gone-{base}"
    with world.http("owner") as owner, world.http("other") as other:
        ok(owner.post(f"{MLFLOW}/registered-models/create", json={"name": first}))
        ok(owner.put(f"/api/v1/permissions/registered_model/{first}/team", json={"team": "vault"}))
        ok(
            owner.post(
                f"{MLFLOW}/registered-models/rename", json={"name": first, "new_name": renamed}
            )
        )
        ok(other.post(f"{MLFLOW}/registered-models/create", json={"name": first}))  # the freed name
        # the renamed model is still the owner's and still private
        assert (
            other.get(f"{MLFLOW}/registered-models/get", params={"name": renamed}).status_code
            == 403
        )
        assert (
            other.request(
                "DELETE", f"{MLFLOW}/registered-models/delete", json={"name": renamed}
            ).status_code
            == 403
        )
        access = ok(owner.get(f"/api/v1/permissions/registered_model/{renamed}"))
        assert (access["owner"], access["team"]) == ("owner", "vault")
        # and the new model with the old name is other's
        assert ok(other.get(f"/api/v1/permissions/registered_model/{first}"))["owner"] == "other"
        ok(
            other.post(
                f"{MLFLOW}/registered-models/rename", json={"name": first, "new_name": f"{first}-b"}
            )
        )
        # deleted, then made again by someone else: theirs, fully
        ok(owner.post(f"{MLFLOW}/registered-models/create", json={"name": gone}))
        ok(owner.request("DELETE", f"{MLFLOW}/registered-models/delete", json={"name": gone}))
        ok(other.post(f"{MLFLOW}/registered-models/create", json={"name": gone}))
        assert ok(other.get(f"/api/v1/permissions/registered_model/{gone}"))["owner"] == "other"
        ok(other.request("DELETE", f"{MLFLOW}/registered-models/delete", json={"name": gone}))


# ---------------------------------------------------------------------- default permission NONE


@pytest.fixture(scope="module")
def closed(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    """A second server (same backend) where nothing is readable unless owned or granted."""
    with auth_server(
        tmp_path_factory.mktemp(f"closed-{world.backend}"), world.backend, default_permission="NONE"
    ) as server:
        ident = Identity.bootstrap(server)
        for username in ("alice", "grantee", "mate", "stranger"):
            ident.user(username)
        ident.team("mates", ["mate"])
        yield ident


def test_default_none_shows_only_owned_granted_or_team_things(
    closed: Identity, monkeypatch: pytest.MonkeyPatch, mlflow_at: Callable[[RunningServer], Any]
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    with closed.as_("alice") as alice:
        ids = [
            ok(alice.post(f"{MLFLOW}/experiments/create", json={"name": n}))["experiment_id"]
            for n in ("a-granted", "a-team", "a-alone")
        ]
        granted, teamed, alone = ids
        runs = {
            e: ok(alice.post(f"{MLFLOW}/runs/create", json={"experiment_id": e}))["run"]["info"][
                "run_id"
            ]
            for e in ids
        }
        ok(
            alice.put(
                f"/api/v1/permissions/experiment/{granted}",
                json={"user": "grantee", "level": "READ"},
            )
        )
        ok(alice.put(f"/api/v1/permissions/experiment/{teamed}/team", json={"team": "mates"}))
        for name in ("m-granted", "m-team", "m-alone"):
            ok(alice.post(f"{MLFLOW}/registered-models/create", json={"name": name}))
            ok(
                alice.post(
                    f"{MLFLOW}/model-versions/create",
                    json={"name": name, "source": f"runs:/{runs[alone]}/x"},
                )
            )
        ok(
            alice.put(
                "/api/v1/permissions/registered_model/m-granted",
                json={"user": "grantee", "level": "READ"},
            )
        )
        ok(alice.put("/api/v1/permissions/registered_model/m-team/team", json={"team": "mates"}))
    mlflow_at(closed.server)
    expect = {
        "alice": ({granted, teamed, alone}, {"m-granted", "m-team", "m-alone"}),
        "grantee": ({granted}, {"m-granted"}),
        "mate": ({teamed}, {"m-team"}),
        "stranger": (set(), set()),
    }
    for who, (experiments, models) in expect.items():
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", closed.tokens[who])
        client = mlflow.MlflowClient(closed.server.url)
        assert _ids(mlflow.search_experiments(), "experiment_id") == experiments, (
            who
        )  # not even Default
        found_runs = client.search_runs(ids)
        assert {r.info.experiment_id for r in found_runs} == experiments, who
        assert _ids(client.search_registered_models(), "name") == models, who
        assert {v.name for v in client.search_model_versions()} == models, who
        for experiment_id in ids:
            if experiment_id in experiments:
                assert client.get_experiment(experiment_id).experiment_id == experiment_id
            else:
                with pytest.raises(MlflowException) as refused:
                    client.get_experiment(experiment_id)
                _denied(refused.value)
    # the team member edits, the grantee only reads
    with closed.as_("mate") as mate, closed.as_("grantee") as grantee:
        ok(
            mate.post(
                f"{MLFLOW}/runs/log-metric",
                json={"run_id": runs[teamed], "key": "a", "value": 1, "timestamp": 1},
            )
        )
        assert (
            grantee.post(
                f"{MLFLOW}/runs/log-metric",
                json={"run_id": runs[granted], "key": "a", "value": 1, "timestamp": 1},
            ).status_code
            == 403
        )
        assert (
            mate.get(f"{MLFLOW}/experiments/get", params={"experiment_id": "0"}).status_code == 403
        )


def test_anyone_signed_in_logs_to_the_default_experiment_and_only_admins_manage_it(
    world: World, as_user: Callable[..., Any]
) -> None:
    from mlflow.exceptions import MlflowException

    client = as_user(token=world.ident.tokens["other"])
    run = client.create_run("0")  # where mlflow logs when no experiment was set
    client.log_metric(run.info.run_id, "loss", 0.25)
    assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.25}
    with pytest.raises(MlflowException) as refused:
        client.rename_experiment("0", "mine-now")
    _denied(refused.value)
    with pytest.raises(MlflowException) as refused:
        as_user(token=world.ident.tokens["owner:ro"]).create_run("0")
    _denied(refused.value)
    assert "read-only" in refused.value.message
    assert as_user(token=world.ident.tokens["boss"]).get_experiment("0").name == "Default"


@pytest.mark.parametrize(
    ("default", "team", "member_gets"),
    [("READ", "EDIT", EDIT), ("EDIT", "READ", EDIT), ("NONE", "READ", READ), ("MANAGE", "EDIT", MANAGE)],
)
def test_joining_the_owning_team_never_lowers_access(default: str, team: str, member_gets: Level) -> None:
    from labdeck.auth.entities import Principal
    from labdeck.auth.service import AuthService
    from labdeck.config import AuthSettings

    service = AuthService(None, AuthSettings(default_permission=default, team_permission=team))  # type: ignore[arg-type]
    member = Principal(7, "member", False, frozenset({3}), "token")
    outsider = Principal(8, "outsider", False, frozenset(), "token")
    assert service._baseline(member, 3, private=False) == member_gets
    assert service._baseline(outsider, 3, private=False) == Level[default]
    # a private team's things: only its members, at the team permission
    assert service._baseline(member, 3, private=True) == Level[team]
    assert service._baseline(outsider, 3, private=True) == NONE
