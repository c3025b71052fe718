"""``labdeck deploy`` and ``labdeck deployments``: model deployments from the command line,
over ``/api/v1/deployments``.

``labdeck deploy -f iris.yaml`` sends a ModelDeployment or a SeldonDeployment (several
documents in one file deploy each); ``labdeck deploy iris --model models:/iris@production``
writes the ModelDeployment for you. Either creates the deployment or changes it (which
rolls out what changed), then waits until it serves unless ``--no-wait``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from labdeck.cli.client import ServerClient, client_options, emit

SETTLED = {"AVAILABLE"}
STUCK = {"FAILED", "DEGRADED"}


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else ""


def _path(name: str) -> str:
    return f"/api/v1/deployments/{quote(name, safe='')}"


def _documents(file: str) -> list[dict[str, Any]]:
    import yaml

    text = sys.stdin.read() if file == "-" else Path(file).read_text()
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{file} is not valid YAML: {exc}") from None
    if not documents or not all(isinstance(d, dict) for d in documents):
        raise click.ClickException(f"{file} holds no deployment (a YAML object with kind ModelDeployment or SeldonDeployment).")
    return documents


def _name_of(document: dict[str, Any]) -> str:
    name = (document.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise click.ClickException("The document has no metadata.name.")
    return name


def _summary(d: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for p in d["predictors"]:
        serving = p.get("serving") or {}
        rows.append(
            [
                d["name"], p["name"], d["state"], f"{p['ready_replicas']}/{p['desired_replicas']}",
                f"{p['traffic']}%" if not p["shadow"] else "shadow",
                serving.get("version") or "", p["model"],
            ]
        )
    return rows


HEADERS = ["DEPLOYMENT", "PREDICTOR", "STATE", "READY", "TRAFFIC", "VERSION", "MODEL"]


def _wait(client: ServerClient, name: str, generation: int, timeout: float) -> dict[str, Any]:
    """Poll until the deployment serves its current spec, or say why it does not."""
    deadline = time.monotonic() + timeout
    while True:
        d = client.call("GET", _path(name))
        settled_here = d["generation"] >= generation and all(p["target"] is None for p in d["predictors"])
        if d["state"] in SETTLED and settled_here:
            return d
        if d["state"] in STUCK and d["generation"] >= generation and d.get("message"):
            raise click.ClickException(f"deployment {name} is {d['state']}: {d['message']}")
        if time.monotonic() > deadline:
            raise click.ClickException(f"deployment {name} is still {d['state']} after {timeout:g} s: {d.get('message') or 'waiting for replicas'}")
        time.sleep(0.25)


def _submit(client: ServerClient, document: dict[str, Any]) -> dict[str, Any]:
    name = _name_of(document)
    if client.find("GET", _path(name)) is None:
        return client.call("POST", "/api/v1/deployments", json=document)
    return client.call("PUT", _path(name), json=document)


@click.command()
@click.argument("name", required=False)
@click.option("-f", "--file", "file", help="A YAML file with ModelDeployment or SeldonDeployment documents ('-': stdin).")
@click.option("--model", help="Model URI, e.g. models:/iris@production (with NAME).")
@click.option("--replicas", type=click.IntRange(1, 64), default=1, show_default=True, help="With NAME.")
@click.option("--runtime", type=click.Choice(["sklearn", "xgboost", "lightgbm", "onnx", "pyfunc"]), help="With NAME.")
@click.option("--method", help="With NAME: what predict calls, e.g. predict_proba.")
@click.option("--namespace", default="default", show_default=True, help="With NAME: the namespace in /seldon/<namespace>/<name>.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until it serves.")
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(1, 3600), help="Seconds to wait.")
@client_options
def deploy(
    name: str | None, file: str | None, model: str | None, replicas: int, runtime: str | None, method: str | None,
    namespace: str, wait: bool, timeout: float, url: str, token: str | None, as_json: bool,
) -> None:
    """Deploy a model: -f FILE, or NAME --model URI."""
    if (file is None) == (name is None):
        raise click.UsageError("Give either -f FILE or NAME --model URI.")
    if file is not None:
        documents = _documents(file)
    else:
        if not model:
            raise click.UsageError("NAME needs --model (a model URI such as models:/iris@production).")
        predictor: dict[str, Any] = {"name": "main", "model": model, "replicas": replicas}
        if runtime:
            predictor["runtime"] = runtime
        if method:
            predictor["method"] = method
        documents = [
            {
                "apiVersion": "labdeck.dev/v1",
                "kind": "ModelDeployment",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"predictors": [predictor]},
            }
        ]
    client = ServerClient(url, token)
    results = []
    for document in documents:
        submitted = _submit(client, document)
        results.append(_wait(client, submitted["name"], submitted["generation"], timeout) if wait else submitted)
    emit(results, as_json, [row for d in results for row in _summary(d)], HEADERS)


@click.group()
def deployments() -> None:
    """Model deployments: list, get, events, logs, delete."""


@deployments.command("list")
@client_options
def list_deployments(url: str, token: str | None, as_json: bool) -> None:
    """The deployments you may see."""
    found = ServerClient(url, token).call("GET", "/api/v1/deployments")["deployments"]
    emit(found, as_json, [row for d in found for row in _summary(d)], HEADERS)


@deployments.command("get")
@click.argument("name")
@client_options
def get(name: str, url: str, token: str | None, as_json: bool) -> None:
    """A deployment's status: predictors, replicas and endpoints, recent events."""
    d = ServerClient(url, token).call("GET", _path(name))
    if as_json:
        emit(d, True, [], [])
        return
    emit(d, False, _summary(d), HEADERS)
    click.echo()
    replicas = [
        [p["name"], r["id"], r["state"], r["http"] or "", r["grpc"] or "", r["restarts"], (r["message"] or "").splitlines()[0] if r["message"] else ""]
        for p in d["predictors"]
        for r in p["replicas"]
    ]
    emit(None, False, replicas, ["PREDICTOR", "REPLICA", "STATE", "HTTP", "GRPC", "RESTARTS", "MESSAGE"])
    click.echo()
    for protocol, path in d["endpoints"].items():
        click.echo(f"{protocol}: {url.rstrip('/')}{path}")
    if d.get("message"):
        click.echo(f"\n{d['message']}")
    if d.get("events"):
        click.echo()
        emit(None, False, [[_when(e["at"]), e["predictor"] or "", e["kind"], e["message"].splitlines()[0]] for e in d["events"]], ["AT", "PREDICTOR", "EVENT", "MESSAGE"])


