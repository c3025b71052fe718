"""A workspace server as Kubernetes objects, as z2jh's KubeSpawner would create them: plain
dicts, ready for server-side apply or YAML (``labdeck k8s render-workspace``).

Pure functions with no client imports and no cluster. The hub applies them
(``labdeck.workspaces.kube``) when the backend is Kubernetes, in this order:

- ``claim-<user>``: the user's home, a PersistentVolumeClaim (ReadWriteOnce) shared by
  their servers and mounted at ``/home/jovyan``. Because it is ReadWriteOnce, a user's
  servers are required to share a node (pod affinity on the user's label).
- for a Spark environment, ``spark-<user>``: a ServiceAccount, a Role and a RoleBinding
  that let the notebook's Spark driver run executors as pods in the namespace.
- ``jupyter-<user>[--<server>]``: a Secret with the server's own secret (random, made
  here; the identity provider lets in only requests that carry it). The MLflow token is
  not in it: the hub adds it (``mlflow-tracking-token``) when it starts the server, as
  it makes the token then; the pod reads it as optional, so a server of a labdeck without
  sign-in starts without one.
- for a Spark environment, a ConfigMap of the same name: ``spark-defaults.conf`` (Spark on
  Kubernetes in client mode, the driver reached through a headless Service) and the
  executors' pod template.
- a Service (ClusterIP) of the same name in front of JupyterLab (and the Spark UI), which
  labdeck's proxy forwards to; for Spark, ``spark-driver-<user>[--<server>]``, a headless
  Service giving the driver a DNS name the executors connect back to.
- the Pod ``jupyter-<user>[--<server>]``: JupyterLab with the flags of the local backend
  (``labdeck.workspaces.workloads``) but listening on every address, port 8888, as uid 1000
  (group 100 owns the home), with no service account token unless Spark needs one.

Names follow KubeSpawner's "safe" scheme, so that any username (``alice@example.com``)
gives valid names that never collide: a name that is already a DNS label of at most 48
characters, without ``--``, is kept; any other is cut down to letters, digits and '-' and
given a digest (``alice-example-com---1b4f0e9a``); a user and a server are joined by
``--``. Raw names are kept in the ``labdeck/user`` and ``labdeck/server`` annotations.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labdeck.compute.manifests import managed_labels, resource_requirements, selector, to_yaml
from labdeck.compute.workload import Resources
from labdeck.config import EnvironmentSettings, Settings
from labdeck.errors import InvalidParameter
from labdeck.workspaces.entities import base_url, label
from labdeck.workspaces.environments import NOTEBOOK_SPARK_CONF
from labdeck.workspaces.workloads import (
    JUPYTER_PORT,
    SECRET_ENV,
    SPARK_UI_PORT,
    check_server_name,
    check_user_name,
    jupyterlab_args,
)

APP_NAME = "labdeck-workspace"
EXECUTOR_APP_NAME = "labdeck-spark-executor"
CONTAINER = "notebook"
HOME = "/home/jovyan"
NOTEBOOK_PORT = 8888
SPARK_UI_CONTAINER_PORT = 4040
# Spark's own defaults for a driver on Kubernetes; fixed so that the headless Service has them.
SPARK_DRIVER_PORT = ("spark-driver", 7078)
SPARK_BLOCK_MANAGER_PORT = ("spark-blockmgr", 7079)
USER_ID = 1000  # jovyan in the images of `labdeck envs dockerfile`
FS_GROUP = 100  # owns the home volume, as in z2jh
# A folder of the pod's own: Jupyter's runtime files (its cookie secret among them) are
# per server, as in the local backend, not on the home that the user's servers share.
RUNTIME_DIR = "/tmp/jupyter-runtime"
SPARK_CONF_DIR = "/etc/labdeck/spark"
EXECUTOR_TEMPLATE = "executor-pod-template.yaml"
KUBERNETES_API = "k8s://https://kubernetes.default.svc"
SECRET_KEY = "workspace-secret"
TOKEN_KEY = "mlflow-tracking-token"
USER_LABEL = "labdeck/user"
SERVER_LABEL = "labdeck/server"
ENVIRONMENT_LABEL = "labdeck/environment"
NOTE_ANNOTATION = "labdeck/note"
TOKEN_NOTE = (
    f"{TOKEN_KEY} is added by the hub when it starts the server (a token of the user's, "
    "revoked when the server stops); until then the pod runs without MLFLOW_TRACKING_TOKEN"
)

# What Spark's own image runs for an executor (its entrypoint.sh), for an image that has
# PySpark from PyPI rather than Spark in /opt/spark. Spark keeps the template's command,
# appends the argument "executor" ($0 here) and sets the SPARK_* variables used below.
EXECUTOR_SCRIPT = """\
set -eu
spark_home="$(python3 -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
mapfile -t java_opts < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/^[^=]*=//')
exec java "${java_opts[@]}" -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \\
  -cp "${SPARK_CONF_DIR:+$SPARK_CONF_DIR:}$spark_home/jars/*" \\
  org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \\
  --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" \\
  --cores "$SPARK_EXECUTOR_CORES" --app-id "$SPARK_APPLICATION_ID" \\
  --hostname "$SPARK_EXECUTOR_POD_IP" --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" \\
  --podName "$SPARK_EXECUTOR_POD_NAME"
