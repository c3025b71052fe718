"""The registry's part of labdeck's own API: the history of a model's aliases and stages
(who moved what, when), which MLflow does not keep."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from labdeck.registry import wire
from labdeck.registry.service import RegistryService


def router(service: RegistryService) -> APIRouter:
    routes = APIRouter(tags=["models"])

    @routes.get("/models/{name}/history", summary="Alias moves, stage changes and versions of a model, newest first")
    async def model_history(
        name: str,
        limit: int = Query(100, ge=1, le=1000, description="Most events to return."),
        before: int | None = Query(None, description="Only events older than this event id (to page back)."),
    ) -> dict[str, Any]:
        events = await service.history(name, limit, before)
        out: dict[str, Any] = {"events": [wire.history_event(e) for e in events]}
        if len(events) == limit:
            out["next_before"] = events[-1].event_id
        return out

    return routes