@deployments.command("events")
@click.argument("name")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 200))
@client_options
def events(name: str, limit: int, url: str, token: str | None, as_json: bool) -> None:
    """What happened to a deployment (rollouts, failures, crashes), oldest first."""
    found = ServerClient(url, token).call("GET", f"{_path(name)}/events", params={"limit": limit})["events"]
    emit(found, as_json, [[_when(e["at"]), e["predictor"] or "", e["kind"], e["message"]] for e in found], ["AT", "PREDICTOR", "EVENT", "MESSAGE"])


@deployments.command("logs")
@click.argument("name")
@click.option("--tail", default=100, show_default=True, type=click.IntRange(1, 5000), help="Lines per replica.")
@client_options
def logs(name: str, tail: int, url: str, token: str | None, as_json: bool) -> None:
    """The model servers' output, per replica."""
    found = ServerClient(url, token).call("GET", f"{_path(name)}/logs", params={"tail": tail})["predictors"]
    if as_json:
        emit(found, True, [], [])
        return
    for predictor, replicas in found.items():
        for replica, lines in replicas.items():
            click.echo(f"==> {predictor}/{replica} <==")
            for line in lines:
                click.echo(line)


@deployments.command("delete")
@click.argument("name")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until its replicas have stopped.")
@click.option("--timeout", default=120.0, show_default=True, type=click.FloatRange(1, 3600))
@client_options
def delete(name: str, wait: bool, timeout: float, url: str, token: str | None, as_json: bool) -> None:
    """Stop and remove a deployment."""
    client = ServerClient(url, token)
    client.call("DELETE", _path(name))
    deadline = time.monotonic() + timeout
    while wait and client.find("GET", _path(name)) is not None:
        if time.monotonic() > deadline:
            raise click.ClickException(f"deployment {name} is still being deleted after {timeout:g} s")
        time.sleep(0.25)
    emit({"deleted": name}, as_json, [[name, "deleted"]], ["DEPLOYMENT", ""])
