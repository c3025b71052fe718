"""The registry's part of labdeck's own API: the history of a model's aliases and stages
(who moved what, when), which MLflow does not keep."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from labdeck.auth.needs import READ, On, needs
from labdeck.registry import wire
from labdeck.registry.service import MAX_HISTORY_EVENTS, RegistryService


def router(service: RegistryService) -> APIRouter:
    routes = APIRouter(tags=["models"])

    @routes.get("/models/{name}/history", summary="Alias moves, stage changes and versions of a model, newest first")
    @needs(On("model", READ, "name"))
    async def model_history(
        name: str,
        limit: int = Query(100, ge=1, le=MAX_HISTORY_EVENTS, description="Most events to return."),
        before: int | None = Query(
            None, ge=1, description="Only events older than this event id: the `next_before` of the previous page."
        ),
    ) -> dict[str, Any]:
        events, next_before = await service.history(name, limit, before)
        out: dict[str, Any] = {"events": [wire.history_event(e) for e in events]}
        if next_before is not None:
            out["next_before"] = next_before
        return out

    return routes
