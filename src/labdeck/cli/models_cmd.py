"""``labdeck models``: the registry from the command line (list, show, versions, aliases,
history), over the same REST API the mlflow client uses."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import click

from labdeck.cli.client import ServerClient, client_options, emit


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else ""


def _aliases(model: dict[str, Any]) -> str:
    return ", ".join(f"{a['alias']}=v{a['version']}" for a in model.get("aliases", []))


@click.group()
def models() -> None:
    """Registered models, their versions, aliases and history."""


@models.command("list")
@click.option("--filter", "filter_string", help="MLflow search filter, e.g. \"name LIKE 'churn%'\".")
@click.option("--max-results", default=100, show_default=True, type=click.IntRange(1, 1000))
@client_options
def list_models(filter_string: str | None, max_results: int, url: str, token: str | None, as_json: bool) -> None:
    """List registered models."""
    params: dict[str, Any] = {"max_results": max_results}
    if filter_string:
        params["filter"] = filter_string
    found = ServerClient(url, token).mlflow("GET", "registered-models/search", params=params).get("registered_models", [])
    rows = [
        [m["name"], max((int(v["version"]) for v in m.get("latest_versions", [])), default=""), _aliases(m), _when(m["last_updated_timestamp"])]
        for m in found
    ]
    emit(found, as_json, rows, ["NAME", "LATEST", "ALIASES", "UPDATED"])


@models.command("show")
@click.argument("name")
@client_options
def show(name: str, url: str, token: str | None, as_json: bool) -> None:
    """Show one registered model."""
    model = ServerClient(url, token).mlflow("GET", "registered-models/get", params={"name": name})["registered_model"]
    rows = [
        ["name", model["name"]],
        ["description", model.get("description", "")],
        ["aliases", _aliases(model)],
        ["tags", ", ".join(f"{t['key']}={t['value']}" for t in model.get("tags", []))],
        ["latest", ", ".join(f"v{v['version']} ({v['current_stage']})" for v in model.get("latest_versions", []))],
        ["created", _when(model["creation_timestamp"])],
        ["updated", _when(model["last_updated_timestamp"])],
    ]
    emit(model, as_json, rows, ["FIELD", "VALUE"])


@models.command("versions")
@click.argument("name")
@client_options
def versions(name: str, url: str, token: str | None, as_json: bool) -> None:
    """List a model's versions, newest first."""
    client = ServerClient(url, token)
    client.mlflow("GET", "registered-models/get", params={"name": name})  # an unknown model is an error, not "(none)"
    quoted = name.replace("'", "''")
    params: dict[str, Any] = {"filter": f"name = '{quoted}'", "order_by": ["version_number DESC"], "max_results": 1000}
    found: list[dict[str, Any]] = []
    while True:
        page = client.mlflow("GET", "model-versions/search", params=params)
        found.extend(page.get("model_versions", []))
        if not page.get("next_page_token"):
            break
        params["page_token"] = page["next_page_token"]
    rows = [
        [v["version"], v["current_stage"], ", ".join(v.get("aliases", [])), v.get("run_id", ""), v["source"], _when(v["creation_timestamp"])]
        for v in found
    ]
    emit(found, as_json, rows, ["VERSION", "STAGE", "ALIASES", "RUN", "SOURCE", "CREATED"])


@models.group()
def alias() -> None:
    """Point an alias at a version, or remove it."""


@alias.command("set")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.argument("version")
@client_options
def alias_set(name: str, alias_name: str, version: str, url: str, token: str | None, as_json: bool) -> None:
    """Point ALIAS of model NAME at VERSION (models:/NAME@ALIAS)."""
    ServerClient(url, token).mlflow("POST", "registered-models/alias", json={"name": name, "alias": alias_name, "version": version})
    emit({"name": name, "alias": alias_name, "version": version}, as_json, [[name, alias_name, version]], ["MODEL", "ALIAS", "VERSION"])


@alias.command("delete")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@client_options
def alias_delete(name: str, alias_name: str, url: str, token: str | None, as_json: bool) -> None:
    """Remove ALIAS from model NAME."""
    ServerClient(url, token).mlflow("DELETE", "registered-models/alias", json={"name": name, "alias": alias_name})
    emit({"name": name, "alias": alias_name, "deleted": True}, as_json, [[name, alias_name, "deleted"]], ["MODEL", "ALIAS", ""])


def _describe(event: dict[str, Any]) -> str:
    kind = event["kind"]
    if kind == "ALIAS_SET":
        before = f"v{event['from_version']}" if "from_version" in event else "(new)"
        return f"@{event['alias']}: {before} -> v{event['to_version']}"
    if kind == "ALIAS_DELETED":
        return f"@{event['alias']} removed (was v{event['from_version']})"
    if kind == "STAGE_CHANGED":
        return f"v{event['version']}: {event['from_stage']} -> {event['to_stage']}"
    if kind == "RENAMED":
        return f"renamed {event['from_name']} -> {event['to_name']}"
    return f"v{event['version']}"


@models.command("history")
@click.argument("name")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--before", type=click.IntRange(min=1), help="Only events older than this event id (the next page).")
@client_options
def history(name: str, limit: int, before: int | None, url: str, token: str | None, as_json: bool) -> None:
    """Every alias move, stage change and version of a model: who, when, what."""
    params: dict[str, Any] = {"limit": limit}
    if before is not None:
        params["before"] = before
    found = ServerClient(url, token).call("GET", f"/api/v1/models/{quote(name, safe='')}/history", params=params)
    rows = [[e["event_id"], _when(e["timestamp"]), e.get("actor", ""), e["kind"], _describe(e)] for e in found["events"]]
    emit(found, as_json, rows, ["EVENT", "WHEN", "WHO", "KIND", "CHANGE"])
    if not as_json and "next_before" in found:
        click.echo(f"(older events: --before {found['next_before']})", err=True)
