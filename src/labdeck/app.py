"""``create_app(settings)``: the ASGI application of the labdeck server.

It assembles; it does not decide. ``AuthMiddleware`` resolves who is asking for every
request; then MLflow-compatible endpoints go to the shared ``RpcRouter`` (plain ASGI,
dictionary dispatch: the hot path), predictions for deployments to the ``Gateway``,
``/user/...`` (HTTP and WebSocket) to the ``NotebookProxy``, and everything else to the
Starlette/FastAPI app. Every route declares what it needs
(``auth.needs``) and the ``Guard`` checks it before the handler runs; a route that declares
nothing cannot be added. The lifespan is the only place where things start (migrations,
the database writer, the deployment controller, the workspace hub; with several replicas,
the leader election that decides where the last two run) and stop.
"""

from __future__ import annotations

import functools
import gc
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from anyio import to_thread
from fastapi import Depends, FastAPI
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from labdeck import __version__
from labdeck.artifacts.api import ArtifactsApi, plain_artifact_routes
from labdeck.artifacts.factory import open_artifact_store
from labdeck.artifacts.store import ArtifactStore
from labdeck.auth.guard import Guard
from labdeck.auth.middleware import AuthMiddleware
from labdeck.auth.needs import Public, declared, needs
from labdeck.auth.service import AuthService
from labdeck.auth.store import SqlAuthStore
from labdeck.auth.v1 import router as auth_v1
from labdeck.auth.web import routes as auth_web_routes
from labdeck.auth.web import session_key
from labdeck.compute.backend import ComputeBackend
from labdeck.config import Settings
from labdeck.db import Database
from labdeck.deployments.controller import DeploymentController
from labdeck.deployments.gateway import Gateway
from labdeck.deployments.traffic import TrafficStats
from labdeck.deployments.service import DeploymentService
from labdeck.deployments.store import SqlDeploymentStore
from labdeck.deployments.v1 import router as deployments_v1
from labdeck.errors import LabdeckError
from labdeck.registry.api import RegistryApi, plain_registry_routes
from labdeck.registry.service import RegistryService
from labdeck.registry.store import SqlRegistryStore
from labdeck.registry.v1 import router as registry_v1
from labdeck.tracking.api import TrackingApi
from labdeck.tracking.logged_models import SqlLoggedModelStore
from labdeck.tracking.overview import RunOverview
from labdeck.tracking.service import TrackingService
from labdeck.tracking.store import SqlTrackingStore
from labdeck.tracking.v1 import router as tracking_v1
from labdeck.web.pages import routes as ui_routes
from labdeck.wire import v1
from labdeck.workspaces.environments import EnvironmentBuilder
from labdeck.workspaces.hub import WorkspaceHub
from labdeck.workspaces.proxy import NotebookProxy
from labdeck.workspaces.routes import WorkspaceRoutes
from labdeck.workspaces.store import SqlWorkspaceStore
from labdeck.workspaces.v1 import router as workspaces_v1
from labdeck.wire.errors import error_headers, http_status, mlflow_body
from labdeck.wire.mlflow_rpc import RpcRouter
from labdeck.wire.types import Receive, Scope, Send

if TYPE_CHECKING:
    from labdeck.cluster.roles import Leadership

log = logging.getLogger(__name__)

SCHEMA_POLL_S = 2.0


