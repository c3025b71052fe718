"""``labdeck users|teams|tokens|grant|revoke|login`` through click's CliRunner against a live
password-mode server: what each prints, what it changes on the server, where ``login``
keeps its token, and that a refused or unknown thing is exit status 1 with the server's
own message.

The server's first admin is made with ``users create --direct`` before it starts, as an
operator would; ``XDG_CONFIG_HOME`` points at a folder of each test's own.
"""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from labdeck.cli import cli
from labdeck.config import Settings
from tests.conftest import RunningServer, start_labdeck

ADMIN, ADMIN_PASSWORD = "root", "root-password-1"
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-1"}


def http(url: str, token: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=url,
        trust_env=False,
        timeout=30,
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )


@dataclass
class Deck:
    server: RunningServer
    data_dir: Path
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def deck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deck]:
    data_dir = tmp_path_factory.mktemp("identity-cli")
    made = CliRunner().invoke(
        cli,
        [
            "users",
            "create",
            ADMIN,
            "--admin",
            "--password-stdin",
            "--direct",
            "--data-dir",
            str(data_dir),
        ],
        input=ADMIN_PASSWORD + "\n",
    )
    assert made.exit_code == 0, made.output
    assert made.stdout.split() == ["USER", "ADMIN", ADMIN, "True"]
    server = start_labdeck(Settings.load(None, data_dir=data_dir, auth={"mode": "password"}))
    try:
        tokens = {}
        with http(server.url) as c:
            for who, password in ((ADMIN, ADMIN_PASSWORD), *PASSWORDS.items()):
                if who != ADMIN:
                    created = c.post(
                        "/api/v1/users",
                        auth=(ADMIN, ADMIN_PASSWORD),
                        json={"username": who, "password": password},
                    )
                    assert created.status_code == 201, created.text
                tokens[who] = c.post(
                    "/api/v1/tokens", auth=(who, password), json={"name": "fixture"}
                ).json()["token"]
        yield Deck(server, data_dir, tokens)
    finally:
        server.stop()


Run = Callable[..., Result]


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("LABDECK_TOKEN", raising=False)
    return tmp_path / "xdg"


@pytest.fixture
def run(deck: Deck, config_home: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``labdeck ARGS`` against the deck; ``as_`` picks whose token goes in ``--token``."""
    monkeypatch.setenv("LABDECK_URL", deck.url)

    def invoke(*args: str, as_: str | None = ADMIN, input: str | None = None) -> Result:
        extra = ["--token", deck.tokens[as_]] if as_ else []
        return CliRunner().invoke(cli, [*args, *extra], input=input)

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def fails(result: Result, message: str) -> None:
    """Exit status 1 and the server's message (not a traceback)."""
    assert result.exit_code == 1, result.output
    assert f"Error: {message}" in result.output, result.output
    assert "Traceback" not in result.output


def table(result: Result) -> list[list[str]]:
    return [line.split() for line in ok(result).stdout.splitlines()]


# ---------------------------------------------------------------------------- bootstrap


def test_the_first_admin_is_written_directly_to_the_database(tmp_path: Path):
    def direct(*args: str, input: str | None = "first-admin-pw\n") -> Result:
        return CliRunner().invoke(
            cli, ["users", "create", *args, "--direct", "--data-dir", str(tmp_path)], input=input
        )

    made = ok(
        direct("boss", "--admin", "--password-stdin", "--email", "boss@example.test", "--json")
    )
    assert json.loads(made.stdout) == {"username": "boss", "admin": True}
    fails(
        direct("boss", "--admin", "--password-stdin"),
        "RESOURCE_ALREADY_EXISTS: User 'boss' already exists.",
    )
    fails(
        direct("second", "--password-stdin", input="short\n"),
        "INVALID_PARAMETER_VALUE: A password needs at least 8 characters.",
    )
    fails(
        direct("bad name", "--password-stdin"),
        "INVALID_PARAMETER_VALUE: Invalid username 'bad name'",
    )
    refused = direct("third", input=None)
    assert refused.exit_code == 2 and "--password-stdin" in refused.output
    ok(direct("sso-only", "--no-password", input=None))

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'labdeck.db'}")
    try:
        with engine.connect() as conn:
            rows = {
                r.username: r
                for r in conn.execute(
                    sa.text("SELECT username, email, is_admin, password_hash FROM users")
                )
            }
    finally:
        engine.dispose()
    assert set(rows) == {"boss", "sso-only"}
    assert rows["boss"].is_admin and rows["boss"].email == "boss@example.test"
    assert (
        rows["boss"].password_hash.startswith("$argon2id$")
        and rows["sso-only"].password_hash is None
    )


