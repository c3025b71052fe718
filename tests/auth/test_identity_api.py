"""The identity API of a live password-mode server, on SQLite and PostgreSQL: ``/api/v1/me``,
``users``, ``tokens`` and ``teams``; Basic auth; browser sessions (``/auth/login``,
``/auth/logout``); failed-login limits; what the database keeps of secrets; ``config show``;
the refusal to serve an open address without sign-in; and single-user mode.

One server per backend serves most tests (argon2 costs tens of milliseconds per password,
so users are made once and reused; tests that change a user make their own). Tests that
fail logins on purpose send them from addresses of their own (127.0.0.x: all of 127/8 is
this machine), so that the per-address counters never reach the limit for the others.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from labdeck.auth.service import ADDRESS_ALLOWANCE
from labdeck.cli import cli
from labdeck.cli.server_cmd import is_loopback, refuse_open_single_user
from labdeck.clock import now_ms
from labdeck.config import Settings
from tests.conftest import RunningServer, _pg_admin, start_labdeck

ADMIN, ADMIN_PASSWORD = "root", "root-password-1"
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-1"}
SESSION_COOKIE, CSRF_COOKIE = "labdeck_session", "labdeck_csrf"
CSRF_MESSAGE = "Missing or wrong CSRF token (send the X-CSRF-Token header)."
WRONG_LOGIN = "Wrong username or password."
ERROR_KEYS = {"error_code", "message", "details"}


# ---------------------------------------------------------------------------- helpers


def bootstrap_admin(data_dir: Path, database_url: str | None = None) -> None:
    """The first admin, written straight to the database before the server starts."""
    args = [
        "users",
        "create",
        ADMIN,
        "--admin",
        "--password-stdin",
        "--direct",
        "--data-dir",
        str(data_dir),
    ]
    if database_url:
        args += ["--database-url", database_url]
    result = CliRunner().invoke(cli, args, input=ADMIN_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["USER", "ADMIN", ADMIN, "True"]


def new_pg_database(postgres_url: str) -> str:
    name = f"labdeck_test_{uuid.uuid4().hex[:10]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(url: str) -> None:
    _pg_admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def client(url: str, source: str = "127.0.0.1", **kwargs: Any) -> httpx.Client:
    """An httpx client whose connections come from ``source`` (any 127.x.y.z)."""
    return httpx.Client(
        base_url=url,
        transport=httpx.HTTPTransport(local_address=source),
        trust_env=False,
        timeout=30,
        **kwargs,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def expect(
    response: httpx.Response,
    status: int,
    code: str,
    message: str | None = None,
    *,
    contains: str | None = None,
) -> dict:
    """An error in labdeck's shape: exactly error_code, message, details."""
    assert response.status_code == status, (
        response.request.method,
        response.request.url,
        response.text,
    )
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["error_code"] == code, body
    if message is not None:
        assert body["message"] == message, body
    if contains is not None:
        assert contains in body["message"], body
    return body


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header of a response by cookie name (the whole header, lower case)."""
    return {h.split("=", 1)[0]: h.lower() for h in response.headers.get_list("set-cookie")}


def login(
    url: str, username: str, password: str, source: str = "127.0.0.1"
) -> tuple[httpx.Client, str]:
    """A client signed in with a session; and its CSRF token."""
    c = client(url, source)
    response = c.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return c, response.json()["csrf_token"]


def rows_of_every_table(url: str) -> list[str]:
    """Every value in every table of the database, as text."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            values = []
            for name in sa.inspect(conn).get_table_names():
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                for row in conn.execute(sa.select(table)):
                    values.extend(str(v) for v in row)
            return values
    finally:
        engine.dispose()


def query(url: str, sql: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params)
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


@dataclass
class Deck:
    """A password-mode server with an admin, alice and bob, and a token for each."""

    server: RunningServer
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def db_url(self) -> str:
        return self.server.settings.database_url

    def as_(self, who: str, source: str = "127.0.0.1") -> httpx.Client:
        return client(self.url, source, headers=bearer(self.tokens[who]))

    def anonymous(self, source: str = "127.0.0.1") -> httpx.Client:
        return client(self.url, source)

    def create_user(self, username: str, password: str, **fields: Any) -> dict:
        with self.as_(ADMIN) as admin:
            response = admin.post(
                "/api/v1/users", json={"username": username, "password": password, **fields}
            )
        assert response.status_code == 201, response.text
        return response.json()

    def token_for(self, username: str, password: str, name: str = "test", **fields: Any) -> dict:
        with self.anonymous() as c:
            response = c.post(
                "/api/v1/tokens", auth=(username, password), json={"name": name, **fields}
            )
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def deck(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deck]:
    data_dir = tmp_path_factory.mktemp("identity")
    database_url = (
        new_pg_database(request.getfixturevalue("postgres_url"))
        if request.param == "postgres"
        else None
    )
    bootstrap_admin(data_dir, database_url)
    server = start_labdeck(
        Settings.load(
            None, data_dir=data_dir, database={"url": database_url}, auth={"mode": "password"}
        )
    )
    try:
        tokens = {}
        with client(server.url) as c:
            for who, password in ((ADMIN, ADMIN_PASSWORD), *PASSWORDS.items()):
                if who != ADMIN:
                    created = c.post(
                        "/api/v1/users",
                        auth=(ADMIN, ADMIN_PASSWORD),
                        json={"username": who, "password": password},
                    )
                    assert created.status_code == 201, created.text
                made = c.post("/api/v1/tokens", auth=(who, password), json={"name": "fixture"})
                assert made.status_code == 201, made.text
                tokens[who] = made.json()["token"]
        yield Deck(server, tokens)
    finally:
        server.stop()
        if database_url:
            drop_pg_database(database_url)


# ---------------------------------------------------------------------------- /me


