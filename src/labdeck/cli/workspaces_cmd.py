"""``labdeck workspaces``: your JupyterLab servers from the command line, over
``/api/v1/workspaces``.

``start [NAME]`` starts your default server (or the one named NAME) and waits until
JupyterLab answers, then prints its URL (or the reason it failed, with exit status 1);
``stop``, ``list`` and ``open`` do what they say. ``--user`` acts on someone else's
servers (admins only).
"""

from __future__ import annotations

import os
import sys
import time
import webbrowser
from typing import Any
from urllib.parse import quote

import click

from labdeck.cli.client import ServerClient, client_options, emit

HEADERS = ["USER", "SERVER", "ENVIRONMENT", "STATE", "STARTED", "LAST ACTIVITY", "URL"]


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else ""


def _user(client: ServerClient, user: str | None) -> str:
    return user or client.call("GET", "/api/v1/me")["username"]


def _path(user: str, name: str | None) -> str:
    path = f"/api/v1/workspaces/{quote(user, safe='')}"
    return f"{path}/{quote(name, safe='')}" if name else path


def _url(client: ServerClient, server: dict[str, Any]) -> str:
    return client.url + server["url"]


def _rows(client: ServerClient, servers: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            s["user"], s["server"] or "(default)", s["environment"], s["state"],
            _when(s["started_at"]), _when(s["last_activity"]), _url(client, s) if s["state"] == "RUNNING" else "",
        ]
        for s in servers
    ]


def _wait(client: ServerClient, path: str, timeout: float) -> dict[str, Any]:
    """Poll until the server runs; fail with its reason when it cannot."""
    deadline = time.monotonic() + timeout
    said = None
    while True:
        server = client.call("GET", path)
        if server["state"] == "RUNNING":
            return server
        if server["state"] in ("FAILED", "STOPPED") or server["desired"] == "STOPPED":
            raise click.ClickException(f"workspace {server['name']} is {server['state']}: {server['message'] or 'it was stopped'}")
        if server["progress"] and server["progress"] != said:
            said = server["progress"]
            click.echo(f"{server['name']}: {said}", err=True)
        if time.monotonic() > deadline:
            raise click.ClickException(f"workspace {server['name']} is still {server['state']} after {timeout:g} s ({said or 'waiting'})")
        time.sleep(0.25)


@click.group()
def workspaces() -> None:
    """Your JupyterLab servers: start, stop, list, open."""


@workspaces.command("start")
@click.argument("name", required=False)
@click.option("--env", "environment", help="The environment to run it in [default: the server's default].")
@click.option("--user", help="Whose server (admins may start anyone's) [default: you].")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until JupyterLab answers.")
@click.option("--timeout", default=900.0, show_default=True, type=click.FloatRange(1, 7200), help="Seconds to wait (a first build of an environment takes minutes).")
@client_options
def start(
    name: str | None, environment: str | None, user: str | None, wait: bool, timeout: float,
    url: str, token: str | None, as_json: bool,
) -> None:
    """Start your default server, or the one named NAME; print its URL."""
    client = ServerClient(url, token)
    path = _path(_user(client, user), name)
    server = client.call("POST", path, json={"environment": environment} if environment else None)
    if wait:
        server = _wait(client, path, timeout)
    if as_json:
        emit(server, True, [], [])
    elif server["state"] == "RUNNING":
        click.echo(_url(client, server))
    else:
        click.echo(f"{server['name']} is {server['state']}: {server['progress'] or ''}".rstrip(": "))


@workspaces.command("stop")
@click.argument("name", required=False)
@click.option("--user", help="Whose server (admins may stop anyone's) [default: you].")
@client_options
def stop(name: str | None, user: str | None, url: str, token: str | None, as_json: bool) -> None:
    """Stop your default server, or the one named NAME."""
    client = ServerClient(url, token)
    server = client.call("DELETE", _path(_user(client, user), name))
    emit(server, as_json, [[server["name"], server["state"]]], ["WORKSPACE", "STATE"])


@workspaces.command("list")
@click.option("--all", "everyone", is_flag=True, help="Everyone's servers (admins only).")
@client_options
def list_servers(everyone: bool, url: str, token: str | None, as_json: bool) -> None:
    """Your servers (everyone's with --all)."""
    client = ServerClient(url, token)
    found = client.call("GET", "/api/v1/workspaces", params={"all": "true"} if everyone else None)["workspaces"]
    emit(found, as_json, _rows(client, found), HEADERS)


@workspaces.command("open")
@click.argument("name", required=False)
@click.option("--user", help="Whose server (admins may open anyone's) [default: you].")
@click.option("--browser/--no-browser", default=True, show_default=True, help="Open it in a browser, when there is one.")
@client_options
def open_server(name: str | None, user: str | None, browser: bool, url: str, token: str | None, as_json: bool) -> None:
    """Print the URL of a running server and open it in a browser."""
    client = ServerClient(url, token)
    server = client.call("GET", _path(_user(client, user), name))
    if server["state"] != "RUNNING":
        hint = f"labdeck workspaces start{' ' + name if name else ''}"
        raise click.ClickException(f"workspace {server['name']} is {server['state']}, not running: start it with `{hint}`.")
    address = _url(client, server)
    if as_json:
        emit({"url": address}, True, [], [])
    else:
        click.echo(address)
    if browser and _has_display():
        webbrowser.open(address)


def _has_display() -> bool:
    """A graphical browser can open (a text one would take the terminal over)."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