"""

_DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


# -------------------------------------------------- names: KubeSpawner's "safe" slugs

_SLUG_MAX = 48  # "jupyter-" / "spark-driver-" + a slug stay within a DNS label's 63
_HASH_LENGTH = 8
_LOWER = tuple(string.ascii_lowercase)
_LOWER_ALNUM = tuple(string.ascii_lowercase + string.digits)
_ALNUM = tuple(string.ascii_letters + string.digits)
_OBJECT_CHARS = re.compile(r"^[a-z0-9-]+$")
_LABEL_CHARS = re.compile(r"^[a-z0-9._-]+$", re.IGNORECASE)
_NOT_LOWER_ALNUM = re.compile(r"[^a-z0-9]+")


def is_object_name(s: str) -> bool:
    """A DNS label that is also an RFC 1035 one: every kind of object may take it."""
    return (
        0 < len(s) <= 63
        and s.startswith(_LOWER)
        and s.endswith(_LOWER_ALNUM)
        and bool(_OBJECT_CHARS.match(s))
    )


def is_label_value(s: str) -> bool:
    return s == "" or (
        len(s) <= 63 and s.startswith(_ALNUM) and s.endswith(_ALNUM) and bool(_LABEL_CHARS.match(s))
    )


def _cut_down(name: str, max_length: int) -> str:
    """Lowercase letters, digits and single '-', starting with a letter, never empty."""
    cut = _NOT_LOWER_ALNUM.sub("-", name.lower()).lstrip("-")[:max_length].rstrip("-")
    if cut and not cut.startswith(_LOWER):
        cut = "x-" + cut[: max_length - 2]
    return cut or "x"


def _hashed(name: str, max_length: int) -> str:
    # '---' before the digest: never produced by a kept name nor by a '--' join
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_LENGTH]
    return f"{_cut_down(name, max_length - _HASH_LENGTH - 3)}---{digest}"


def safe_slug(
    name: str, is_valid: Callable[[str], bool] = is_object_name, max_length: int | None = None
) -> str:
    """``name`` itself when it is valid, no longer than ``max_length`` and has no '--'; else
    a cut-down form with a digest of the name (at most ``max_length``, or 32, characters),
    which no other name gives."""
    if "--" not in name and is_valid(name) and (max_length is None or len(name) <= max_length):
        return name
    return _hashed(name, max_length or 32)


def _multi_slug(names: list[str], max_length: int = _SLUG_MAX) -> str:
    hasher = hashlib.sha256(names[0].encode())
    for name in names[1:]:
        hasher.update(b"\xff" + name.encode())  # \xff never occurs in UTF-8: no ambiguous joins
    per_name = (max_length - _HASH_LENGTH - 1) // len(names) - 2
    return (
        "--".join(_cut_down(name, per_name) for name in names)
        + "---"
        + hasher.hexdigest()[:_HASH_LENGTH]
    )


@dataclass(frozen=True)
class WorkspaceNames:
    """The names of one server's objects, and of its user's."""

    user: str
    server: str
    user_slug: str
    user_server: str  # KubeSpawner's {user_server}: "alice", "alice--big"

    @classmethod
    def of(cls, user: str, server: str) -> WorkspaceNames:
        user_slug = safe_slug(user, max_length=_SLUG_MAX)
        if not server:
            user_server = user_slug
        else:
            server_slug = safe_slug(server, max_length=_SLUG_MAX)
            if len(user_slug) + len(server_slug) + 2 > _SLUG_MAX:
                user_server = _multi_slug([user, server])
            else:
                user_server = f"{user_slug}--{server_slug}"
        return cls(user, server, user_slug, user_server)

    @property
    def pod(self) -> str:
        """The Pod's name, and its Service's, Secret's and ConfigMap's."""
        return f"jupyter-{self.user_server}"

    @property
    def driver_service(self) -> str:
        return f"spark-driver-{self.user_server}"

    @property
    def claim(self) -> str:
        return f"claim-{self.user_slug}"

    @property
    def service_account(self) -> str:
        """The Spark ServiceAccount's name, and its Role's and RoleBinding's."""
        return f"spark-{self.user_slug}"

    @property
    def user_label(self) -> str:
        return safe_slug(self.user, is_label_value)

    @property
    def server_label(self) -> str:
        return safe_slug(self.server, is_label_value) if self.server else ""


