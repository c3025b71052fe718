"""``KubernetesBackend``: workloads as Deployments, Services and HPAs on a cluster.

Needs the ``k8s`` extra (``pip install 'labdeck[k8s]'``, the official ``kubernetes``
client). Every object is rendered by ``labdeck.compute.manifests`` and server-side applied
(``PATCH`` as ``application/apply-patch+yaml``, ``fieldManager=labdeck``, ``force=true``) in
the namespace of the settings; Kubernetes itself then does what the local backend does by
hand: rolling updates one pod at a time (maxSurge 1, maxUnavailable 0), restarts with
back-off, readiness, and a progress deadline that fails a rollout.

``apply`` applies only when the rendered objects changed since this process last applied
them, or ``REAPPLY_S`` ago (which also puts back what someone changed by hand), or the
Deployment is gone; it always reads the Deployment and its pods back. No other state is
kept: a restarted server finds everything again through the cluster.

What it reports:

- one ``Replica`` per pod (its name, the ``labdeck/revision`` label, restarts, start time):
  READY when the pod's Ready condition is true, STOPPING once it is being deleted, CRASHED
  when its container is waiting in a failure state (CrashLoopBackOff, an image that cannot
  be pulled, ...) or has terminated, with the reason and the container's last log lines
  (its termination message), STARTING otherwise;
- endpoints are the pod's own IP and container ports (``10.1.2.3:9000``). labdeck's gateway
  load-balances over the ready replicas itself, per request, with retries on another
  replica, and stops choosing a pod as soon as it reports it not ready or terminating; the
  Service's single virtual IP would hide the replicas from it (and a kept-alive connection
  through it sticks to one pod). Pod IPs are reachable from inside the cluster, so the
  labdeck server that runs the gateway must run in the cluster (or on a network that
  routes pod IPs); the Service is there for Istio and other in-cluster clients;
- the rollout: PROGRESSING until the Deployment controller has seen the latest spec and
  every replica is updated and ready (COMPLETE); FAILED when the Deployment's
  ``Progressing`` condition is false with reason ``ProgressDeadlineExceeded``, or when the
  API server refused an object (a quota, RBAC, an admission webhook), with its message.

The API server being unreachable (or answering 5xx) raises ``Unavailable``: the controller
then keeps the routes it had rather than believing that nothing runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from labdeck.compute import manifests
from labdeck.compute.backend import ComputeBackend
from labdeck.compute.workload import Replica, ReplicaState, RolloutState, Workload, WorkloadStatus
from labdeck.errors import Unavailable

log = logging.getLogger(__name__)

FIELD_MANAGER = "labdeck"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
REAPPLY_S = 60.0  # apply unchanged objects again this often (undoes changes made by hand)
RETRY_REFUSED_S = 10.0  # ... and objects the API server refused, this often
TIMEOUT = (5, 30)  # connect, read (seconds) of every API request
# container waiting reasons that mean it cannot run (as opposed to still starting)
FAILING_REASONS = {
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}


class KubernetesBackend(ComputeBackend):
    name = "kubernetes"

    def __init__(self, settings: Any, *, api_client: Any = None):
        """``settings``: ``KubernetesSettings``. Builds nothing yet (no I/O): the client is
        made on first use, from ``settings.kubeconfig``, else in-cluster, else
        ``$KUBECONFIG`` or ``~/.kube/config``."""
        self.settings = settings
        self.namespace: str = settings.namespace
        self._client = api_client
        self._client_lock = threading.Lock()
        self._applied: dict[str, _Applied] = {}  # what this process last applied, by workload

    # ------------------------------------------------------------------ the client

    def _api(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = load_client(self.settings.kubeconfig)
            return self._client

    def _apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self._api())

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._api())

    def _autoscaling(self) -> Any:
        from kubernetes import client

        return client.AutoscalingV2Api(self._api())

    # ------------------------------------------------------------------ the interface

    async def start(self) -> None:
        await asyncio.to_thread(self._api)

    async def apply(self, workload: Workload) -> WorkloadStatus:
        try:
            objects = manifests.workload_objects(workload, self.settings)
        except ValueError as exc:  # e.g. no image: nothing can run
            return WorkloadStatus(workload.name, workload.revision, workload.replicas, (), RolloutState.FAILED, str(exc))
        digest = hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest()
        applied_now = False
        if self._stale(workload.name, digest):
            await self._apply_now(workload, objects, digest)
            applied_now = True
        found, pods = await asyncio.gather(
            asyncio.to_thread(self._read_deployment, workload.name),
            asyncio.to_thread(self._pods, workload.name),
        )
        if found is None and not applied_now and self._applied[workload.name].refused is None:
            # deleted behind our back since we last applied: apply again now
            await self._apply_now(workload, objects, digest)
            found = await asyncio.to_thread(self._read_deployment, workload.name)
        return workload_status(workload, found, pods, self._applied[workload.name].refused)

    async def _apply_now(self, workload: Workload, objects: list[dict[str, Any]], digest: str) -> None:
        refused = await asyncio.to_thread(self._apply_objects, workload, objects)
        self._applied[workload.name] = _Applied(digest, time.monotonic(), refused)

    async def delete(self, name: str) -> None:
        self._applied.pop(name, None)
        await asyncio.to_thread(self._delete, name)

    async def names(self) -> list[str]:
        return await asyncio.to_thread(self._names)

    async def logs(self, name: str, tail: int) -> dict[str, list[str]]:
        pods = await asyncio.to_thread(self._pods, name)
        names = [p["metadata"]["name"] for p in pods]
        texts = await asyncio.gather(*(asyncio.to_thread(self._pod_log, pod, tail) for pod in names))
        return dict(zip(names, texts, strict=True))

    async def close(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None

    # ------------------------------------------------------------------ blocking calls (run in a thread)

    def _stale(self, name: str, digest: str) -> bool:
        applied = self._applied.get(name)
        if applied is None or applied.digest != digest:
            return True
        return time.monotonic() - applied.at > (REAPPLY_S if applied.refused is None else RETRY_REFUSED_S)

    def _apply_objects(self, workload: Workload, objects: list[dict[str, Any]]) -> str | None:
        """Server-side apply every object; None, or why the API server refused one."""
        apply = {"field_manager": FIELD_MANAGER, "force": True, "_content_type": APPLY_CONTENT_TYPE}
        kinds = {
            "Deployment": self._apps().patch_namespaced_deployment,
            "Service": self._core().patch_namespaced_service,
            "HorizontalPodAutoscaler": self._autoscaling().patch_namespaced_horizontal_pod_autoscaler,
        }
        for obj in objects:
            meta = obj["metadata"]
            try:
                call(kinds[obj["kind"]], meta["name"], meta["namespace"], obj, **apply)
            except Refused as exc:
                log.warning("Kubernetes refused an object", extra={"kind": obj["kind"], "object": meta["name"], "reason": exc.message})
                return f"Kubernetes refused the {obj['kind']} {meta['namespace']}/{meta['name']}: {exc.message}"
        if not any(o["kind"] == "HorizontalPodAutoscaler" for o in objects):
            # no longer autoscaled (or never was): no HPA may fight over the replica count
            try:
                self._delete_one(self._autoscaling().delete_namespaced_horizontal_pod_autoscaler, workload.name)
            except Unavailable as exc:
                log.warning("could not delete a stale HPA", extra={"workload": workload.name, "reason": exc.message})
        log.info("applied", extra={"workload": workload.name, "revision": workload.revision})
        return None

    def _read_deployment(self, name: str) -> dict[str, Any] | None:
        try:
            return call(self._apps().read_namespaced_deployment, manifests.object_name(name), self.namespace)
        except Refused as exc:
            if exc.status == 404:
                return None
            raise Unavailable(f"Cannot read the Deployment of {name}: {exc.message}") from None

    def _pods(self, name: str) -> list[dict[str, Any]]:
        try:
            found = call(self._core().list_namespaced_pod, self.namespace, label_selector=_selector(manifests.selector(name)))
        except Refused as exc:
            raise Unavailable(f"Cannot list the pods of {name}: {exc.message}") from None
        return sorted(found.get("items") or [], key=lambda p: p["metadata"]["name"])

    def _names(self) -> list[str]:
        try:
            found = call(
                self._apps().list_namespaced_deployment,
                self.namespace,
                label_selector=_selector({manifests.MANAGED_BY_LABEL: manifests.MANAGED_BY}),
            )
        except Refused as exc:
            raise Unavailable(f"Cannot list Deployments: {exc.message}") from None
        out = []
        for item in found.get("items") or []:
            meta = item["metadata"]
            if meta.get("deletionTimestamp"):
                continue  # already on its way out
            out.append((meta.get("annotations") or {}).get(manifests.WORKLOAD_ANNOTATION, meta["name"]))
        return sorted(out)

    def _delete(self, name: str) -> None:
        self._delete_one(self._apps().delete_namespaced_deployment, name)
        self._delete_one(self._core().delete_namespaced_service, name)
        self._delete_one(self._autoscaling().delete_namespaced_horizontal_pod_autoscaler, name)
        log.info("deleted", extra={"workload": name})

    def _delete_one(self, method: Any, name: str) -> None:
        try:
            call(method, manifests.object_name(name), self.namespace, propagation_policy="Foreground")
        except Refused as exc:
            if exc.status != 404:
                raise Unavailable(f"Cannot delete {name}: {exc.message}") from None

    def _pod_log(self, pod: str, tail: int) -> list[str]:
        if tail <= 0:
            return []
        try:
            text = call(
                self._core().read_namespaced_pod_log, pod, self.namespace, container=manifests.CONTAINER, tail_lines=tail, raw=True
            )
        except Refused as exc:  # e.g. the container has not started yet
            return [f"(no logs: {exc.message})"]
        return text.splitlines()[-tail:]


# ---------------------------------------------------------------------- the client, thinly


@dataclass(frozen=True)
class _Applied:
    digest: str  # of the rendered objects
    at: float  # monotonic
    refused: str | None  # why the API server refused them, if it did


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def load_client(kubeconfig: str | None) -> Any:
    try:
        from kubernetes import client, config
    except ImportError as exc:
        raise Unavailable(f"the Kubernetes backend needs the k8s extra: pip install 'labdeck[k8s]' ({exc.name} is missing)") from None
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig, persist_config=False)
    try:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    except config.ConfigException:
        return config.new_client_from_config(persist_config=False)


def call(method: Any, *args: Any, raw: bool = False, timeout: Any = TIMEOUT, **kwargs: Any) -> Any:
    """One API request; its JSON (or text, ``raw``). A 4xx raises ``Refused`` with the
    API server's message; an unreachable server or a 5xx raises ``Unavailable``."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        response = method(*args, _preload_content=False, _request_timeout=timeout, **kwargs)
    except ApiException as exc:
        message = _api_message(exc)
        if exc.status is not None and 400 <= exc.status < 500:
            raise Refused(exc.status, message) from None
        raise Unavailable(f"the Kubernetes API server answered {exc.status}: {message}") from None
    except HTTPError as exc:
        raise Unavailable(f"cannot reach the Kubernetes API server: {exc}") from None
    # urllib3's response (client <= 36) or the client's RESTResponse (37+): read() is the body
    data = response.read()
    release = getattr(response, "release_conn", None)
    if release is not None:
        release()
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)
    return text if raw else json.loads(text)


