"""``labdeck workspaces start|stop|list|open`` through click's CliRunner against live
servers (``--url``) whose hub starts real JupyterLab servers:

- single-user mode (no sign-in: you are the local user): start waits and prints the URL,
  list shows it (a table, or JSON), open prints the URL, a named server started without
  waiting, stop; a server that is not running cannot be opened; an environment that
  cannot build makes start fail with its log (exit status 1), an unknown one too;
- with sign-in on: an admin acts on someone else's servers with ``--user``; a user may not
  list everyone's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from labdeck.cli.workspaces_cmd import workspaces
from labdeck.config import EnvironmentSettings, Settings
from labdeck.workspaces.environments import BuiltEnvironment
from tests.conftest import start_labdeck
from tests.workspaces.conftest import BASE_ENV, workspace_settings
from tests.workspaces.hub_kit import ADMIN, Hub, hub_server, shut

BROKEN = EnvironmentSettings(name="broken", packages=["labdeck-no-such-package-0xbeef"])

Invoke = Callable[..., Result]


@pytest.fixture(autouse=True)
def _no_saved_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no token of the user's own
    monkeypatch.delenv("LABDECK_TOKEN", raising=False)


def command_line(url: str, token: str | None = None) -> Invoke:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(workspaces, [*args, "--url", url, *(["--token", token] if token else [])])

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}{result.exception!r}"
    return result.stdout


def failed(result: Result) -> str:
    assert result.exit_code == 1, f"exit {result.exit_code}: {result.output}{result.exception!r}"
    return result.output


@pytest.fixture
def single_user(tmp_path_factory: pytest.TempPathFactory, built_env: BuiltEnvironment) -> Iterator[Hub]:
    data_dir = tmp_path_factory.mktemp("cli")
    settings = Settings.load(None, data_dir=data_dir, workspaces=workspace_settings(BASE_ENV, BROKEN))
    hub = Hub(start_labdeck(settings), None, data_dir)
    try:
        yield hub
    finally:
        shut(hub)


def test_the_command_line_in_single_user_mode(single_user: Hub) -> None:
    labdeck = command_line(single_user.url)
    me = single_user.as_("me").get("/api/v1/me").json()["username"]
    url = f"{single_user.url}/user/{me}/"

    assert ok(labdeck("start")).splitlines() == [url]
    assert single_user.as_("me").get(f"/user/{me}/api/status").status_code == 200  # the URL works

    rows = [line.split() for line in ok(labdeck("list")).splitlines()]
    assert rows[0][:4] == ["USER", "SERVER", "ENVIRONMENT", "STATE"]
    assert rows[1][:4] == [me, "(default)", "base", "RUNNING"] and rows[1][-1] == url
    listed = json.loads(ok(labdeck("list", "--json")))
    assert [(s["user"], s["server"], s["state"]) for s in listed] == [(me, "", "RUNNING")]
    assert ok(labdeck("open", "--no-browser")).splitlines() == [url]

    assert ok(labdeck("start", "big", "--no-wait")).splitlines() == [f"{me}/big is STARTING: waiting to start"]
    assert ok(labdeck("stop", "big")).split() == ["WORKSPACE", "STATE", f"{me}/big", "STOPPING"]
    assert ok(labdeck("stop")).split()[-1] == "STOPPING"
    single_user.wait_state(me, "", "STOPPED")
    assert "is STOPPED, not running: start it with `labdeck workspaces start`" in failed(
        labdeck("open", "--no-browser")
    )

    said = failed(labdeck("start", "--env", "broken"))
    assert "is FAILED" in said and "labdeck-no-such-package-0xbeef" in said
    said = failed(labdeck("start", "other", "--env", "nope"))
    assert "INVALID_PARAMETER_VALUE" in said and "nope" in said and "base, broken" in said


def test_the_command_line_for_an_admin_and_a_user(
    tmp_path_factory: pytest.TempPathFactory, built_env: BuiltEnvironment
) -> None:
    with hub_server(tmp_path_factory.mktemp("cli-auth")) as hub:
        assert hub.ident is not None
        as_admin = command_line(hub.url, hub.ident.tokens[ADMIN])
        as_alice = command_line(hub.url, hub.ident.tokens["alice"])

        started = json.loads(ok(as_admin("start", "--user", "bob", "--no-wait", "--json")))
        assert (started["user"], started["state"]) == ("bob", "STARTING")
        everyone = json.loads(ok(as_admin("list", "--all", "--json")))
        assert [(s["user"], s["server"]) for s in everyone] == [("bob", "")]
        assert "PERMISSION_DENIED" in failed(as_alice("list", "--all"))
        assert "PERMISSION_DENIED" in failed(as_alice("stop", "--user", "bob"))
        assert ok(as_admin("stop", "--user", "bob")).split()[-2:] == ["bob", "STOPPING"]
        hub.wait_state("bob", "", "STOPPED")
        assert ok(as_alice("list")).strip() == "(none)"