# ---------------------------------------------------------------------------- login


def test_login_with_a_password_keeps_a_private_token(deck: Deck, config_home: Path, run: Run):
    saved = config_home / "labdeck" / "credentials.json"
    saved.parent.mkdir(parents=True)
    saved.write_text(json.dumps({"http://elsewhere.example": "ldk_kept-as-it-was"}))
    saved.chmod(0o644)

    fails(
        run(
            "login", "--username", "alice", "--password-stdin", as_=None, input="not-her-password\n"
        ),
        "UNAUTHENTICATED: Authentication required",
    )
    assert json.loads(saved.read_text()) == {"http://elsewhere.example": "ldk_kept-as-it-was"}

    out = ok(
        run(
            "login",
            "--username",
            "alice",
            "--password-stdin",
            as_=None,
            input=PASSWORDS["alice"] + "\n",
        )
    ).output
    assert f"Signed in to {deck.url} as alice" in out and str(saved) in out
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    stored = json.loads(saved.read_text())
    assert stored["http://elsewhere.example"] == "ldk_kept-as-it-was"
    token = stored[deck.url]
    assert token.startswith("ldk_") and token not in out

    # Later commands use it without --token ...
    listed = ok(run("tokens", "list", "--json", as_=None))
    assert token not in listed.output
    assert "labdeck login" in {t["name"] for t in json.loads(listed.stdout)}
    with http(deck.url, token) as c:
        assert c.get("/api/v1/me").json()["username"] == "alice"
    # ... as alice, who is no admin.
    fails(
        run("users", "list", as_=None),
        "PERMISSION_DENIED: Permission denied: only admins may do this (alice is not one).",
    )

    # The URL is the key, with or without a trailing slash.
    assert ok(run("teams", "list", "--url", deck.url + "/", as_=None))


def test_login_with_a_token(deck: Deck, config_home: Path, run: Run):
    saved = config_home / "labdeck" / "credentials.json"
    fails(
        run("login", "--with-token", "ldk_this-token-does-not-exist-anywhere", as_=None),
        "UNAUTHENTICATED",
    )
    assert not saved.exists()

    out = ok(
        run("login", "--with-token", deck.tokens[ADMIN], "--url", deck.url + "/", as_=None)
    ).output
    assert f"as {ADMIN}" in out
    assert json.loads(saved.read_text()) == {deck.url: deck.tokens[ADMIN]}
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert "alice" in ok(run("users", "list", as_=None)).output  # an admin's token now


def test_a_server_that_is_not_there_is_a_clear_error(run: Run):
    free = "http://127.0.0.1:9"  # discard: nothing listens
    fails(run("users", "list", "--url", free), f"cannot reach labdeck at {free}")


# ---------------------------------------------------------------------------- users


