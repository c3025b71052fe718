"""``WorkspaceHub``: starts, stops and watches every user's JupyterLab servers.

The rules: a user acts on their own servers, admins on anyone's; an environment limited to
teams is for their members (and admins); a user runs at most ``max_servers_per_user``.
What users ask for goes to the database (``store``); a reconcile loop, on start-up and on
a timer (at once after a change), closes the difference with what the compute backend
runs, as the deployment controller does for models, and shares its backend:

- a server to start is launched in the background: its environment is built (or found
  built), its token made, its workload (``workloads``) recorded and then applied;
- a launched server is applied on every tick: once JupyterLab answers, RUNNING and its
  route set (``routes``); a JupyterLab that exits is restarted by the backend (the route
  waits), one that cannot start makes the server FAILED with its last lines;
- a server to stop (or one that failed) is torn down in the background: route removed,
  workload deleted (SIGTERM, SIGKILL after ``stop_grace_s``), token revoked;
- a ``ws-`` workload no server wants is stopped (``md-`` ones are the deployments').

Nothing is remembered only in memory: a restarted hub re-applies the recorded workloads,
which the backend has adopted, and so rebuilds each route with the same secret.

When the platform's backend is Kubernetes, a server is not a workload but a Pod and its
objects (``kube``): launching applies them (no environment to build: it is an image),
observing reads the Pod, tearing down deletes them; the rest (the rules, the states, the
token, the routes, adoption) is the same, except that no pod nobody wants is looked for
(``ws-`` workloads are the local backend's). Those steps live in the section "on
Kubernetes" below.

With several replicas (``cluster.leader_election``) only the leader's hub reconciles and
culls (``start``/``pause``); the others ``follow``: they rebuild the routes from the
database (a pod's address is its Service's name; a local process's, its recorded ports)
and write the proxy traffic they see there for the leader's culler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from labdeck.auth.entities import Principal
from labdeck.auth.service import AuthService
from labdeck.clock import now_ms
from labdeck.compute.backend import ComputeBackend
from labdeck.compute.store import ReplicaStore
from labdeck.compute.workload import ReplicaState, RolloutState
from labdeck.config import EnvironmentSettings, Settings
from labdeck.errors import (
    InvalidParameter,
    InvalidState,
    LabdeckError,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from labdeck.workspaces import environments
from labdeck.workspaces.culler import WorkspaceCuller
from labdeck.workspaces.entities import (
    ACTIVE,
    Desired,
    ServerState,
    WorkspaceEvent,
    WorkspaceServer,
    label,
)
from labdeck.workspaces.environments import EnvironmentBuilder, EnvironmentStatus
from labdeck.workspaces.kube import KubernetesWorkspaces, pod_endpoints
from labdeck.workspaces.manifests import WorkspaceNames
from labdeck.workspaces.routes import WorkspaceRoute, WorkspaceRoutes
from labdeck.workspaces.store import SqlWorkspaceStore
from labdeck.workspaces.workloads import (
    SPARK_UI_PORT,
    WORKLOAD_PREFIX,
    check_server_name,
    check_user_name,
    from_json,
    home_dir,
    jupyter_dir,
    jupyterlab_workload,
    secret_of,
    spark_conf,
    to_json,
    workload_name,
)

log = logging.getLogger(__name__)

IDLE_TICK_S = 2.0
BUSY_TICK_S = 0.2  # while anything starts or stops
STARTING_JUPYTERLAB = "starting JupyterLab"
RESTARTING_JUPYTERLAB = "JupyterLab exited; starting it again"

Key = tuple[str, str]
POD_SECRET = "pod_secret"  # a pod's launch: {POD_SECRET: the server's secret}


class WorkspaceHub:
    def __init__(
        self,
        store: SqlWorkspaceStore,
        backend: ComputeBackend,
        auth: AuthService,
        routes: WorkspaceRoutes,
        settings: Settings,
        builder: EnvironmentBuilder,
    ):
        self.store = store
        self.backend = backend
        self.auth = auth
        self.routes = routes
        self.settings = settings
        self.builder = builder
        # on Kubernetes, servers are pods rather than the backend's workloads
        self.pods = KubernetesWorkspaces(settings) if backend.name == "kubernetes" else None
        self.culler = WorkspaceCuller(self)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._launching: dict[Key, asyncio.Task[None]] = {}
        self._tearing_down: dict[Key, asyncio.Task[None]] = {}
        self._deleting: dict[str, asyncio.Task[None]] = {}  # workloads no server wants
        self._reached_at: tuple[str, int] | None = None  # where a request last reached this server
        self._busy = False
        self._activity_written: dict[Key, float] = {}  # monotonic: when follow() last wrote a server's activity

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        """Start supervising (the backend has adopted what runs: the Platform starts it first)."""
        if not self.runs_here or self._task is not None:
            return  # nothing of the hub's can run there (nothing to supervise), or it does already
        self._task = asyncio.create_task(self._loop(), name="workspace-hub")
        await self.culler.start()

    @property
    def runs_here(self) -> bool:
        """Whether the hub runs workspaces there: processes on this machine, or pods."""
        return self.backend.name == "local" or self.pods is not None

    async def pause(self) -> None:
        """Stop supervising and culling (a replica that no longer leads); the servers keep
        running, and are adopted by the next hub."""
        await self.culler.stop()
        tasks = [t for t in (self._task, *self._launching.values(), *self._tearing_down.values(), *self._deleting.values()) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    @property
    def reconciling(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        await self.pause()
        if self.pods is not None:
            await self.pods.close()

    # ------------------------------------------------------------------ on a replica that does not lead

    async def follow(self, activity_every_s: float) -> None:
        """The routes of running servers from what the leader recorded, so that this
        replica's proxy serves them too; and the proxy traffic seen here written to the
        database (at most every ``activity_every_s`` per server), where the leader's
        culler reads it."""
        found = {(s.user, s.server): s for s in await self.store.all()}
        running = {key: s for key, s in found.items() if s.state is ServerState.RUNNING and s.launch is not None}
        ready = await self._recorded_endpoints(list(running.values()))
        for key, server in running.items():
            endpoints = ready.get(key)
            if endpoints is None:
                continue
            known = self.routes.get(*key)
            secret = self._recorded_secret(server)
            if known is None or known.endpoints != endpoints or known.secret != secret:
                since = (server.last_activity or server.started_at or now_ms()) / 1000
                self.routes.set(WorkspaceRoute(server.user, server.server, server.base_url, endpoints, secret, since))
        for route in self.routes.all():
            key = (route.user, route.server)
            if key not in ready:
                self.routes.remove(*key)
                self._activity_written.pop(key, None)
                continue
            recorded = running[key].last_activity or 0
            seen = int(route.last_activity * 1000)
            written = self._activity_written.get(key)
            if seen > recorded and (written is None or time.monotonic() - written >= activity_every_s):
                await self.store.note_activity(route.user, route.server, seen)
                self._activity_written[key] = time.monotonic()

    def _recorded_secret(self, server: WorkspaceServer) -> str:
        assert server.launch is not None
        return server.launch[POD_SECRET] if self.pods is not None else secret_of(from_json(server.launch))

    async def _recorded_endpoints(self, servers: list[WorkspaceServer]) -> dict[Key, dict[str, str]]:
        """Where each running server answers: its pod's Service (a name computed from the
        server's), or the ports the local backend recorded for its ready process."""
        if self.pods is not None:
            out = {}
            for server in servers:
                try:
                    spark = self.environment(server.environment).spark
                except InvalidParameter:  # an environment since removed from the settings
                    spark = False
                names = WorkspaceNames.of(server.user, server.server)
                out[(server.user, server.server)] = pod_endpoints(names, self.pods.namespace, spark_ui=spark)
            return out
        store = getattr(self.backend, "store", None)
        if not isinstance(store, ReplicaStore):
            return {}
        rows = await store.all()
        out = {}
        for server in servers:
            assert server.launch is not None
            revision = from_json(server.launch).revision
            row = next(
                (r for r in rows if r.workload == server.workload and r.revision == revision and r.state == ReplicaState.READY), None
            )
            if row is not None:
                host = getattr(self.backend, "host", "127.0.0.1")
                out[(server.user, server.server)] = {name: f"{host}:{port}" for name, port in row.ports.items()}
        return out

    def poke(self) -> None:
        """Something changed: reconcile now rather than at the next tick."""
        self._wake.set()

    # ------------------------------------------------------------------ what people ask

    async def start_server(
        self,
        principal: Principal,
        user: str,
        server: str,
        environment: str | None = None,
        *,
        reached_at: tuple[str, int] | None = None,
    ) -> tuple[WorkspaceServer, bool]:
        """Ask for a server to run; returns it and whether it was asked now (False: it
        already runs or starts). ``reached_at`` is the address the request came in on
        (``scope["server"]``): the notebook's MLflow client talks to this server there."""
        self._may_act(principal, user)
        self._check_names(user, server)
        if not self.runs_here:
            raise InvalidState(
                "Workspaces run as processes on this machine or as pods on Kubernetes: the hub "
                f"cannot start them on the '{self.backend.name}' backend."
            )
        env = self.environment(environment or self.settings.workspaces.default_environment)
        if not environments.visible_to(env, await self._teams(principal), principal.is_admin):
            raise PermissionDenied(
                f"Permission denied: environment '{env.name}' is for the teams {', '.join(env.teams)} only."
            )
        if self.auth.enabled:
            await self.auth.user(user)  # NotFound: nobody to run it for
        if reached_at is not None and reached_at[1]:
            self._reached_at = reached_at
        found, changed = await self.store.request_start(
            user,
            server,
            env.name,
            workload_name(user, server),
            limit=self.settings.workspaces.max_servers_per_user,
            event=("StartRequested", f"{principal.username} started it in environment {env.name}"),
        )
        if changed:
            log.info("workspace start asked for", extra={"workspace": found.label, "by": principal.username})
            self.poke()
        return found, changed

    async def stop_server(self, principal: Principal, user: str, server: str) -> WorkspaceServer:
        self._may_act(principal, user)
        found, changed = await self.store.request_stop(
            user, server, event=("StopRequested", f"{principal.username} stopped it")
        )
        if changed:
            self.poke()
        return found

    async def cull(self, found: WorkspaceServer, reason: str) -> None:
        """Stop a server because of ``reason`` (idle, too old): the culler's way."""
        _, changed = await self.store.request_stop(found.user, found.server, f"stopped: {reason}", event=("Culled", reason))
        if changed:
            log.info("workspace culled", extra={"workspace": found.label, "reason": reason})
            self.poke()

    async def status(self, principal: Principal, user: str, server: str) -> WorkspaceServer:
        self._may_act(principal, user)
        found = await self.store.get(user, server)
        if found is None:
            raise NotFound(f"No workspace server {label(user, server)}: start it with POST /api/v1/workspaces/{label(user, server)}.")
        return found

    async def servers(self, principal: Principal, *, everyone: bool = False) -> list[WorkspaceServer]:
        """The caller's servers; with ``everyone``, all of them (admins only)."""
        if everyone and not principal.is_admin:
            raise PermissionDenied(f"Permission denied: only admins may list everyone's workspaces ({principal.username} is not one).")
        return await self.store.all(None if everyone else principal.username)

    async def events(self, user: str, server: str, limit: int) -> list[WorkspaceEvent]:
        return await self.store.events(user, server, limit)

    async def state_of(self, user: str, server: str) -> str | None:
        """What the proxy says of a server it has no route for: its state, or None."""
        found = await self.store.get(user, server)
        return found.state.value if found is not None else None

    def last_activity(self, found: WorkspaceServer) -> int | None:
        """ms: the latest of what the culler recorded and the proxy's traffic since."""
        route = self.routes.get(found.user, found.server)
        proxied = int(route.last_activity * 1000) if route is not None else None
        return max((t for t in (found.last_activity, proxied) if t is not None), default=None)

    async def environments(self, principal: Principal) -> list[tuple[EnvironmentSettings, EnvironmentStatus]]:
        """The environments the caller may use, with their build state."""
        teams = await self._teams(principal)
        return [
            (env, self.builder.status(env))
            for env in self.settings.workspaces.environments
            if environments.visible_to(env, teams, principal.is_admin)
        ]

    def environment(self, name: str) -> EnvironmentSettings:
        try:
            return environments.find(self.settings.workspaces, name)
        except NotFound as error:
            raise InvalidParameter(error.message[0].upper() + error.message[1:] + ".") from None

    async def _teams(self, principal: Principal) -> set[str]:
        if not principal.team_ids:
            return set()
        return {team.name for team in await self.auth.teams() if team.team_id in principal.team_ids}

    @staticmethod
    def _may_act(principal: Principal, user: str) -> None:
        if principal.username != user and not principal.is_admin:
            raise PermissionDenied(
                f"Permission denied: {principal.username} may act only on their own workspaces, not on {user}'s."
            )

    @staticmethod
    def _check_names(user: str, server: str) -> None:
        check_user_name(user)
        if server:
            check_server_name(server)

    # ------------------------------------------------------------------ reconciling

    async def _loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end every workspace's supervision
                log.exception("workspace reconcile failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), BUSY_TICK_S if self._busy else IDLE_TICK_S)
            self._wake.clear()

    async def reconcile(self) -> None:
        found = await self.store.all()
        wanted: set[str] = set()
        busy = bool(self._launching or self._tearing_down or self._deleting)
        for server in found:
            key = (server.user, server.server)
            if server.launch is not None or server.state in ACTIVE:
                wanted.add(server.workload)
            if key in self._tearing_down:
                continue
            if _to_tear_down(server):
                self._in_background(self._tearing_down, key, lambda s=server: self._tear_down(s))
                busy = True
            elif server.desired is Desired.RUNNING and server.state in (ServerState.STARTING, ServerState.RUNNING):
                if server.launch is None:
                    if key not in self._launching:
                        self._in_background(self._launching, key, lambda s=server: self._launch(s))
                    busy = True
                else:
                    busy = await self._observe(server) or busy
        for name in await self.backend.names() if self.pods is None else []:
            if name.startswith(WORKLOAD_PREFIX) and name not in wanted and name not in self._deleting:
                log.info("stopping a workload no workspace wants", extra={"workload": name})
                self._in_background(self._deleting, name, lambda n=name: self.backend.delete(n))
        self._busy = busy

    async def _observe(self, server: WorkspaceServer) -> bool:
        """Apply a launched server's workload and record what it is; whether it is still
        on its way (a reason to look again soon)."""
        assert server.launch is not None
        if self.pods is not None:
            return await self._observe_pod(server)
        workload = from_json(server.launch)
        status = await self.backend.apply(workload)
        user, name = server.user, server.server
        ready = [r for r in status.ready if r.revision == workload.revision]
        if ready:
            endpoints = dict(ready[0].endpoints)
            route = self.routes.get(user, name)
            if route is None or route.endpoints != endpoints:
                if SPARK_UI_PORT in endpoints:
                    await asyncio.to_thread(self._write_spark_conf, server, workload.program[0], endpoints[SPARK_UI_PORT])
                self.routes.set(WorkspaceRoute(user, name, server.base_url, endpoints, secret_of(workload)))
            if server.state is not ServerState.RUNNING:
                again = server.progress == RESTARTING_JUPYTERLAB
                await self._now_running(server, f"again at {server.base_url}" if again else f"at {server.base_url}")
            return False
        if status.rollout is RolloutState.FAILED:
            await self._fail(server, "Failed", f"JupyterLab did not start: {status.message}")
            return True
        crashed = next((r for r in status.replicas if r.state is ReplicaState.CRASHED), None)
        if crashed is not None:
            self.routes.remove(user, name)
            if server.state is ServerState.RUNNING:
                await self._record(
                    server,
                    event=("Crashed", crashed.message or "JupyterLab exited"),
                    state=ServerState.STARTING,
                    progress=RESTARTING_JUPYTERLAB,
                )
        elif server.state is ServerState.STARTING and server.progress not in (STARTING_JUPYTERLAB, RESTARTING_JUPYTERLAB):
            await self._record(server, progress=STARTING_JUPYTERLAB)
        # A RUNNING server whose JupyterLab does not answer yet (adopted, not probed again
        # yet) or for a moment (busy) stays RUNNING, and keeps its route.
        return True

    def _write_spark_conf(self, server: WorkspaceServer, python: str, endpoint: str) -> None:
        """Spark reads its settings when a notebook starts a session: now that the UI's
        port is known, they say it."""
        spark_conf(self.data_dir, server.user, server.server, python, ui_port=int(endpoint.rpartition(":")[2]))

    async def _record(self, server: WorkspaceServer, **values: Any) -> bool:
        """Record an observation of ``server`` unless it was asked to stop (or to start
        anew) since."""
        return await self.store.update(
            server.user,
            server.server,
            when=(ServerState.STARTING, ServerState.RUNNING),
            when_desired=Desired.RUNNING,
            for_start=server.started_at,
            **values,
        )

    async def _fail(self, server: WorkspaceServer, kind: str, message: str) -> None:
        self.routes.remove(server.user, server.server)
        if await self.store.failed(server.user, server.server, kind, message, for_start=server.started_at):
            log.warning("workspace failed", extra={"workspace": server.label, "reason": message.splitlines()[0]})
        self.poke()

    # ------------------------------------------------------------------ launching

    async def _launch(self, server: WorkspaceServer) -> None:
        user, name = server.user, server.server
        try:
            env = self.environment(server.environment)
            if self.pods is not None:
                await self._launch_pod(server, env, self.pods)
                return
            await self._record(server, progress=f"building environment {env.name}")
            built = await self.builder.ensure(env)
            home = home_dir(self.data_dir, user)
            own = jupyter_dir(self.data_dir, user, name)
            for folder in (home, own / "runtime", own / "data", own / "config"):
                await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
            token_id, token = await self._new_token(server)
            try:
                workload = jupyterlab_workload(
                    user=user,
                    server=name,
                    environment=env,
                    built=built,
                    data_dir=self.data_dir,
                    settings=self.settings.workspaces,
                    secret=secrets.token_urlsafe(32),
                    tracking_uri=self._own_url(),
                    tracking_token=token,
                )
                launched = await self.store.update(
                    user,
                    name,
                    when=(ServerState.STARTING,),
                    when_desired=Desired.RUNNING,
                    unlaunched=True,
                    for_start=server.started_at,
                    launch=to_json(workload),
                    token_id=token_id,
                    progress=STARTING_JUPYTERLAB,
                )
            except BaseException:
                await self._revoke(token_id)
                raise
            if not launched:  # stopped (or started anew) meanwhile
                await self._revoke(token_id)
            self.poke()
        except environments.EnvironmentBuildFailed as error:
            await self._fail(server, "BuildFailed", error.message)
        except LabdeckError as error:
            await self._fail(server, "Failed", error.message)
        except OSError as error:
            await self._fail(server, "Failed", f"cannot prepare the workspace's folders: {error}")
        except Exception as error:  # a bug: said, rather than tried again and again
            log.exception("workspace launch failed", extra={"workspace": server.label})
            await self._fail(server, "Failed", f"the start failed on an internal error: {error!r}")

    async def _new_token(self, server: WorkspaceServer) -> tuple[int | None, str | None]:
        """A token of the server's user for MLflow inside the notebook (with sign-in on).
        One left by an earlier start that never finished is revoked first."""
        if not self.auth.enabled:
            return None, None
        name = f"workspace {server.label}"
        user = await self.auth.user(server.user)
        for leftover in await self.auth.tokens(user):
            if leftover.name == name:
                await self._revoke(leftover.token_id)
        token, info = await self.auth.create_token(user, name, read_only=False, expires_in_days=None)
        return info.token_id, token

    async def _revoke(self, token_id: int | None) -> None:
        if token_id is None:
            return
        with contextlib.suppress(NotFound):  # revoked already (by its user, or with the user's account)
            await self.auth.revoke_token(token_id, None)

    def _own_url(self) -> str:
        """Where the notebook's MLflow client reaches this server: the address a request
        came in on, else the configured one; a wildcard address is reached on loopback."""
        host, port = self._reached_at or (self.settings.server.host, self.settings.server.port)
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # ------------------------------------------------------------------ stopping

    async def _tear_down(self, server: WorkspaceServer) -> None:
        # A launch under way is left to finish (cancelling it could cancel a database write
        # in flight): what it records is for its own start only, so it records nothing now
        # and revokes the token it made.
        key = (server.user, server.server)
        self.routes.remove(*key)
        if self.pods is not None:
            try:
                await self.pods.delete(*key)
            except Unavailable as error:  # tried again on the next tick; meanwhile it says why
                log.warning("cannot delete a workspace's pod yet", extra={"workspace": server.label, "reason": error.message})
                await self.store.update(*key, when=(ServerState.STOPPING,), progress=f"waiting to delete its pod: {error.message}")
                return
        else:
            await self.backend.delete(server.workload)
            try:  # nothing runs from its build now: an older build may go
                await asyncio.to_thread(self.builder.remove_unused, server.environment)
            except OSError as error:
                log.warning("cannot remove unused builds", extra={"environment": server.environment, "reason": str(error)})
        current = await self.store.get(*key)
        if current is not None:
            await self._revoke(current.token_id)
        done = await self.store.torn_down(*key, stopped=("Stopped", "JupyterLab stopped"))
        if done is not None and done.state is ServerState.STOPPED:
            log.info("workspace stopped", extra={"workspace": server.label})
        self.poke()

    # ------------------------------------------------------------------ on Kubernetes

    async def _now_running(self, server: WorkspaceServer, where: str) -> None:
        said = f"JupyterLab answers {where}"
        if not where.startswith("again") and server.started_at:
            said += f", {(now_ms() - server.started_at) / 1000:.1f} s after the start was asked for"
        await self._record(server, event=("Running", said), state=ServerState.RUNNING, progress=None, message=None)

    async def _launch_pod(self, server: WorkspaceServer, env: EnvironmentSettings, pods: KubernetesWorkspaces) -> None:
        """Apply the server's objects; record its secret (the proxy's, kept for a restarted
        hub) as its launch. Errors are the caller's (``_launch``) to say."""
        user, name = server.user, server.server
        token_id, token = await self._new_token(server)
        secret = secrets.token_urlsafe(32)
        try:
            await self._record(server, progress="applying the workspace's objects")
            tracking_uri = self.settings.workspaces.kubernetes.tracking_uri or self._own_url()
            await pods.apply(user, name, env, self.settings, secret, token, tracking_uri)
            launched = await self.store.update(
                user,
                name,
                when=(ServerState.STARTING,),
                when_desired=Desired.RUNNING,
                unlaunched=True,
                for_start=server.started_at,
                launch={POD_SECRET: secret},
                token_id=token_id,
                progress=STARTING_JUPYTERLAB,
            )
        except BaseException:
            await self._revoke(token_id)
            raise
        if not launched:  # stopped (or started anew) meanwhile: its teardown saw no launch
            await self._revoke(token_id)
            await pods.delete(user, name)
        self.poke()

    async def _observe_pod(self, server: WorkspaceServer) -> bool:
        """``_observe`` of a pod: what it says, recorded; whether it is still on its way."""
        assert self.pods is not None and server.launch is not None
        user, name = server.user, server.server
        try:
            found = await self.pods.status(user, name)
        except Unavailable as error:
            # not knowing is not failing: a RUNNING server keeps its route, a starting one says why it waits
            if server.state is ServerState.STARTING and server.progress != error.message:
                await self._record(server, progress=error.message)
            return True
        if found.state is ServerState.RUNNING:
            route = self.routes.get(user, name)
            if route is None or route.endpoints != found.endpoints:
                self.routes.set(WorkspaceRoute(user, name, server.base_url, found.endpoints, server.launch[POD_SECRET]))
            if server.state is not ServerState.RUNNING:
                await self._now_running(server, f"at {server.base_url} ({found.endpoint})")
            return False
        if found.state is ServerState.FAILED:
            await self._fail(server, "Failed", f"JupyterLab did not start: {found.message}")
            return True
        progress = found.message or STARTING_JUPYTERLAB
        if server.state is ServerState.STARTING and server.progress != progress:
            await self._record(server, progress=progress)
        return True

    def _in_background(
        self, tasks: dict[Any, asyncio.Task[None]], key: Any, work: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        async def run() -> None:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("workspace task failed", extra={"task": str(key)})
            finally:
                if tasks.get(key) is task:
                    del tasks[key]

        task = asyncio.create_task(run())
        tasks[key] = task


def _to_tear_down(server: WorkspaceServer) -> bool:
    """Whether a JupyterLab of this server may run (or its token work) that must not."""
    if server.state is ServerState.STOPPING:
        return True
    if server.desired is Desired.STOPPED and server.state in (ServerState.STARTING, ServerState.RUNNING):
        return True
    return server.state is ServerState.FAILED and (server.launch is not None or server.token_id is not None)

