"""Workspaces in labdeck's own API: ``/api/v1/workspaces`` and ``/api/v1/environments``.

``POST /workspaces/<user>[/<server>]`` starts a server (202; 200 when it already runs or
starts), ``DELETE`` stops it (202), ``GET`` says where it stands (progress while starting,
the reason of a failure, recent events); ``GET /workspaces`` lists the caller's servers
(``?all=true``: everyone's, for admins). Every route needs a signed-in caller; the hub
decides who may act on which server (the user, or an admin) and with which environment.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from labdeck.auth.guard import principal_of
from labdeck.auth.needs import SignedIn, needs
from labdeck.config import EnvironmentSettings
from labdeck.workspaces.entities import ServerState, WorkspaceEvent, WorkspaceServer
from labdeck.workspaces.environments import EnvironmentStatus
from labdeck.workspaces.hub import WorkspaceHub
from labdeck.workspaces.routes import DEFAULT_SERVER

RECENT_EVENTS = 20


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    environment: str | None = Field(None, description="The environment to run it in; empty: the default one.")


def server_json(hub: WorkspaceHub, server: WorkspaceServer, events: list[WorkspaceEvent] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "user": server.user,
        "server": server.server,
        "name": server.label,
        "environment": server.environment,
        "state": server.state.value,
        "desired": server.desired.value,
        "message": server.message,
        "progress": server.progress,
        "url": server.base_url,
        "started_at": server.started_at,
        "stopped_at": server.stopped_at,
        "last_activity": hub.last_activity(server),
    }
    if events is not None:
        out["events"] = [{"id": e.event_id, "at": e.at, "kind": e.kind, "message": e.message} for e in events]
    return out


def environment_json(env: EnvironmentSettings, status: EnvironmentStatus, default: str) -> dict[str, Any]:
    return {
        "name": env.name,
        "description": env.description,
        "spark": env.spark,
        "teams": env.teams,
        "default": env.name == default,
        "state": status.state.value,
        "message": status.message,
        "built_at": status.built_at,
    }


def router(hub: WorkspaceHub) -> APIRouter:
    routes = APIRouter(tags=["workspaces"])

    async def status(request: Request, user: str, server: str) -> dict[str, Any]:
        found = await hub.status(principal_of(request.scope), user, server)
        return server_json(hub, found, await hub.events(user, server, RECENT_EVENTS))

    async def start(request: Request, response: Response, user: str, server: str, body: StartRequest | None) -> dict[str, Any]:
        found, changed = await hub.start_server(
            principal_of(request.scope),
            user,
            server,
            body.environment if body is not None else None,
            reached_at=request.scope.get("server"),
        )
        response.status_code = 202 if changed or found.state is not ServerState.RUNNING else 200
        return server_json(hub, found)

    async def stop(request: Request, response: Response, user: str, server: str) -> dict[str, Any]:
        found = await hub.stop_server(principal_of(request.scope), user, server)
        response.status_code = 202
        return server_json(hub, found)

    @routes.get("/workspaces", summary="Your workspace servers (everyone's with all=true, for admins)")
    @needs(SignedIn())
    async def list_servers(
        request: Request, everyone: bool = Query(False, alias="all", description="Everyone's (admins only).")
    ) -> dict[str, Any]:
        found = await hub.servers(principal_of(request.scope), everyone=everyone)
        return {"workspaces": [server_json(hub, s) for s in found]}

    @routes.get("/environments", summary="The environments you may start workspaces in, with their build state")
    @needs(SignedIn())
    async def list_environments(request: Request) -> dict[str, Any]:
        default = hub.settings.workspaces.default_environment
        found = await hub.environments(principal_of(request.scope))
        return {"environments": [environment_json(env, status, default) for env, status in found]}

    @routes.get("/workspaces/{username}", summary="A user's default server: state, progress, recent events")
    @needs(SignedIn())
    async def get_default(request: Request, username: str) -> dict[str, Any]:
        return await status(request, username, DEFAULT_SERVER)

    @routes.get("/workspaces/{username}/{name}", summary="A user's named server: state, progress, recent events")
    @needs(SignedIn())
    async def get_named(request: Request, username: str, name: str) -> dict[str, Any]:
        return await status(request, username, name)

    @routes.post("/workspaces/{username}", status_code=202, summary="Start a user's default server")
    @needs(SignedIn(write=True))
    async def start_default(request: Request, response: Response, username: str, body: StartRequest | None = None) -> dict[str, Any]:
        return await start(request, response, username, DEFAULT_SERVER, body)

    @routes.post("/workspaces/{username}/{name}", status_code=202, summary="Start a user's named server")
    @needs(SignedIn(write=True))
    async def start_named(
        request: Request, response: Response, username: str, name: str, body: StartRequest | None = None
    ) -> dict[str, Any]:
        return await start(request, response, username, name, body)

    @routes.delete("/workspaces/{username}", status_code=202, summary="Stop a user's default server")
    @needs(SignedIn(write=True))
    async def stop_default(request: Request, response: Response, username: str) -> dict[str, Any]:
        return await stop(request, response, username, DEFAULT_SERVER)

    @routes.delete("/workspaces/{username}/{name}", status_code=202, summary="Stop a user's named server")
    @needs(SignedIn(write=True))
    async def stop_named(request: Request, response: Response, username: str, name: str) -> dict[str, Any]:
        return await stop(request, response, username, name)

    return routes