def test_users_commands(deck: Deck, run: Run):
    rows = table(
        run(
            "users",
            "create",
            "carol",
            "--password-stdin",
            "--email",
            "carol@example.test",
            input="carol-password\n",
        )
    )
    assert rows == [["USER", "ADMIN"], ["carol", "False"]]
    listed = {r[0]: r for r in table(run("users", "list"))[1:]}
    assert listed["carol"][:4] == ["carol", "False", "True", "carol@example.test"]
    assert {"root", "alice", "bob"} <= set(listed)
    as_json = json.loads(ok(run("users", "list", "--json")).stdout)
    assert next(u for u in as_json if u["username"] == "carol")["email"] == "carol@example.test"

    assert table(run("users", "set", "carol", "--admin"))[1] == ["carol", "True", "True"]
    assert table(run("users", "set", "carol", "--no-admin", "--inactive"))[1] == [
        "carol",
        "False",
        "False",
    ]
    with http(deck.url) as c:
        assert c.get("/api/v1/me", auth=("carol", "carol-password")).status_code == 401
        assert table(run("users", "set", "carol", "--active"))[1] == ["carol", "False", "True"]
        assert c.get("/api/v1/me", auth=("carol", "carol-password")).json()["username"] == "carol"

    # Anyone may set their own password, nobody else's.
    with http(deck.url) as c:
        carol_token = c.post(
            "/api/v1/tokens", auth=("carol", "carol-password"), json={"name": "cli"}
        ).json()["token"]
    deck.tokens["carol"] = carol_token
    assert carol_token.startswith("ldk_")
    ok(run("users", "set", "carol", "--password-stdin", as_="carol", input="carol-password-2\n"))
    with http(deck.url) as c:
        assert c.get("/api/v1/me", auth=("carol", "carol-password-2")).status_code == 200
        assert c.get("/api/v1/me", auth=("carol", "carol-password")).status_code == 401
    fails(
        run("users", "set", "bob", "--password-stdin", as_="carol", input="carol-owns-bob\n"),
        "PERMISSION_DENIED",
    )
    fails(
        run("users", "set", "carol", "--admin", as_="carol"),
        "PERMISSION_DENIED: Permission denied: you may change only your own password.",
    )
    fails(
        run(
            "users",
            "create",
            "mallory",
            "--password-stdin",
            as_="alice",
            input="mallory-password\n",
        ),
        "PERMISSION_DENIED",
    )

    fails(
        run("users", "create", "carol", "--password-stdin", input="carol-password\n"),
        "RESOURCE_ALREADY_EXISTS: User 'carol' already exists.",
    )
    fails(
        run("users", "create", "bad/name", "--password-stdin", input="long-enough-1\n"),
        "INVALID_PARAMETER_VALUE: Invalid username 'bad/name'",
    )
    fails(
        run("users", "create", "shorty", "--password-stdin", input="short\n"),
        "INVALID_PARAMETER_VALUE: A password needs at least 8 characters.",
    )
    fails(
        run("users", "set", "nobody", "--admin"), "RESOURCE_DOES_NOT_EXIST: No user named 'nobody'."
    )
    fails(run("users", "delete", ADMIN), "INVALID_PARAMETER_VALUE: You cannot remove yourself.")
    # A name is one path segment, whatever it holds: this is not about alice.
    fails(
        run("users", "delete", "alice?x=1"), "RESOURCE_DOES_NOT_EXIST: No user named 'alice?x=1'."
    )
    fails(run("teams", "add", "ml#x", "alice"), "RESOURCE_DOES_NOT_EXIST: No team named 'ml#x'.")
    assert "alice" in {r[0] for r in table(run("users", "list"))}

    assert table(run("users", "delete", "carol")) == [["USER"], ["carol", "deleted"]]
    fails(run("users", "delete", "carol"), "RESOURCE_DOES_NOT_EXIST: No user named 'carol'.")
    with http(deck.url, carol_token) as c:
        assert c.get("/api/v1/me").status_code == 401  # her token went with her
    assert "carol" not in {r[0] for r in table(run("users", "list"))}


# ---------------------------------------------------------------------------- teams


def test_teams_commands(run: Run):
    assert table(run("teams", "create", "ml", "--description", "Machine learning")) == [
        ["TEAM", "PRIVATE", "MEMBERS"],
        ["ml", "False"],
    ]
    assert table(run("teams", "create", "secret-lab", "--private"))[1] == ["secret-lab", "True"]
    fails(run("teams", "create", "ml"), "RESOURCE_ALREADY_EXISTS: Team 'ml' already exists.")
    fails(
        run("teams", "create", "bad name"), "INVALID_PARAMETER_VALUE: Invalid team name 'bad name'"
    )
    fails(run("teams", "create", "rogue", as_="alice"), "PERMISSION_DENIED")

    assert table(run("teams", "add", "ml", "alice")) == [["TEAM", "MEMBERS"], ["ml", "alice"]]
    assert table(run("teams", "add", "ml", "bob")) == [["TEAM", "MEMBERS"], ["ml", "alice,", "bob"]]
    fails(run("teams", "add", "ml", "nobody"), "RESOURCE_DOES_NOT_EXIST: No user named 'nobody'.")
    fails(
        run("teams", "add", "nowhere", "alice"), "RESOURCE_DOES_NOT_EXIST: No team named 'nowhere'."
    )
    fails(run("teams", "add", "ml", "alice", as_="bob"), "PERMISSION_DENIED")

    listed = {r[0]: r for r in table(run("teams", "list", as_="alice"))[1:]}  # anyone may look
    assert listed["ml"] == ["ml", "False", "alice,", "bob"] and listed["secret-lab"] == [
        "secret-lab",
        "True",
    ]
    teams = json.loads(ok(run("teams", "list", "--json")).stdout)
    assert next(t for t in teams if t["name"] == "ml")["description"] == "Machine learning"

    assert table(run("teams", "remove", "ml", "bob")) == [["TEAM", "MEMBERS"], ["ml", "alice"]]
    fails(run("teams", "remove", "ml", "alice", as_="alice"), "PERMISSION_DENIED")
    assert table(run("teams", "delete", "secret-lab")) == [["TEAM"], ["secret-lab", "deleted"]]
    fails(
        run("teams", "delete", "secret-lab"), "RESOURCE_DOES_NOT_EXIST: No team named 'secret-lab'."
    )
    assert "secret-lab" not in {r[0] for r in table(run("teams", "list"))}
    ok(run("teams", "delete", "ml"))