def test_me_needs_credentials_and_says_who_is_asking(deck: Deck):
    with deck.anonymous() as anon:
        response = anon.get("/api/v1/me")
        expect(response, 401, "UNAUTHENTICATED", contains="Authentication required")
        challenge = response.headers.get("www-authenticate", "")
        assert "Bearer" in challenge and "Basic" in challenge
        for header in (
            "Bearer ldk_not-a-real-token-at-all",
            "Bearer",
            "Basic !!!not-base64",
            "Negotiate abc",
        ):
            expect(
                anon.get("/api/v1/me", headers={"Authorization": header}), 401, "UNAUTHENTICATED"
            )

    with deck.as_(ADMIN) as admin:
        assert admin.get("/api/v1/me").json() == {
            "username": ADMIN,
            "admin": True,
            "teams": [],
            "via": "token",
            "read_only": False,
            "auth_mode": "password",
            "csrf_token": None,
        }
    with deck.as_("alice") as alice:
        me = alice.get("/api/v1/me").json()
        assert (me["username"], me["admin"], me["via"]) == ("alice", False, "token")


# ---------------------------------------------------------------------------- users


def test_admins_manage_users(deck: Deck):
    admin, alice = deck.as_(ADMIN), deck.as_("alice")
    with admin, alice:
        created = admin.post(
            "/api/v1/users",
            json={
                "username": "carol",
                "password": "carol-password",
                "email": "carol@example.test",
                "display_name": "Carol",
            },
        )
        assert created.status_code == 201, created.text
        carol = created.json()
        assert {
            k: carol[k]
            for k in (
                "username",
                "email",
                "display_name",
                "admin",
                "active",
                "has_password",
                "single_sign_on",
            )
        } == {
            "username": "carol",
            "email": "carol@example.test",
            "display_name": "Carol",
            "admin": False,
            "active": True,
            "has_password": True,
            "single_sign_on": False,
        }
        assert not any("password" in key and key != "has_password" for key in carol)

        listed = admin.get("/api/v1/users").json()["users"]
        assert {"root", "alice", "bob", "carol"} <= {u["username"] for u in listed}
        assert "carol-password" not in json.dumps(listed) and "$argon2" not in json.dumps(listed)
        assert admin.get("/api/v1/users/carol").json()["email"] == "carol@example.test"

        changed = admin.patch(
            "/api/v1/users/carol", json={"display_name": "Carol C.", "admin": True}
        ).json()
        assert (changed["display_name"], changed["admin"], changed["email"]) == (
            "Carol C.",
            True,
            "carol@example.test",
        )
        assert admin.patch("/api/v1/users/carol", json={"admin": False}).json()["admin"] is False

        expect(
            admin.post("/api/v1/users", json={"username": "carol", "password": "another-password"}),
            400,
            "RESOURCE_ALREADY_EXISTS",
            "User 'carol' already exists.",
        )

        # Everything about other users is for admins; a user may look at themselves.
        expect(alice.get("/api/v1/users"), 403, "PERMISSION_DENIED", contains="only admins")
        expect(
            alice.post("/api/v1/users", json={"username": "mallory", "password": "mallory-pass"}),
            403,
            "PERMISSION_DENIED",
        )
        expect(alice.get("/api/v1/users/carol"), 403, "PERMISSION_DENIED", contains="only admins")
        assert alice.get("/api/v1/users/alice").json()["username"] == "alice"
        expect(
            alice.patch("/api/v1/users/carol", json={"password": "stolen-password"}),
            403,
            "PERMISSION_DENIED",
        )
        expect(
            alice.patch("/api/v1/users/alice", json={"admin": True}),
            403,
            "PERMISSION_DENIED",
            "Permission denied: you may change only your own password.",
        )
        expect(alice.delete("/api/v1/users/carol"), 403, "PERMISSION_DENIED")
        assert alice.get("/api/v1/me").json()["admin"] is False

        expect(
            admin.delete(f"/api/v1/users/{ADMIN}"),
            400,
            "INVALID_PARAMETER_VALUE",
            "You cannot remove yourself.",
        )
        expect(
            admin.patch(f"/api/v1/users/{ADMIN}", json={"active": False}),
            400,
            "INVALID_PARAMETER_VALUE",
            "You cannot deactivate yourself.",
        )
        assert admin.get("/api/v1/me").json()["username"] == ADMIN
        assert admin.delete("/api/v1/users/carol").json() == {}
        expect(
            admin.get("/api/v1/users/carol"),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "No user named 'carol'.",
        )
        expect(admin.delete("/api/v1/users/carol"), 404, "RESOURCE_DOES_NOT_EXIST")
        expect(
            admin.patch("/api/v1/users/carol", json={"admin": True}), 404, "RESOURCE_DOES_NOT_EXIST"
        )
        assert "carol" not in {u["username"] for u in admin.get("/api/v1/users").json()["users"]}


