"""How a predictor becomes a ``Workload``: the model server's command line, ports,
environment, resources and labels, decided in one place.

The controller uses it with models resolved through the registry (``revision_of`` with the
location and version it found); ``labdeck k8s render`` uses it without a database, with
each model URI passed on as written (``labdeck serve`` resolves ``models:/`` and ``runs:/``
itself, through ``MLFLOW_TRACKING_URI``). Both therefore run exactly the same model server.
Nothing here touches storage, the registry or a compute backend.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labdeck.compute.workload import Resources, Workload
from labdeck.deployments.entities import Revision
from labdeck.deployments.spec import ModelDeployment, Predictor

WORKLOAD_PREFIX = "md-"  # model deployments' workloads, among everything a backend runs
CONTAINER_PORTS = {"http": 9000, "grpc": 9001}
# where a model server in a pod keeps its downloads (an emptyDir) when nothing else says
POD_CACHE_DIR = "/var/cache/labdeck/models"


def workload_name(deployment: str, predictor: str) -> str:
    return f"{WORKLOAD_PREFIX}{deployment}-{predictor}"


def revision_of(predictor: Predictor, location: str, version: str | None) -> Revision:
    """The revision serving ``location`` (and registry ``version``) the way ``predictor``
    says; its id is a digest of everything that changes what runs."""
    settings = {
        "method": predictor.method,
        "batching": predictor.batching.model_dump() if predictor.batching else None,
        "compile": predictor.compile,
        "workers": predictor.workers,
        "env": predictor.env,
        "resources": predictor.resources.model_dump(),
    }
    digest = hashlib.sha256(
        json.dumps([location, version, predictor.runtime, settings], sort_keys=True).encode()
    ).hexdigest()[:16]
    return Revision(digest, predictor.model, location, version, predictor.runtime, settings)


def predictor_workload(
    deployment: str,
    predictor: Predictor,
    revision: Revision,
    *,
    cache_dir: Path | str,
    image: str | None,
    env: Mapping[str, str] | None = None,
) -> Workload:
    """The workload that serves ``revision`` for one predictor of ``deployment``."""
    args = [
        "serve", revision.location,
        "--host", "{host}", "--port", "{port:http}", "--grpc-port", "{port:grpc}",
        "--name", deployment,
        "--cache-dir", str(cache_dir),
    ]
    if revision.version is not None:
        args += ["--model-version", revision.version]
    if revision.runtime:
        args += ["--runtime", revision.runtime]
    s = revision.settings
    if s.get("method"):
        args += ["--method", s["method"]]
    if s.get("batching"):
        args += ["--max-batch-size", str(s["batching"]["max_batch_size"]), "--max-batch-time", str(s["batching"]["max_batch_time"])]
    if s.get("compile"):
        args += ["--compile", s["compile"]]
    if s.get("workers", 1) > 1:
        args += ["--workers", str(s["workers"])]
    amounts = predictor.resources
    return Workload(
        name=workload_name(deployment, predictor.name),
        revision=revision.revision_id,
        args=tuple(args),
        ports=("http", "grpc"),
        container_ports=dict(CONTAINER_PORTS),
        readiness_path="/v2/health/ready",
        replicas=predictor.replicas,
        min_replicas=predictor.min_replicas,
        max_replicas=predictor.max_replicas,
        env={**(env or {}), **predictor.env},
        image=image,
        resources=Resources(
            cpu_request=amounts.requests.cpu,
            cpu_limit=amounts.limits.cpu,
            memory_request=amounts.requests.memory,
            memory_limit=amounts.limits.memory,
        ),
        labels={"labdeck/deployment": deployment, "labdeck/predictor": predictor.name},
        scratch=(str(cache_dir),),
    )


@dataclass(frozen=True)
class PredictorWorkload:
    """One predictor of a deployment as it runs: its workload and its share of traffic."""

    predictor: Predictor
    workload: Workload
    traffic: int  # percent of requests; 0 for a shadow
    shadow: bool


def deployment_workloads(
    deployment: ModelDeployment,
    *,
    image: str | None,
    cache_dir: Path | str = POD_CACHE_DIR,
    env: Mapping[str, str] | None = None,
    locations: Mapping[str, tuple[str, str | None]] | None = None,
) -> list[PredictorWorkload]:
    """Every predictor's workload, without a database: ``locations`` maps a predictor's
    name to the (location, registry version) its model resolved to; a predictor not in it
    serves its model URI as written."""
    out = []
    for predictor in deployment.spec.predictors:
        location, version = (locations or {}).get(predictor.name, (predictor.model, None))
        revision = revision_of(predictor, location, version)
        workload = predictor_workload(
            deployment.metadata.name, predictor, revision, cache_dir=cache_dir, image=image, env=env
        )
        out.append(PredictorWorkload(predictor, workload, deployment.traffic(predictor), predictor.shadow))
    return out


def kubernetes_manifests(
    deployment: ModelDeployment,
    settings: Any,
    *,
    tracking_uri: str | None = None,
    env: Mapping[str, str] | None = None,
    locations: Mapping[str, tuple[str, str | None]] | None = None,
) -> list[dict[str, Any]]:
    """Everything a deployment is on a cluster (``settings``: ``KubernetesSettings``): per
    predictor a Deployment, a Service and an HPA when autoscaled, then, with Istio, one
    VirtualService splitting the traffic between the predictors' Services."""
    from labdeck.compute import manifests

    model_env = dict(env or {})
    if tracking_uri:
        model_env["MLFLOW_TRACKING_URI"] = tracking_uri
    predictors = deployment_workloads(deployment, image=settings.image, env=model_env, locations=locations)
    objects: list[dict[str, Any]] = []
    for p in predictors:
        objects += manifests.workload_objects(p.workload, settings)
    if settings.istio:
        objects.append(
            manifests.virtual_service(
                f"{WORKLOAD_PREFIX}{deployment.metadata.name}",
                manifests.gateway_prefixes(deployment.metadata.namespace, deployment.metadata.name),
                [manifests.TrafficTarget(p.workload, p.traffic, p.shadow) for p in predictors],
                settings,
                labels={"labdeck/deployment": deployment.metadata.name},
            )
        )
    return objects
