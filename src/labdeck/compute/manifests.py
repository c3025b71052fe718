"""A ``Workload`` as Kubernetes objects: plain dicts, ready for server-side apply or YAML.

Pure functions with no client imports, so that ``labdeck k8s render`` and the tests need
no cluster. For one workload: an ``apps/v1`` Deployment, a ``v1`` Service (ClusterIP) and,
when it is autoscaled, an ``autoscaling/v2`` HorizontalPodAutoscaler; for several
workloads that share traffic, an Istio ``VirtualService``.

Choices worth knowing:

- Names: the objects are named after the workload; a name that is not a DNS-1035 label of
  at most 63 characters (a Service's rule) is shortened with a digest suffix, and the
  workload's own name is kept in the ``labdeck/workload`` annotation.
- Pods are selected by ``app.kubernetes.io/instance=<name>`` alone, which never changes
  (a Deployment's selector is immutable); the revision is a label and an annotation of the
  pod template, so a new revision rolls the pods.
- The container runs ``command: ["labdeck"]`` with the workload's ``args``: the manifest
  does not depend on the image's ENTRYPOINT (any image with ``labdeck`` on its PATH works).
  ``{port:<name>}`` becomes the container port of that name, ``{host}`` ``0.0.0.0``.
- Rollouts replace one pod at a time (maxSurge 1, maxUnavailable 0); a revision whose pods
  are not ready within ``ready_deadline_s`` fails (``progressDeadlineSeconds``).
- The model server downloads the model before it listens, so a startup probe on the
  liveness path allows ``ready_deadline_s`` for that; then liveness and readiness take over.
- Pods run as a non-root user (uid 10001) with a read-only root filesystem, no
  privilege escalation, no capabilities, the runtime's seccomp profile and no service
  account token; ``/tmp`` and the workload's ``scratch`` folders are emptyDirs.
- When the container fails, its last log lines become its termination message
  (``FallbackToLogsOnError``), which the backend quotes when a rollout fails.
- An autoscaled workload without a CPU request gets ``AUTOSCALED_CPU_REQUEST``: the HPA
  measures utilization against the request and cannot scale without one.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labdeck.compute.workload import Resources, Workload

MANAGED_BY = "labdeck"
APP_NAME = "labdeck-model"
CONTAINER = "model"
LISTEN_HOST = "0.0.0.0"
LIVENESS_PATH = "/v2/health/live"
RUN_AS = 10001
AUTOSCALED_CPU_REQUEST = "250m"
TERMINATION_GRACE_S = 30
STARTUP_PERIOD_S = 2
REVISION_LABEL = "labdeck/revision"
WORKLOAD_ANNOTATION = "labdeck/workload"
INSTANCE_LABEL = "app.kubernetes.io/instance"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def object_name(workload_name: str) -> str:
    """The Kubernetes name of a workload's objects: the name itself when it is a DNS-1035
    label of at most 63 characters, otherwise a cleaned, shortened form with a digest of
    the original (so that two names never collide)."""
    if len(workload_name) <= 63 and _DNS_1035.match(workload_name):
        return workload_name
    cleaned = re.sub(r"[^a-z0-9-]+", "-", workload_name.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = "w-" + cleaned
    digest = hashlib.sha256(workload_name.encode()).hexdigest()[:8]
    return f"{cleaned[:54].rstrip('-')}-{digest}"


def selector(workload_name: str) -> dict[str, str]:
    """The labels that pick a workload's pods (what its Deployment and Service select)."""
    return {INSTANCE_LABEL: object_name(workload_name)}


def managed_labels(app_name: str) -> dict[str, str]:
    """The labels every object labdeck renders carries: which kind of thing it belongs to
    (``app.kubernetes.io/name``) and that labdeck manages it."""
    return {"app.kubernetes.io/name": app_name, MANAGED_BY_LABEL: MANAGED_BY}


def _labels(workload: Workload) -> dict[str, str]:
    return {**managed_labels(APP_NAME), **workload.labels, **selector(workload.name)}


def _metadata(workload: Workload, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": object_name(workload.name),
        "namespace": namespace,
        "labels": dict(labels),
        "annotations": {WORKLOAD_ANNOTATION: workload.name},
    }


