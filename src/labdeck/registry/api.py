"""MLflow's model registry REST endpoints (``mlflow.ModelRegistryService``) as thin
adapters over ``RegistryService``, plus ``/model-versions/get-artifact`` (a version's file,
as MLflow's UI fetches it)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from labdeck.artifacts.api import file_under
from labdeck.artifacts.store import ArtifactStore
from labdeck.registry import wire
from labdeck.registry.service import RegistryService
from labdeck.auth.guard import Guard, principal_of
from labdeck.auth.needs import EDIT, MANAGE, READ, On, SignedIn, needs
from labdeck.wire.mlflow_rpc import RpcRequest, rpc

DEFAULT_MODEL_SEARCH_RESULTS = 100
DEFAULT_VERSION_SEARCH_RESULTS = 200_000


def actor(req: RpcRequest) -> str | None:
    """Who is asking: the username history records and versions are attributed to."""
    return principal_of(req.scope).username


def _page(key: str, items: list[Any], token: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if items:
        out[key] = items
    if token:
        out["next_page_token"] = token
    return out


class RegistryApi:
    def __init__(self, service: RegistryService, guard: Guard, artifacts: ArtifactStore | None = None):
        self.service = service
        self.guard = guard
        self.artifacts = artifacts

    async def _check_source(self, req: RpcRequest) -> None:
        """A version's files are served to everyone who may read its model, so whoever
        creates it must be able to read what it copies."""
        for kind, value in (("run", req.str("run_id")), ("logged_model", req.str("model_id"))):
            if value:
                await self.guard.check(On(kind, READ, "id"), req.scope, lambda _, v=value: v)
        await self.guard.check_source(req.scope, req.str("source", required=True), self.artifacts)

    async def _visible(self, req: RpcRequest) -> dict[str, frozenset[int] | None]:
        visible = await self.guard.auth.visibility(principal_of(req.scope), "registered_model")
        return {
            "only": None if visible.only is None else frozenset(int(k) for k in visible.only),
            "hidden": None if visible.hidden is None else frozenset(int(k) for k in visible.hidden),
        }

    # ------------------------------------------------------------------ registered models

    @rpc("POST", "/mlflow/registered-models/create", needs=SignedIn(write=True))
    async def create_model(self, req: RpcRequest) -> dict[str, Any]:
        model = await self.service.create_model(
            req.str("name", required=True), req.obj_list("tags"), req.str("description"), actor(req)
        )
        key = await self.guard.model_key(model.name)
        await self.guard.auth.record_owner(principal_of(req.scope), "registered_model", key)
        return {"registered_model": wire.registered_model(model)}

    @rpc("POST", "/mlflow/registered-models/rename", needs=On("model", MANAGE))
    async def rename_model(self, req: RpcRequest) -> dict[str, Any]:
        model = await self.service.rename_model(
            req.str("name", required=True),
            req.str("new_name", required=True),
            actor(req),
        )
        return {"registered_model": wire.registered_model(model)}

    @rpc("PATCH", "/mlflow/registered-models/update", needs=On("model", EDIT))
    async def update_model(self, req: RpcRequest) -> dict[str, Any]:
        model = await self.service.update_model(req.str("name", required=True), req.str("description"))
        return {"registered_model": wire.registered_model(model)}

    @rpc("DELETE", "/mlflow/registered-models/delete", needs=On("model", MANAGE))
    async def delete_model(self, req: RpcRequest) -> dict[str, Any]:
        name = req.str("name", required=True)
        key = await self.guard.model_key(name)
        await self.service.delete_model(name)
        await self.guard.auth.forget("registered_model", key)
        return {}

    @rpc("GET", "/mlflow/registered-models/get", needs=On("model", READ))
    async def get_model(self, req: RpcRequest) -> dict[str, Any]:
        model = await self.service.get_model(req.str("name", required=True))
        return {"registered_model": wire.registered_model(model)}

    @rpc("GET", "/mlflow/registered-models/search", needs=SignedIn())
    async def search_models(self, req: RpcRequest) -> dict[str, Any]:
        page = await self.service.search_models(
            req.str("filter"),
            req.int("max_results", default=DEFAULT_MODEL_SEARCH_RESULTS),
            req.str_list("order_by"),
            req.str("page_token"),
            **await self._visible(req),
        )
        return _page("registered_models", [wire.registered_model(m) for m in page.items], page.next_page_token)

    @rpc("POST", "/mlflow/registered-models/get-latest-versions", needs=On("model", READ))
    @rpc("GET", "/mlflow/registered-models/get-latest-versions", needs=On("model", READ))
    async def latest_versions(self, req: RpcRequest) -> dict[str, Any]:
        versions = await self.service.latest_versions(req.str("name", required=True), req.str_list("stages"))
        return _page("model_versions", [wire.model_version(v) for v in versions], None)

    @rpc("POST", "/mlflow/registered-models/set-tag", needs=On("model", EDIT))
    async def set_model_tag(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.set_model_tag(
            req.str("name", required=True),
            req.str("key", required=True),
            req.str("value"),
        )
        return {}

    @rpc("DELETE", "/mlflow/registered-models/delete-tag", needs=On("model", EDIT))
    async def delete_model_tag(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.delete_model_tag(req.str("name", required=True), req.str("key", required=True))
        return {}

    @rpc("POST", "/mlflow/registered-models/alias", needs=On("model", EDIT))
    async def set_alias(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.set_alias(
            req.str("name", required=True),
            req.str("alias", required=True),
            req.str("version", required=True),
            actor(req),
        )
        return {}

    @rpc("DELETE", "/mlflow/registered-models/alias", needs=On("model", EDIT))
    async def delete_alias(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.delete_alias(
            req.str("name", required=True),
            req.str("alias", required=True),
            actor(req),
        )
        return {}

    @rpc("GET", "/mlflow/registered-models/alias", needs=On("model", READ))
    async def version_by_alias(self, req: RpcRequest) -> dict[str, Any]:
        version = await self.service.version_by_alias(
            req.str("name", required=True),
            req.str("alias", required=True),
        )
        return {"model_version": wire.model_version(version)}

    # ------------------------------------------------------------------ model versions

    @rpc("POST", "/mlflow/model-versions/create", needs=On("model", EDIT))  # and READ on the source
    async def create_version(self, req: RpcRequest) -> dict[str, Any]:
        await self._check_source(req)
        version = await self.service.create_version(
            req.str("name", required=True),
            req.str("source", required=True),
            req.str("run_id"),
            req.obj_list("tags"),
            req.str("run_link"),
            req.str("description"),
            req.str("model_id"),
            actor(req),
        )
        return {"model_version": wire.model_version(version)}

    @rpc("PATCH", "/mlflow/model-versions/update", needs=On("model", EDIT))
    async def update_version(self, req: RpcRequest) -> dict[str, Any]:
        version = await self.service.update_version(
            req.str("name", required=True),
            req.str("version", required=True),
            req.str("description"),
        )
        return {"model_version": wire.model_version(version)}

    @rpc("POST", "/mlflow/model-versions/transition-stage", needs=On("model", EDIT))
    async def transition_stage(self, req: RpcRequest) -> dict[str, Any]:
        version = await self.service.transition_stage(
            req.str("name", required=True),
            req.str("version", required=True),
            req.str("stage", required=True),
            req.bool("archive_existing_versions", default=False),
            actor(req),
        )
        return {"model_version": wire.model_version(version)}

    @rpc("DELETE", "/mlflow/model-versions/delete", needs=On("model", MANAGE))
    async def delete_version(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.delete_version(
            req.str("name", required=True),
            req.str("version", required=True),
            actor(req),
        )
        return {}

    @rpc("GET", "/mlflow/model-versions/get", needs=On("model", READ))
    async def get_version(self, req: RpcRequest) -> dict[str, Any]:
        version = await self.service.get_version(
            req.str("name", required=True),
            req.str("version", required=True),
        )
        return {"model_version": wire.model_version(version)}

    @rpc("GET", "/mlflow/model-versions/search", needs=SignedIn())
    async def search_versions(self, req: RpcRequest) -> dict[str, Any]:
        page = await self.service.search_versions(
            req.str("filter"),
            req.int("max_results", default=DEFAULT_VERSION_SEARCH_RESULTS),
            req.str_list("order_by"),
            req.str("page_token"),
            **await self._visible(req),
        )
        return _page("model_versions", [wire.model_version(v) for v in page.items], page.next_page_token)

    @rpc("GET", "/mlflow/model-versions/get-download-uri", needs=On("model", READ))
    async def download_uri(self, req: RpcRequest) -> dict[str, Any]:
        uri = await self.service.download_uri(req.str("name", required=True), req.str("version", required=True))
        return {"artifact_uri": uri}

    @rpc("POST", "/mlflow/model-versions/set-tag", needs=On("model", EDIT))
    async def set_version_tag(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.set_version_tag(
            req.str("name", required=True),
            req.str("version", required=True),
            req.str("key", required=True),
            req.str("value"),
        )
        return {}

    @rpc("DELETE", "/mlflow/model-versions/delete-tag", needs=On("model", EDIT))
    async def delete_version_tag(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.delete_version_tag(
            req.str("name", required=True),
            req.str("version", required=True),
            req.str("key", required=True),
        )
        return {}


def plain_registry_routes(service: RegistryService, store: ArtifactStore) -> list[tuple[str, Any, list[str]]]:
    """``GET /model-versions/get-artifact?name=&version=&path=``: one file of a version."""

    @needs(On("model", READ, "name"))
    async def get_artifact(request: Request) -> Response:
        query = request.query_params
        return await file_under(store, request, lambda: service.download_uri(query.get("name"), query.get("version")))

    return [("/model-versions/get-artifact", get_artifact, ["GET"])]
