"""``KubernetesWorkspaces``: a workspace server as objects on a cluster, applied, watched and
deleted for the hub when the platform's backend is Kubernetes.

What it applies is what ``labdeck.workspaces.manifests`` renders, in that order, with
server-side apply (``fieldManager=labdeck``, forced), in ``workspaces.kubernetes.namespace``
of the one cluster that ``deployments.kubernetes.kubeconfig`` names (else in-cluster). The
server's Secret is filled here: its own secret (which the hub keeps, for the proxy) and the
user's MLflow token. Requests go through ``labdeck.compute.kubernetes``'s thin client
(``call``): a 4xx is a refusal, said as ``InvalidState``; an unreachable API server (or a
5xx) raises ``Unavailable``.

What it reads back is the Pod alone (``status``): Ready is RUNNING, reached through the
pod's Service by its DNS name, so labdeck must run in the cluster; a container that cannot
run (CrashLoopBackOff, an image that cannot be pulled, ...) is FAILED with the reason and
its last lines; anything else is STARTING, with the scheduler's or the kubelet's message.

``delete`` removes the server's objects (foreground) but never the user's home
(``claim-<user>``) nor the user's Spark ServiceAccount, Role and RoleBinding, which the
user's other servers share. Nothing is kept in memory: a restarted labdeck finds the pods.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, NamedTuple

from labdeck.compute.kubernetes import (
    APPLY_CONTENT_TYPE,
    FIELD_MANAGER,
    Refused,
    call,
    failure_reason,
    load_client,
    pending_message,
)
from labdeck.config import EnvironmentSettings, Settings
from labdeck.errors import InvalidState, Unavailable
from labdeck.workspaces.entities import ServerState, label
from labdeck.workspaces.manifests import (
    CONTAINER,
    NOTEBOOK_PORT,
    SECRET_KEY,
    SPARK_UI_CONTAINER_PORT,
    TOKEN_KEY,
    WorkspaceNames,
    render_workspace,
)
from labdeck.workspaces.workloads import JUPYTER_PORT, SPARK_UI_PORT

# kind -> (API class, the name of its method's resource): patch_/delete_namespaced_<resource>
_APIS = {
    "PersistentVolumeClaim": ("CoreV1Api", "persistent_volume_claim"),
    "ServiceAccount": ("CoreV1Api", "service_account"),
    "Role": ("RbacAuthorizationV1Api", "role"),
    "RoleBinding": ("RbacAuthorizationV1Api", "role_binding"),
    "ConfigMap": ("CoreV1Api", "config_map"),
    "Secret": ("CoreV1Api", "secret"),
    "Service": ("CoreV1Api", "service"),
    "Pod": ("CoreV1Api", "pod"),
}


class PodStatus(NamedTuple):
    """What the Pod of a server says: its state (STARTING, RUNNING or FAILED), where
    JupyterLab is reached once RUNNING (``host:8888``), why it is not (yet), and every
    port the proxy may forward to by name (JupyterLab's, and the Spark UI's)."""

    state: ServerState
    endpoint: str | None
    message: str | None
    endpoints: dict[str, str]


class KubernetesWorkspaces:
    def __init__(self, settings: Settings, *, api_client: Any = None):
        """No I/O: the client is made on first use."""
        self.namespace = settings.workspaces.kubernetes.namespace
        self._kubeconfig = settings.deployments.kubernetes.kubeconfig
        self._client = api_client
        self._client_lock = threading.Lock()

    def _api(self, name: str) -> Any:
        from kubernetes import client

        with self._client_lock:
            if self._client is None:
                self._client = load_client(self._kubeconfig)
        return getattr(client, name)(self._client)

    def _method(self, verb: str, kind: str) -> Any:
        api, resource = _APIS[kind]
        return getattr(self._api(api), f"{verb}_namespaced_{resource}")

    # ------------------------------------------------------------------ the interface

    async def apply(
        self,
        user: str,
        server: str,
        environment: EnvironmentSettings,
        settings: Settings,
        secret: str,
        token: str | None,
        tracking_uri: str | None,
    ) -> PodStatus:
        """Apply the server's objects (its Secret holding ``secret`` and, with sign-in on,
        the MLflow ``token``); what its Pod says right after."""
        objects = render_workspace(user, server, environment, settings, tracking_uri=tracking_uri)
        for obj in objects:
            if obj["kind"] == "Secret":
                obj["stringData"] = {SECRET_KEY: secret} | ({TOKEN_KEY: token} if token else {})
        await asyncio.to_thread(self._apply_objects, label(user, server), objects)
        return await self.status(user, server)

    async def status(self, user: str, server: str) -> PodStatus:
        names = WorkspaceNames.of(user, server)
        pod = await asyncio.to_thread(self._read_pod, names.pod)
        return pod_status(names, self.namespace, pod)

    async def delete(self, user: str, server: str) -> None:
        names = WorkspaceNames.of(user, server)
        await asyncio.to_thread(self._delete, names)

    async def logs(self, user: str, server: str, tail: int) -> list[str]:
        """JupyterLab's last ``tail`` lines (or why there are none)."""
        names = WorkspaceNames.of(user, server)
        return await asyncio.to_thread(self._pod_log, names.pod, tail)

    async def close(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None

    # ------------------------------------------------------------------ blocking calls (run in a thread)

    def _apply_objects(self, what: str, objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            meta = obj["metadata"]
            try:
                call(
                    self._method("patch", obj["kind"]),
                    meta["name"],
                    meta["namespace"],
                    obj,
                    field_manager=FIELD_MANAGER,
                    force=True,
                    _content_type=APPLY_CONTENT_TYPE,
                )
            except Refused as exc:
                raise InvalidState(
                    f"Kubernetes refused the {obj['kind']} {meta['namespace']}/{meta['name']} of {what}: {exc.message}"
                ) from None

    def _read_pod(self, name: str) -> dict[str, Any] | None:
        try:
            return call(self._method("read", "Pod"), name, self.namespace)
        except Refused as exc:
            if exc.status == 404:
                return None
            raise Unavailable(f"Cannot read the pod {self.namespace}/{name}: {exc.message}") from None

    def _delete(self, names: WorkspaceNames) -> None:
        # the Pod first: nothing uses the rest once it is gone
        doomed = [
            ("Pod", names.pod),
            ("Service", names.pod),
            ("Service", names.driver_service),
            ("ConfigMap", names.pod),
            ("Secret", names.pod),
        ]
        for kind, name in doomed:
            try:
                call(self._method("delete", kind), name, self.namespace, propagation_policy="Foreground")
            except Refused as exc:
                if exc.status != 404:  # 404: never made (not Spark), or gone already
                    raise Unavailable(f"Cannot delete the {kind} {self.namespace}/{name}: {exc.message}") from None

    def _pod_log(self, pod: str, tail: int) -> list[str]:
        if tail <= 0:
            return []
        try:
            text = call(
                self._api("CoreV1Api").read_namespaced_pod_log, pod, self.namespace, container=CONTAINER, tail_lines=tail, raw=True
            )
        except Refused as exc:  # e.g. the container has not started yet
            return [f"(no logs: {exc.message})"]
        return text.splitlines()[-tail:]


def pod_status(names: WorkspaceNames, namespace: str, pod: dict[str, Any] | None) -> PodStatus:
    """What a Pod (as the API server returned it, or None) says of its server."""
    if pod is None:
        return PodStatus(ServerState.FAILED, None, f"the pod {namespace}/{names.pod} is gone", {})
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        return PodStatus(ServerState.STARTING, None, f"the pod {names.pod} is being deleted", {})
    failing = failure_reason(names.pod, status, status.get("containerStatuses") or [])
    if failing is not None:
        return PodStatus(ServerState.FAILED, None, failing, {})
    if status.get("phase") == "Succeeded":
        return PodStatus(ServerState.FAILED, None, f"JupyterLab in pod {names.pod} exited (shut down from inside)", {})
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    if not ready:
        return PodStatus(ServerState.STARTING, None, pending_message(status), {})
    ports = {p.get("name") for c in (pod.get("spec") or {}).get("containers") or [] for p in c.get("ports") or []}
    endpoints = pod_endpoints(names, namespace, spark_ui=SPARK_UI_PORT in ports)
    return PodStatus(ServerState.RUNNING, endpoints[JUPYTER_PORT], None, endpoints)


def pod_endpoints(names: WorkspaceNames, namespace: str, *, spark_ui: bool) -> dict[str, str]:
    """Where a running server's ports are reached: its Service's DNS name, so any replica
    of labdeck computes them from the server's name alone."""
    host = f"{names.pod}.{namespace}.svc"
    endpoints = {JUPYTER_PORT: f"{host}:{NOTEBOOK_PORT}"}
    if spark_ui:
        endpoints[SPARK_UI_PORT] = f"{host}:{SPARK_UI_CONTAINER_PORT}"
    return endpoints
