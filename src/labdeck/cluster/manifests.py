"""The platform's own Kubernetes objects, rendered from a ``Values``: what
``labdeck k8s render --values`` prints and ``kubectl apply -f -`` takes.

In order: the three Namespaces (labdeck's, the workspaces', the model deployments'); the
``labdeck`` ServiceAccount with one Role + RoleBinding per namespace, each holding the
least rights the server needs there (no wildcards; Leases only in its own namespace); the
``labdeck-config`` ConfigMap holding ``labdeck.toml`` (no secret in it: those reach the
server as environment variables from ``secretKeyRef``); the server Deployment, its
PodDisruptionBudget (with more than one replica) and Service; an Ingress, or with Istio a
Gateway (unless an existing one is named) and a VirtualService routing ``/`` to labdeck;
and NetworkPolicies for the workspaces' and model servers' namespaces.

With ``migrations.job`` (the default) a Job runs ``labdeck db upgrade`` with the server's
image and database settings before the servers start; it is named after a hash of the
image and the database (``labdeck-migrate-<hash>``), so a new version renders a new Job
(a Job's pod template cannot change) and applying the same manifests again changes
nothing. The servers are then rendered with ``database.migrate_on_start`` off: they wait
for the schema (``database.schema_wait_s``, within the startup probe's five minutes)
instead of racing each other to migrate. Without the Job each server migrates as it starts.

With ``server.leaderElection`` (the default, and two replicas unless ``server.replicas``
says otherwise) the servers compete for the ``labdeck-leader`` Lease in labdeck's
namespace (``labdeck.cluster.leader``): the holder runs the controllers and the culler,
every replica serves (``labdeck.cluster.roles``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from labdeck.cluster.values import Values
from labdeck.compute.manifests import RUN_AS, managed_labels

NAME = "labdeck"
APP = "labdeck-server"
PORT = 8080
CONFIG_DIR = "/etc/labdeck"
CONFIG_FILE = "labdeck.toml"
DATA_DIR = "/tmp/labdeck"  # on the /tmp emptyDir: the server keeps only caches there
SERVER_LABELS = {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "server"}
LEASE = "labdeck-leader"
SCHEMA_WAIT_S = 270  # under the startup probe's 5 minutes
READ = ["get", "list", "watch"]
WRITE = [*READ, "create", "update", "patch", "delete"]


def render_platform(values: Values) -> list[dict[str, Any]]:
    """Every object of the platform, in the order they can be applied."""
    objects: list[dict[str, Any]] = [namespace(n) for n in _namespaces(values)]
    objects.append(_object("v1", "ServiceAccount", values.namespace, NAME))
    for role in roles(values):
        objects += [role, _binding(role, values.namespace)]
    config = config_map(values)
    objects.append(config)
    if values.migrations.job:
        objects.append(migration_job(values, config))
    objects.append(server_deployment(values, config))
    if values.server.replica_count > 1:
        objects.append(disruption_budget(values))
    objects.append(service(values))
    if values.istio.enabled:
        if values.istio.gateway is None:
            objects.append(gateway(values))
        objects.append(virtual_service(values))
    elif values.ingress.enabled:
        objects.append(ingress(values))
    objects += network_policies(values)
    # through JSON: no two objects share a list or dict, so the YAML has no anchors
    return json.loads(json.dumps(objects))


def _namespaces(values: Values) -> list[str]:
    return [values.namespace, values.workspaces.namespace, values.deployments.namespace]


def _object(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": managed_labels(APP)},
    }


def namespace(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": managed_labels(APP)},
    }


# ---------------------------------------------------------------------- RBAC


def _rule(group: str, resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": resources, "verbs": verbs}


def roles(values: Values) -> list[dict[str, Any]]:
    """One Role per namespace labdeck works in. In the workspaces' namespace it must hold
    every right the Spark Roles it creates grant (Kubernetes refuses to let it grant more),
    including ``deletecollection`` on pods, services and configmaps."""
    own = _object(
        "rbac.authorization.k8s.io/v1", "Role", values.namespace, "labdeck-leader-election"
    )
    own["rules"] = [
        _rule(
            "coordination.k8s.io", ["leases"], ["get", "list", "watch", "create", "update", "patch"]
        )
    ]

    workspaces = _object(
        "rbac.authorization.k8s.io/v1", "Role", values.workspaces.namespace, "labdeck-workspaces"
    )
    workspaces["rules"] = [
        _rule("", ["pods", "services", "configmaps"], [*WRITE, "deletecollection"]),
        _rule("", ["pods/log"], ["get"]),
        _rule("", ["persistentvolumeclaims", "secrets", "serviceaccounts"], WRITE),
        _rule("rbac.authorization.k8s.io", ["roles", "rolebindings"], WRITE),
    ]

    models = _object(
        "rbac.authorization.k8s.io/v1", "Role", values.deployments.namespace, "labdeck-deployments"
    )
    models["rules"] = [
        _rule("apps", ["deployments"], WRITE),
        _rule("", ["services"], WRITE),
        _rule("autoscaling", ["horizontalpodautoscalers"], WRITE),
        _rule("", ["pods"], READ),
        _rule("", ["pods/log"], ["get"]),
    ]
    if values.istio.enabled:
        models["rules"].append(_rule("networking.istio.io", ["virtualservices"], WRITE))
    return [own, workspaces, models]


def _binding(role: dict[str, Any], server_namespace: str) -> dict[str, Any]:
    meta = role["metadata"]
    binding = _object(
        "rbac.authorization.k8s.io/v1", "RoleBinding", meta["namespace"], meta["name"]
    )
    binding["roleRef"] = {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": meta["name"],
    }
    binding["subjects"] = [{"kind": "ServiceAccount", "name": NAME, "namespace": server_namespace}]
    return binding


# ---------------------------------------------------------------------- configuration


def service_url(values: Values) -> str:
    """labdeck's address inside the cluster (what workspaces and model servers use)."""
    return f"http://{NAME}.{values.namespace}.svc:{PORT}"