@dataclass
class Platform:
    """Every long-lived part of one server process, built without I/O."""

    settings: Settings
    db: Database
    artifacts: ArtifactStore
    tracking: TrackingService
    registry: RegistryService
    auth: AuthService
    guard: Guard
    deployments: DeploymentService
    workspace_routes: WorkspaceRoutes
    workspaces: WorkspaceHub
    leadership: Leadership | None = None  # with several replicas: which of them runs the controllers

    @classmethod
    def build(cls, settings: Settings) -> Platform:
        db = Database(
            settings.database_url,
            pool_size=settings.database.pool_size,
            group_commit_max=settings.database.group_commit_max,
        )
        tracking = TrackingService(SqlTrackingStore(db), SqlLoggedModelStore(db))
        registry = RegistryService(SqlRegistryStore(db), tracking)
        auth = AuthService(SqlAuthStore(db), settings.auth)
        artifacts = open_artifact_store(settings)
        model_env = {}
        if settings.artifacts.s3_endpoint_url:  # model servers fetch from the same store
            model_env["MLFLOW_S3_ENDPOINT_URL"] = settings.artifacts.s3_endpoint_url
        backend = compute_backend(settings, db)  # one, shared: it adopts what runs once
        controller = DeploymentController(
            SqlDeploymentStore(db),
            registry,
            artifacts,
            backend,
            cache_dir=settings.data_dir / "cache" / "models",
            image=settings.deployments.kubernetes.image,
            model_env=model_env,
        )
        workspace_routes = WorkspaceRoutes()
        hub = WorkspaceHub(
            SqlWorkspaceStore(db), backend, auth, workspace_routes, settings, EnvironmentBuilder.from_settings(settings)
        )
        leadership = None
        if settings.cluster.leader_election.enabled:
            from labdeck.cluster.roles import Leadership

            leadership = Leadership(
                settings.cluster.leader_election, controller, hub, kubeconfig=settings.deployments.kubernetes.kubeconfig
            )
        return cls(
            leadership=leadership,
            settings=settings,
            db=db,
            artifacts=artifacts,
            tracking=tracking,
            registry=registry,
            auth=auth,
            guard=Guard(auth, tracking, registry),
            deployments=DeploymentService(controller.store, registry, controller),
            workspace_routes=workspace_routes,
            workspaces=hub,
        )

    async def start(self) -> None:
        if self.settings.database.migrate_on_start:
            await to_thread.run_sync(self.db.migrate)
        else:
            await to_thread.run_sync(wait_for_schema, self.db, self.settings.database.schema_wait_s)
        self.auth.session_key = await to_thread.run_sync(session_key, self.settings)
        self.db.start()
        if self.leadership is None:  # this process simply leads
            await self.deployments.controller.start()  # starts the backend, which adopts what runs
            await self.workspaces.start()
        else:
            await self.leadership.start()
        _tune_garbage_collector()
        log.info(
            "labdeck ready",
            extra={"database": _redact(self.settings.database_url), "artifacts": self.artifacts.root_uri},
        )

    async def stop(self) -> None:
        if self.leadership is not None:  # first: stops the loops and hands the Lease on
            await self.leadership.stop()
        await self.workspaces.stop()  # first: the controller's stop closes the shared backend
        await self.deployments.controller.stop()
        await self.artifacts.close()
        await to_thread.run_sync(self.db.close)


def wait_for_schema(db: Database, wait_s: float) -> None:
    """With migrations left to ``labdeck db upgrade`` (a migration Job): wait until the
    schema is the one this version needs, then go on; give up after ``wait_s``."""
    from labdeck.db.migrate import current_revision, head_revision

    head = head_revision(db.engine)
    deadline = time.monotonic() + wait_s
    while True:
        current = current_revision(db.engine)
        if current == head:
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"the database schema is at revision {current or '(none)'}, this labdeck needs {head}: "
                "run `labdeck db upgrade` (the migration Job), or start the server without --no-migrate"
            )
        log.info("waiting for the database migration", extra={"current": current, "needed": head})
        time.sleep(SCHEMA_POLL_S)


def compute_backend(settings: Settings, db: Database) -> ComputeBackend:
    """Where deployments run: processes on this machine, or a Kubernetes cluster."""
    if settings.deployments.backend == "kubernetes":
        from labdeck.compute.kubernetes import KubernetesBackend

        return KubernetesBackend(settings.deployments.kubernetes)
    from labdeck.compute.local import LocalProcessBackend
    from labdeck.compute.store import ReplicaStore

    return LocalProcessBackend(ReplicaStore(db), settings.data_dir / "deployments" / "logs")