# ---------------------------------------------------------------------- the objects


def render_workspace(
    user: str,
    server: str,
    environment: EnvironmentSettings,
    settings: Settings,
    *,
    tracking_uri: str | None,
) -> list[dict[str, Any]]:
    """The objects of ``user``'s server ``server`` ("" for the default one) in
    ``environment``, in the order to apply them. ``tracking_uri`` is labdeck's URL as the
    pod reaches it (MLFLOW_TRACKING_URI); None leaves it unset."""
    check_user_name(user)
    if server:
        check_server_name(server)
    kubernetes = settings.workspaces.kubernetes
    namespace = kubernetes.namespace
    if not _DNS_1123_LABEL.match(namespace):
        raise InvalidParameter(
            f"Invalid namespace {namespace!r}: it must be a DNS label (a-z, 0-9, '-', at most 63)."
        )
    w = _Workspace(
        WorkspaceNames.of(user, server),
        environment,
        namespace,
        environment.image or kubernetes.image,
    )
    objects = [w.claim(kubernetes.storage_size, kubernetes.storage_class)]
    if environment.spark:
        objects += [w.service_account(), w.role(), w.role_binding()]
    objects.append(w.secret())
    if environment.spark:
        objects.append(w.spark_config_map())
    objects.append(w.service())
    if environment.spark:
        objects.append(w.driver_service())
    objects.append(w.pod(tracking_uri, grace_s=settings.workspaces.stop_grace_s))
    return objects


