"""``WorkspaceCuller``: stops servers nobody uses, and servers older than allowed.

Every ``cull_interval_s`` it looks at each running server. It asks JupyterLab itself (the
server's endpoint, with the proxy's three headers, without counting as activity) for its
kernels and its status, and takes the latest of: the proxy's traffic, JupyterLab's own
last activity, and each kernel's. A server is idle when no kernel is busy and that latest
activity is older than ``idle_timeout_s`` (0: never idle); a busy kernel is computing, so
its server is never culled for idleness (jupyterhub#1498). A server older than
``max_age_s`` (0: no limit) is stopped whatever it does. Each stop is an event with its
reason. A JupyterLab that does not answer is left alone: the hub watches its health.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from labdeck.workspaces.entities import Desired, ServerState, WorkspaceServer
from labdeck.workspaces.routes import AUTH_HEADER, SECRET_HEADER, USER_HEADER, WorkspaceRoute

if TYPE_CHECKING:
    from labdeck.workspaces.hub import WorkspaceHub

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 10.0
UNTRACKED = {"no_track_activity": "1"}  # jupyter_server: this request is not the user's activity


class WorkspaceCuller:
    def __init__(self, hub: WorkspaceHub):
        self.hub = hub
        self.settings = hub.settings.workspaces
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self.settings.idle_timeout_s or self.settings.max_age_s:
            self._http = httpx.AsyncClient(timeout=ASK_TIMEOUT_S, trust_env=False)
            self._task = asyncio.create_task(self._loop(), name="workspace-culler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.cull_interval_s)
            try:
                await self.cull_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the next pass tries again
                log.exception("culling workspaces failed")

    async def cull_once(self) -> None:
        running = [
            s
            for s in await self.hub.store.all()
            if s.state is ServerState.RUNNING and s.desired is Desired.RUNNING
        ]
        await asyncio.gather(*(self._look_at(server) for server in running))

    async def _look_at(self, server: WorkspaceServer) -> None:
        now = time.time()
        max_age = self.settings.max_age_s
        if max_age and server.started_at is not None and now - server.started_at / 1000 > max_age:
            await self.hub.cull(server, f"older than {max_age:g} s")
            return
        idle_timeout = self.settings.idle_timeout_s
        route = self.hub.routes.get(server.user, server.server)
        if not idle_timeout or route is None:
            return
        seen = await self._ask_jupyterlab(route)
        if seen is None:
            return
        busy, jupyter_activity = seen
        known = server.last_activity / 1000 if server.last_activity is not None else 0.0
        latest = max(route.last_activity, jupyter_activity, known)
        if latest > known:
            await self.hub.store.update(server.user, server.server, last_activity=int(latest * 1000))
        idle = now - latest
        if not busy and idle > idle_timeout:
            await self.hub.cull(server, f"idle for {idle:.0f} s")

    async def _ask_jupyterlab(self, route: WorkspaceRoute) -> tuple[bool, float] | None:
        """Whether a kernel is busy, and the latest activity JupyterLab knows of (seconds
        since the epoch); None when it does not answer."""
        assert self._http is not None
        base = f"http://{route.endpoints['http']}{route.base_url}api/"
        headers = {SECRET_HEADER: route.secret, USER_HEADER: route.user, AUTH_HEADER: "token"}
        try:
            kernels_answer, status_answer = await asyncio.gather(
                self._http.get(base + "kernels", params=UNTRACKED, headers=headers),
                self._http.get(base + "status", params=UNTRACKED, headers=headers),
            )
            kernels_answer.raise_for_status()
            status_answer.raise_for_status()
            kernels: list[dict[str, Any]] = kernels_answer.json()
            status: dict[str, Any] = status_answer.json()
        except (httpx.HTTPError, ValueError) as error:
            log.warning("a workspace did not say whether it is idle", extra={"workspace": route.base_url, "error": repr(error)})
            return None
        busy = any(k.get("execution_state") == "busy" for k in kernels)
        times = [_seconds(status.get("last_activity")), *(_seconds(k.get("last_activity")) for k in kernels)]
        return busy, max((t for t in times if t is not None), default=0.0)


def _seconds(stamp: Any) -> float | None:
    """Jupyter's ISO 8601 times ("2026-12-05T10:00:00.123456Z") as seconds since the epoch."""
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None
