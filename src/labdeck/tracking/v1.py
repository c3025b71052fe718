"""Tracking's part of labdeck's own API: what the UI's runs table and charts need beyond MLflow's.

``GET /experiments/{id}/columns``            the param/metric/tag keys of its active runs
``GET /experiments/run-counts``              active runs per experiment (those the caller may read)
``GET /runs/{id}/metric-history?key=``        a metric's history down-sampled for a chart (a key in the
                                             query, since metric keys may hold slashes)
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from labdeck.auth.guard import principal_of
from labdeck.auth.needs import READ, On, SignedIn, needs
from labdeck.auth.service import AuthService
from labdeck.tracking.overview import MAX_POINTS, MIN_POINTS, RunOverview


def router(overview: RunOverview, auth: AuthService) -> APIRouter:
    routes = APIRouter(tags=["tracking"])

    @routes.get("/experiments/run-counts", summary="How many active runs each experiment has")
    @needs(SignedIn())
    async def run_counts(
        request: Request,
        experiment_ids: list[str] = Query(
            ..., description="Experiments to count; those you may not read are left out."
        ),
    ) -> dict[str, Any]:
        counts = await overview.run_counts(experiment_ids)
        visible = await auth.visibility(principal_of(request.scope), "experiment")
        return {"run_counts": {e: n for e, n in counts.items() if visible.allows(e)}}

    @routes.get(
        "/experiments/{experiment_id}/columns",
        summary="The param, metric and tag keys of an experiment's runs",
    )
    @needs(On("experiment", READ, "experiment_id"))
    async def columns(experiment_id: str) -> dict[str, Any]:
        found = await overview.columns(experiment_id)
        return {
            "params": found.params,
            "metrics": found.metrics,
            "tags": found.tags,
            "run_count": found.run_count,
        }

    @routes.get(
        "/runs/{run_id}/metric-history",
        summary="A metric's history for a chart: every point, or each bucket's min and max",
    )
    @needs(On("run", READ, "run_id"))
    async def sampled_history(
        run_id: str,
        key: str = Query(..., min_length=1, description="The metric's key."),
        max_points: int = Query(1500, description=f"Most points to return ({MIN_POINTS} to {MAX_POINTS})."),
    ) -> Response:
        history = await overview.sampled_history(run_id, key, max_points)
        out: dict[str, Any] = {
            "run_id": run_id,
            "key": key,
            "total_count": history.total_count,
            "downsampled": history.buckets is not None,
            "points": [{"step": p.step, "timestamp": p.timestamp, "value": p.value} for p in history.points],
        }
        if history.buckets is not None:
            out["buckets"] = [
                {
                    "first_step": b.first_step,
                    "last_step": b.last_step,
                    "count": b.count,
                    "min": b.min,
                    "max": b.max,
                }
                for b in history.buckets
            ]
        # encoded by orjson directly: FastAPI's generic encoder walks thousands of small dicts slowly
        return Response(orjson.dumps(out), media_type="application/json")

    return routes