# ---------------------------------------------------------------------------- tokens


def test_tokens_commands(deck: Deck, run: Run):
    made = ok(run("tokens", "create", "ci", "--read-only", as_="alice"))
    secret = made.stdout.strip()
    assert (
        secret.startswith("ldk_") and len(made.stdout.splitlines()) == 1
    )  # the secret alone, once
    assert "shown only now" in made.stderr and secret not in made.stderr
    with http(deck.url, secret) as c:
        me = c.get("/api/v1/me").json()
        assert (me["username"], me["read_only"]) == ("alice", True)

    listed = ok(run("tokens", "list", as_="alice"))
    assert secret not in listed.output
    row = next(r for r in table(listed)[1:] if r[2] == "ci")
    assert row[1:5] == ["alice", "ci", secret[:12] + "...", "True"]
    token_id = row[0]
    assert all(
        "token" not in t
        for t in json.loads(ok(run("tokens", "list", "--json", as_="alice")).stdout)
    )

    fails(
        run("tokens", "list", "--all", as_="alice"),
        "PERMISSION_DENIED: Permission denied: only admins may list everyone's tokens.",
    )
    everyone = table(run("tokens", "list", "--all"))
    assert [token_id, "alice", "ci"] in [r[:3] for r in everyone]
    assert {"alice", "bob", ADMIN} <= {r[1] for r in everyone[1:]}

    expiring = json.loads(
        ok(run("tokens", "create", "nightly", "--expires-days", "2", "--json", as_="bob")).stdout
    )
    assert (
        expiring["token"].startswith("ldk_")
        and expiring["expires_at"] - expiring["created_at"] >= 2 * 86_400_000 - 60_000
    )
    fails(
        run("tokens", "create", "never", "--expires-days", "0", as_="bob"),
        "INVALID_PARAMETER_VALUE: expires_in_days must be between 0 and 3650",
    )

    # Not someone else's (unless an admin) ...
    fails(
        run("tokens", "revoke", token_id, as_="bob"),
        f"RESOURCE_DOES_NOT_EXIST: No token with id {token_id}.",
    )
    with http(deck.url, secret) as c:
        assert c.get("/api/v1/me").status_code == 200
    # ... and one's own at once.
    assert table(run("tokens", "revoke", token_id, as_="alice")) == [
        ["TOKEN"],
        [token_id, "revoked"],
    ]
    with http(deck.url, secret) as c:
        assert c.get("/api/v1/me").status_code == 401
    fails(
        run("tokens", "revoke", token_id, as_="alice"),
        f"RESOURCE_DOES_NOT_EXIST: No token with id {token_id}.",
    )
    ok(run("tokens", "revoke", str(expiring["id"])))  # an admin may revoke anyone's
    with http(deck.url, expiring["token"]) as c:
        assert c.get("/api/v1/me").status_code == 401


