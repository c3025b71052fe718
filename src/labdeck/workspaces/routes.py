"""Where each running workspace is reached: the table the hub fills and the proxy reads.

The hub sets a route when a server becomes ready and removes it when the server stops; the
proxy looks routes up on every request and notes the traffic it forwards, which the culler
reads as activity. Everything here is in memory and rebuilt by the hub after a restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# The header names the proxy sends and the identity provider in envkit reads.
SECRET_HEADER = "X-Labdeck-Workspace-Secret"  # the server's own secret: proves the proxy sent it
USER_HEADER = "X-Labdeck-User"  # who is asking (the owner, or an admin)
AUTH_HEADER = "X-Labdeck-Auth"  # "token" (Bearer/Basic: exempt from Jupyter's XSRF check) or "cookie"
DEFAULT_SERVER = ""  # the name of a user's unnamed server


@dataclass
class WorkspaceRoute:
    user: str
    server: str  # DEFAULT_SERVER for /user/<name>/
    base_url: str  # "/user/alice/" or "/user/alice/big/": what JupyterLab was started with
    endpoints: dict[str, str]  # port name ("http", "spark-ui") -> "127.0.0.1:port"
    secret: str
    last_activity: float = field(default_factory=time.time)  # proxy traffic, seconds since the epoch


class WorkspaceRoutes:
    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], WorkspaceRoute] = {}

    def set(self, route: WorkspaceRoute) -> None:
        known = self._routes.get((route.user, route.server))
        if known is not None:
            route.last_activity = max(route.last_activity, known.last_activity)
        self._routes[(route.user, route.server)] = route

    def remove(self, user: str, server: str) -> None:
        self._routes.pop((user, server), None)

    def get(self, user: str, server: str) -> WorkspaceRoute | None:
        return self._routes.get((user, server))

    def all(self) -> list[WorkspaceRoute]:
        return list(self._routes.values())

    def touch(self, route: WorkspaceRoute) -> None:
        route.last_activity = time.time()
