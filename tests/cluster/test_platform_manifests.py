"""The platform's own objects (``labdeck k8s render --values``): rendered for several values
files, every object checked against the Kubernetes schema in strict mode (two versions,
``tests/compute/k8s_kit.py``), Istio's Gateway and VirtualService by their own rules, the
invariants a cluster install relies on, the configuration read back by labdeck's real
settings loader, bad values files refused with the field named, and the CLI."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from labdeck.cli import cli
from labdeck.cli.server_cmd import server as server_command
from labdeck.cluster.manifests import SERVER_LABELS, render_platform
from labdeck.cluster.values import Values, ValuesError, load_values, parse_values
from labdeck.config import Settings
from tests.compute.k8s_kit import DNS_1035, check_objects, check_schema, parse_yaml

EXAMPLE = Path(__file__).parents[2] / "deploy" / "values.yaml"

MINIMAL: dict[str, Any] = {
    "database": {"url": "postgresql+psycopg://labdeck@db.example.com/labdeck"},
    "s3": {"bucket": "team-artifacts"},
    "auth": {"sessionSecret": {"secretName": "labdeck-session", "key": "secret"}},
}
ISTIO: dict[str, Any] = {
    **MINIMAL,
    "server": {"replicas": 3},
    "ingress": {"enabled": False, "host": "labdeck.example.com", "tlsSecretName": "labdeck-tls"},
    "istio": {"enabled": True},
}
ISTIO_EXISTING_GATEWAY: dict[str, Any] = {
    **MINIMAL,
    "ingress": {"enabled": False},
    "istio": {"enabled": True, "gateway": "seldon-system/seldon-gateway"},
}
OIDC_GOOGLE: dict[str, Any] = {
    **MINIMAL,
    "ingress": {"host": "ml.example.com", "tlsSecretName": "ml-tls", "className": "nginx"},
    "auth": {
        "mode": "oidc",
        "sessionSecret": {"secretName": "labdeck-session", "key": "secret"},
        "adminUsers": ["ana@example.com"],
        "oidc": {
            "provider": "google",
            "clientId": "1234.apps.googleusercontent.com",
            "clientSecret": {"secretName": "labdeck-oidc", "key": "client-secret"},
            "hostedDomain": "example.com",
        },
    },
}
CUSTOM_STORAGE: dict[str, Any] = {
    **MINIMAL,
    "namespace": "ml-platform",
    "server": {
        "replicas": 1,
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2"}},
    },
    "workspaces": {
        "namespace": "ml-users",
        "storageClass": "fast-ssd",
        "homeSize": "50Gi",
        "idleTimeoutSeconds": 900,
        "environments": [
            {"name": "gpu", "image": "registry.example.com/ws-gpu:3", "packages": ["torch"]}
        ],
    },
    "deployments": {"namespace": "ml-models"},
}
EXTERNAL_SECRETS: dict[str, Any] = {
    "image": {"repository": "registry.example.com/labdeck", "tag": "1.2.3", "pullPolicy": "Always"},
    "database": {"urlSecret": {"secretName": "labdeck-database", "key": "url"}},
    "s3": {
        "bucket": "artifacts",
        "prefix": "team-a",
        "endpoint": "http://minio.storage.svc:9000",
        "credentialsSecret": {"secretName": "labdeck-s3"},
    },
    "auth": {
        "mode": "oidc",
        "sessionSecret": {"secretName": "labdeck-keys", "key": "session"},
        "oidc": {
            "issuer": "https://sso.example.com/realms/team",
            "clientId": "labdeck",
            "clientSecret": {"secretName": "labdeck-keys", "key": "oidc"},
        },
    },
}
VALUES_FILES = {
    "minimal": MINIMAL,
    "istio": ISTIO,
    "istio-existing-gateway": ISTIO_EXISTING_GATEWAY,
    "oidc-google": OIDC_GOOGLE,
    "custom-storage": CUSTOM_STORAGE,
    "external-secrets": EXTERNAL_SECRETS,
}
CLUSTER_SCOPED = {"Namespace"}


def stand_in_secrets(objects: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
    """The Secrets an administrator creates before applying (the manifests only name them),
    each key with a recognizable value; and those values."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                ref = env["valueFrom"]["secretKeyRef"]
                wanted.setdefault((obj["metadata"]["namespace"], ref["name"]), set()).add(
                    ref["key"]
                )
    secrets, plain = [], set()
    for (namespace, name), keys in wanted.items():
        data = {}
        for key in sorted(keys):
            plain.add(f"value-of-{name}-{key}")
            data[key] = base64.b64encode(f"value-of-{name}-{key}".encode()).decode()
        secrets.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace},
                "type": "Opaque",
                "data": data,
            }
        )
    return secrets, plain