def test_a_token_from_the_environment(deck: Deck, run: Run, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LABDECK_TOKEN", deck.tokens["bob"])
    assert json.loads(ok(run("tokens", "list", "--json", as_=None)).stdout)[0]["user"] == "bob"
    fails(run("users", "list", as_=None), "PERMISSION_DENIED")


# ---------------------------------------------------------------------------- grant / revoke


def _mlflow(deck: Deck, path: str, body: dict[str, Any], who: str = ADMIN) -> httpx.Response:
    with http(deck.url, deck.tokens[who]) as c:
        return c.post(f"/api/2.0/mlflow/{path}", json=body)


def test_grant_and_revoke_on_an_experiment(deck: Deck, run: Run):
    experiment = _mlflow(
        deck, "experiments/create", {"name": f"grants-{uuid.uuid4().hex[:6]}"}
    ).json()["experiment_id"]
    # By default others may read, not change: bob may not start a run.
    assert _mlflow(deck, "runs/create", {"experiment_id": experiment}, "bob").status_code == 403

    rows = table(run("grant", "experiment", experiment, "edit", "--user", "bob"))
    assert rows[0] == ["WHO", "NAME", "LEVEL"]
    assert ["user", "bob", "EDIT"] in rows and [
        "user",
        ADMIN,
        "MANAGE",
    ] in rows  # the creator manages it
    assert _mlflow(deck, "runs/create", {"experiment_id": experiment}, "bob").status_code == 200

    ok(run("teams", "create", "grantees"))
    try:
        rows = table(run("grant", "experiment", experiment, "READ", "--team", "grantees"))
        assert ["team", "grantees", "READ"] in rows
        access = json.loads(
            ok(run("grant", "experiment", experiment, "MANAGE", "--user", "alice", "--json")).stdout
        )
        assert (
            access["resource_type"] == "experiment"
            and access["resource_id"] == experiment
            and access["owner"] == ADMIN
        )
        assert {"user": "alice", "level": "MANAGE"} in access["grants"]

        # alice manages it now: she may grant in turn; bob (EDIT) may not.
        assert ["user", "bob", "READ"] in table(
            run("grant", "experiment", experiment, "READ", "--user", "bob", as_="alice")
        )
        fails(
            run("grant", "experiment", experiment, "MANAGE", "--user", "bob", as_="bob"),
            f"PERMISSION_DENIED: Permission denied: bob needs MANAGE on experiment {experiment}.",
        )

        rows = table(run("revoke", "experiment", experiment, "--user", "bob"))
        assert "bob" not in {r[1] for r in rows[1:]}
        assert _mlflow(deck, "runs/create", {"experiment_id": experiment}, "bob").status_code == 403
        rows = table(run("revoke", "experiment", experiment, "--team", "grantees"))
        assert "grantees" not in {r[1] for r in rows[1:]}
    finally:
        ok(run("teams", "delete", "grantees"))

    fails(
        run("grant", "experiment", experiment, "READ", "--user", "nobody"),
        "RESOURCE_DOES_NOT_EXIST: No user named 'nobody'.",
    )
    fails(
        run("grant", "experiment", experiment, "READ", "--team", "nowhere"),
        "RESOURCE_DOES_NOT_EXIST: No team named 'nowhere'.",
    )
    fails(
        run("grant", "experiment", experiment, "READ"),
        "INVALID_PARAMETER_VALUE: Name exactly one of 'user' and 'team'.",
    )
    fails(
        run("grant", "experiment", "424242", "READ", "--user", "bob"),
        "RESOURCE_DOES_NOT_EXIST: No Experiment with id=424242 exists",
    )
    fails(
        run("grant", "experiment", "abc", "READ", "--user", "bob"),
        "INVALID_PARAMETER_VALUE: Invalid experiment ID 'abc'.",
    )
    bad_level = run("grant", "experiment", experiment, "OWNER", "--user", "bob")
    assert bad_level.exit_code == 2 and "OWNER" in bad_level.output


def test_grant_and_revoke_on_a_registered_model(deck: Deck, run: Run):
    name = (
        f"model {uuid.uuid4().hex[:6]}?v=1#x%41"  # what a URL would misread, in a valid model name
    )
    assert _mlflow(deck, "registered-models/create", {"name": name}, "alice").status_code == 200
    update = {"name": name, "description": "changed"}
    with http(deck.url, deck.tokens["bob"]) as bob:
        assert bob.patch("/api/2.0/mlflow/registered-models/update", json=update).status_code == 403

        fails(
            run("grant", "registered_model", name, "EDIT", "--user", "bob", as_="bob"),
            "PERMISSION_DENIED",
        )
        rows = table(
            run("grant", "registered_model", name, "EDIT", "--user", "bob", as_="alice")
        )  # alice created it
        assert ["user", "bob", "EDIT"] in rows and ["user", "alice", "MANAGE"] in rows
        assert bob.patch("/api/2.0/mlflow/registered-models/update", json=update).status_code == 200

        rows = table(run("revoke", "registered_model", name, "--user", "bob"))  # admins may too
        assert "bob" not in {r[1] for r in rows[1:]}
        assert bob.patch("/api/2.0/mlflow/registered-models/update", json=update).status_code == 403

    fails(
        run("grant", "registered_model", "no-such-model", "READ", "--user", "bob"),
        "RESOURCE_DOES_NOT_EXIST: Registered Model with name=no-such-model not found",
    )
    bad_type = run("grant", "notebook", name, "READ", "--user", "bob")
    assert bad_type.exit_code == 2 and "notebook" in bad_type.output
