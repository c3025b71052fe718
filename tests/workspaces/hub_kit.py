"""Real parts for the hub's scenarios: a labdeck server with sign-in on whose hub starts
real JupyterLab servers from the environment the session built, seen through its API; and
the JupyterLab processes (and their kernels) a server started, found in /proc by the data
folder on their command line.

``hub_server(data_dir, **settings)`` bootstraps the admin ``root`` as an operator does
(``labdeck users create --direct``), starts the server with the test environment and
``settings``, and makes users ``alice``, ``bob`` and the admin ``ada``, each with a token.
When it ends, every workspace is stopped through the API and the server is stopped; any
process still running from that data folder is killed and the scenario fails: a JupyterLab
that outlives its server's stop is a leak.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from labdeck.cli import cli
from labdeck.config import Settings
from labdeck.workspaces.routes import AUTH_HEADER, SECRET_HEADER, USER_HEADER, WorkspaceRoute
from tests.auth.access_kit import ROOT, ROOT_PASSWORD, Identity
from tests.conftest import RunningServer, start_labdeck
from tests.processes import kill_all, live_processes
from tests.waiting import WAIT_S, wait_until
from tests.workspaces.conftest import BASE_ENV, workspace_settings

USERS = ("alice", "bob")
ADMIN = "ada"


def path_of(user: str, server: str = "") -> str:
    return f"/api/v1/workspaces/{user}" + (f"/{server}" if server else "")


@dataclass
class Hub:
    """A labdeck server and its workspaces API, as its users see it (``ident`` is None in
    single-user mode, where everyone is the local user)."""

    server: RunningServer
    ident: Identity | None
    data_dir: Path
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def as_(self, user: str) -> httpx.Client:
        """A client with ``user``'s token (``root``, ``ada`` and the users made)."""
        if user not in self.clients:
            if self.ident is None:
                self.clients[user] = httpx.Client(base_url=self.url, timeout=60)
            else:
                self.clients[user] = self.ident.client(self.ident.tokens[user])
        return self.clients[user]

    def start(
        self, user: str, server: str = "", *, by: str | None = None, environment: str | None = None
    ) -> dict[str, Any]:
        """Ask for a start (as ``by``, else the user); the status it answered."""
        body = {"environment": environment} if environment else None
        answer = self.as_(by or user).post(path_of(user, server), json=body)
        assert answer.status_code in (200, 202), f"start {user}/{server}: {answer.status_code} {answer.text}"
        return answer.json()

    def stop(self, user: str, server: str = "", *, by: str | None = None) -> dict[str, Any]:
        answer = self.as_(by or user).delete(path_of(user, server))
        assert answer.status_code == 202, f"stop {user}/{server}: {answer.status_code} {answer.text}"
        return answer.json()

    def status(self, user: str, server: str = "", *, by: str | None = None) -> dict[str, Any]:
        answer = self.as_(by or user).get(path_of(user, server))
        assert answer.status_code == 200, f"status of {user}/{server}: {answer.status_code} {answer.text}"
        return answer.json()

    def wait(
        self, user: str, server: str, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = WAIT_S
    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def looked() -> dict[str, Any] | None:
            nonlocal seen
            seen = self.status(user, server, by=ROOT)
            return seen if check(seen) else None

        try:
            return wait_until(looked, what, timeout)
        except AssertionError:
            raise AssertionError(f"{user}/{server} never got {what} within {timeout:g} s; it is {seen}") from None

    def wait_state(self, user: str, server: str, state: str, timeout: float = WAIT_S) -> dict[str, Any]:
        return self.wait(user, server, lambda s: s["state"] == state, state, timeout)

    def run(self, user: str, server: str = "") -> dict[str, Any]:
        """Start a server and wait until JupyterLab answers (failing at once if it cannot)."""
        self.start(user, server)

        def running(s: dict[str, Any]) -> bool:
            assert s["state"] != "FAILED", s
            return s["state"] == "RUNNING"

        return self.wait(user, server, running, "RUNNING")

    def halt(self, user: str, server: str = "") -> dict[str, Any]:
        """Stop a server and wait until it has stopped."""
        self.stop(user, server, by=ROOT)
        return self.wait_state(user, server, "STOPPED")

    def route(self, user: str, server: str = "") -> WorkspaceRoute | None:
        """The route the hub set for the proxy (read from the running app)."""
        return self.server.app.platform.workspace_routes.get(user, server)

    def jupyter(self, user: str, server: str = "") -> httpx.Client:
        """A client talking to the server's JupyterLab directly, with the headers the proxy sends."""
        route = self.route(user, server)
        assert route is not None, f"no route for {user}/{server}"
        return httpx.Client(
            base_url=f"http://{route.endpoints['http']}{route.base_url}", headers=jupyter_headers(route), timeout=60
        )

    def processes(self) -> dict[int, list[str]]:
        return processes_of(self.data_dir)

    def jupyterlab_pid(self, user: str, server: str = "") -> int:
        """The pid of the one JupyterLab serving ``user``/``server``."""
        base = path_of(user, server).replace("/api/v1/workspaces/", "/user/") + "/"
        found = [pid for pid, argv in self.processes().items() if f"--ServerApp.base_url={base}" in argv]
        assert len(found) == 1, f"JupyterLab processes of {base}: {found}"
        return found[0]

    def stop_everything(self) -> None:
        answer = self.as_(ROOT).get("/api/v1/workspaces", params={"all": "true"})
        assert answer.status_code == 200, answer.text
        for s in answer.json()["workspaces"]:
            if s["desired"] == "RUNNING" or s["state"] in ("STARTING", "RUNNING", "STOPPING"):
                self.stop(s["user"], s["server"], by=ROOT)
        for s in answer.json()["workspaces"]:
            self.wait(s["user"], s["server"], lambda x: x["state"] in ("STOPPED", "FAILED"), "stopped")
        wait_until(lambda: not self.processes(), "every JupyterLab of the server gone")

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def jupyter_headers(route: WorkspaceRoute) -> dict[str, str]:
    return {SECRET_HEADER: route.secret, USER_HEADER: route.user, AUTH_HEADER: "token"}


def hub_settings(data_dir: Path, **overrides: Any) -> Settings:
    workspaces = {**workspace_settings(BASE_ENV), **overrides.pop("workspaces", {})}
    return Settings.load(
        None,
        data_dir=data_dir,
        auth={"mode": "password", "session_secret": "hub-tests-secret-0123456789"},
        workspaces=workspaces,
        **overrides,
    )


def bootstrap_root(data_dir: Path) -> None:
    made = CliRunner().invoke(
        cli,
        ["users", "create", ROOT, "--admin", "--password-stdin", "--direct", "--data-dir", str(data_dir)],
        input=ROOT_PASSWORD + "\n",
    )
    assert made.exit_code == 0, made.output


def open_hub(data_dir: Path, **overrides: Any) -> Hub:
    """Start a labdeck server on ``data_dir`` (made by ``hub_server`` before: its users exist)."""
    server = start_labdeck(hub_settings(data_dir, **overrides))
    return Hub(server, Identity.bootstrap(server), data_dir)


@contextmanager
def hub_server(data_dir: Path, **overrides: Any) -> Iterator[Hub]:
    bootstrap_root(data_dir)
    hub = open_hub(data_dir, **overrides)
    assert hub.ident is not None
    for user in USERS:
        hub.ident.user(user)
    hub.ident.user(ADMIN, admin=True)
    try:
        yield hub
    finally:
        shut(hub)


def shut(hub: Hub) -> None:
    """Stop every workspace of ``hub``, then the server; fail if a process of its outlives that."""
    problems = []
    if hub.server.thread.is_alive():
        try:
            hub.stop_everything()
        except Exception as exc:  # still stop the server and look for leftovers
            problems.append(f"stopping the workspaces of {hub.url} failed: {exc!r}")
        hub.server.stop()
    hub.close()
    leftovers = kill_leftovers(hub.data_dir)
    if leftovers:
        problems.append(f"processes outlived their workspaces (killed now): {leftovers}")
    assert not problems, "\n".join(problems)


def processes_of(data_dir: Path) -> dict[int, list[str]]:
    """Every live process started for a workspace of the server on ``data_dir``: JupyterLab
    (its root folder is there) and its kernels (their connection files are)."""
    marker = str(data_dir)
    return live_processes(lambda argv: any(marker in arg for arg in argv))


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.partition("=")[::2] for item in raw.split("\0") if item)


def kill_leftovers(data_dir: Path) -> dict[int, list[str]]:
    """The last resort of a scenario's teardown: SIGKILL whatever is left."""
    return kill_all(processes_of(data_dir))


def kinds(status: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in status["events"]]