def container_args(workload: Workload) -> list[str]:
    """The workload's arguments with its ports and listening address filled in."""
    ports = _ports(workload)
    out = []
    for arg in workload.args:
        for name, port in ports.items():
            arg = arg.replace(f"{{port:{name}}}", str(port))
        out.append(arg.replace("{host}", LISTEN_HOST))
    return out


def _ports(workload: Workload) -> dict[str, int]:
    missing = [name for name in workload.ports if name not in workload.container_ports]
    if missing:
        raise ValueError(f"workload {workload.name}: no container port for {', '.join(missing)}")
    return {name: workload.container_ports[name] for name in workload.ports}


def _resources(workload: Workload) -> dict[str, Any]:
    default_cpu = AUTOSCALED_CPU_REQUEST if _autoscaled(workload) else None
    return resource_requirements(workload.resources, default_cpu_request=default_cpu)


def resource_requirements(
    r: Resources, *, default_cpu_request: str | None = None
) -> dict[str, Any]:
    """A container's ``resources``: the requests and limits given, and nothing for the
    others (an empty dict when none is given)."""
    cpu_request = r.cpu_request if r.cpu_request is not None else default_cpu_request
    requests = {"cpu": cpu_request, "memory": r.memory_request}
    limits = {"cpu": r.cpu_limit, "memory": r.memory_limit}
    out = {}
    for key, amounts in (("requests", requests), ("limits", limits)):
        given = {k: v for k, v in amounts.items() if v is not None}
        if given:
            out[key] = given
    return out


def _autoscaled(workload: Workload) -> bool:
    return workload.min_replicas is not None and workload.max_replicas is not None


def _http_get(path: str, port: str) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port, "scheme": "HTTP"}}


def deployment(workload: Workload, namespace: str) -> dict[str, Any]:
    """The ``apps/v1`` Deployment running the workload's replicas."""
    if workload.image is None:
        raise ValueError(f"workload {workload.name} has no image: a pod needs one")
    ports = _ports(workload)
    http = workload.ports[0]
    labels = _labels(workload)
    revisioned = {**labels, REVISION_LABEL: workload.revision}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": workload.image,
        "command": ["labdeck"],
        "args": container_args(workload),
        "ports": [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in ports.items()],
    }
    if workload.env:
        container["env"] = [{"name": k, "value": v} for k, v in sorted(workload.env.items())]
    resources = _resources(workload)
    if resources:
        container["resources"] = resources
    deadline = max(1, math.ceil(workload.ready_deadline_s))
    container |= {
        "startupProbe": _http_get(LIVENESS_PATH, http)
        | {"periodSeconds": STARTUP_PERIOD_S, "timeoutSeconds": 2, "failureThreshold": max(1, math.ceil(deadline / STARTUP_PERIOD_S))},
        "readinessProbe": _http_get(workload.readiness_path, http)
        | {"periodSeconds": 5, "timeoutSeconds": 2, "successThreshold": 1, "failureThreshold": 3},
        "livenessProbe": _http_get(LIVENESS_PATH, http) | {"periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]
        + [{"name": f"scratch-{i}", "mountPath": path} for i, path in enumerate(workload.scratch)],
    }
    spec: dict[str, Any] = {}
    if not _autoscaled(workload):
        spec["replicas"] = workload.replicas  # with an HPA, the HPA owns the count
    spec |= {
        "revisionHistoryLimit": 5,
        "progressDeadlineSeconds": deadline,
        "selector": {"matchLabels": selector(workload.name)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {
                "labels": revisioned,
                "annotations": {
                    REVISION_LABEL: workload.revision,
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(ports[http]),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": RUN_AS,
                    "runAsGroup": RUN_AS,
                    "fsGroup": RUN_AS,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [container],
                "volumes": [{"name": "tmp", "emptyDir": {}}]
                + [{"name": f"scratch-{i}", "emptyDir": {}} for i in range(len(workload.scratch))],
            },
        },
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(workload, namespace, revisioned), "spec": spec}


def service(workload: Workload, namespace: str) -> dict[str, Any]:
    """The ``v1`` Service (ClusterIP) in front of the workload's ready pods."""
    ports = _ports(workload)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(workload, namespace, _labels(workload)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(workload.name),
            "ports": [
                {
                    "name": name,
                    "port": port,
                    "targetPort": name,
                    "protocol": "TCP",
                    "appProtocol": "grpc" if name == "grpc" else "http",
                }
                for name, port in ports.items()
            ],
        },
    }


def autoscaler(workload: Workload, namespace: str, cpu_utilization: int = 70) -> dict[str, Any] | None:
    """The ``autoscaling/v2`` HorizontalPodAutoscaler of an autoscaled workload, else None."""
    if not _autoscaled(workload):
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(workload, namespace, _labels(workload)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": object_name(workload.name)},
            "minReplicas": workload.min_replicas,
            "maxReplicas": workload.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_utilization}},
                }
            ],
        },
    }