def test_user_input_is_checked_with_a_message(deck: Deck):
    with deck.as_(ADMIN) as admin:
        before = {u["username"] for u in admin.get("/api/v1/users").json()["users"]}
        for username in (
            "",
            "with space",
            "semi;colon",
            "sla/sh",
            "tab\there",
            "x" * 257,
            "ünïcode☃",
        ):
            expect(
                admin.post(
                    "/api/v1/users", json={"username": username, "password": "long-enough-1"}
                ),
                400,
                "INVALID_PARAMETER_VALUE",
                contains="Invalid username",
            )
        expect(
            admin.post("/api/v1/users", json={"username": "shorty", "password": "7chars!"}),
            400,
            "INVALID_PARAMETER_VALUE",
            "A password needs at least 8 characters.",
        )
        expect(
            admin.post(
                "/api/v1/users",
                json={"username": "longmail", "password": "long-enough-1", "email": "e" * 321},
            ),
            400,
            "INVALID_PARAMETER_VALUE",
            "An e-mail address has at most 320 characters.",
        )
        expect(
            admin.patch("/api/v1/users/alice", json={"display_name": "d" * 257}),
            400,
            "INVALID_PARAMETER_VALUE",
            "A display name has at most 256 characters.",
        )
        expect(
            admin.patch("/api/v1/users/alice", json={"password": "short"}),
            400,
            "INVALID_PARAMETER_VALUE",
            contains="at least 8",
        )

        # Request validation (FastAPI's 422) is a 400 naming the field.
        def field_of(response: httpx.Response) -> list[str]:
            body = expect(response, 400, "INVALID_PARAMETER_VALUE", contains="Invalid request: ")
            return [d["field"] for d in body["details"]]

        assert field_of(admin.post("/api/v1/users", json={})) == ["username"]
        assert field_of(
            admin.post("/api/v1/users", json={"username": 5, "password": "long-enough-1"})
        ) == ["username"]
        assert field_of(admin.post("/api/v1/users", json={"username": "x1", "admin": "maybe"})) == [
            "admin"
        ]
        assert field_of(
            admin.post(
                "/api/v1/users", content=b"{not json", headers={"content-type": "application/json"}
            )
        ) == ["body"]
        assert field_of(admin.post("/api/v1/users")) == ["body"]
        assert field_of(admin.patch("/api/v1/users/alice", json={"active": "sometimes"})) == [
            "active"
        ]
        assert field_of(
            admin.post("/api/v1/tokens", json={"name": "t", "expires_in_days": "soon"})
        ) == ["expires_in_days"]
        assert field_of(admin.get("/api/v1/tokens", params={"all": "perhaps"})) == ["all"]
        missing = admin.post("/api/v1/users", json={})
        assert missing.json()["message"] == "Invalid request: username: Field required"

        assert {u["username"] for u in admin.get("/api/v1/users").json()["users"]} == before
        assert admin.get("/api/v1/users/alice").json()["display_name"] is None


def test_users_change_only_their_own_password(deck: Deck):
    deck.create_user("dave", "dave-password-1")
    with deck.anonymous() as c:
        dave = ("dave", "dave-password-1")
        expect(
            c.patch("/api/v1/users/dave", auth=dave, json={"password": "short"}),
            400,
            "INVALID_PARAMETER_VALUE",
        )
        expect(
            c.patch("/api/v1/users/bob", auth=dave, json={"password": "dave-owns-bob"}),
            403,
            "PERMISSION_DENIED",
        )
        changed = c.patch("/api/v1/users/dave", auth=dave, json={"password": "dave-password-2"})
        assert changed.status_code == 200 and changed.json()["username"] == "dave"
        expect(c.get("/api/v1/me", auth=dave), 401, "UNAUTHENTICATED")
        assert c.get("/api/v1/me", auth=("dave", "dave-password-2")).json()["username"] == "dave"
        # bob's password is untouched
        assert c.get("/api/v1/me", auth=("bob", PASSWORDS["bob"])).json()["username"] == "bob"

    # A new password ends the user's other sessions; the one that changed it stays.
    kept, kept_csrf = login(deck.url, "dave", "dave-password-2")
    other, _ = login(deck.url, "dave", "dave-password-2")
    with closing(kept), closing(other):
        changed = kept.patch(
            "/api/v1/users/dave", json={"password": "dave-password-2b"}, headers={"X-CSRF-Token": kept_csrf}
        )
        assert changed.status_code == 200, changed.text
        assert kept.get("/api/v1/me").json()["username"] == "dave"
        expect(other.get("/api/v1/me"), 401, "UNAUTHENTICATED")
        with deck.as_(ADMIN) as admin:  # an admin's reset ends them all
            assert admin.patch("/api/v1/users/dave", json={"password": "dave-password-2"}).status_code == 200
        expect(kept.get("/api/v1/me"), 401, "UNAUTHENTICATED")

    with deck.as_(ADMIN) as admin:  # an admin may reset anyone's
        assert (
            admin.patch("/api/v1/users/dave", json={"password": "dave-password-3"}).status_code
            == 200
        )
    with deck.anonymous() as c:
        expect(c.get("/api/v1/me", auth=("dave", "dave-password-2")), 401, "UNAUTHENTICATED")
        assert c.get("/api/v1/me", auth=("dave", "dave-password-3")).status_code == 200


# ---------------------------------------------------------------------------- tokens


def test_tokens_show_their_secret_once(deck: Deck):
    alice, bob, admin = deck.as_("alice"), deck.as_("bob"), deck.as_(ADMIN)
    with alice, bob, admin:
        made = alice.post("/api/v1/tokens", json={"name": "laptop", "expires_in_days": 30})
        assert made.status_code == 201, made.text
        created = made.json()
        secret = created["token"]
        assert secret.startswith("ldk_") and len(secret) > 40
        assert created["prefix"] == secret[:12]
        assert (created["name"], created["user"], created["read_only"]) == (
            "laptop",
            "alice",
            False,
        )
        assert abs(created["expires_at"] - created["created_at"] - 30 * 86_400_000) < 60_000

        listed = alice.get("/api/v1/tokens")
        assert secret not in listed.text
        mine = {t["id"]: t for t in listed.json()["tokens"]}
        assert "token" not in mine[created["id"]] and mine[created["id"]]["prefix"] == secret[:12]
        assert {t["user"] for t in mine.values()} == {"alice"}
        assert created["id"] not in {t["id"] for t in bob.get("/api/v1/tokens").json()["tokens"]}

        with client(deck.url, headers=bearer(secret)) as laptop:
            assert laptop.get("/api/v1/me").json()["username"] == "alice"

            # Only admins list everyone's; and they see whose each token is.
            expect(alice.get("/api/v1/tokens", params={"all": "true"}), 403, "PERMISSION_DENIED")
            everyone = admin.get("/api/v1/tokens", params={"all": "true"})
            assert secret not in everyone.text
            owners = {t["id"]: t["user"] for t in everyone.json()["tokens"]}
            assert owners[created["id"]] == "alice"
            assert {"alice", "bob", ADMIN} <= set(owners.values())

            # Someone else's token cannot be revoked (nor told apart from a missing one).
            expect(
                bob.delete(f"/api/v1/tokens/{created['id']}"),
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"No token with id {created['id']}.",
            )
            assert laptop.get("/api/v1/me").status_code == 200

            assert alice.delete(f"/api/v1/tokens/{created['id']}").json() == {}
            expect(laptop.get("/api/v1/me"), 401, "UNAUTHENTICATED")  # at once
            expect(alice.delete(f"/api/v1/tokens/{created['id']}"), 404, "RESOURCE_DOES_NOT_EXIST")
            assert created["id"] not in {
                t["id"] for t in alice.get("/api/v1/tokens").json()["tokens"]
            }

        # An admin may revoke anyone's.
        other = deck.token_for("bob", PASSWORDS["bob"], "ci")
        with client(deck.url, headers=bearer(other["token"])) as ci:
            assert ci.get("/api/v1/me").status_code == 200
            assert admin.delete(f"/api/v1/tokens/{other['id']}").json() == {}
            expect(ci.get("/api/v1/me"), 401, "UNAUTHENTICATED")

        for bad in (
            {"name": ""},
            {"name": "x" * 257},
            {"name": "t", "expires_in_days": 0},
            {"name": "t", "expires_in_days": -1},
            {"name": "t", "expires_in_days": 3651},
        ):
            expect(alice.post("/api/v1/tokens", json=bad), 400, "INVALID_PARAMETER_VALUE")
        expect(alice.delete("/api/v1/tokens/999999"), 404, "RESOURCE_DOES_NOT_EXIST")
        expect(alice.delete("/api/v1/tokens/abc"), 400, "INVALID_PARAMETER_VALUE")


