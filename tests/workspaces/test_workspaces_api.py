"""``/api/v1/workspaces`` and ``/api/v1/environments`` in a real labdeck server with sign-in
on, whose hub starts real JupyterLab servers: named servers beside the default one and the
limit per user, who may act on which server (the user, an admin; nobody else), which
environments a caller sees and may use (teams), and bad input refused with a 4xx in
labdeck's error shape that says what was wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from labdeck.config import EnvironmentSettings
from labdeck.workspaces.environments import BuiltEnvironment
from tests.auth.access_kit import ROOT
from tests.workspaces.conftest import BASE_ENV
from tests.workspaces.hub_kit import ADMIN, Hub, hub_server, kinds, path_of

V1_SHAPE = {"error_code", "message", "details"}
TEAM_ONLY = EnvironmentSettings(name="team-only", packages=["pandas<3"], teams=["ml"])


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, built_env: BuiltEnvironment) -> Iterator[Hub]:
    workspaces = {"max_servers_per_user": 2, "environments": [BASE_ENV.model_dump(), TEAM_ONLY.model_dump()]}
    with hub_server(tmp_path_factory.mktemp("api"), workspaces=workspaces) as running:
        running.ident.user("carol")
        running.ident.team("ml", ["carol"])
        yield running


def refused(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    body = response.json()
    assert set(body) == V1_SHAPE, body
    for word in words:
        assert word in body["message"], body
    return body


def test_named_servers_beside_the_default_one_up_to_the_limit(hub: Hub) -> None:
    hub.run("alice")
    big = hub.run("alice", "big")
    assert (big["user"], big["server"], big["name"], big["url"]) == ("alice", "big", "alice/big", "/user/alice/big/")
    assert hub.route("alice", "big").base_url == "/user/alice/big/"  # type: ignore[union-attr]
    with hub.jupyter("alice", "big") as jupyter:
        assert jupyter.get("api/status").status_code == 200

    again = hub.as_("alice").post(path_of("alice", "big"), json={"environment": "base"})
    assert again.status_code == 200 and again.json()["state"] == "RUNNING"  # already running: nothing to do
    other_env = hub.as_("alice").post(path_of("alice", "big"), json={"environment": TEAM_ONLY.name})
    refused(other_env, 403, TEAM_ONLY.name)  # alice is not in team ml
    third = hub.as_("alice").post(path_of("alice", "third"))
    refused(third, 400, "already runs 2", "max_servers_per_user")
    assert hub.as_("alice").get(path_of("alice", "third")).status_code == 404  # nothing was made

    mine = hub.as_("alice").get("/api/v1/workspaces").json()["workspaces"]
    assert [(s["server"], s["state"]) for s in mine] == [("", "RUNNING"), ("big", "RUNNING")]
    assert all(s["last_activity"] for s in mine)

    hub.halt("alice", "big")
    hub.run("alice", "third")  # a stopped server no longer counts
    hub.halt("alice", "third")
    hub.halt("alice")


def test_who_may_act_on_a_server(hub: Hub) -> None:
    hub.run("bob")
    for method in ("GET", "POST", "DELETE"):
        refused(hub.as_("alice").request(method, path_of("bob")), 403, "alice", "bob")
    refused(hub.as_("alice").get("/api/v1/workspaces", params={"all": "true"}), 403, "admins")
    assert {s["user"] for s in hub.as_("alice").get("/api/v1/workspaces").json()["workspaces"]} <= {"alice"}
    assert hub.as_("alice").get("/user/bob/api/status").status_code == 403

    everyone = hub.as_(ADMIN).get("/api/v1/workspaces", params={"all": "true"}).json()["workspaces"]
    assert [(s["user"], s["server"]) for s in everyone if s["state"] == "RUNNING"] == [("bob", "")]
    assert hub.status("bob", by=ADMIN)["state"] == "RUNNING"
    stopped = hub.stop("bob", by=ADMIN)
    assert stopped["state"] == "STOPPING"
    done = hub.wait_state("bob", "", "STOPPED")
    assert f"{ADMIN} stopped it" in [e["message"] for e in done["events"]]

    started = hub.start("bob", "by-admin", by=ADMIN)  # an admin starts someone else's
    assert started["user"] == "bob"
    assert kinds(hub.status("bob", "by-admin"))[0] == "StartRequested"
    hub.halt("bob", "by-admin")


def test_environments_follow_teams(hub: Hub) -> None:
    def names(user: str) -> dict[str, dict[str, Any]]:
        answer = hub.as_(user).get("/api/v1/environments")
        assert answer.status_code == 200, answer.text
        return {e["name"]: e for e in answer.json()["environments"]}

    assert list(names("alice")) == ["base"]
    assert list(names("carol")) == ["base", TEAM_ONLY.name]
    assert list(names(ADMIN)) == ["base", TEAM_ONLY.name]
    base = names("alice")["base"]
    assert (base["state"], base["default"], base["spark"]) == ("built", True, False)
    assert names("carol")[TEAM_ONLY.name]["teams"] == ["ml"]
    refused(hub.as_("bob").post(path_of("bob"), json={"environment": TEAM_ONLY.name}), 403, "ml")


def test_bad_input_is_refused_saying_what_was_wrong(hub: Hub) -> None:
    alice = hub.as_("alice")
    for name, words in (
        ("Big", ("Invalid server name", "lowercase")),
        ("-big", ("Invalid server name",)),
        ("b" * 33, ("Invalid server name", "32")),
        ("api", ("JupyterLab uses",)),
        ("spark-ui", ("JupyterLab uses",)),
        ("lab", ("JupyterLab uses",)),
    ):
        refused(alice.post(path_of("alice", name)), 400, *words)
    refused(alice.post(path_of("alice"), json={"environment": "nope"}), 400, "nope", "base", TEAM_ONLY.name)
    refused(alice.post(path_of("alice"), json={"environment": "base", "size": "huge"}), 400, "size")
    refused(alice.post(path_of("alice"), content=b"{not json", headers={"content-type": "application/json"}), 400)
    refused(hub.as_(ROOT).post(path_of("nobody-here")), 404, "nobody-here")
    refused(hub.as_(ROOT).post("/api/v1/workspaces/%2E%2E"), 400, "not a folder name")
    refused(alice.delete(path_of("alice", "never-started")), 404, "alice/never-started")
    refused(alice.get(path_of("alice", "never-started")), 404, "alice/never-started")