def _api_message(exc: Any) -> str:
    body = exc.body.decode("utf-8", errors="replace") if isinstance(exc.body, bytes) else exc.body
    try:
        return str(json.loads(body)["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}" + (f": {body}" if body else "")


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


# ---------------------------------------------------------------------- reading status


def workload_status(
    workload: Workload, found: dict[str, Any] | None, pods: list[dict[str, Any]], refused: str | None = None
) -> WorkloadStatus:
    """What a Deployment (as the API server returned it, or None) and its pods say about
    ``workload``."""
    replicas = tuple(_replica(workload, pod) for pod in pods)
    if found is None:
        rollout = RolloutState.FAILED if refused else RolloutState.PROGRESSING
        return WorkloadStatus(workload.name, workload.revision, workload.replicas, replicas, rollout, refused)
    spec = found.get("spec") or {}
    status = found.get("status") or {}
    desired = spec.get("replicas", workload.replicas)
    if refused is not None:
        return WorkloadStatus(workload.name, workload.revision, desired, replicas, RolloutState.FAILED, refused)
    template_revision = (((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}).get(manifests.REVISION_LABEL)
    seen = status.get("observedGeneration", 0) >= (found.get("metadata") or {}).get("generation", 0)
    stalled = next(
        (
            c
            for c in status.get("conditions") or []
            if c.get("type") == "Progressing" and c.get("status") == "False" and c.get("reason") == "ProgressDeadlineExceeded"
        ),
        None,
    )
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    ready = status.get("readyReplicas", 0)
    message = None
    if template_revision != workload.revision or not seen:
        rollout = RolloutState.PROGRESSING
    elif stalled is not None:
        rollout = RolloutState.FAILED
        message = stalled.get("message") or "the rollout exceeded its progress deadline"
        why = next((r.message for r in replicas if r.revision == workload.revision and r.message), None)
        if why:
            message += f"; {why}"
    elif updated >= desired and total == updated and ready >= desired:
        rollout = RolloutState.COMPLETE
    else:
        rollout = RolloutState.PROGRESSING
    return WorkloadStatus(workload.name, workload.revision, desired, replicas, rollout, message)


def _replica(workload: Workload, pod: dict[str, Any]) -> Replica:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    ip = status.get("podIP")
    endpoints = {}
    if ip:
        host = f"[{ip}]" if ":" in ip else ip
        endpoints = {name: f"{host}:{workload.container_ports[name]}" for name in workload.ports if name in workload.container_ports}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    state, message = ReplicaState.STARTING, pending_message(status)
    failing = failure_reason(meta.get("name", "?"), status, containers)
    if meta.get("deletionTimestamp"):
        state, message = ReplicaState.STOPPING, None
    elif failing is not None:
        state, message = ReplicaState.CRASHED, failing
    elif ready and ip:
        state, message = ReplicaState.READY, None
    return Replica(
        replica_id=meta.get("name", "?"),
        revision=(meta.get("labels") or {}).get(manifests.REVISION_LABEL, ""),
        state=state,
        endpoints=endpoints,
        started_at=_ms(status.get("startTime") or meta.get("creationTimestamp")),
        restarts=sum(int(c.get("restartCount", 0)) for c in containers),
        pid=None,
        message=message,
    )


def failure_reason(pod: str, status: dict[str, Any], containers: list[dict[str, Any]]) -> str | None:
    if status.get("phase") == "Failed":
        return f"pod {pod} failed: {status.get('reason') or ''} {status.get('message') or ''}".rstrip()
    for c in containers:
        state = c.get("state") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated")
        if waiting.get("reason") in FAILING_REASONS or terminated:
            why = f"pod {pod}: container {c.get('name')} "
            if terminated:
                why += _terminated(terminated)
            else:
                why += waiting["reason"] + (f" ({waiting['message']})" if waiting.get("message") else "")
                last = (c.get("lastState") or {}).get("terminated")
                if last:
                    why += "; last time it " + _terminated(last)
            return why
    return None


def _terminated(terminated: dict[str, Any]) -> str:
    text = f"exited with status {terminated.get('exitCode')}"
    if terminated.get("reason"):
        text += f" ({terminated['reason']})"
    if terminated.get("message"):
        text += ":\n" + str(terminated["message"]).rstrip()
    return text


def pending_message(status: dict[str, Any]) -> str | None:
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return f"not scheduled: {c.get('message') or c.get('reason')}"
    for c in status.get("containerStatuses") or []:
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") and waiting.get("reason") != "ContainerCreating":
            return waiting["reason"] + (f": {waiting['message']}" if waiting.get("message") else "")
    return None


def _ms(timestamp: str | None) -> int:
    if not timestamp:
        return 0
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)