def test_read_only_tokens_never_change_anything(deck: Deck):
    with deck.as_("alice") as alice:
        made = alice.post("/api/v1/tokens", json={"name": "dashboards", "read_only": True}).json()
    assert made["read_only"] is True
    with client(deck.url, headers=bearer(made["token"])) as viewer:
        assert viewer.get("/api/v1/me").json()["read_only"] is True
        assert viewer.get("/api/v1/tokens").status_code == 200
        expect(
            viewer.post("/api/v1/tokens", json={"name": "escalate"}),
            403,
            "PERMISSION_DENIED",
            "This token is read-only.",
        )
        expect(
            viewer.patch("/api/v1/users/alice", json={"password": "new-password-1"}),
            403,
            "PERMISSION_DENIED",
        )
        refused = viewer.post(
            "/api/2.0/mlflow/experiments/create", json={"name": f"ro-{uuid.uuid4().hex[:6]}"}
        )
        assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
        assert (
            viewer.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}).status_code
            == 200
        )


def test_expired_tokens_are_refused(deck: Deck):
    with deck.as_("alice") as alice:
        brief = alice.post(
            "/api/v1/tokens", json={"name": "brief", "expires_in_days": 1e-7}
        ).json()  # ~9 ms
        assert brief["expires_at"] is not None and brief["expires_at"] - brief["created_at"] < 1000
        deadline = time.monotonic() + 5
        while now_ms() <= brief["expires_at"] and time.monotonic() < deadline:
            time.sleep(0.005)
        assert now_ms() > brief["expires_at"]
        with client(deck.url, headers=bearer(brief["token"])) as c:
            expect(c.get("/api/v1/me"), 401, "UNAUTHENTICATED")

        # A token whose expiry is moved into the past in the database (never used before,
        # so nothing about it is cached) is refused as well.
        month = alice.post("/api/v1/tokens", json={"name": "month", "expires_in_days": 30}).json()
        query(
            deck.db_url,
            "UPDATE tokens SET expires_at = :t WHERE token_id = :i",
            t=now_ms() - 1000,
            i=month["id"],
        )
        with client(deck.url, headers=bearer(month["token"])) as c:
            expect(c.get("/api/v1/me"), 401, "UNAUTHENTICATED")
        with client(deck.url) as c:  # also as a Basic password, the way mlflow sends tokens
            expect(c.get("/api/v1/me", auth=("alice", month["token"])), 401, "UNAUTHENTICATED")


# ---------------------------------------------------------------------------- teams


def test_admins_manage_teams_and_members(deck: Deck):
    admin, alice = deck.as_(ADMIN), deck.as_("alice")
    with admin, alice:
        created = admin.post("/api/v1/teams", json={"name": "vision", "description": "CV"})
        assert created.status_code == 201, created.text
        assert created.json() == {
            "name": "vision",
            "description": "CV",
            "private": False,
            "members": [],
        }
        expect(
            admin.post("/api/v1/teams", json={"name": "vision"}),
            400,
            "RESOURCE_ALREADY_EXISTS",
            "Team 'vision' already exists.",
        )
        expect(
            admin.post("/api/v1/teams", json={"name": "has space"}),
            400,
            "INVALID_PARAMETER_VALUE",
            contains="Invalid team name",
        )
        expect(
            admin.post("/api/v1/teams", json={"name": "a@b"}),
            400,
            "INVALID_PARAMETER_VALUE",
            contains="Invalid team name",
        )

        # Anyone signed in may look; only admins change.
        assert "vision" in {t["name"] for t in alice.get("/api/v1/teams").json()["teams"]}
        assert alice.get("/api/v1/teams/vision").json()["description"] == "CV"
        expect(alice.post("/api/v1/teams", json={"name": "rogue"}), 403, "PERMISSION_DENIED")
        expect(
            alice.patch("/api/v1/teams/vision", json={"private": True}), 403, "PERMISSION_DENIED"
        )
        expect(alice.put("/api/v1/teams/vision/members/alice"), 403, "PERMISSION_DENIED")
        expect(alice.delete("/api/v1/teams/vision/members/alice"), 403, "PERMISSION_DENIED")
        expect(alice.delete("/api/v1/teams/vision"), 403, "PERMISSION_DENIED")
        expect(deck.anonymous().get("/api/v1/teams"), 401, "UNAUTHENTICATED")

        assert admin.put("/api/v1/teams/vision/members/alice").json()["members"] == ["alice"]
        assert alice.get("/api/v1/me").json()["teams"] == ["vision"]  # at once
        assert admin.put("/api/v1/teams/vision/members/bob").json()["members"] == ["alice", "bob"]
        assert admin.put("/api/v1/teams/vision/members/alice").json()["members"] == ["alice", "bob"]
        assert admin.delete("/api/v1/teams/vision/members/bob").json()["members"] == ["alice"]
        expect(
            admin.put("/api/v1/teams/vision/members/nobody"),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "No user named 'nobody'.",
        )
        expect(
            admin.put("/api/v1/teams/nowhere/members/alice"),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "No team named 'nowhere'.",
        )

        changed = admin.patch(
            "/api/v1/teams/vision", json={"private": True, "description": "Computer vision"}
        ).json()
        assert changed == {
            "name": "vision",
            "description": "Computer vision",
            "private": True,
            "members": ["alice"],
        }
        assert admin.patch("/api/v1/teams/vision", json={}).json() == changed
        expect(
            admin.patch("/api/v1/teams/vision", json={"private": "yes please"}),
            400,
            "INVALID_PARAMETER_VALUE",
        )

        assert admin.delete("/api/v1/teams/vision").json() == {}
        expect(admin.get("/api/v1/teams/vision"), 404, "RESOURCE_DOES_NOT_EXIST")
        expect(admin.delete("/api/v1/teams/vision"), 404, "RESOURCE_DOES_NOT_EXIST")
        assert alice.get("/api/v1/me").json()["teams"] == []