def _tune_garbage_collector() -> None:
    """Collect cycles less often than Python's default (every 700 allocations), which is
    tuned for small scripts: a history read allocates hundreds of thousands of tuples and
    would otherwise pay for dozens of full collections. Objects alive after start-up are
    frozen out of collection altogether."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class LabdeckApp:
    """The outermost ASGI callable: lifespan, then who is asking, then MLflow RPC, the
    gateway, the notebook proxy or the web app by path."""

    def __init__(self, platform: Platform, rpc: RpcRouter, web: Any, gateway: Gateway, notebooks: NotebookProxy):
        self.platform = platform
        self.rpc = rpc
        self.web = web
        self.gateway = gateway
        self.notebooks = notebooks
        self._authenticated = AuthMiddleware(self._route, platform.auth)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self._authenticated(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.rpc.owns(scope["path"]):
            await self.rpc(scope, receive, send)
        elif scope["type"] == "http" and self.gateway.owns(scope["path"]):
            await self.gateway(scope, receive, send)
        elif self.notebooks.owns(scope["path"]):  # HTTP and WebSocket
            await self.notebooks(scope, receive, send)
        else:
            await self.web(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.platform.start()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.gateway.close()
                await self.notebooks.aclose()
                await self.platform.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _plain_field(request: Request, name: str) -> Any:
    if name in request.path_params:
        return request.path_params[name]
    if name == "run_id":
        return request.query_params.get("run_id") or request.query_params.get("run_uuid")
    return request.query_params.get(name)


def guarded(endpoint: Any, guard: Guard) -> Any:
    """A plain Starlette endpoint behind the access rule it declares (MLflow error shape)."""
    need = declared(endpoint)
    if need is None:
        raise ValueError(f"{endpoint.__name__} declares no access rule")

    @functools.wraps(endpoint)  # keeps __needs__: the route table still says what it enforces
    async def checked(request: Request) -> Response:
        try:
            await guard.check(need, request.scope, lambda name: _plain_field(request, name))
        except LabdeckError as error:
            headers = {k.decode(): v.decode() for k, v in error_headers(error)}
            return Response(orjson.dumps(mlflow_body(error)), http_status(error), headers, media_type="application/json")
        return await endpoint(request)

    return checked


def create_app(settings: Settings) -> LabdeckApp:
    platform = Platform.build(settings)
    guard = platform.guard

    async def check_rpc(need: Any, request: Any) -> None:
        await guard.check(need, request.scope, request.field)

    rpc = RpcRouter(check_rpc)
    rpc.include(TrackingApi(platform.tracking, platform.artifacts, guard))
    rpc.include(ArtifactsApi(platform.artifacts, platform.tracking))
    rpc.include(RegistryApi(platform.registry, guard, platform.artifacts))

    @asynccontextmanager
    async def no_lifespan(_app: FastAPI) -> Any:
        yield  # LabdeckApp runs the lifespan; the inner app must not run its own

    async def enforce(request: Request) -> None:
        """Every /api/v1 route's declared rule, checked before it runs; none declared: refused."""
        route = request.scope.get("route")
        need = declared(getattr(route, "endpoint", None))
        if need is None:
            from labdeck.errors import PermissionDenied

            raise PermissionDenied("This route declares no access rule, so it is refused.")
        await guard.check(need, request.scope, lambda name: _plain_field(request, name))

    web = FastAPI(
        title="labdeck",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=no_lifespan,
        dependencies=[Depends(enforce)],
    )

    @needs(Public())
    async def health(request: Request) -> Response:
        """``OK`` (what probes read); with ``?detail``, JSON that also says which role
        this replica has: ``single`` (no leader election), ``leader`` or ``follower``."""
        if "detail" not in request.query_params:
            return PlainTextResponse("OK")
        leadership = platform.leadership
        detail = {"status": "OK", "role": "single", "controllers": platform.deployments.controller.reconciling}
        if leadership is not None:
            detail |= leadership.describe()
        return Response(orjson.dumps(detail), media_type="application/json")

    @needs(Public())
    async def version(_request: Request) -> PlainTextResponse:
        return PlainTextResponse(__version__)

    plain_routes = [
        ("/health", health, ["GET"]),
        ("/version", version, ["GET"]),
        *plain_artifact_routes(platform.artifacts, platform.tracking),
        *plain_registry_routes(platform.registry, platform.artifacts),
        *auth_web_routes(platform.auth, settings.auth),
        *ui_routes(settings.auth),
    ]
    for path, endpoint, methods in plain_routes:
        web.add_route(path, guarded(endpoint, guard), methods=methods, include_in_schema=False)
    v1.install_error_handlers(web)
    web.include_router(tracking_v1(RunOverview(platform.tracking.store.db), platform.auth), prefix=v1.PREFIX)
    web.include_router(registry_v1(platform.registry), prefix=v1.PREFIX)
    web.include_router(auth_v1(platform.auth, guard), prefix=v1.PREFIX)
    traffic = TrafficStats()
    web.include_router(deployments_v1(platform.deployments, guard, platform.artifacts, traffic), prefix=v1.PREFIX)
    web.include_router(workspaces_v1(platform.workspaces), prefix=v1.PREFIX)
    gateway = Gateway(
        platform.deployments.controller.routes,
        guard,
        timeout_s=settings.deployments.gateway_timeout_s,
        max_body_bytes=int(settings.deployments.max_body_mb * 1024 * 1024),
        traffic=traffic,
    )
    notebooks = NotebookProxy(platform.workspace_routes, state_of=platform.workspaces.state_of)
    return LabdeckApp(platform, rpc, web, gateway, notebooks)
