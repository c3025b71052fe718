"""Tracking entities as MLflow's JSON: proto field names, int64 as numbers, NaN as "NaN",
and empty or unset fields left out, as MLflow's server writes them."""

from __future__ import annotations

import math
from typing import Any

from labdeck.tracking.entities import Experiment, LoggedModel, Metric, Run, RunInfo


def _double(value: float) -> Any:
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _pairs(items: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in items.items()]


def experiment(e: Experiment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "experiment_id": e.experiment_id,
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage,
        "last_update_time": e.last_update_time,
        "creation_time": e.creation_time,
    }
    if e.tags:
        out["tags"] = _pairs(e.tags)
    return out


def metric(m: Metric, *, with_run_id: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"key": m.key, "value": _double(m.value), "timestamp": m.timestamp, "step": m.step}
    if m.dataset_name:
        out["dataset_name"] = m.dataset_name
    if m.dataset_digest:
        out["dataset_digest"] = m.dataset_digest
    if m.model_id:
        out["model_id"] = m.model_id
    if (with_run_id or m.model_id) and m.run_id:
        out["run_id"] = m.run_id
    return out


def history(points: list[Metric]) -> list[dict[str, Any]]:
    """``metric(m, with_run_id=True)`` for a whole history, in one tight loop."""
    out = []
    append = out.append
    for m in points:
        value = m.value
        if value != value or value in (math.inf, -math.inf):
            value = _double(value)
        point = {"key": m.key, "value": value, "timestamp": m.timestamp, "step": m.step, "run_id": m.run_id}
        if m.model_id or m.dataset_name or m.dataset_digest:
            point = metric(m, with_run_id=True)
        append(point)
    return out


def run_info(info: RunInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "run_uuid": info.run_id,
        "run_id": info.run_id,
        "run_name": info.run_name,
        "experiment_id": info.experiment_id,
        "user_id": info.user_id,
        "status": info.status,
        "start_time": info.start_time,
        "artifact_uri": info.artifact_uri,
        "lifecycle_stage": info.lifecycle_stage,
    }
    if info.end_time is not None:
        out["end_time"] = info.end_time
    return out


def run(r: Run) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if r.metrics:
        data["metrics"] = [metric(m) for m in r.metrics]
    if r.params:
        data["params"] = _pairs(r.params)
    if r.tags:
        data["tags"] = _pairs(r.tags)
    inputs: dict[str, Any] = {}
    if r.dataset_inputs:
        inputs["dataset_inputs"] = [
            {
                **({"tags": _pairs(d.tags)} if d.tags else {}),
                "dataset": {
                    k: val
                    for k, val in (
                        ("name", d.dataset.name),
                        ("digest", d.dataset.digest),
                        ("source_type", d.dataset.source_type),
                        ("source", d.dataset.source),
                        ("schema", d.dataset.schema),
                        ("profile", d.dataset.profile),
                    )
                    if val is not None
                },
            }
            for d in r.dataset_inputs
        ]
    if r.model_inputs:
        inputs["model_inputs"] = [{"model_id": m} for m in r.model_inputs]
    out: dict[str, Any] = {"info": run_info(r.info), "data": data, "inputs": inputs}
    if r.model_outputs:
        out["outputs"] = {"model_outputs": [{"model_id": m, "step": s} for m, s in r.model_outputs]}
    return out


def logged_model(m: LoggedModel) -> dict[str, Any]:
    info: dict[str, Any] = {
        "model_id": m.model_id,
        "experiment_id": m.experiment_id,
        "name": m.name,
        "creation_timestamp_ms": m.creation_timestamp_ms,
        "last_updated_timestamp_ms": m.last_updated_timestamp_ms,
        "artifact_uri": m.artifact_location,
        "status": m.status,
    }
    for key in ("creator_id", "model_type", "source_run_id", "status_message"):
        value = getattr(m, key)
        if value:
            info[key] = value
    if m.tags:
        info["tags"] = _pairs(m.tags)
    data: dict[str, Any] = {}
    if m.params:
        data["params"] = _pairs(m.params)
    if m.metrics:
        data["metrics"] = [metric(x) for x in m.metrics]
    return {"info": info, "data": data}