@dataclass(frozen=True)
class _Workspace:
    names: WorkspaceNames
    environment: EnvironmentSettings
    namespace: str
    image: str

    @property
    def url(self) -> str:
        return base_url(self.names.user, self.names.server)

    # ------------------------------------------------------------------ metadata

    def _user_labels(self) -> dict[str, str]:
        return {**managed_labels(APP_NAME), USER_LABEL: self.names.user_label}

    def _server_labels(self) -> dict[str, str]:
        return {
            **self._user_labels(),
            SERVER_LABEL: self.names.server_label,
            ENVIRONMENT_LABEL: self.environment.name,
            **selector(self.names.pod),
        }

    def _user_metadata(self, name: str) -> dict[str, Any]:
        """Of the objects the user's servers share."""
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": self._user_labels(),
            "annotations": {USER_LABEL: self.names.user},
        }

    def _metadata(self, name: str, **annotations: str) -> dict[str, Any]:
        """Of this server's objects."""
        metadata = self._user_metadata(name)
        metadata["labels"] = self._server_labels()
        if self.names.server:
            metadata["annotations"][SERVER_LABEL] = self.names.server
        metadata["annotations"] |= annotations
        return metadata

    # ------------------------------------------------------------------ the user's

    def claim(self, size: str, storage_class: str | None) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
        }
        if storage_class:
            spec["storageClassName"] = storage_class
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": self._user_metadata(self.names.claim),
            "spec": spec,
        }

    def service_account(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": self._user_metadata(self.names.service_account),
        }

    def role(self) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": self._user_metadata(self.names.service_account),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods", "services", "configmaps"],
                    # deletecollection: Spark (its fabric8 client) removes executors by label
                    "verbs": ["create", "get", "list", "watch", "delete", "deletecollection"],
                },
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            ],
        }

    def role_binding(self) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": self._user_metadata(self.names.service_account),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": self.names.service_account,
            },
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": self.names.service_account,
                    "namespace": self.namespace,
                }
            ],
        }

    # ------------------------------------------------------------------ the server's

    def secret(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": self._metadata(self.names.pod, **{NOTE_ANNOTATION: TOKEN_NOTE}),
            "type": "Opaque",
            "stringData": {SECRET_KEY: secrets.token_urlsafe(32)},
        }

    def service(self) -> dict[str, Any]:
        ports = [
            {
                "name": JUPYTER_PORT,
                "port": NOTEBOOK_PORT,
                "targetPort": JUPYTER_PORT,
                "protocol": "TCP",
                "appProtocol": "http",
            }
        ]
        if self.environment.spark:
            ports.append(
                {
                    "name": SPARK_UI_PORT,
                    "port": SPARK_UI_CONTAINER_PORT,
                    "targetPort": SPARK_UI_PORT,
                    "protocol": "TCP",
                    "appProtocol": "http",
                }
            )
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self._metadata(self.names.pod),
            "spec": {"type": "ClusterIP", "selector": selector(self.names.pod), "ports": ports},
        }

    def driver_service(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self._metadata(self.names.driver_service),
            "spec": {
                "clusterIP": "None",
                # executors connect back while the notebook runs Spark, ready or not
                "publishNotReadyAddresses": True,
                "selector": selector(self.names.pod),
                "ports": [
                    {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}
                    for name, port in (SPARK_DRIVER_PORT, SPARK_BLOCK_MANAGER_PORT)
                ],
            },
        }

    def spark_config_map(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": self._metadata(self.names.pod),
            "data": {
                "spark-defaults.conf": "".join(
                    f"{key} {value}\n" for key, value in self.spark_conf().items()
                ),
                EXECUTOR_TEMPLATE: to_yaml([self.executor_pod_template()]),
            },
        }

    def spark_conf(self) -> dict[str, str]:
        """Spark on Kubernetes in client mode: the notebook is the driver, executors are pods."""
        return {
            "spark.master": KUBERNETES_API,
            "spark.submit.deployMode": "client",
            "spark.kubernetes.namespace": self.namespace,
            "spark.kubernetes.container.image": self.image,
            "spark.kubernetes.container.image.pullPolicy": "IfNotPresent",
            # executors are owned by the notebook's pod: deleted with it
            "spark.kubernetes.driver.pod.name": self.names.pod,
            "spark.kubernetes.executor.podTemplateFile": f"{SPARK_CONF_DIR}/{EXECUTOR_TEMPLATE}",
            "spark.kubernetes.executor.podTemplateContainerName": "executor",
            "spark.driver.host": f"{self.names.driver_service}.{self.namespace}.svc",
            "spark.driver.bindAddress": "0.0.0.0",
            "spark.driver.port": str(SPARK_DRIVER_PORT[1]),
            "spark.driver.blockManager.port": str(SPARK_BLOCK_MANAGER_PORT[1]),
            "spark.ui.port": str(SPARK_UI_CONTAINER_PORT),
            # no trailing '/': Spark appends "/jobs/" and the like (as in the local backend)
            "spark.ui.proxyBase": f"{self.url}{SPARK_UI_PORT}",
            **NOTEBOOK_SPARK_CONF,
        }

    def executor_pod_template(self) -> dict[str, Any]:
        """What Spark starts each executor pod from (it adds the image, resources and env)."""
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "labels": {
                    **managed_labels(EXECUTOR_APP_NAME),
                    USER_LABEL: self.names.user_label,
                    SERVER_LABEL: self.names.server_label,
                    ENVIRONMENT_LABEL: self.environment.name,
                }
            },
            "spec": {
                "automountServiceAccountToken": False,  # executors never call the API
                "enableServiceLinks": False,
                "securityContext": _pod_security(),
                "containers": [
                    {
                        "name": "executor",
                        "command": ["/bin/bash", "-c", EXECUTOR_SCRIPT],
                        "securityContext": _container_security(),
                    }
                ],
            },
        }

    def pod(self, tracking_uri: str | None, *, grace_s: float) -> dict[str, Any]:
        spark = self.environment.spark
        env: list[dict[str, Any]] = [
            {"name": "HOME", "value": HOME},
            {"name": "JUPYTER_RUNTIME_DIR", "value": RUNTIME_DIR},
            {"name": "LABDECK_ENVIRONMENT", "value": self.environment.name},
            {"name": "LABDECK_WORKSPACE", "value": label(self.names.user, self.names.server)},
        ]
        if tracking_uri:
            env.append({"name": "MLFLOW_TRACKING_URI", "value": tracking_uri})
        env += [
            {
                "name": SECRET_ENV,
                "valueFrom": {"secretKeyRef": {"name": self.names.pod, "key": SECRET_KEY}},
            },
            {
                "name": "MLFLOW_TRACKING_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {"name": self.names.pod, "key": TOKEN_KEY, "optional": True}
                },
            },
        ]
        ports = [(JUPYTER_PORT, NOTEBOOK_PORT)]
        mounts = [{"name": "home", "mountPath": HOME}]
        volumes: list[dict[str, Any]] = [
            {"name": "home", "persistentVolumeClaim": {"claimName": self.names.claim}}
        ]
        if spark:
            env.append({"name": "SPARK_CONF_DIR", "value": SPARK_CONF_DIR})
            ports += [
                (SPARK_UI_PORT, SPARK_UI_CONTAINER_PORT),
                SPARK_DRIVER_PORT,
                SPARK_BLOCK_MANAGER_PORT,
            ]
            mounts.append({"name": "spark-conf", "mountPath": SPARK_CONF_DIR, "readOnly": True})
            volumes.append({"name": "spark-conf", "configMap": {"name": self.names.pod}})
        container: dict[str, Any] = {
            "name": CONTAINER,
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["python", "-m", "jupyterlab"],
            "args": jupyterlab_args(self.url, HOME, host="0.0.0.0", port=str(NOTEBOOK_PORT)),
            "workingDir": HOME,
            "ports": [
                {"name": name, "containerPort": port, "protocol": "TCP"} for name, port in ports
            ],
            "env": env,
        }
        resources = resource_requirements(
            Resources(
                cpu_request=self.environment.cpu_request,
                cpu_limit=self.environment.cpu_limit,
                memory_request=self.environment.memory_request,
                memory_limit=self.environment.memory_limit,
            )
        )
        if resources:
            container["resources"] = resources
        container |= {
            "readinessProbe": {
                "httpGet": {
                    "path": f"{self.url}api",
                    "port": JUPYTER_PORT,
                    "scheme": "HTTP",
                },  # answers without credentials
                "periodSeconds": 2,
                "timeoutSeconds": 2,
                "failureThreshold": 3,
            },
            "securityContext": _container_security(),
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": mounts,
        }
        spec: dict[str, Any] = {}
        if spark:
            spec["serviceAccountName"] = self.names.service_account
        spec |= {
            "automountServiceAccountToken": spark,  # only Spark's driver talks to the API
            "enableServiceLinks": False,  # many workspaces in a namespace: a flood of variables
            # a server that exits on its own (File > Shut Down) stays stopped; a crash restarts it
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": math.ceil(grace_s),
            "securityContext": _pod_security() | {"fsGroupChangePolicy": "OnRootMismatch"},
            "affinity": self._same_node_as_the_users_other_servers(),
            "containers": [container],
            "volumes": volumes,
        }
        metadata = self._metadata(self.names.pod)
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}

    def _same_node_as_the_users_other_servers(self) -> dict[str, Any]:
        # The home is ReadWriteOnce: every pod mounting it must run on one node. The first
        # server matches its own term, which the scheduler allows anywhere.
        users_servers = {"app.kubernetes.io/name": APP_NAME, USER_LABEL: self.names.user_label}
        return {
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": users_servers},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        }


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "fsGroup": FS_GROUP,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