def settings_of(values: Values) -> dict[str, Any]:
    """The ``labdeck.toml`` of the server, as data: ``labdeck.config.Settings`` reads it."""
    s3 = values.s3
    auth: dict[str, Any] = {"mode": values.auth.mode, "admin_users": values.auth.admin_users}
    if values.public_url:
        auth["public_url"] = values.public_url
    oidc = values.auth.oidc
    if values.auth.mode == "oidc":
        auth["oidc"] = _present(
            provider=oidc.provider,
            issuer=oidc.issuer,
            client_id=oidc.client_id,
            hosted_domain=oidc.hosted_domain,
        )
    istio_gateway = values.istio.gateway or f"{values.namespace}/{NAME}"
    workspaces = values.workspaces
    return {
        "data_dir": DATA_DIR,
        # behind the Ingress or the Istio gateway, whose addresses are not known in advance
        "server": {
            "host": "0.0.0.0",
            "port": PORT,
            "proxy_headers": True,
            "forwarded_allow_ips": "*",
        },
        "database": _present(
            url=values.database.url,
            # the migration Job upgrades the schema; the servers wait for it, within the startup probe
            migrate_on_start=False if values.migrations.job else None,
            schema_wait_s=SCHEMA_WAIT_S if values.migrations.job else None,
        ),
        "cluster": {
            "leader_election": {
                "enabled": values.server.leader_election,
                "namespace": values.namespace,
                "lease_name": LEASE,
            }
        },
        "artifacts": _present(
            uri=f"s3://{s3.bucket}/{s3.prefix}".rstrip("/"),
            s3_endpoint_url=s3.endpoint,
            s3_region=s3.region,
        ),
        "auth": auth,
        "deployments": {
            "backend": "kubernetes",
            "kubernetes": {
                "namespace": values.deployments.namespace,
                "image": values.image.reference,
                "istio": values.istio.enabled,
                "istio_gateway": istio_gateway,
            },
        },
        "workspaces": {
            "default_environment": workspaces.environments[0].name,
            "idle_timeout_s": workspaces.idle_timeout_seconds,
            "environments": [
                _present(
                    name=e.name,
                    description=e.description,
                    packages=e.packages,
                    spark=e.spark,
                    image=e.image,
                )
                for e in workspaces.environments
            ],
            "kubernetes": _present(
                namespace=workspaces.namespace,
                storage_class=workspaces.storage_class,
                storage_size=workspaces.home_size,
                image=workspaces.environments[0].image,
                tracking_uri=service_url(values),
            ),
        },
        "logging": {"format": "json"},
    }