# ---------------------------------------------------------------------------- Basic auth


def test_basic_auth_takes_a_password_or_the_users_own_token(deck: Deck):
    with deck.anonymous("127.0.0.11") as c:
        me = c.get("/api/v1/me", auth=("alice", PASSWORDS["alice"])).json()
        assert (me["username"], me["via"]) == ("alice", "basic")
        expect(c.get("/api/v1/me", auth=("alice", "not-her-password")), 401, "UNAUTHENTICATED")
        expect(c.get("/api/v1/me", auth=("nobody", PASSWORDS["alice"])), 401, "UNAUTHENTICATED")

        me = c.get("/api/v1/me", auth=("alice", deck.tokens["alice"])).json()
        assert (me["username"], me["via"]) == ("alice", "token")
        # A token only ever speaks for its own user.
        expect(c.get("/api/v1/me", auth=("bob", deck.tokens["alice"])), 401, "UNAUTHENTICATED")
        expect(c.get("/api/v1/me", auth=(ADMIN, deck.tokens["alice"])), 401, "UNAUTHENTICATED")

        # what the mlflow client sends with MLFLOW_TRACKING_USERNAME/PASSWORD
        got = c.get(
            "/api/2.0/mlflow/experiments/get",
            params={"experiment_id": "0"},
            auth=("alice", deck.tokens["alice"]),
        )
        assert got.status_code == 200 and got.json()["experiment"]["name"] == "Default"
        denied = c.get(
            "/api/2.0/mlflow/experiments/get",
            params={"experiment_id": "0"},
            auth=("bob", deck.tokens["alice"]),
        )
        assert denied.status_code == 401 and denied.json()["error_code"] == "UNAUTHENTICATED"


# ---------------------------------------------------------------------------- sessions


def test_json_login_starts_a_session_with_csrf_protection(deck: Deck):
    with deck.anonymous() as browser:
        response = browser.post(
            "/auth/login", json={"username": "alice", "password": PASSWORDS["alice"]}
        )
        assert response.status_code == 200, response.text
        csrf = response.json()["csrf_token"]
        assert response.json() == {"username": "alice", "csrf_token": csrf} and len(csrf) >= 32

        cookies = set_cookies(response)
        session, csrf_cookie = cookies[SESSION_COOKIE], cookies[CSRF_COOKIE]
        for header in (session, csrf_cookie):
            assert "samesite=lax" in header and "path=/" in header and "max-age=43200" in header
            assert "secure" not in header  # plain http
        assert "httponly" in session
        assert "httponly" not in csrf_cookie  # the pages read it
        assert browser.cookies[CSRF_COOKIE] == csrf
        old_cookie = browser.cookies[SESSION_COOKIE]

        me = browser.get("/api/v1/me").json()
        assert (me["username"], me["via"], me["csrf_token"]) == ("alice", "session", csrf)

        # Changes need the CSRF token in X-CSRF-Token.
        expect(
            browser.post("/api/v1/tokens", json={"name": "no-csrf"}),
            403,
            "PERMISSION_DENIED",
            CSRF_MESSAGE,
        )
        expect(
            browser.post(
                "/api/v1/tokens", json={"name": "bad"}, headers={"X-CSRF-Token": "x" + csrf[1:]}
            ),
            403,
            "PERMISSION_DENIED",
        )
        made = browser.post(
            "/api/v1/tokens", json={"name": "from-the-ui"}, headers={"X-CSRF-Token": csrf}
        )
        assert made.status_code == 201, made.text

        out = browser.post(
            "/auth/logout", headers={"Accept": "application/json", "X-CSRF-Token": csrf}
        )
        assert out.status_code == 200 and out.json() == {"next": "/auth/login"}
        gone = set_cookies(out)
        assert 'labdeck_session=""' in gone[SESSION_COOKIE] and "max-age=0" in gone[SESSION_COOKIE]
        assert "max-age=0" in gone[CSRF_COOKIE]
        assert SESSION_COOKIE not in browser.cookies
        expect(browser.get("/api/v1/me"), 401, "UNAUTHENTICATED")

    with deck.anonymous() as replay:  # the old cookie is dead on the server, not just forgotten
        expect(
            replay.get("/api/v1/me", cookies={SESSION_COOKIE: old_cookie}), 401, "UNAUTHENTICATED"
        )
        forged = old_cookie.rsplit(".", 1)[0] + ".0123456789abcdef0123456789abcdef"
        expect(replay.get("/api/v1/me", cookies={SESSION_COOKIE: forged}), 401, "UNAUTHENTICATED")

    # A browser's logout (no JSON) goes back to the login page.
    browser, _csrf = login(deck.url, "bob", PASSWORDS["bob"])
    with closing(browser):
        cookie = browser.cookies[SESSION_COOKIE]
        out = browser.post("/auth/logout")
        assert out.status_code == 303 and out.headers["location"] == "/auth/login"
    with deck.anonymous() as replay:
        expect(replay.get("/api/v1/me", cookies={SESSION_COOKIE: cookie}), 401, "UNAUTHENTICATED")


