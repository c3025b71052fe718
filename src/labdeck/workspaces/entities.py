"""What the workspaces area shares between its layers: a user's server (what was asked
for, what was observed) and the events of its life.

A server is named by its user and its name ("" for the user's default server). ``desired``
is what the user asked for; ``state`` what the hub last saw. ``launch`` is the workload the
hub started (its command line and environment, secrets included), kept so that a
restarted hub adopts the very same process and rebuilds its route; it never leaves the
hub (no API shows it, and it is left out of ``repr``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Desired(StrEnum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"


class ServerState(StrEnum):
    STARTING = "STARTING"  # environment being built, or JupyterLab starting (again, after a crash)
    RUNNING = "RUNNING"  # JupyterLab answers: the route is set
    STOPPING = "STOPPING"  # JupyterLab is being stopped (SIGTERM, then SIGKILL after the grace)
    STOPPED = "STOPPED"
    FAILED = "FAILED"  # could not start (the build failed, JupyterLab exited or never answered)


ACTIVE = frozenset({ServerState.STARTING, ServerState.RUNNING, ServerState.STOPPING})


def label(user: str, server: str) -> str:
    """How people name a server: ``alice`` (the default one) or ``alice/big``."""
    return f"{user}/{server}" if server else user


def base_url(user: str, server: str) -> str:
    """Where JupyterLab answers, through the proxy: ``/user/alice/`` or ``/user/alice/big/``."""
    return f"/user/{user}/{server}/" if server else f"/user/{user}/"


@dataclass(frozen=True)
class WorkspaceServer:
    user: str
    server: str
    environment: str
    desired: Desired
    state: ServerState
    message: str | None  # why it failed (a build's or JupyterLab's last lines), or why it was stopped
    progress: str | None  # what happens while it starts or stops
    workload: str  # the compute workload's name
    token_id: int | None  # the MLflow token made for this start, revoked when it stops
    started_at: int | None  # ms: when the start was asked for
    stopped_at: int | None
    last_activity: int | None  # ms: the latest activity the culler saw
    updated_at: int
    launch: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return label(self.user, self.server)

    @property
    def base_url(self) -> str:
        return base_url(self.user, self.server)


@dataclass(frozen=True)
class WorkspaceEvent:
    event_id: int
    user: str
    server: str
    at: int  # ms
    kind: str
    message: str
