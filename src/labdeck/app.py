"""``create_app(settings)``: the ASGI application of the labdeck server.

It assembles; it does not decide. Each area contributes its routes: MLflow-compatible
endpoints go on the shared ``RpcRouter`` (plain ASGI, dictionary dispatch: the hot path),
everything else on the Starlette/FastAPI app. The lifespan is the only place where things
start (migrations, the database writer) and stop.
"""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from labdeck import __version__
from labdeck.artifacts.api import ArtifactsApi, plain_artifact_routes
from labdeck.artifacts.factory import open_artifact_store
from labdeck.artifacts.store import ArtifactStore
from labdeck.config import Settings
from labdeck.db import Database
from labdeck.registry.api import RegistryApi, plain_registry_routes
from labdeck.registry.service import RegistryService
from labdeck.registry.store import SqlRegistryStore
from labdeck.registry.v1 import router as registry_v1
from labdeck.tracking.api import TrackingApi
from labdeck.tracking.logged_models import SqlLoggedModelStore
from labdeck.tracking.service import TrackingService
from labdeck.tracking.store import SqlTrackingStore
from labdeck.wire import v1
from labdeck.wire.mlflow_rpc import RpcRouter
from labdeck.wire.types import Receive, Scope, Send

log = logging.getLogger(__name__)


@dataclass
class Platform:
    """Every long-lived part of one server process, built without I/O."""

    settings: Settings
    db: Database
    artifacts: ArtifactStore
    tracking: TrackingService
    registry: RegistryService

    @classmethod
    def build(cls, settings: Settings) -> Platform:
        db = Database(
            settings.database_url,
            pool_size=settings.database.pool_size,
            group_commit_max=settings.database.group_commit_max,
        )
        tracking = TrackingService(SqlTrackingStore(db), SqlLoggedModelStore(db))
        registry = RegistryService(SqlRegistryStore(db), tracking)
        return cls(
            settings=settings, db=db, artifacts=open_artifact_store(settings), tracking=tracking, registry=registry
        )

    async def start(self) -> None:
        await to_thread.run_sync(self.db.migrate)
        self.db.start()
        _tune_garbage_collector()
        log.info(
            "labdeck ready",
            extra={"database": _redact(self.settings.database_url), "artifacts": self.artifacts.root_uri},
        )

    async def stop(self) -> None:
        await self.artifacts.close()
        await to_thread.run_sync(self.db.close)


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
    """The outermost ASGI callable: lifespan, then MLflow RPC or the web app by path."""

    def __init__(self, platform: Platform, rpc: RpcRouter, web: Any):
        self.platform = platform
        self.rpc = rpc
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and self.rpc.owns(scope["path"]):
            await self.rpc(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
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
                await self.platform.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings) -> LabdeckApp:
    platform = Platform.build(settings)
    rpc = RpcRouter()
    rpc.include(TrackingApi(platform.tracking, platform.artifacts))
    rpc.include(ArtifactsApi(platform.artifacts, platform.tracking))
    rpc.include(RegistryApi(platform.registry))

    @asynccontextmanager
    async def no_lifespan(_app: FastAPI) -> Any:
        yield  # LabdeckApp runs the lifespan; the inner app must not run its own

    web = FastAPI(
        title="labdeck",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=no_lifespan,
    )

    async def health(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("OK")

    async def version(_request: Request) -> PlainTextResponse:
        return PlainTextResponse(__version__)

    web.add_route("/health", health, methods=["GET"], include_in_schema=False)
    web.add_route("/version", version, methods=["GET"], include_in_schema=False)
    plain_routes = [
        *plain_artifact_routes(platform.artifacts, platform.tracking),
        *plain_registry_routes(platform.registry, platform.artifacts),
    ]
    for path, endpoint, methods in plain_routes:
        web.add_route(path, endpoint, methods=methods, include_in_schema=False)
    v1.install_error_handlers(web)
    web.include_router(registry_v1(platform.registry), prefix=v1.PREFIX)
    return LabdeckApp(platform, rpc, web)