def _present(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def to_toml(data: dict[str, Any]) -> str:
    """TOML for the settings' shapes (scalars, lists of scalars, tables, arrays of tables);
    the standard library reads TOML but cannot write it. Strings and lists are written as
    JSON, which is valid TOML for them."""
    lines: list[str] = []
    _toml_table(data, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_table(data: dict[str, Any], path: list[str], lines: list[str]) -> None:
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    arrays = {
        k: v
        for k, v in data.items()
        if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)
    }
    for key, value in data.items():
        if key not in tables and key not in arrays:
            lines.append(f"{key} = {json.dumps(value)}")
    for key, value in tables.items():
        lines += ["", f"[{'.'.join([*path, key])}]"]
        _toml_table(value, [*path, key], lines)
    for key, items in arrays.items():
        for item in items:
            lines += ["", f"[[{'.'.join([*path, key])}]]"]
            _toml_table(item, [*path, key], lines)


def config_map(values: Values) -> dict[str, Any]:
    config = _object("v1", "ConfigMap", values.namespace, "labdeck-config")
    config["data"] = {CONFIG_FILE: to_toml(settings_of(values))}
    return config


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def secret_env(values: Values) -> list[dict[str, Any]]:
    """The server's secrets, each from the Secret key the values file names."""
    env = [
        _secret_env(
            "LABDECK_AUTH__SESSION_SECRET",
            values.auth.session_secret.secret_name,
            values.auth.session_secret.key,
        )
    ]
    if values.database.url_secret:
        env.append(
            _secret_env(
                "LABDECK_DATABASE__URL",
                values.database.url_secret.secret_name,
                values.database.url_secret.key,
            )
        )
    credentials = values.s3.credentials_secret
    if credentials:
        env.append(
            _secret_env("AWS_ACCESS_KEY_ID", credentials.secret_name, credentials.access_key_id_key)
        )
        env.append(
            _secret_env(
                "AWS_SECRET_ACCESS_KEY", credentials.secret_name, credentials.secret_access_key_key
            )
        )
    client_secret = values.auth.oidc.client_secret
    if values.auth.mode == "oidc" and client_secret:
        env.append(
            _secret_env(
                "LABDECK_AUTH__OIDC__CLIENT_SECRET", client_secret.secret_name, client_secret.key
            )
        )
    return env


# ---------------------------------------------------------------------- the server


def _probe(period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": period_s,
        "failureThreshold": failures,
    }


def server_deployment(values: Values, config: dict[str, Any]) -> dict[str, Any]:
    # a digest of the configuration in the pod template rolls the pods when it changes
    digest = hashlib.sha256(json.dumps(config["data"], sort_keys=True).encode()).hexdigest()[:16]
    resources = values.server.resources
    container = {
        "name": "server",
        "image": values.image.reference,
        "imagePullPolicy": values.image.pull_policy,
        "command": ["labdeck"],
        "args": ["server", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}", "--host", "0.0.0.0"],
        "ports": [{"name": "http", "containerPort": PORT}],
        "env": secret_env(values),
        "resources": {
            "requests": resources.requests.as_dict(),
            "limits": resources.limits.as_dict(),
        },
        # migrations (or the wait for the migration Job) run before the server listens:
        # the startup probe gives them time
        "startupProbe": _probe(5, 60),
        "readinessProbe": _probe(5, 3),
        "livenessProbe": _probe(10, 3),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": _container_security(),
    }
    if not container["resources"]["limits"]:
        del container["resources"]["limits"]
    deployment = _object("apps/v1", "Deployment", values.namespace, NAME)
    deployment["spec"] = {
        "replicas": values.server.replica_count,
        "selector": {"matchLabels": dict(SERVER_LABELS)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {
            "metadata": {
                "labels": {**managed_labels(APP), **SERVER_LABELS},
                "annotations": {"labdeck/config-digest": digest},
            },
            "spec": {
                "serviceAccountName": NAME,
                "securityContext": _pod_security(),
                "containers": [container],
                "volumes": [
                    {"name": "config", "configMap": {"name": config["metadata"]["name"]}},
                    {"name": "tmp", "emptyDir": {}},
                ],
            },
        },
    }
    return deployment


def migration_job(values: Values, config: dict[str, Any]) -> dict[str, Any]:
    """``labdeck db upgrade`` once per image and database: the name carries their hash."""
    database = {
        "url": values.database.url,
        "secret": values.database.url_secret.model_dump() if values.database.url_secret else None,
    }
    digest = hashlib.sha256(json.dumps([values.image.reference, database], sort_keys=True).encode()).hexdigest()[:10]
    env = []
    if values.database.url_secret:
        ref = values.database.url_secret
        env.append(_secret_env("LABDECK_DATABASE__URL", ref.secret_name, ref.key))
    container = {
        "name": "migrate",
        "image": values.image.reference,
        "imagePullPolicy": values.image.pull_policy,
        "command": ["labdeck"],
        "args": ["db", "upgrade", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "env": env,
        "resources": {"requests": values.server.resources.requests.as_dict()},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": _container_security(),
    }
    job = _object("batch/v1", "Job", values.namespace, f"{NAME}-migrate-{digest}")
    job["metadata"]["labels"]["app.kubernetes.io/component"] = "migration"
    job["spec"] = {
        "backoffLimit": 6,
        "template": {
            "metadata": {"labels": {**managed_labels(APP), "app.kubernetes.io/component": "migration"}},
            "spec": {
                "restartPolicy": "OnFailure",
                "automountServiceAccountToken": False,  # it talks to the database only
                "securityContext": _pod_security(),
                "containers": [container],
                "volumes": [
                    {"name": "config", "configMap": {"name": config["metadata"]["name"]}},
                    {"name": "tmp", "emptyDir": {}},
                ],
            },
        },
    }
    return job


def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "fsGroup": RUN_AS, "seccompProfile": {"type": "RuntimeDefault"}}


def disruption_budget(values: Values) -> dict[str, Any]:
    budget = _object("policy/v1", "PodDisruptionBudget", values.namespace, NAME)
    budget["spec"] = {"minAvailable": 1, "selector": {"matchLabels": dict(SERVER_LABELS)}}
    return budget


def service(values: Values) -> dict[str, Any]:
    svc = _object("v1", "Service", values.namespace, NAME)
    svc["spec"] = {
        "type": "ClusterIP",
        "selector": dict(SERVER_LABELS),
        "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
    }
    return svc


# ---------------------------------------------------------------------- the way in


def ingress(values: Values) -> dict[str, Any]:
    ing = _object("networking.k8s.io/v1", "Ingress", values.namespace, NAME)
    backend = {"service": {"name": NAME, "port": {"name": "http"}}}
    rule: dict[str, Any] = {
        "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}
    }
    if values.ingress.host:
        rule["host"] = values.ingress.host
    spec: dict[str, Any] = {"rules": [rule]}
    if values.ingress.class_name:
        spec["ingressClassName"] = values.ingress.class_name
    if values.ingress.tls_secret_name:
        spec["tls"] = [
            {"hosts": [values.ingress.host], "secretName": values.ingress.tls_secret_name}
        ]
    ing["spec"] = spec
    return ing


def _hosts(values: Values) -> list[str]:
    return [values.ingress.host or "*"]


def gateway(values: Values) -> dict[str, Any]:
    """labdeck's own Istio Gateway on the ingress gateway pods; its TLS Secret must live in
    their namespace (Istio's rule for ``credentialName``)."""
    gw = _object("networking.istio.io/v1beta1", "Gateway", values.namespace, NAME)
    servers: list[dict[str, Any]] = [
        {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": _hosts(values)}
    ]
    if values.ingress.tls_secret_name:
        servers.append(
            {
                "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                "hosts": _hosts(values),
                "tls": {"mode": "SIMPLE", "credentialName": values.ingress.tls_secret_name},
            }
        )
    gw["spec"] = {"selector": dict(values.istio.gateway_selector), "servers": servers}
    return gw


def virtual_service(values: Values) -> dict[str, Any]:
    vs = _object("networking.istio.io/v1beta1", "VirtualService", values.namespace, NAME)
    destination = {"host": f"{NAME}.{values.namespace}.svc.cluster.local", "port": {"number": PORT}}
    vs["spec"] = {
        "hosts": _hosts(values),
        "gateways": [values.istio.gateway or f"{values.namespace}/{NAME}"],
        "http": [
            {
                "name": NAME,
                "match": [{"uri": {"prefix": "/"}}],
                "rewrite": {"uri": "/"},
                "route": [{"destination": destination, "weight": 100}],
            }
        ],
    }
    return vs


# ---------------------------------------------------------------------- network policies


def _in_namespace(name: str, pods: dict[str, str] | None = None) -> dict[str, Any]:
    peer: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}
    }
    if pods is not None:
        peer["podSelector"] = {"matchLabels": dict(pods)}
    return peer


DNS_EGRESS = {
    "to": [_in_namespace("kube-system", {"k8s-app": "kube-dns"})],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}
# what is outside the cluster (S3, package indexes); private ranges, where pods and
# Services live, only as the rules above allow
OUTSIDE = {
    "ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}
}


def network_policies(values: Values) -> list[dict[str, Any]]:
    """Workspace pods take traffic from labdeck (the proxy) and from their own namespace
    (Spark executors and their driver); they reach labdeck's Service, DNS, their namespace,
    the outside, and with a Spark environment the API server. Model server pods take
    traffic from labdeck only (and the Istio ingress gateway when Istio routes to them)."""
    server = _in_namespace(values.namespace, SERVER_LABELS)
    same = {"podSelector": {}}

    workspaces = _object(
        "networking.k8s.io/v1", "NetworkPolicy", values.workspaces.namespace, "labdeck-workspaces"
    )
    workspaces["spec"] = {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [server, same]}],
        "egress": [
            {"to": [server], "ports": [{"protocol": "TCP", "port": PORT}]},
            DNS_EGRESS,
            {"to": [same, OUTSIDE]},
        ],
    }
    if any(e.spark for e in values.workspaces.environments):
        # Spark drivers start their executors through the API server, whose address
        # differs per cluster: its HTTPS ports, to any address
        workspaces["spec"]["egress"].append(
            {"ports": [{"protocol": "TCP", "port": p} for p in (443, 6443)]}
        )

    sources = [server]
    if values.istio.enabled:
        sources.append(_in_namespace(values.istio.gateway_namespace, values.istio.gateway_selector))
    models = _object(
        "networking.k8s.io/v1", "NetworkPolicy", values.deployments.namespace, "labdeck-models"
    )
    models["spec"] = {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": sources}]}
    return [workspaces, models]