def workload_objects(workload: Workload, settings: Any) -> list[dict[str, Any]]:
    """Deployment, Service and (when autoscaled) HPA, in the namespace of ``settings``
    (``KubernetesSettings``)."""
    namespace = settings.namespace
    objects = [deployment(workload, namespace), service(workload, namespace)]
    hpa = autoscaler(workload, namespace, getattr(settings, "cpu_utilization", 70))
    if hpa is not None:
        objects.append(hpa)
    return objects


# ---------------------------------------------------------------------- traffic (Istio)


@dataclass(frozen=True)
class TrafficTarget:
    """A workload taking ``weight`` percent of the requests, or a copy of each (shadow)."""

    workload: Workload
    weight: int
    shadow: bool = False


def gateway_prefixes(namespace: str, name: str) -> list[str]:
    """The paths a deployment answers on, as labdeck's own gateway serves them."""
    return [f"/seldon/{namespace}/{name}/", f"/deployments/{name}/"]


def service_host(workload: Workload, namespace: str) -> str:
    return f"{object_name(workload.name)}.{namespace}.svc.cluster.local"


def _destination(workload: Workload, namespace: str) -> dict[str, Any]:
    return {"host": service_host(workload, namespace), "port": {"number": _ports(workload)[workload.ports[0]]}}


def virtual_service(
    name: str,
    prefixes: Iterable[str],
    targets: Sequence[TrafficTarget],
    settings: Any,
    *,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A ``networking.istio.io/v1beta1`` VirtualService on ``settings.istio_gateway``:
    requests under each prefix go, with the prefix rewritten to ``/``, to the targets'
    Services by weight; shadows get a mirrored copy of every request."""
    namespace = settings.namespace
    serving = [t for t in targets if not t.shadow and t.weight > 0]
    if not serving:
        raise ValueError(f"{name}: no target takes traffic")
    if sum(t.weight for t in serving) != 100:
        raise ValueError(f"{name}: the weights sum to {sum(t.weight for t in serving)}, not 100")
    route: dict[str, Any] = {
        "name": name,
        "match": [{"uri": {"prefix": prefix}} for prefix in prefixes],
        "rewrite": {"uri": "/"},
        "route": [{"destination": _destination(t.workload, namespace), "weight": t.weight} for t in serving],
    }
    shadows = [t for t in targets if t.shadow]
    if len(shadows) == 1:
        route["mirror"] = _destination(shadows[0].workload, namespace)
        route["mirrorPercentage"] = {"value": 100.0}
    elif shadows:  # several mirrors need Istio 1.22 or later
        route["mirrors"] = [{"destination": _destination(t.workload, namespace), "percentage": {"value": 100.0}} for t in shadows]
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {
            "name": object_name(name),
            "namespace": namespace,
            "labels": {**managed_labels(APP_NAME), **(labels or {})},
        },
        "spec": {"hosts": ["*"], "gateways": [getattr(settings, "istio_gateway", "seldon-system/seldon-gateway")], "http": [route]},
    }


def to_yaml(objects: Iterable[Mapping[str, Any]]) -> str:
    """Multi-document YAML, in the order given (what ``kubectl apply -f`` reads); text of
    several lines (a ConfigMap's files, a script) as literal blocks, as people write it."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        # PyYAML falls back to quoting what a block cannot hold (e.g. trailing spaces)
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump_all(
        [dict(o) for o in objects],
        Dumper=Dumper,
        sort_keys=False,
        default_flow_style=False,
        explicit_start=True,
    )
