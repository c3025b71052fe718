"""Registry entities as MLflow's JSON (``model_registry.proto``): versions as strings,
timestamps as numbers, empty fields left out."""

from __future__ import annotations

from typing import Any

from labdeck.registry.entities import HistoryEvent, ModelVersion, RegisteredModel


def _pairs(items: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in items.items()]


def model_version(mv: ModelVersion) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": mv.name,
        "version": str(mv.version),
        "creation_timestamp": mv.creation_timestamp,
        "last_updated_timestamp": mv.last_updated_timestamp,
        "current_stage": mv.current_stage,
        "source": mv.source,
        "status": mv.status,
    }
    for key in ("description", "user_id", "run_id", "run_link", "status_message", "model_id"):
        value = getattr(mv, key)
        if value:
            out[key] = value
    if mv.tags:
        out["tags"] = _pairs(mv.tags)
    if mv.aliases:
        out["aliases"] = list(mv.aliases)
    return out


def registered_model(m: RegisteredModel) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": m.name,
        "creation_timestamp": m.creation_timestamp,
        "last_updated_timestamp": m.last_updated_timestamp,
    }
    if m.description:
        out["description"] = m.description
    if m.user_id:
        out["user_id"] = m.user_id
    if m.latest_versions:
        out["latest_versions"] = [model_version(v) for v in m.latest_versions]
    if m.tags:
        out["tags"] = _pairs(m.tags)
    if m.aliases:
        out["aliases"] = [{"alias": a, "version": str(v)} for a, v in m.aliases.items()]
    return out


def history_event(e: HistoryEvent) -> dict[str, Any]:
    return {
        key: value
        for key, value in (
            ("event_id", e.event_id),
            ("model", e.model),
            ("timestamp", e.timestamp),
            ("actor", e.actor),
            ("kind", e.kind),
            ("alias", e.alias),
            ("version", e.version),
            ("from_version", e.from_version),
            ("to_version", e.to_version),
            ("from_stage", e.from_stage),
            ("to_stage", e.to_stage),
            ("from_name", e.from_name),
            ("to_name", e.to_name),
            ("deployment", e.deployment),
        )
        if value is not None
    }
