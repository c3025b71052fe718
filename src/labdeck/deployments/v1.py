"""Deployments in labdeck's own API: ``/api/v1/deployments``.

A document is sent as JSON or YAML (``Content-Type: application/yaml``): a ModelDeployment
or a SeldonDeployment as it is. Creating needs READ on every model the document names;
the creator owns the deployment (MANAGE); changing it needs EDIT, deleting MANAGE, and
reading its status, events, logs and live request metrics READ.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request

from labdeck.artifacts.store import ArtifactStore
from labdeck.auth.guard import Guard, principal_of
from labdeck.auth.needs import EDIT, MANAGE, READ, On, SignedIn, needs
from labdeck.deployments.entities import Deployment, Event, PredictorStatus, Revision
from labdeck.deployments.service import MAX_EVENTS, MAX_LOG_LINES, DeploymentService, Submitted, model_problem, parse_document
from labdeck.deployments.spec import json_schema
from labdeck.deployments.traffic import TrafficStats
from labdeck.errors import InvalidParameter, NotFound

RECENT_EVENTS = 10


def revision_json(revision: Revision | None) -> dict[str, Any] | None:
    if revision is None:
        return None
    return {"revision": revision.revision_id, "model": revision.model_uri, "version": revision.version, "location": revision.location}


def predictor_json(deployment: Deployment, name: str, status: PredictorStatus | None) -> dict[str, Any]:
    spec = next(p for p in deployment.spec.spec.predictors if p.name == name)
    out: dict[str, Any] = {
        "name": name,
        "model": spec.model,
        "traffic": deployment.spec.traffic(spec),
        "shadow": spec.shadow,
        "desired_replicas": spec.replicas,
    }
    if status is None:
        return out | {"state": "PENDING", "ready_replicas": 0, "serving": None, "target": None, "message": None, "replicas": []}
    return out | {
        "state": status.state.value,
        "ready_replicas": status.ready_replicas,
        "serving": revision_json(status.serving),
        "target": revision_json(status.target),
        "message": status.message,
        "replicas": [
            {
                "id": r["id"],
                "state": r["state"],
                "revision": r["revision"],
                "http": r["endpoints"].get("http"),
                "grpc": r["endpoints"].get("grpc"),
                "pid": r["pid"],
                "restarts": r["restarts"],
                "started_at": r["started_at"],
                "message": r["message"],
            }
            for r in status.replicas
        ],
    }


def deployment_json(d: Deployment, events: list[Event] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": d.name,
        "namespace": d.namespace,
        "kind": d.source_kind,
        "generation": d.generation,
        "state": d.state.value,
        "message": d.message,
        "created_by": d.created_by,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "endpoints": {
            "v2": f"/deployments/{d.name}/v2/models/{d.name}/infer",
            "seldon": f"/seldon/{d.namespace}/{d.name}/api/v1.0/predictions",
            "mlflow": f"/deployments/{d.name}/invocations",
        },
        "predictors": [predictor_json(d, p.name, d.predictor(p.name)) for p in d.spec.spec.predictors],
        "spec": d.spec.document(),
    }
    if events is not None:
        out["events"] = [event_json(e) for e in events]
    return out


def event_json(e: Event) -> dict[str, Any]:
    return {"id": e.event_id, "at": e.at, "predictor": e.predictor, "kind": e.kind, "message": e.message}


async def _document(request: Request) -> Submitted:
    body = await request.body()
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    try:
        if content_type in ("application/yaml", "application/x-yaml", "text/yaml"):
            import yaml

            document = yaml.safe_load(body)
        else:
            document = orjson.loads(body)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidParameter(f"The body is not valid {'YAML' if 'yaml' in content_type else 'JSON'}: {exc}") from None
    except Exception as exc:  # yaml's own errors (a ScannerError, ...) carry the line and column
        raise InvalidParameter(f"The body is not valid YAML: {exc}") from None
    return parse_document(document)


def router(
    service: DeploymentService, guard: Guard, artifacts: ArtifactStore, traffic: TrafficStats | None = None
) -> APIRouter:
    routes = APIRouter(tags=["deployments"])
    traffic = traffic or TrafficStats()

    async def check_models(request: Request, submitted: Submitted) -> None:
        """READ on every model the document names. A model that does not exist is bad
        input, named by its field, as the service says it for callers the guard lets by."""
        for i, predictor in enumerate(submitted.spec.spec.predictors):
            try:
                await guard.check_source(request.scope, predictor.model, artifacts)
            except NotFound as error:
                raise model_problem(submitted, i, error.message) from None

    @routes.get("/deployments", summary="The deployments you may read")
    @needs(SignedIn())
    async def list_deployments(request: Request) -> dict[str, Any]:
        visible = await guard.auth.visibility(principal_of(request.scope), "deployment")
        found = [d for d in await service.all() if visible.allows(d.name)]
        return {"deployments": [deployment_json(d) for d in found]}

    @routes.get("/deployments/schema", summary="The JSON schema of a ModelDeployment")
    @needs(SignedIn())
    async def schema() -> dict[str, Any]:
        return json_schema()

    @routes.post("/deployments", status_code=201, summary="Deploy (a ModelDeployment or SeldonDeployment, JSON or YAML)")
    @needs(SignedIn(write=True))
    async def create(request: Request) -> dict[str, Any]:
        submitted = await _document(request)
        await check_models(request, submitted)
        principal = principal_of(request.scope)
        deployment = await service.create(submitted, principal.username)
        # Grants are kept by name: those of an earlier deployment of this name go now, not
        # when it was deleted (its owner still reads it while its replicas stop).
        await guard.auth.forget("deployment", deployment.name)
        await guard.auth.record_owner(principal, "deployment", deployment.name)
        return deployment_json(deployment)

    @routes.get("/deployments/{name}", summary="A deployment: spec, status per predictor, recent events")
    @needs(On("deployment", READ, "name"))
    async def get(name: str) -> dict[str, Any]:
        return deployment_json(await service.get(name), await service.events(name, RECENT_EVENTS))

    @routes.put("/deployments/{name}", summary="Change a deployment (rolls out what changed)")
    @needs(On("deployment", EDIT, "name"))
    async def replace(name: str, request: Request) -> dict[str, Any]:
        submitted = await _document(request)
        await check_models(request, submitted)
        return deployment_json(await service.replace(name, submitted))

    @routes.delete("/deployments/{name}", summary="Stop and remove a deployment")
    @needs(On("deployment", MANAGE, "name"))
    async def delete(name: str) -> dict[str, Any]:
        deleted = deployment_json(await service.delete(name))
        traffic.forget(name)  # a later deployment of this name starts with empty charts
        return deleted

    @routes.get("/deployments/{name}/events", summary="What happened to a deployment, oldest first")
    @needs(On("deployment", READ, "name"))
    async def events(name: str, limit: int = Query(100, ge=1, le=MAX_EVENTS)) -> dict[str, Any]:
        return {"events": [event_json(e) for e in await service.events(name, limit)]}

    @routes.get("/deployments/{name}/logs", summary="The model servers' output, by predictor and replica")
    @needs(On("deployment", READ, "name"))
    async def logs(name: str, tail: int = Query(200, ge=1, le=MAX_LOG_LINES)) -> dict[str, Any]:
        return {"predictors": await service.logs(name, tail)}

    @routes.get(
        "/deployments/{name}/metrics",
        summary="Requests per second, failures and mean latency through this server's gateway, oldest second first",
    )
    @needs(On("deployment", READ, "name"))
    async def metrics(
        name: str,
        seconds: int = Query(120, ge=1, le=traffic.window_s, description="How many of the last seconds to return."),
    ) -> dict[str, Any]:
        await service.get(name)  # an unknown name is a 404, not an empty chart
        return traffic.series(name, seconds)

    return routes
