"""What the Kubernetes tests share: checking rendered objects (the Kubernetes schema in
strict mode through ``kubernetes-validate``, plus the rules a schema cannot state), and a
fake Kubernetes API server.

The fake API server is a real HTTP server on 127.0.0.1 standing in for a cluster (there is
none on this machine). It records every request (method, path, query, content type,
body), stores what server-side apply PATCHes send and echoes it back (bumping
``metadata.generation`` when the spec changes, as the API server does), answers GETs and
label-selected lists, and DELETEs. Leases are created (POST: 409 when one exists) and
replaced (PUT: 409 when the ``resourceVersion`` sent is not the stored one), each write
getting a new ``resourceVersion``: what makes two candidates unable to both win. A Deployment's status and the pods are whatever the test
sets; in ``auto`` mode it plays the Deployment controller too: every applied Deployment
gets ready pods and a finished rollout.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import yaml

# the oldest Kubernetes still commonly run, and a recent one
K8S_VERSIONS = ("1.29", "1.34")
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# ---------------------------------------------------------------------- checking objects


def _check_label_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    assert len(name) <= 63 and LABEL_NAME.match(name), f"label key {key!r}"
    assert not prefix or (len(prefix) <= 253 and DNS_SUBDOMAIN.match(prefix)), f"label key prefix {key!r}"


def _check_labels(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        _check_label_key(key)
        assert isinstance(value, str) and len(value) <= 63, f"label {key}={value!r}"
        assert value == "" or LABEL_NAME.match(value), f"label {key}={value!r}"


def check_schema(obj: dict[str, Any]) -> None:
    """One object against the Kubernetes schema of every version tested, in strict mode."""
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def check_objects(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Every object validates against the Kubernetes schema (strict: no unknown fields)
    and the rules between objects hold; the objects by kind and name."""
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for obj in objects:
        meta = obj["metadata"]
        assert meta["name"] not in by_kind.get(obj["kind"], {}), f"two {obj['kind']}s named {meta['name']}"
        by_kind.setdefault(obj["kind"], {})[meta["name"]] = obj
        assert len(meta["name"]) <= 63 and DNS_1035.match(meta["name"]), meta["name"]
        assert DNS_1035.match(meta["namespace"]), meta["namespace"]
        _check_labels(meta.get("labels") or {})
        for key in meta.get("annotations") or {}:
            _check_label_key(key)
        if obj["kind"] == "VirtualService":
            continue  # a CRD: checked below, against the Services
        check_schema(obj)

    deployments = by_kind.get("Deployment", {})
    for name, d in deployments.items():
        template = d["spec"]["template"]
        _check_labels(template["metadata"]["labels"])
        selected = d["spec"]["selector"]["matchLabels"]
        assert selected.items() <= template["metadata"]["labels"].items(), f"{name}: the selector misses its pods"
        (container,) = template["spec"]["containers"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in container, f"{name}: no {probe}"
        _check_pod_spec(f"Deployment {name}", template["spec"], by_kind)
        for other_name, other in deployments.items():
            if other_name != name:  # no Deployment may adopt another's pods
                assert not selected.items() <= other["spec"]["template"]["metadata"]["labels"].items()
    for name, pod in by_kind.get("Pod", {}).items():
        _check_pod_spec(f"Pod {name}", pod["spec"], by_kind)
    for name, job in by_kind.get("Job", {}).items():
        _check_labels(job["spec"]["template"]["metadata"]["labels"])
        _check_pod_spec(f"Job {name}", job["spec"]["template"]["spec"], by_kind)

    # what a Service may select: the pods of a Deployment, or a bare Pod
    pod_sets = [(f"Deployment {n}", d["spec"]["template"]["metadata"]["labels"], d["spec"]["template"]["spec"]) for n, d in deployments.items()]
    pod_sets += [(f"Pod {n}", p["metadata"].get("labels") or {}, p["spec"]) for n, p in by_kind.get("Pod", {}).items()]
    for name, s in by_kind.get("Service", {}).items():
        matching = [(what, spec) for what, labels, spec in pod_sets if s["spec"]["selector"].items() <= labels.items()]
        assert len(matching) == 1, f"Service {name} selects {len(matching)} workloads: {[what for what, _ in matching]}"
        what, spec = matching[0]
        named = {p["name"] for c in spec["containers"] for p in c.get("ports", [])}
        for port in s["spec"]["ports"]:
            assert port["targetPort"] in named, f"Service {name}: targetPort {port['targetPort']} is no container port of {what}"

    for name, binding in by_kind.get("RoleBinding", {}).items():
        ref = binding["roleRef"]
        assert ref["apiGroup"] == "rbac.authorization.k8s.io", f"RoleBinding {name}: roleRef {ref}"
        if ref["kind"] == "Role":
            assert ref["name"] in by_kind.get("Role", {}), f"RoleBinding {name} binds Role {ref['name']}, which is not rendered"
        for subject in binding.get("subjects") or []:
            if subject["kind"] == "ServiceAccount":
                assert subject["name"] in by_kind.get("ServiceAccount", {}), f"RoleBinding {name}: no ServiceAccount {subject['name']}"
                assert subject.get("namespace") == binding["metadata"]["namespace"], f"RoleBinding {name}: {subject}"

    for name, h in by_kind.get("HorizontalPodAutoscaler", {}).items():
        target = h["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments, f"HPA {name} scales nothing"
        scaled = deployments[target["name"]]
        assert "replicas" not in scaled["spec"], "with an HPA, the Deployment must leave the replica count to it"
        (container,) = scaled["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["requests"]["cpu"], "CPU utilization needs a CPU request"
        assert 1 <= h["spec"]["minReplicas"] <= h["spec"]["maxReplicas"]

    for vs in by_kind.get("VirtualService", {}).values():
        check_virtual_service(vs, list(by_kind.get("Service", {}).values()))
    return by_kind


def _check_pod_spec(what: str, spec: dict[str, Any], by_kind: dict[str, dict[str, dict[str, Any]]]) -> None:
    """What the schema cannot say about a pod: probes on ports it has, mounts of volumes it
    has, no placeholder left, and every claim, Secret, ConfigMap and ServiceAccount it
    names among the rendered objects."""

    def rendered(kind: str, name: str) -> None:
        assert name in by_kind.get(kind, {}), f"{what} uses {kind} {name}, which is not rendered"

    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for volume in volumes.values():
        if "persistentVolumeClaim" in volume:
            rendered("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
        if "configMap" in volume:
            rendered("ConfigMap", volume["configMap"]["name"])
        if "secret" in volume:
            rendered("Secret", volume["secret"]["secretName"])
    if spec.get("serviceAccountName"):
        rendered("ServiceAccount", spec["serviceAccountName"])
    for container in spec["containers"]:
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
        assert all(len(p) <= 15 for p in ports), ports
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in container and "httpGet" in container[probe]:
                port = container[probe]["httpGet"]["port"]
                assert port in ports or port in ports.values(), f"{what}: {probe} on an unknown port {port}"
        assert {m["name"] for m in container.get("volumeMounts", [])} <= volumes.keys(), f"{what}: a mount of no volume"
        assert not any("{" in a for a in container.get("args", [])), f"{what}: a placeholder was left: {container['args']}"
        for env in container.get("env", []):
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref is None:
                continue
            rendered("Secret", ref["name"])
            secret = by_kind["Secret"][ref["name"]]
            keys = {**(secret.get("data") or {}), **(secret.get("stringData") or {})}
            assert ref.get("optional") or ref["key"] in keys, f"{what}: {env['name']} needs key {ref['key']} of Secret {ref['name']}"


@dataclass
class Routing:
    prefixes: list[str]
    weights: dict[str, int]  # Service name -> percent
    mirrors: list[str]  # Service names


def check_virtual_service(vs: dict[str, Any], services: list[dict[str, Any]]) -> Routing:
    """The structure Istio's networking.istio.io/v1beta1 VirtualService allows (the fields
    used here), weights summing to 100, and every destination a rendered Service's port."""
    assert vs["apiVersion"] == "networking.istio.io/v1beta1" and vs["kind"] == "VirtualService"
    assert set(vs) == {"apiVersion", "kind", "metadata", "spec"}
    spec = vs["spec"]
    assert set(spec) <= {"hosts", "gateways", "http"}
    assert spec["hosts"] and all(isinstance(h, str) for h in spec["hosts"])
    for gateway in spec["gateways"]:
        namespace, _, name = gateway.rpartition("/")
        assert DNS_1035.match(name) and (not namespace or DNS_1035.match(namespace)), gateway
    ports = {
        f"{s['metadata']['name']}.{s['metadata']['namespace']}.svc.cluster.local": (s["metadata"]["name"], {p["port"] for p in s["spec"]["ports"]})
        for s in services
    }

    def service_of(destination: dict[str, Any]) -> str:
        assert set(destination) <= {"host", "port", "subset"}
        assert destination["host"] in ports, f"{destination['host']} is no rendered Service"
        name, numbers = ports[destination["host"]]
        assert destination["port"]["number"] in numbers, f"{destination} is no port of Service {name}"
        return name

    (route,) = spec["http"]
    assert set(route) <= {"name", "match", "rewrite", "route", "mirror", "mirrorPercentage", "mirrors"}
    prefixes = []
    for match in route["match"]:
        assert set(match) == {"uri"} and set(match["uri"]) == {"prefix"}
        prefix = match["uri"]["prefix"]
        assert prefix.startswith("/") and prefix.endswith("/")
        prefixes.append(prefix)
    assert route["rewrite"] == {"uri": "/"}
    weights: dict[str, int] = {}
    for destination in route["route"]:
        assert set(destination) <= {"destination", "weight", "headers"}
        assert isinstance(destination["weight"], int) and 0 <= destination["weight"] <= 100
        weights[service_of(destination["destination"])] = destination["weight"]
    assert sum(weights.values()) == 100, f"weights sum to {sum(weights.values())}"
    mirrors = []
    if "mirror" in route:
        mirrors.append(service_of(route["mirror"]))
        assert 0 < route["mirrorPercentage"]["value"] <= 100
    for mirror in route.get("mirrors", []):
        mirrors.append(service_of(mirror["destination"]))
        assert 0 < mirror["percentage"]["value"] <= 100
    assert not set(mirrors) & set(weights), "a shadow must not also take traffic"
    return Routing(prefixes, weights, mirrors)


def parse_yaml(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


# ---------------------------------------------------------------------- the fake API server


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any  # parsed (YAML/JSON), or None


RESOURCE = re.compile(
    r"^/apis?/(?:(?P<group>[a-z0-9.]+)/)?(?P<version>v\d[a-z0-9]*)/namespaces/(?P<ns>[^/]+)/(?P<plural>[a-z]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>[a-z]+))?$"
)
KINDS = {
    "deployments": ("apps/v1", "Deployment"),
    "services": ("v1", "Service"),
    "horizontalpodautoscalers": ("autoscaling/v2", "HorizontalPodAutoscaler"),
    "pods": ("v1", "Pod"),
    # a workspace's objects (tests/workspaces/test_kube_hub.py); a Pod applied is stored
    # like them, and its status is whatever the test puts
    "persistentvolumeclaims": ("v1", "PersistentVolumeClaim"),
    "secrets": ("v1", "Secret"),
    "configmaps": ("v1", "ConfigMap"),
    "serviceaccounts": ("v1", "ServiceAccount"),
    "roles": ("rbac.authorization.k8s.io/v1", "Role"),
    "rolebindings": ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    # leader election (tests/cluster/test_leader.py): created, read and replaced, guarded
    # by resourceVersion as the API server guards every update
    "leases": ("coordination.k8s.io/v1", "Lease"),
}


def _selects(selector: str | None, labels: dict[str, str]) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeKube:
    """A stand-in for the Kubernetes API server on 127.0.0.1 (see the module's docstring)."""

    def __init__(self, *, auto: bool = False):
        self.auto = auto
        self.requests: list[Request] = []
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, namespace, name) -> object
        self.status: dict[str, dict[str, Any]] = {}  # Deployment name -> its status
        self.pods: list[dict[str, Any]] = []
        self.logs: dict[str, str] = {}  # pod name -> its output
        self.refuse: dict[tuple[str, str], tuple[int, str]] = {}  # (plural, name) -> (code, message)
        self.down = False  # True: every request answers 503, as an API server that is not there
        self._lock = threading.Lock()
        self._version = 100  # the last resourceVersion given
        kube = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = Request(
                    self.command,
                    url.path,
                    {k: v[-1] for k, v in parse_qs(url.query).items()},
                    self.headers.get("Content-Type"),
                    yaml.safe_load(raw) if raw else None,
                )
                with kube._lock:
                    kube.requests.append(request)
                    code, body, content_type = kube._handle(request)
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, folder: Path, namespace: str = "default") -> Path:
        """A kubeconfig naming this server (plain HTTP, no credentials)."""
        path = folder / "kubeconfig.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "nobody", "user": {}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "nobody", "namespace": namespace}}],
                    "current-context": "fake",
                }
            )
        )
        return path

    # ------------------------------------------------------------------ what tests look at

    def made(self, method: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if method is None or r.method == method]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self.objects.get((plural, namespace, name)))

    def put(self, plural: str, obj: dict[str, Any]) -> None:
        """Store an object as if someone else had created it."""
        with self._lock:
            meta = obj["metadata"]
            self.objects[(plural, meta["namespace"], meta["name"])] = copy.deepcopy(obj)

    # ------------------------------------------------------------------ answering

    @staticmethod
    def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any], str]:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}
        return code, body, "application/json"

    def _handle(self, r: Request) -> tuple[int, Any, str]:
        if self.down:
            return self._status(503, "ServiceUnavailable", "the API server is down")
        match = RESOURCE.match(r.path)
        if match is None or match["plural"] not in KINDS:
            return self._status(404, "NotFound", f"the server could not find the requested resource {r.path}")
        plural, ns, name, sub = match["plural"], match["ns"], match["name"], match["sub"]
        api_version, kind = KINDS[plural]
        key = (plural, ns, name or "")
        if r.method == "PATCH":
            if r.content_type != "application/apply-patch+yaml" or "fieldManager" not in r.query:
                return self._status(415 if r.content_type != "application/apply-patch+yaml" else 422, "Invalid", "only server-side apply here")
            if (plural, name) in self.refuse:
                code, message = self.refuse[(plural, name)]
                return self._status(code, "Invalid", message)
            return 200, self._apply(plural, key, r.body), "application/json"
        if r.method == "DELETE":
            if key not in self.objects:
                return self._status(404, "NotFound", f'{plural} "{name}" not found')
            del self.objects[key]
            if plural == "deployments":
                self.pods = [p for p in self.pods if p["metadata"].get("ownerName") != name]
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name, "kind": plural}}, "application/json"
        if r.method in ("POST", "PUT") and plural == "leases":
            return self._write_lease(r.method, ns, name, r.body)
        if r.method != "GET":
            return self._status(405, "MethodNotAllowed", r.method)
        if plural == "pods" and sub == "log":
            if name not in self.logs:
                return self._status(400, "BadRequest", f'container "model" in pod "{name}" is waiting to start: ContainerCreating')
            lines = self.logs[name].splitlines()
            tail = int(r.query.get("tailLines", len(lines)))
            return 200, "".join(line + "\n" for line in lines[-tail:]), "text/plain"
        if name is None:
            if plural == "pods":
                items = self.pods
            else:
                items = [o for (p, n, _), o in self.objects.items() if p == plural and n == ns]
            items = [self._with_status(plural, o) for o in items if _selects(r.query.get("labelSelector"), o["metadata"].get("labels") or {})]
            return 200, {"kind": f"{kind}List", "apiVersion": api_version, "metadata": {"resourceVersion": "7"}, "items": items}, "application/json"
        if key not in self.objects:
            return self._status(404, "NotFound", f'{plural} "{name}" not found')
        return 200, self._with_status(plural, self.objects[key]), "application/json"

    def _write_lease(self, method: str, ns: str, name: str | None, body: Any) -> tuple[int, Any, str]:
        """POST .../leases creates, PUT .../leases/<name> replaces, as the API server does."""
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            return self._status(400, "BadRequest", "the body is no Lease")
        meta = body["metadata"]
        if method == "POST":
            name = meta.get("name")
            if not name:
                return self._status(422, "Invalid", "metadata.name: Required value")
            if ("leases", ns, name) in self.objects:
                return self._status(409, "AlreadyExists", f'leases.coordination.k8s.io "{name}" already exists')
            meta["uid"] = f"uid-{len(self.objects) + 1}"
        else:
            if name is None or meta.get("name") != name:
                return self._status(400, "BadRequest", "the name in the body does not match the URL")
            stored = self.objects.get(("leases", ns, name))
            if stored is None:
                return self._status(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found')
            sent = meta.get("resourceVersion")
            if sent and sent != stored["metadata"]["resourceVersion"]:
                return self._status(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on leases.coordination.k8s.io "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                )
            meta["uid"] = stored["metadata"]["uid"]
        self._version += 1
        lease = copy.deepcopy(body)
        lease["apiVersion"], lease["kind"] = "coordination.k8s.io/v1", "Lease"
        lease["metadata"].update(namespace=ns, resourceVersion=str(self._version))
        self.objects[("leases", ns, name)] = lease
        return (201 if method == "POST" else 200), copy.deepcopy(lease), "application/json"

    def _with_status(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        if plural == "deployments":
            out["status"] = copy.deepcopy(self.status.get(obj["metadata"]["name"], {}))
        return out

    def _apply(self, plural: str, key: tuple[str, str, str], body: dict[str, Any]) -> dict[str, Any]:
        before = self.objects.get(key)
        stored = copy.deepcopy(body)
        generation = 1
        if before is not None:
            generation = before["metadata"]["generation"] + (before.get("spec") != body.get("spec"))
        stored["metadata"]["generation"] = generation
        stored["metadata"]["uid"] = (before or {}).get("metadata", {}).get("uid") or f"uid-{len(self.objects) + 1}"
        self.objects[key] = stored
        if plural == "deployments" and self.auto:
            self._roll_out(stored)
        return self._with_status(plural, stored)

    def _roll_out(self, deployment: dict[str, Any]) -> None:
        """What the Deployment controller and the kubelet would do, instantly: pods of the
        new template, ready, with IPs; the rollout complete."""
        name = deployment["metadata"]["name"]
        count = deployment["spec"].get("replicas", 1)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        self.pods = [p for p in self.pods if p["metadata"].get("ownerName") != name]
        for i in range(count):
            self.pods.append(pod(f"{name}-{labels['labdeck/revision'][:6]}-{i}", labels, ip=f"10.0.{len(self.pods) % 250}.{i + 1}", owner=name))
        self.status[name] = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": count,
            "updatedReplicas": count,
            "readyReplicas": count,
            "availableReplicas": count,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }


def pod(
    name: str,
    labels: dict[str, str],
    *,
    ip: str | None = "10.1.2.3",
    ready: bool = True,
    owner: str | None = None,
    waiting: dict[str, str] | None = None,
    last_terminated: dict[str, Any] | None = None,
    restarts: int = 0,
    deleting: bool = False,
) -> dict[str, Any]:
    """A Pod as the API server shows it."""
    state: dict[str, Any] = {"waiting": waiting} if waiting else {"running": {"startedAt": "2026-01-02T03:04:05Z"}}
    container = {
        "name": "model",
        "ready": ready,
        "restartCount": restarts,
        "state": state,
        "lastState": {"terminated": last_terminated} if last_terminated else {},
        "image": "ghcr.io/labdeck/labdeck:test",
    }
    meta: dict[str, Any] = {"name": name, "namespace": "ml", "labels": dict(labels), "creationTimestamp": "2026-01-02T03:04:00Z"}
    if owner:
        meta["ownerName"] = owner  # (not a Kubernetes field: lets the fake find a Deployment's pods)
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T03:10:00Z"
    status: dict[str, Any] = {
        "phase": "Running" if ready or waiting is None else "Pending",
        "startTime": "2026-01-02T03:04:05Z",
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True" if ready else "False"},
        ],
        "containerStatuses": [container],
    }
    if ip:
        status["podIP"] = ip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": status}


def names_of(objects: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in objects]
