"""``labdeck users|teams|tokens|grant|revoke|login``: identity from the command line.

They talk to a server's ``/api/v1`` like every client command (``--url``, ``--token``),
except ``users create --direct``, which writes to the database of the server's settings
(``--data-dir``, ``--database-url``, ``--config``) so that the first admin can exist before
anyone can sign in. ``labdeck login`` stores a token for a server in
``~/.config/labdeck/credentials.json`` (mode 0600), which later commands use.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any
from urllib.parse import quote

import click

from labdeck.cli.client import ServerClient, client_options, emit, save_token
from labdeck.cli.options import load_settings, settings_options


def _password(from_stdin: bool, prompt: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if prompt:
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return None


def _part(name: str) -> str:
    """A name as one URL path segment: ``?``, ``#``, ``%`` or ``/`` in it must not change
    which resource the request is about (``users delete 'bob?x'`` is not about bob)."""
    return quote(name, safe="")


def _when(ms: int | None) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000)) if ms else ""


@click.group()
def users() -> None:
    """Accounts (admins manage them; the first one is made with --direct)."""


@users.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Make the user an admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--no-password", is_flag=True, help="A sign-on-only user (no local password).")
@click.option("--email")
@click.option("--direct", is_flag=True, help="Write to the database of the settings instead of asking a server.")
@settings_options
@client_options
def users_create(
    username: str, admin: bool, password_stdin: bool, no_password: bool, email: str | None, direct: bool,
    url: str, token: str | None, as_json: bool, **settings_flags: Any,
) -> None:
    """Create a user (on a server, as an admin; or --direct on the database)."""
    password = None if no_password else _password(password_stdin, prompt=sys.stdin.isatty())
    if password is None and not no_password:
        raise click.UsageError("Give the password on standard input (--password-stdin) or choose --no-password.")
    if direct:
        from labdeck.errors import LabdeckError

        try:
            user = asyncio.run(_create_directly(load_settings(**settings_flags), username, password, admin, email))
        except LabdeckError as error:
            raise click.ClickException(f"{error.code}: {error.message}") from None
        emit({"username": user.username, "admin": user.is_admin}, as_json, [[user.username, user.is_admin]], ["USER", "ADMIN"])
        return
    body = {"username": username, "password": password, "admin": admin, "email": email}
    user = ServerClient(url, token).call("POST", "/api/v1/users", json=body)
    emit(user, as_json, [[user["username"], user["admin"]]], ["USER", "ADMIN"])


async def _create_directly(settings: Any, username: str, password: str | None, admin: bool, email: str | None) -> Any:
    from anyio import to_thread

    from labdeck.auth.service import AuthService
    from labdeck.auth.store import SqlAuthStore
    from labdeck.db import Database

    db = Database(settings.database_url)
    try:
        await to_thread.run_sync(db.migrate)
        db.start()
        return await AuthService(SqlAuthStore(db), settings.auth).create_user(username, password, is_admin=admin, email=email)
    finally:
        await to_thread.run_sync(db.close)


@users.command("list")
@client_options
def users_list(url: str, token: str | None, as_json: bool) -> None:
    """Every user (admins)."""
    found = ServerClient(url, token).call("GET", "/api/v1/users")["users"]
    rows = [[u["username"], u["admin"], u["active"], u["email"] or "", _when(u["last_login_at"])] for u in found]
    emit(found, as_json, rows, ["USER", "ADMIN", "ACTIVE", "EMAIL", "LAST LOGIN"])


@users.command("set")
@click.argument("username")
@click.option("--admin/--no-admin", default=None, help="Make or unmake an admin.")
@click.option("--active/--inactive", default=None, help="An inactive user cannot sign in; their tokens stop working.")
@click.option("--password-stdin", is_flag=True, help="Set a new password, read from standard input.")
@client_options
def users_set(username: str, admin: bool | None, active: bool | None, password_stdin: bool, url: str, token: str | None, as_json: bool) -> None:
    """Change a user (admins; anyone: their own password)."""
    body = {"admin": admin, "active": active, "password": _password(password_stdin, prompt=False)}
    user = ServerClient(url, token).call("PATCH", f"/api/v1/users/{_part(username)}", json=body)
    emit(user, as_json, [[user["username"], user["admin"], user["active"]]], ["USER", "ADMIN", "ACTIVE"])


@users.command("delete")
@click.argument("username")
@client_options
def users_delete(username: str, url: str, token: str | None, as_json: bool) -> None:
    """Remove a user; their tokens and sessions stop working at once (admins)."""
    ServerClient(url, token).call("DELETE", f"/api/v1/users/{_part(username)}")
    emit({"deleted": username}, as_json, [[username, "deleted"]], ["USER", ""])


@click.group()
def teams() -> None:
    """Teams and their members."""


@teams.command("create")
@click.argument("name")
@click.option("--private", is_flag=True, help="Resources the team owns are hidden from everyone else.")
@click.option("--description")
@client_options
def teams_create(name: str, private: bool, description: str | None, url: str, token: str | None, as_json: bool) -> None:
    """Create a team (admins)."""
    team = ServerClient(url, token).call("POST", "/api/v1/teams", json={"name": name, "private": private, "description": description})
    emit(team, as_json, [[team["name"], team["private"], ", ".join(team["members"])]], ["TEAM", "PRIVATE", "MEMBERS"])


@teams.command("list")
@client_options
def teams_list(url: str, token: str | None, as_json: bool) -> None:
    """Every team with its members."""
    found = ServerClient(url, token).call("GET", "/api/v1/teams")["teams"]
    emit(found, as_json, [[t["name"], t["private"], ", ".join(t["members"])] for t in found], ["TEAM", "PRIVATE", "MEMBERS"])


@teams.command("add")
@click.argument("name")
@click.argument("username")
@client_options
def teams_add(name: str, username: str, url: str, token: str | None, as_json: bool) -> None:
    """Add USERNAME to team NAME (admins)."""
    team = ServerClient(url, token).call("PUT", f"/api/v1/teams/{_part(name)}/members/{_part(username)}")
    emit(team, as_json, [[team["name"], ", ".join(team["members"])]], ["TEAM", "MEMBERS"])


@teams.command("remove")
@click.argument("name")
@click.argument("username")
@client_options
def teams_remove(name: str, username: str, url: str, token: str | None, as_json: bool) -> None:
    """Remove USERNAME from team NAME (admins)."""
    team = ServerClient(url, token).call("DELETE", f"/api/v1/teams/{_part(name)}/members/{_part(username)}")
    emit(team, as_json, [[team["name"], ", ".join(team["members"])]], ["TEAM", "MEMBERS"])


@teams.command("delete")
@click.argument("name")
@client_options
def teams_delete(name: str, url: str, token: str | None, as_json: bool) -> None:
    """Remove a team (admins)."""
    ServerClient(url, token).call("DELETE", f"/api/v1/teams/{_part(name)}")
    emit({"deleted": name}, as_json, [[name, "deleted"]], ["TEAM", ""])


@click.group()
def tokens() -> None:
    """Your personal API tokens (for the mlflow client, curl and the CLI)."""


@tokens.command("create")
@click.argument("name")
@click.option("--read-only", is_flag=True, help="The token can read but never change anything.")
@click.option("--expires-days", type=float, help="Days until it stops working (default: never).")
@client_options
def tokens_create(name: str, read_only: bool, expires_days: float | None, url: str, token: str | None, as_json: bool) -> None:
    """Create a token; its secret is printed once, here."""
    body = {"name": name, "read_only": read_only, "expires_in_days": expires_days}
    created = ServerClient(url, token).call("POST", "/api/v1/tokens", json=body)
    if as_json:
        emit(created, True, [], [])
        return
    click.echo(created["token"])
    click.echo(f"(token {created['id']}, '{name}': shown only now; use it as MLFLOW_TRACKING_TOKEN)", err=True)


@tokens.command("list")
@click.option("--all", "everyone", is_flag=True, help="Everyone's tokens (admins).")
@client_options
def tokens_list(everyone: bool, url: str, token: str | None, as_json: bool) -> None:
    """Your tokens (never their secrets)."""
    found = ServerClient(url, token).call("GET", "/api/v1/tokens", params={"all": "true"} if everyone else {})["tokens"]
    rows = [
        [t["id"], t.get("user", ""), t["name"], t["prefix"] + "...", t["read_only"], _when(t["expires_at"]), _when(t["last_used_at"])]
        for t in found
    ]
    emit(found, as_json, rows, ["ID", "USER", "NAME", "STARTS", "READ ONLY", "EXPIRES", "LAST USED"])


@tokens.command("revoke")
@click.argument("token_id", type=int)
@client_options
def tokens_revoke(token_id: int, url: str, token: str | None, as_json: bool) -> None:
    """Revoke a token; it stops working at once."""
    ServerClient(url, token).call("DELETE", f"/api/v1/tokens/{token_id}")
    emit({"revoked": token_id}, as_json, [[token_id, "revoked"]], ["TOKEN", ""])


def _principal_option(fn: Any) -> Any:
    fn = click.option("--team", help="The team to grant to (instead of a user).")(fn)
    return click.option("--user", help="The user to grant to.")(fn)


RESOURCE = click.Choice(["experiment", "registered_model", "deployment"])


@click.command()
@click.argument("resource_type", type=RESOURCE)
@click.argument("resource_id")
@click.argument("level", type=click.Choice(["READ", "EDIT", "MANAGE"], case_sensitive=False))
@_principal_option
@client_options
def grant(resource_type: str, resource_id: str, level: str, user: str | None, team: str | None, url: str, token: str | None, as_json: bool) -> None:
    """Grant LEVEL on a resource to --user or --team (needs MANAGE on it).

    RESOURCE_ID is an experiment id, a registered model's name or a deployment's name."""
    access = ServerClient(url, token).call(
        "PUT", f"/api/v1/permissions/{resource_type}/{_part(resource_id)}", json={"user": user, "team": team, "level": level.upper()}
    )
    _show_access(access, as_json)


@click.command()
@click.argument("resource_type", type=RESOURCE)
@click.argument("resource_id")
@_principal_option
@client_options
def revoke(resource_type: str, resource_id: str, user: str | None, team: str | None, url: str, token: str | None, as_json: bool) -> None:
    """Take back what --user or --team was granted on a resource (needs MANAGE on it)."""
    params = {k: v for k, v in (("user", user), ("team", team)) if v}
    access = ServerClient(url, token).call("DELETE", f"/api/v1/permissions/{resource_type}/{_part(resource_id)}", params=params)
    _show_access(access, as_json)


def _show_access(access: dict[str, Any], as_json: bool) -> None:
    rows = [[next(k for k in g if k != "level"), next(v for k, v in g.items() if k != "level"), g["level"]] for g in access["grants"]]
    emit(access, as_json, rows, ["WHO", "NAME", "LEVEL"])


@click.command()
@click.option("--username", help="Your username (asked if not given).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--with-token", "given", help="Store this token (e.g. one made in the web UI) instead of logging in.")
@click.option("--url", envvar="LABDECK_URL", default="http://127.0.0.1:8080", show_default=True)
def login(username: str | None, password_stdin: bool, given: str | None, url: str) -> None:
    """Sign in once and keep a token for this server in ~/.config/labdeck/credentials.json."""
    if given is None:
        username = username or click.prompt("Username")
        password = _password(password_stdin, prompt=False) if password_stdin else click.prompt("Password", hide_input=True)
        created = ServerClient(url, None, basic=(username, password or "")).call(
            "POST", "/api/v1/tokens", json={"name": "labdeck login"}
        )
        given = created["token"]
    me = ServerClient(url, given).call("GET", "/api/v1/me")
    path = save_token(url, given)
    click.echo(f"Signed in to {url} as {me['username']}; the token is kept in {path}.")