def test_failed_logins_answer_plainly(deck: Deck):
    with deck.anonymous("127.0.0.12") as c:
        wrong = c.post("/auth/login", json={"username": "bob", "password": "not-bobs-password"})
        expect(wrong, 401, "UNAUTHENTICATED", WRONG_LOGIN)
        assert wrong.headers.get_list("set-cookie") == []
        # an unknown user gets the very same answer
        expect(
            c.post("/auth/login", json={"username": "nobody-at-all", "password": "whatever-1"}),
            401,
            "UNAUTHENTICATED",
            WRONG_LOGIN,
        )
        expect(
            c.post("/auth/login", json={"username": "bob"}),
            400,
            "INVALID_PARAMETER_VALUE",
            "Give a username and a password.",
        )
        expect(
            c.post("/auth/login", content=b"[1, 2]", headers={"content-type": "application/json"}),
            400,
            "INVALID_PARAMETER_VALUE",
        )

        form = c.post(
            "/auth/login",
            data={"username": "bob", "password": "not-bobs-password", "next": "/models?x=1"},
        )
        assert form.status_code == 303
        location = form.headers["location"]
        assert (
            location == "/auth/login?error=Wrong%20username%20or%20password.&next=/models%3Fx%3D1"
        )
        assert form.headers.get_list("set-cookie") == []
        page = c.get(location)
        assert page.status_code == 200
        assert '<p class="error">Wrong username or password.</p>' in page.text
        assert 'name="next" value="/models?x=1"' in page.text
        assert SESSION_COOKIE not in c.cookies