def check_gateway(gateway: dict[str, Any]) -> None:
    """The structure of Istio's networking.istio.io/v1beta1 Gateway (the fields used)."""
    assert gateway["apiVersion"] == "networking.istio.io/v1beta1"
    assert set(gateway) == {"apiVersion", "kind", "metadata", "spec"}
    spec = gateway["spec"]
    assert set(spec) == {"selector", "servers"} and spec["selector"]
    for server in spec["servers"]:
        assert set(server) <= {"port", "hosts", "tls"}
        assert set(server["port"]) == {"number", "name", "protocol"}
        assert server["port"]["protocol"] in {"HTTP", "HTTPS"}
        assert server["hosts"] and all(isinstance(h, str) for h in server["hosts"])
        if server["port"]["protocol"] == "HTTPS":
            assert server["tls"]["mode"] == "SIMPLE" and server["tls"]["credentialName"]


def check_platform(
    values: Values, objects: list[dict[str, Any]]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every object valid, and the invariants of a cluster install; the objects by kind."""
    secrets, secret_values = stand_in_secrets(objects)
    namespaced = [o for o in objects if o["kind"] not in CLUSTER_SCOPED]
    for namespace in (o for o in objects if o["kind"] == "Namespace"):
        check_schema(namespace)
        assert "namespace" not in namespace["metadata"] and DNS_1035.match(
            namespace["metadata"]["name"]
        )
    namespaces = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    assert namespaces == {
        values.namespace,
        values.workspaces.namespace,
        values.deployments.namespace,
    }
    assert {o["metadata"]["namespace"] for o in namespaced} <= namespaces

    # the kit's binding rule is for bindings within one namespace; the server's account
    # is bound in the namespaces it manages: checked here
    across = [
        o
        for o in namespaced
        if o["kind"] == "RoleBinding" and o["metadata"]["namespace"] != values.namespace
    ]
    gateways = [o for o in namespaced if o["kind"] == "Gateway"]
    by_kind = check_objects(
        [o for o in namespaced if o not in across and o not in gateways] + secrets
    )
    for binding in across:
        check_schema(binding)
        (subject,) = binding["subjects"]
        assert subject == {
            "kind": "ServiceAccount",
            "name": "labdeck",
            "namespace": values.namespace,
        }
        assert binding["roleRef"]["name"] in by_kind["Role"]
        role = by_kind["Role"][binding["roleRef"]["name"]]
        assert role["metadata"]["namespace"] == binding["metadata"]["namespace"]
    for gateway in gateways:
        check_gateway(gateway)
    by_kind["Gateway"] = {g["metadata"]["name"]: g for g in gateways}
    by_kind["RoleBinding"] = {
        **by_kind.get("RoleBinding", {}),
        **{b["metadata"]["name"]: b for b in across},
    }

    assert not {"ClusterRole", "ClusterRoleBinding", "Secret"} & {o["kind"] for o in objects}
    for name, deployment in by_kind["Deployment"].items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert container["readinessProbe"] and container["livenessProbe"], name
            assert (
                container["resources"]["requests"]["cpu"]
                and container["resources"]["requests"]["memory"]
            ), name
            assert (
                container["securityContext"]["readOnlyRootFilesystem"]
                and container["securityContext"]["runAsNonRoot"]
            )
    for name, role in by_kind["Role"].items():
        assert role["metadata"]["namespace"] in namespaces, name
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], (
                f"Role {name}: {rule}"
            )
            if "leases" in rule["resources"]:
                assert role["metadata"]["namespace"] == values.namespace, (
                    "leases only in labdeck's own namespace"
                )
    for config in by_kind["ConfigMap"].values():
        text = yaml.safe_dump(config)
        assert not [v for v in secret_values if v in text]
        assert "secret" not in tomllib_keys(config["data"]["labdeck.toml"])

    (server,) = by_kind["Deployment"].values()
    pods = server["spec"]["template"]["metadata"]["labels"]
    assert SERVER_LABELS.items() <= pods.items()
    assert by_kind["Service"]["labdeck"]["spec"]["selector"].items() <= pods.items()
    jobs = by_kind.get("Job", {})
    if values.migrations.job:
        (job,) = jobs.values()
        (migrate,) = job["spec"]["template"]["spec"]["containers"]
        assert migrate["args"][:2] == ["db", "upgrade"] and migrate["image"] == values.image.reference
        assert migrate["resources"]["requests"] and migrate["securityContext"]["readOnlyRootFilesystem"]
        assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")
        # what the server reads from a Secret, the Job reads from the same one (the database's only)
        server_env = {e["name"]: e for e in server["spec"]["template"]["spec"]["containers"][0]["env"]}
        for env in migrate["env"]:
            assert env == server_env[env["name"]] and env["name"] == "LABDECK_DATABASE__URL"
    else:
        assert not jobs
    if values.server.replica_count > 1:
        budget = by_kind["PodDisruptionBudget"]["labdeck"]["spec"]
        assert (
            budget["minAvailable"] == 1
            and budget["selector"]["matchLabels"].items() <= pods.items()
        )
    else:
        assert "PodDisruptionBudget" not in by_kind, (
            "a budget of one pod out of one blocks every drain"
        )
    return by_kind


def tomllib_keys(text: str) -> str:
    """Every key of a TOML document, lowercased, joined (to look for secrets among them)."""
    import tomllib

    keys: list[str] = []

    def walk(data: Any) -> None:
        if isinstance(data, dict):
            for key, value in data.items():
                keys.append(key.lower())
                walk(value)
        elif isinstance(data, list):
            for item in data:
                walk(item)

    walk(tomllib.loads(text))
    return " ".join(keys)


def server_settings(
    by_kind: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The settings the server pod ends with: its ConfigMap's labdeck.toml read by labdeck's
    own loader, with the environment the pod gets from the stand-in Secrets."""
    (config,) = by_kind["ConfigMap"].values()
    path = tmp_path / "labdeck.toml"
    path.write_text(config["data"]["labdeck.toml"])
    (container,) = by_kind["Deployment"]["labdeck"]["spec"]["template"]["spec"]["containers"]
    for env in container["env"]:
        ref = env["valueFrom"]["secretKeyRef"]
        monkeypatch.setenv(env["name"], f"value-of-{ref['name']}-{ref['key']}")
    return Settings.load(path)


@pytest.mark.parametrize("name", list(VALUES_FILES))
def test_every_values_file_renders_valid_objects(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = parse_values(VALUES_FILES[name])
    objects = render_platform(values)
    by_kind = check_platform(values, objects)
    settings = server_settings(by_kind, tmp_path, monkeypatch)
    assert settings.deployments.backend == "kubernetes"
    assert settings.deployments.kubernetes.namespace == values.deployments.namespace
    assert settings.workspaces.kubernetes.namespace == values.workspaces.namespace
    assert (
        settings.workspaces.kubernetes.tracking_uri == f"http://labdeck.{values.namespace}.svc:8080"
    )
    assert (
        settings.auth.session_secret
        == f"value-of-{values.auth.session_secret.secret_name}-{values.auth.session_secret.key}"
    )
    assert settings.auth.mode == values.auth.mode
    # the pod's command line is one `labdeck server` accepts
    (container,) = by_kind["Deployment"]["labdeck"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["labdeck"] and container["args"][0] == "server"
    params = server_command.make_context("server", container["args"][1:]).params
    assert (
        params["config_file"] == Path("/etc/labdeck/labdeck.toml") and params["host"] == "0.0.0.0"
    )


def test_minimal_values_fill_in_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = parse_values(MINIMAL)
    by_kind = check_platform(values, render_platform(values))
    deployment = by_kind["Deployment"]["labdeck"]
    # leader election is on by default, and with it two replicas (and a budget)
    assert deployment["metadata"]["namespace"] == "labdeck" and deployment["spec"]["replicas"] == 2
    assert by_kind["PodDisruptionBudget"]["labdeck"]["spec"]["minAvailable"] == 1
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "2Gi"},
    }
    assert {
        p["path"]
        for p in (container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"])
    } == {"/health"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/tmp"]] == {"name": "tmp", "emptyDir": {}}
    assert [e["name"] for e in container["env"]] == ["LABDECK_AUTH__SESSION_SECRET"]
    (ingress,) = by_kind["Ingress"].values()
    (rule,) = ingress["spec"]["rules"]
    assert "host" not in rule and rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "labdeck",
        "port": {"name": "http"},
    }
    assert "VirtualService" not in by_kind and not by_kind["Gateway"]
    # the default spark environment's driver starts executors through the API server
    egress = by_kind["NetworkPolicy"]["labdeck-workspaces"]["spec"]["egress"]
    assert {
        "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]
    } in egress
    settings = server_settings(by_kind, tmp_path, monkeypatch)
    assert settings.database.url == MINIMAL["database"]["url"]
    assert settings.artifacts_uri == "s3://team-artifacts/labdeck"
    assert [e.name for e in settings.workspaces.environments] == ["base", "spark"]
    assert all(e.image for e in settings.workspaces.environments)
    assert settings.auth.public_url is None
    election = settings.cluster.leader_election
    assert election.enabled and election.namespace == "labdeck" and election.lease_name == "labdeck-leader"
    # the migration Job upgrades the schema; the servers wait for it within their startup probe
    assert settings.database.migrate_on_start is False
    probe = container["startupProbe"]
    assert settings.database.schema_wait_s < probe["periodSeconds"] * probe["failureThreshold"]


def test_the_migration_job_runs_labdeck_db_upgrade_once_per_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labdeck.cli.db_cmd import upgrade as upgrade_command

    values = parse_values(EXTERNAL_SECRETS)
    by_kind = check_platform(values, render_platform(values))
    (job,) = by_kind["Job"].values()
    assert job["metadata"]["name"].startswith("labdeck-migrate-")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    params = upgrade_command.make_context("upgrade", container["args"][2:]).params
    assert params["config_file"] == Path("/etc/labdeck/labdeck.toml")
    assert [e["name"] for e in container["env"]] == ["LABDECK_DATABASE__URL"]
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    # the Job reads the server's own configuration: the same database
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config", "configMap": {"name": "labdeck-config"}} in volumes

    def job_name(data: dict[str, Any]) -> str:
        (found,) = [o for o in render_platform(parse_values(data)) if o["kind"] == "Job"]
        return found["metadata"]["name"]

    assert job_name(EXTERNAL_SECRETS) == job["metadata"]["name"]  # the same values: the same Job
    newer = copy.deepcopy(EXTERNAL_SECRETS)
    newer["image"]["tag"] = "1.2.4"
    assert job_name(newer) != job["metadata"]["name"]  # a new version: a new Job
    other_db = copy.deepcopy(EXTERNAL_SECRETS)
    other_db["database"]["urlSecret"]["key"] = "other-url"
    assert job_name(other_db) != job["metadata"]["name"]


def test_without_the_job_each_server_migrates_as_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = parse_values({**MINIMAL, "migrations": {"job": False}})
    by_kind = check_platform(values, render_platform(values))
    assert "Job" not in by_kind
    assert server_settings(by_kind, tmp_path, monkeypatch).database.migrate_on_start is True


def test_without_leader_election_one_replica_runs_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = parse_values({**MINIMAL, "server": {"leaderElection": False}})
    by_kind = check_platform(values, render_platform(values))
    assert by_kind["Deployment"]["labdeck"]["spec"]["replicas"] == 1
    assert "PodDisruptionBudget" not in by_kind
    settings = server_settings(by_kind, tmp_path, monkeypatch)
    assert settings.cluster.leader_election.enabled is False


def test_roles_hold_the_least_rights_in_each_namespace() -> None:
    values = parse_values(MINIMAL)
    rules = {
        role["metadata"]["namespace"]: {
            (g, r): set(rule["verbs"])
            for rule in role["rules"]
            for g in rule["apiGroups"]
            for r in rule["resources"]
        }
        for role in render_platform(values)
        if role["kind"] == "Role"
    }
    assert set(rules["labdeck"]) == {("coordination.k8s.io", "leases")}
    assert "delete" not in rules["labdeck"][("coordination.k8s.io", "leases")]
    models = rules["labdeck-models"]
    assert set(models) == {
        ("apps", "deployments"),
        ("", "services"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("", "pods"),
        ("", "pods/log"),
    }
    assert models[("", "pods")] == {"get", "list", "watch"} and models[("", "pods/log")] == {"get"}
    users = rules["labdeck-users"]
    assert {r for _, r in users} == {
        "pods",
        "pods/log",
        "services",
        "configmaps",
        "persistentvolumeclaims",
        "secrets",
        "serviceaccounts",
        "roles",
        "rolebindings",
    }
    # Kubernetes lets labdeck grant a Spark Role only rights it holds itself
    assert {"create", "get", "list", "watch", "delete", "deletecollection"} <= users[("", "pods")]
    istio = {
        (g, r)
        for role in render_platform(parse_values(ISTIO))
        if role["kind"] == "Role"
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert ("networking.istio.io", "virtualservices") in istio and (
        "networking.istio.io",
        "virtualservices",
    ) not in set().union(*rules.values())


def test_istio_routes_everything_to_labdeck_through_its_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = parse_values(ISTIO)
    by_kind = check_platform(values, render_platform(values))
    assert "Ingress" not in by_kind
    gateway = by_kind["Gateway"]["labdeck"]
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    assert {s["port"]["protocol"]: s["hosts"] for s in gateway["spec"]["servers"]} == {
        "HTTP": ["labdeck.example.com"],
        "HTTPS": ["labdeck.example.com"],
    }
    (https,) = [s for s in gateway["spec"]["servers"] if "tls" in s]
    assert https["tls"]["credentialName"] == "labdeck-tls"
    vs = by_kind["VirtualService"]["labdeck"]
    assert vs["spec"]["gateways"] == ["labdeck/labdeck"] and vs["spec"]["hosts"] == [
        "labdeck.example.com"
    ]
    (route,) = vs["spec"]["http"]
    assert route["match"] == [{"uri": {"prefix": "/"}}]
    assert route["route"] == [
        {
            "destination": {"host": "labdeck.labdeck.svc.cluster.local", "port": {"number": 8080}},
            "weight": 100,
        }
    ]
    models = by_kind["NetworkPolicy"]["labdeck-models"]["spec"]["ingress"][0]["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
        "podSelector": {"matchLabels": {"istio": "ingressgateway"}},
    } in models
    settings = server_settings(by_kind, tmp_path, monkeypatch)
    assert (
        settings.deployments.kubernetes.istio
        and settings.deployments.kubernetes.istio_gateway == "labdeck/labdeck"
    )
    assert settings.auth.public_url == "https://labdeck.example.com"

    existing = parse_values(ISTIO_EXISTING_GATEWAY)
    found = check_platform(existing, render_platform(existing))
    assert not found["Gateway"] and found["VirtualService"]["labdeck"]["spec"]["gateways"] == [
        "seldon-system/seldon-gateway"
    ]
    assert found["VirtualService"]["labdeck"]["spec"]["hosts"] == ["*"]


def test_oidc_with_the_google_preset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = parse_values(OIDC_GOOGLE)
    by_kind = check_platform(values, render_platform(values))
    (ingress,) = by_kind["Ingress"].values()
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["ml.example.com"], "secretName": "ml-tls"}]
    settings = server_settings(by_kind, tmp_path, monkeypatch)
    oidc = settings.auth.oidc
    assert (oidc.provider, oidc.client_id, oidc.hosted_domain, oidc.issuer) == (
        "google",
        "1234.apps.googleusercontent.com",
        "example.com",
        None,
    )
    assert oidc.client_secret == "value-of-labdeck-oidc-client-secret"
    assert (
        settings.auth.admin_users == ["ana@example.com"]
        and settings.auth.public_url == "https://ml.example.com"
    )


def test_custom_storage_namespaces_and_environments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = parse_values(CUSTOM_STORAGE)
    by_kind = check_platform(values, render_platform(values))
    (container,) = by_kind["Deployment"]["labdeck"]["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "2"},
    }
    assert by_kind["Deployment"]["labdeck"]["spec"]["replicas"] == 1
    assert by_kind["NetworkPolicy"]["labdeck-workspaces"]["metadata"]["namespace"] == "ml-users"
    assert by_kind["Role"]["labdeck-deployments"]["metadata"]["namespace"] == "ml-models"
    # no Spark environment: no way to the API server from workspaces
    egress = by_kind["NetworkPolicy"]["labdeck-workspaces"]["spec"]["egress"]
    assert all("to" in rule for rule in egress)
    settings = server_settings(by_kind, tmp_path, monkeypatch)
    kube = settings.workspaces.kubernetes
    assert (kube.namespace, kube.storage_class, kube.storage_size, kube.image) == (
        "ml-users",
        "fast-ssd",
        "50Gi",
        "registry.example.com/ws-gpu:3",
    )
    assert settings.workspaces.idle_timeout_s == 900
    (env,) = settings.workspaces.environments
    assert (env.name, env.image, env.packages) == (
        "gpu",
        "registry.example.com/ws-gpu:3",
        ["torch"],
    )
    assert settings.workspaces.default_environment == "gpu"


def test_external_secrets_reach_the_server_only_as_secret_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = parse_values(EXTERNAL_SECRETS)
    by_kind = check_platform(values, render_platform(values))
    (container,) = by_kind["Deployment"]["labdeck"]["spec"]["template"]["spec"]["containers"]
    assert (
        container["image"] == "registry.example.com/labdeck:1.2.3"
        and container["imagePullPolicy"] == "Always"
    )
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert refs == {
        "LABDECK_AUTH__SESSION_SECRET": {"name": "labdeck-keys", "key": "session"},
        "LABDECK_DATABASE__URL": {"name": "labdeck-database", "key": "url"},
        "AWS_ACCESS_KEY_ID": {"name": "labdeck-s3", "key": "AWS_ACCESS_KEY_ID"},
        "AWS_SECRET_ACCESS_KEY": {"name": "labdeck-s3", "key": "AWS_SECRET_ACCESS_KEY"},
        "LABDECK_AUTH__OIDC__CLIENT_SECRET": {"name": "labdeck-keys", "key": "oidc"},
    }
    import tomllib

    toml = tomllib.loads(by_kind["ConfigMap"]["labdeck-config"]["data"]["labdeck.toml"])
    assert "url" not in toml["database"]  # the URL comes from the Secret only
    settings = server_settings(by_kind, tmp_path, monkeypatch)
    assert settings.database_url == "value-of-labdeck-database-url"
    assert (
        settings.artifacts.s3_endpoint_url == "http://minio.storage.svc:9000"
        and settings.artifacts_uri == "s3://artifacts/team-a"
    )
    assert settings.deployments.kubernetes.image == "registry.example.com/labdeck:1.2.3"


def test_a_new_configuration_rolls_the_server_pods() -> None:
    first = render_platform(parse_values(MINIMAL))
    second = render_platform(
        parse_values({**MINIMAL, "auth": {**MINIMAL["auth"], "adminUsers": ["ana"]}})
    )

    def digest(objects: list[dict[str, Any]]) -> str:
        (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
        return deployment["spec"]["template"]["metadata"]["annotations"]["labdeck/config-digest"]

    assert digest(first) != digest(second)
    assert digest(first) == digest(render_platform(parse_values(MINIMAL)))


def _with(path: str, value: Any, base: dict[str, Any] = MINIMAL) -> dict[str, Any]:
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_with("replica", 2), "replica: Extra inputs are not permitted"),
        (_with("server.replica", 2), "server.replica: Extra inputs are not permitted"),
        (
            _with("auth.oidc.clientSecret", {"secretName": "x", "key": "k", "value": "hunter2"}),
            "auth.oidc.clientSecret.value: Extra inputs",
        ),
        (_with("server.replicas", "many"), "server.replicas: Input should be a valid integer"),
        (
            _with("server", {"replicas": 3, "leaderElection": False}),
            "server.replicas is 3 but server.leaderElection is off",
        ),
        (_with("migrations.job", "sometimes"), "migrations.job: Input should be a valid boolean"),
        (
            _with("server.replicas", 0),
            "server.replicas: Input should be greater than or equal to 1",
        ),
        (
            _with("server.resources.requests.memory", "lots"),
            "server.resources.requests.memory: 'lots' is not a Kubernetes quantity",
        ),
        (
            _with("ingress", {"enabled": False, "host": "ml.example.com"}),
            "ingress.host is set but neither ingress.enabled nor istio.enabled",
        ),
        (_with("istio.enabled", True), "ingress.enabled and istio.enabled are both on"),
        (_with("ingress.tlsSecretName", "tls"), "ingress.tlsSecretName needs ingress.host"),
        (
            _with("database.url", "postgresql+psycopg://labdeck:hunter2@db/labdeck"),
            "database.url: this URL holds a password",
        ),
        (
            _with("database.urlSecret", {"secretName": "pg", "key": "url"}),
            "database: give exactly one of url and urlSecret",
        ),
        ({k: v for k, v in MINIMAL.items() if k != "s3"}, "s3: Field required"),
        (
            _with("auth.mode", "oidc"),
            "auth: mode oidc needs oidc.clientId, oidc.clientSecret, oidc.issuer",
        ),
        (_with("auth.mode", "none"), "auth.mode: Input should be 'password' or 'oidc'"),
        (
            _with("auth.sessionSecret.secretName", "Not_A_Name"),
            "auth.sessionSecret.secretName: 'Not_A_Name' is not a Secret name",
        ),
        (_with("namespace", "Labdeck"), "namespace: 'Labdeck' is not a DNS label"),
        (
            _with("workspaces.namespace", "labdeck"),
            "namespace, workspaces.namespace and deployments.namespace must differ",
        ),
        (
            _with(
                "workspaces.environments",
                [{"name": "base", "image": "a"}, {"name": "base", "image": "b"}],
            ),
            "workspaces.environments: environment names repeat",
        ),
        (
            _with("workspaces.environments", [{"name": "base"}]),
            "workspaces.environments.0.image: Field required",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_field(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValuesError) as caught:
        parse_values(data)
    assert expected in str(caught.value)


def test_the_documented_example_holds_every_field_at_its_default() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    values = load_values(EXAMPLE.read_text())

    def paths(model: type[Any], prefix: str = "") -> set[str]:
        out = set()
        for name, field in model.model_fields.items():
            key = prefix + (field.alias or name)
            out.add(key)
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                out |= paths(annotation, key + ".")
        return out

    def keys(data: Any, prefix: str = "") -> set[str]:
        out = set()
        if isinstance(data, dict):
            for key, value in data.items():
                out.add(prefix + key)
                out |= keys(value, f"{prefix}{key}.")
        return out

    documented = keys(example)
    missing = paths(Values) - documented
    assert missing == set(), f"fields missing from deploy/values.yaml: {sorted(missing)}"
    # besides the three examples of what has no default, every value is the default
    required = {
        "database": example["database"],
        "s3": {"bucket": example["s3"]["bucket"]},
        "auth": {"sessionSecret": example["auth"]["sessionSecret"]},
    }
    assert values == parse_values(required)


def test_the_cli_renders_a_values_file(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(OIDC_GOOGLE))
    result = CliRunner().invoke(cli, ["k8s", "render", "--values", str(path)])
    assert result.exit_code == 0, result.output
    objects = parse_yaml(result.stdout)
    assert objects == render_platform(parse_values(OIDC_GOOGLE))
    check_platform(parse_values(OIDC_GOOGLE), objects)

    result = CliRunner().invoke(cli, ["k8s", "render", "--values", "-"], input=EXAMPLE.read_text())
    assert result.exit_code == 0, result.output
    assert parse_yaml(result.stdout) == render_platform(load_values(EXAMPLE.read_text()))


def test_the_cli_refuses_bad_values_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(_with("server.replicas", 0)))
    result = CliRunner().invoke(cli, ["k8s", "render", "--values", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert "server.replicas: Input should be greater than or equal to 1" in result.output

    result = CliRunner().invoke(cli, ["k8s", "render", "--values", "-"], input="server: [1, 2\n")
    assert result.exit_code == 2 and "not valid YAML" in result.output

    result = CliRunner().invoke(cli, ["k8s", "render", "--values", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 1 and "cannot read" in result.output


@pytest.mark.parametrize("args", [[], ["-f", "deployments.yaml", "--values", "values.yaml"]])
def test_the_cli_wants_exactly_one_of_a_file_and_values(args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["k8s", "render", *args])
    assert result.exit_code == 2
    assert (
        "give exactly one of -f FILE (deployments) and --values FILE (the platform)"
        in result.output
    )
