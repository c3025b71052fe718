"""Helpers for the access-control suites (test_every_route.py, test_permissions.py).

``auth_server`` starts a real labdeck with sign-in on (SQLite or a fresh PostgreSQL
database), after bootstrapping its first admin the way an operator does: ``labdeck users
create root --admin --password-stdin --direct`` against the server's data folder and
database, before the server starts. Everything else (users, teams, tokens, grants) is
made through ``/api/v1`` as that admin, with ``Identity``.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from labdeck.cli import cli
from labdeck.config import Settings
from tests.conftest import RunningServer, _pg_admin, start_labdeck

ROOT = "root"
ROOT_PASSWORD = "root-password-123"
PASSWORD = "password-for-tests"  # every user made here has this one
MLFLOW = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@contextmanager
def auth_server(
    data_dir: Path, backend: str, *, settings: dict[str, Any] | None = None, **auth: Any
) -> Iterator[RunningServer]:
    """A labdeck with ``auth.mode = password`` (plus ``auth``) whose admin ``root`` exists;
    ``settings`` adds other sections (``{"workspaces": {...}}``)."""
    database_url = None
    db_name = None
    if backend == "postgres":
        from tests.conftest import PG_HOST, PG_PORT, PG_USER

        db_name = f"labdeck_test_{uuid.uuid4().hex[:10]}"
        _pg_admin(f'CREATE DATABASE "{db_name}"')
        database_url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{db_name}"
    try:
        args = [
            "users",
            "create",
            ROOT,
            "--admin",
            "--password-stdin",
            "--direct",
            "--data-dir",
            str(data_dir),
        ]
        if database_url:
            args += ["--database-url", database_url]
        done = CliRunner().invoke(cli, args, input=ROOT_PASSWORD + "\n")
        assert done.exit_code == 0, done.output
        settings = Settings.load(
            None,
            data_dir=data_dir,
            database={"url": database_url},
            auth={"mode": "password", "session_secret": "access-tests-secret-0123456789", **auth},
            **(settings or {}),
        )
        server = start_labdeck(settings)
        try:
            yield server
        finally:
            server.stop()
    finally:
        if db_name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


@dataclass
class Identity:
    """Users, teams and tokens of one server, made through /api/v1 as the admin."""

    server: RunningServer
    admin_token: str = ""
    tokens: dict[str, str] = field(default_factory=dict)  # username (or "<user>:ro") -> token

    @classmethod
    def bootstrap(cls, server: RunningServer) -> Identity:
        ident = cls(server)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            made = http.post(
                "/api/v1/tokens",
                json={"name": "tests"},
                headers={"Authorization": basic(ROOT, ROOT_PASSWORD)},
            )
        assert made.status_code == 201, made.text
        ident.admin_token = made.json()["token"]
        ident.tokens[ROOT] = ident.admin_token
        return ident

    def admin(self) -> httpx.Client:
        return self.client(self.admin_token)

    def client(self, token: str | None = None, *, authorization: str | None = None) -> httpx.Client:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if authorization is not None:
            headers["Authorization"] = authorization
        return httpx.Client(base_url=self.server.url, timeout=60, headers=headers)

    def as_(self, username: str) -> httpx.Client:
        return self.client(self.tokens[username])

    def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        with self.admin() as http:
            response = http.request(method, path, **kwargs)
        assert response.status_code == expect, (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response.json()

    def user(self, username: str, *, admin: bool = False, password: str | None = PASSWORD) -> str:
        """Create a user and a token of theirs (made by them, with their password); the token."""
        self.call(
            "POST",
            "/api/v1/users",
            201,
            json={"username": username, "password": password, "admin": admin},
        )
        self.tokens[username] = self.token(username)
        return self.tokens[username]

    def token(self, username: str, *, read_only: bool = False, name: str = "t") -> str:
        with self.client(authorization=basic(username, PASSWORD)) as http:
            made = http.post("/api/v1/tokens", json={"name": name, "read_only": read_only})
        assert made.status_code == 201, made.text
        assert made.json()["read_only"] is read_only
        return made.json()["token"]

    def team(self, name: str, members: list[str], *, private: bool = False) -> None:
        self.call("POST", "/api/v1/teams", 201, json={"name": name, "private": private})
        for member in members:
            self.call("PUT", f"/api/v1/teams/{name}/members/{member}")


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    return (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else response
    )