def test_the_login_form(deck: Deck):
    with deck.anonymous() as c:
        page = c.get("/auth/login", params={"next": "/models"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-store"
        assert '<form method="post" action="/auth/login">' in page.text
        assert 'name="username"' in page.text and 'name="password" type="password"' in page.text
        assert '<input type="hidden" name="next" value="/models">' in page.text
        assert "single sign-on" not in page.text  # password mode has no SSO button
        assert 'value="/"' in c.get("/auth/login", params={"next": "//evil.example/x"}).text

        hostile = c.get(
            "/auth/login",
            params={"error": "<script>alert(1)</script>", "next": '/"><script>x</script>'},
        )
        assert "<script>" not in hostile.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile.text


@pytest.mark.parametrize(
    ("next_url", "landing"),
    [
        ("/experiments/1?tab=runs", "/experiments/1?tab=runs"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
    ],
)
def test_form_login_redirects_only_on_site(deck: Deck, next_url: str, landing: str):
    with deck.anonymous() as c:
        response = c.post(
            "/auth/login", data={"username": "bob", "password": PASSWORDS["bob"], "next": next_url}
        )
        assert response.status_code == 303, response.text
        assert response.headers["location"] == landing
        cookies = set_cookies(response)
        assert "httponly" in cookies[SESSION_COOKIE] and "samesite=lax" in cookies[SESSION_COOKIE]
        assert c.cookies[CSRF_COOKIE]
        assert c.get("/api/v1/me").json()["via"] == "session"


def test_deactivated_and_deleted_users_stop_at_once(deck: Deck):
    deck.create_user("erin", "erin-password-1")
    erin_token = deck.token_for("erin", "erin-password-1")["token"]
    browser, _ = login(deck.url, "erin", "erin-password-1", source="127.0.0.13")
    with (
        closing(browser),
        client(deck.url, "127.0.0.13", headers=bearer(erin_token)) as api,
        deck.as_(ADMIN) as admin,
    ):
        assert browser.get("/api/v1/me").json()["username"] == "erin"
        assert api.get("/api/v1/me").json()["username"] == "erin"

        assert admin.patch("/api/v1/users/erin", json={"active": False}).json()["active"] is False
        expect(browser.get("/api/v1/me"), 401, "UNAUTHENTICATED")
        expect(api.get("/api/v1/me"), 401, "UNAUTHENTICATED")
        expect(api.get("/api/v1/me", auth=("erin", "erin-password-1")), 401, "UNAUTHENTICATED")
        expect(
            api.post("/auth/login", json={"username": "erin", "password": "erin-password-1"}),
            401,
            "UNAUTHENTICATED",
            WRONG_LOGIN,
        )

        assert admin.patch("/api/v1/users/erin", json={"active": True}).json()["active"] is True
        assert api.get("/api/v1/me").json()["username"] == "erin"
        # tokens come back with the account; the sessions ended for good
        expect(browser.get("/api/v1/me"), 401, "UNAUTHENTICATED")

    deck.create_user("frank", "frank-password-1")
    frank_token = deck.token_for("frank", "frank-password-1")["token"]
    browser, _ = login(deck.url, "frank", "frank-password-1")
    with (
        closing(browser),
        client(deck.url, headers=bearer(frank_token)) as api,
        deck.as_(ADMIN) as admin,
    ):
        assert (
            browser.get("/api/v1/me").status_code == 200
            and api.get("/api/v1/me").status_code == 200
        )
        user_id = query(deck.db_url, "SELECT user_id FROM users WHERE username = 'frank'")[0][0]
        assert admin.delete("/api/v1/users/frank").json() == {}
        expect(browser.get("/api/v1/me"), 401, "UNAUTHENTICATED")
        expect(api.get("/api/v1/me"), 401, "UNAUTHENTICATED")
        for table in ("tokens", "sessions", "team_members"):
            assert (
                query(deck.db_url, f"SELECT count(*) FROM {table} WHERE user_id = :u", u=user_id)[
                    0
                ][0]
                == 0
            )


# ---------------------------------------------------------------------------- secrets at rest


def test_the_database_keeps_no_secret(deck: Deck):
    browser, _ = login(deck.url, "bob", PASSWORDS["bob"])
    with closing(browser):
        cookie = browser.cookies[SESSION_COOKIE]
    session_id = cookie.rsplit(".", 1)[0]
    token = deck.tokens["alice"]

    values = rows_of_every_table(deck.db_url)
    for secret in (token, token[12:], session_id, cookie, *PASSWORDS.values(), ADMIN_PASSWORD):
        assert not any(secret in value for value in values), secret

    hashes = query(
        deck.db_url, "SELECT username, password_hash FROM users WHERE password_hash IS NOT NULL"
    )
    assert {"root", "alice", "bob"} <= {name for name, _ in hashes}
    assert all(h.startswith("$argon2id$") for _, h in hashes)

    tokens = query(deck.db_url, "SELECT token_hash, prefix FROM tokens")
    assert all(len(h) == 64 and set(h) <= set("0123456789abcdef") for h, _ in tokens)
    assert all(len(p) <= 12 for _, p in tokens)
    assert (hashlib.sha256(token.encode()).hexdigest(), token[:12]) in {tuple(r) for r in tokens}

    sessions = {r[0] for r in query(deck.db_url, "SELECT session_hash FROM sessions")}
    assert hashlib.sha256(session_id.encode()).hexdigest() in sessions
    assert all(len(h) == 64 for h in sessions)


# ---------------------------------------------------------------------------- failed-login limits


@pytest.fixture
def limited(
    backend: str,
    start_server: Callable[..., RunningServer],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> RunningServer:
    """A server allowing 3 failed logins per user and per address, with users gina, hank, ivy."""
    database_url = request.getfixturevalue("fresh_postgres_url") if backend == "postgres" else None
    bootstrap_admin(tmp_path, database_url)
    server = start_server(
        data_dir=tmp_path,
        database={"url": database_url},
        auth={"mode": "password", "login_attempts": 3},
    )
    with client(server.url, "127.0.0.20") as c:
        for name in ("gina", "hank", "ivy"):
            made = c.post(
                "/api/v1/users",
                auth=(ADMIN, ADMIN_PASSWORD),
                json={"username": name, "password": f"{name}-password"},
            )
            assert made.status_code == 201, made.text
    return server


def test_failed_logins_are_limited_per_user_and_per_address(limited: RunningServer):
    def attempt(source: str, username: str, password: str) -> httpx.Response:
        with client(limited.url, source) as c:
            return c.post("/auth/login", json={"username": username, "password": password})

    for _ in range(3):
        expect(attempt("127.0.0.21", "gina", "wrong-password"), 401, "UNAUTHENTICATED", WRONG_LOGIN)
    # Beyond the limit even the right password is refused, and no session is made...
    refused = attempt("127.0.0.21", "gina", "gina-password")
    expect(refused, 429, "REQUEST_LIMIT_EXCEEDED", contains="Too many failed logins")
    assert refused.headers.get_list("set-cookie") == []
    # ... from any address (counted per user);
    expect(attempt("127.0.0.22", "gina", "gina-password"), 429, "REQUEST_LIMIT_EXCEEDED")
    # one user's failures do not lock out others behind the same address (a proxy, say).
    assert attempt("127.0.0.21", "hank", "hank-password").status_code == 200

    # The form says so too.
    with client(limited.url, "127.0.0.21") as c:
        form = c.post("/auth/login", data={"username": "gina", "password": "gina-password"})
        assert form.status_code == 303 and form.headers["location"].startswith(
            "/auth/login?error=Too%20many%20failed%20logins"
        )

    # Guessing across usernames from one address adds up too, to ADDRESS_ALLOWANCE times
    # the attempts (a whole team may share an address).
    allowance = 3 * ADDRESS_ALLOWANCE
    for n in range(allowance):
        expect(attempt("127.0.0.23", f"nobody{n}", "wrong-password"), 401, "UNAUTHENTICATED")
    expect(attempt("127.0.0.23", "hank", "hank-password"), 429, "REQUEST_LIMIT_EXCEEDED")
    assert attempt("127.0.0.24", "hank", "hank-password").status_code == 200


def test_basic_auth_counts_against_the_same_limit(limited: RunningServer):
    browser, csrf = login(limited.url, "ivy", "ivy-password", source="127.0.0.30")
    with closing(browser):
        ivy_token = browser.post(
            "/api/v1/tokens", json={"name": "before"}, headers={"X-CSRF-Token": csrf}
        ).json()["token"]
    with client(limited.url, "127.0.0.31") as guesser:
        for _ in range(3):
            expect(
                guesser.get("/api/v1/me", auth=("ivy", "guess-password")), 401, "UNAUTHENTICATED"
            )
    with client(limited.url, "127.0.0.32") as c:
        # the right password no longer works, through Basic auth or the login form
        expect(c.get("/api/v1/me", auth=("ivy", "ivy-password")), 401, "UNAUTHENTICATED")
        expect(
            c.post("/auth/login", json={"username": "ivy", "password": "ivy-password"}),
            429,
            "REQUEST_LIMIT_EXCEEDED",
        )
        # tokens are not passwords: they keep working
        assert c.get("/api/v1/me", headers=bearer(ivy_token)).json()["username"] == "ivy"
        assert c.get("/api/v1/me", auth=("ivy", ivy_token)).json()["username"] == "ivy"
        # hank, from yet another address, is unaffected
        assert c.get("/api/v1/me", auth=("hank", "hank-password")).json()["username"] == "hank"
    failures = query(limited.settings.database_url, "SELECT key, failures FROM login_failures")
    assert ("user:ivy", 3) in {tuple(r) for r in failures}
    assert ("addr:127.0.0.31", 3) in {tuple(r) for r in failures}


def test_overlong_usernames_at_login_are_plain_failures(deck: Deck):
    with deck.anonymous("127.0.0.14") as c:
        expect(
            c.post("/auth/login", json={"username": "x" * 2000, "password": "whatever-1"}),
            401,
            "UNAUTHENTICATED",
            WRONG_LOGIN,
        )
        expect(c.get("/api/v1/me", auth=("y" * 2000, "whatever-1")), 401, "UNAUTHENTICATED")


# ---------------------------------------------------------------------------- settings and start-up


def test_config_show_never_prints_secrets(tmp_path: Path):
    secrets = {
        "LABDECK_AUTH__SESSION_SECRET": "session-secret-Zq81",
        "LABDECK_AUTH__OIDC__CLIENT_SECRET": "oidc-secret-Kx42",
        "LABDECK_DATABASE__URL": "postgresql+psycopg://labdeck:db-pass-Wm77@db.internal:5432/labdeck",
    }
    hidden = ("session-secret-Zq81", "oidc-secret-Kx42", "db-pass-Wm77")
    runner = CliRunner()

    table = runner.invoke(cli, ["config", "show", "--data-dir", str(tmp_path)], env=secrets)
    assert table.exit_code == 0, table.output
    assert not any(s in table.output for s in hidden), table.output
    assert 'auth.session_secret = "(set, hidden)"' in table.output
    assert 'auth.oidc.client_secret = "(set, hidden)"' in table.output
    assert (
        'database.url = "postgresql+psycopg://labdeck:***@db.internal:5432/labdeck"' in table.output
    )
    assert (
        'database_url (effective) = "postgresql+psycopg://labdeck:***@db.internal:5432/labdeck"'
        in table.output
    )

    as_json = runner.invoke(
        cli, ["config", "show", "--json", "--data-dir", str(tmp_path)], env=secrets
    )
    assert as_json.exit_code == 0, as_json.output
    assert not any(s in as_json.output for s in hidden), as_json.output
    shown = json.loads(as_json.output)
    assert shown["auth"]["session_secret"] == "(set, hidden)"
    assert shown["auth"]["oidc"]["client_secret"] == "(set, hidden)"
    assert shown["database"]["url"] == "postgresql+psycopg://labdeck:***@db.internal:5432/labdeck"

    unset = runner.invoke(
        cli, ["config", "show", "--data-dir", str(tmp_path)], env={k: None for k in secrets}
    )
    assert (
        "auth.session_secret = (unset)" in unset.output
        and "auth.oidc.client_secret = (unset)" in unset.output
    )

    # A misspelt secret setting is refused without echoing its value.
    typo = runner.invoke(
        cli,
        ["config", "show", "--data-dir", str(tmp_path)],
        env={"LABDECK_AUTH__SESSION_SECRT": "typo-secret-Pp19"},
    )
    assert typo.exit_code == 2
    assert "auth.session_secrt" in typo.output and "typo-secret-Pp19" not in typo.output


@pytest.mark.parametrize("command", ["server", "up"])
def test_an_open_address_needs_sign_in(tmp_path: Path, command: str):
    result = CliRunner().invoke(
        cli, [command, "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    assert "without sign-in" in result.output and "0.0.0.0" in result.output
    assert (
        "--auth password" in result.output
        and "labdeck users create NAME --admin --direct" in result.output
    )
    assert not (tmp_path / "labdeck.db").exists()  # refused before anything was made


def test_which_addresses_single_user_mode_may_serve(tmp_path: Path):
    def settings(host: str, mode: str = "none") -> Settings:
        return Settings.load(None, data_dir=tmp_path, server={"host": host}, auth={"mode": mode})

    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1"):
        assert is_loopback(host)
        refuse_open_single_user(settings(host))  # allowed
    for host in (
        "0.0.0.0",
        "::",
        "",
        "192.0.2.10",
        "127.example.com",
        "localhost.example.com",
        "::1.example.com",
    ):
        assert not is_loopback(host), host
        with pytest.raises(click.UsageError, match="--auth password"):
            refuse_open_single_user(settings(host))
    for mode in ("password", "oidc"):  # with sign-in on, any address
        refuse_open_single_user(settings("0.0.0.0", mode))


def test_single_user_mode_needs_no_credentials(start_server: Callable[..., RunningServer]):
    server = start_server()
    try:
        os_user = getpass.getuser()
    except (KeyError, OSError):
        os_user = "local"
    with client(server.url) as c:
        me = c.get("/api/v1/me").json()
        assert (me["username"], me["admin"], me["via"], me["auth_mode"]) == (
            os_user,
            True,
            "local",
            "none",
        )
        assert (
            c.get("/api/v1/me", headers=bearer("ldk_whatever-is-sent-is-ignored")).json()["via"]
            == "local"
        )
        expect(
            c.post("/api/v1/tokens", json={"name": "t"}),
            400,
            "INVALID_PARAMETER_VALUE",
            contains="Single-user mode has no accounts",
        )
        assert (
            c.post("/api/2.0/mlflow/experiments/create", json={"name": "mine"}).status_code == 200
        )


def test_cookies_are_secure_behind_https(start_server: Callable[..., RunningServer], tmp_path: Path):
    """Behind a proxy that terminates TLS (``auth.public_url`` is https), browsers must
    send the session only over HTTPS."""
    bootstrap_admin(tmp_path)
    server = start_server(
        data_dir=tmp_path, auth={"mode": "password", "public_url": "https://labdeck.example.test"}
    )
    with client(server.url) as c:
        response = c.post("/auth/login", json={"username": ADMIN, "password": ADMIN_PASSWORD})
        assert response.status_code == 200, response.text
    cookies = set_cookies(response)
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        assert "; secure" in cookies[name], cookies[name]
