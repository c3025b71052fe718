"""Workspaces rendered as Kubernetes objects: every combination validates against the
Kubernetes schema in strict mode (``kubernetes-validate``, two Kubernetes versions) and
against the rules between objects a schema cannot state (``tests.compute.k8s_kit``); the
pod runs JupyterLab with the local backend's flags; names are KubeSpawner's safe slugs;
the executor command of the Spark pod template starts Spark's executor backend from a real
Spark environment; ``labdeck k8s render-workspace`` prints the same objects.

Nothing here runs on a cluster (there is none on this machine)."""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from labdeck.auth.service import USERNAME
from labdeck.cli import cli
from labdeck.config import EnvironmentSettings, Settings
from labdeck.errors import InvalidParameter
from labdeck.workspaces.environments import BuiltEnvironment, find
from labdeck.workspaces.manifests import (
    WorkspaceNames,
    is_label_value,
    is_object_name,
    render_workspace,
)
from labdeck.workspaces.workloads import SERVER_NAME, jupyterlab_workload
from tests.compute.k8s_kit import check_objects, check_schema, parse_yaml
from tests.workspaces.conftest import BASE_ENV, SPARK_ENV

ODD_USER = "Dr.Who+ML_team@example.co.uk"
LONG_USER = "alice.the.data.scientist.with.a.very.long.name@research-department.example.com"


def settings(storage_class: str | None = None, namespace: str = "labdeck-users") -> Settings:
    return Settings.load(
        None,
        workspaces={
            "environments": [BASE_ENV.model_dump(), SPARK_ENV.model_dump()],
            "kubernetes": {
                "namespace": namespace,
                "storage_class": storage_class,
                "storage_size": "20Gi",
            },
        },
    )


def sized(env: EnvironmentSettings) -> EnvironmentSettings:
    return env.model_copy(
        update={
            "cpu_request": "500m",
            "cpu_limit": "2",
            "memory_request": "1Gi",
            "memory_limit": "4Gi",
        }
    )


def the(found: dict[str, Any], kind: str) -> dict[str, Any]:
    (obj,) = found[kind].values()
    return obj


def container_of(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod["spec"]["containers"]
    return container


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def spark_conf(config_map: dict[str, Any]) -> dict[str, str]:
    lines = config_map["data"]["spark-defaults.conf"].splitlines()
    return dict(line.split(" ", 1) for line in lines)


def services(found: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The workspace's Service and the Spark driver's headless one (None without Spark)."""
    by_ip = {s["spec"].get("clusterIP"): s for s in found["Service"].values()}
    return by_ip[None], by_ip.get("None")


# ---------------------------------------------------------------------- every combination


COMBINATIONS = list(
    itertools.product(
        ["base", "spark"],
        ["", "big"],
        ["alice", "alice@example.com", ODD_USER, LONG_USER],
        [None, "fast-ssd"],
        [False, True],
    )
)


@pytest.mark.parametrize(
    ("env_name", "server", "user", "storage_class", "with_resources"), COMBINATIONS
)
def test_every_combination_renders_valid_objects(
    env_name: str, server: str, user: str, storage_class: str | None, with_resources: bool
) -> None:
    environment = SPARK_ENV if env_name == "spark" else BASE_ENV
    if with_resources:
        environment = sized(environment)
    objects = render_workspace(
        user,
        server,
        environment,
        settings(storage_class),
        tracking_uri="http://labdeck.labdeck:8080",
    )
    found = check_objects(objects)  # the schema, strict, and the references between objects
    names = WorkspaceNames.of(user, server)
    spark = environment.spark

    expected = [("PersistentVolumeClaim", names.claim)]
    if spark:
        expected += [
            (kind, names.service_account) for kind in ("ServiceAccount", "Role", "RoleBinding")
        ]
    expected.append(("Secret", names.pod))
    if spark:
        expected.append(("ConfigMap", names.pod))
    expected.append(("Service", names.pod))
    if spark:
        expected.append(("Service", names.driver_service))
    expected.append(("Pod", names.pod))
    assert [
        (o["kind"], o["metadata"]["name"]) for o in objects
    ] == expected  # in the order to apply them
    assert {o["metadata"]["namespace"] for o in objects} == {"labdeck-users"}

    pod = found["Pod"][names.pod]
    container = container_of(pod)
    pod_labels = pod["metadata"]["labels"]
    # the Services select this pod, on ports it has
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    workspace_service, driver_service = services(found)
    for service in filter(None, (workspace_service, driver_service)):
        assert service["spec"]["selector"].items() <= pod_labels.items()
        for port in service["spec"]["ports"]:
            assert ports[port["targetPort"]] == port["port"]
    assert workspace_service["spec"]["type"] == "ClusterIP"
    assert ports["http"] == 8888 and workspace_service["spec"]["ports"][0]["port"] == 8888
    # the readiness probe: JupyterLab's API under the server's base URL, on its port
    base = f"/user/{user}/{server}/" if server else f"/user/{user}/"
    assert container["readinessProbe"]["httpGet"] == {
        "path": f"{base}api",
        "port": "http",
        "scheme": "HTTP",
    }
    assert f"--ServerApp.base_url={base}" in container["args"]
    # the home: the user's claim, mounted at /home/jovyan
    claim = found["PersistentVolumeClaim"][names.claim]
    (home,) = [v for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert home["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert {"name": home["name"], "mountPath": "/home/jovyan"} in container["volumeMounts"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"] == {"requests": {"storage": "20Gi"}}
    assert claim["spec"].get("storageClassName") == storage_class
    # labels, with the raw names in annotations
    assert pod_labels["app.kubernetes.io/managed-by"] == "labdeck"
    assert (
        pod_labels["labdeck/user"] == names.user_label
        and pod_labels["labdeck/server"] == names.server_label
    )
    assert pod_labels["labdeck/environment"] == env_name
    assert pod["metadata"]["annotations"]["labdeck/user"] == user
    assert pod["metadata"]["annotations"].get("labdeck/server") == (server or None)
    # resources, from the environment
    if with_resources:
        assert container["resources"] == {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        }
    else:
        assert "resources" not in container  # nothing given, nothing rendered
    # an API token only where Spark's driver needs it
    assert pod["spec"]["automountServiceAccountToken"] is spark
    if spark:
        binding = found["RoleBinding"][names.service_account]
        assert binding["roleRef"]["name"] in found["Role"]
        assert [s["name"] for s in binding["subjects"]] == [pod["spec"]["serviceAccountName"]]
        assert pod["spec"]["serviceAccountName"] in found["ServiceAccount"]
    else:
        assert "serviceAccountName" not in pod["spec"]
        assert not {"ServiceAccount", "Role", "RoleBinding", "ConfigMap"} & found.keys()


def test_names_never_collide_across_users_and_servers() -> None:
    tricky = [
        ("alice", ""),
        ("alice", "big"),
        ("alice--big", ""),
        ("alice-big", ""),
        ("Alice", ""),
        ("alice.", ""),
        ("alice@example.com", ""),
        ("alice_example.com", ""),
        ("alice", "b"),
        ("alice-b", ""),
        ("a" * 48, ""),
        ("a" * 49, ""),
        ("a" * 30, "b" * 30),
        ("a" * 30 + "--" + "b" * 30, ""),
        ("spark", ""),
        ("driver", ""),
    ]
    pods = [WorkspaceNames.of(u, s).pod for u, s in tricky]
    assert len(set(pods)) == len(pods), pods
    claims = {WorkspaceNames.of(u, "").claim for u, _ in tricky}
    assert len(claims) == len({u for u, _ in tricky})
    labels = {WorkspaceNames.of(u, "").user_label for u, _ in tricky}
    assert len(labels) == len({u for u, _ in tricky})
    # no Service of one server is named like another server's
    service_names = [
        n
        for u, s in tricky
        for n in (WorkspaceNames.of(u, s).pod, WorkspaceNames.of(u, s).driver_service)
    ]
    assert len(set(service_names)) == len(service_names)


def test_names_are_kubespawners_safe_slugs() -> None:
    assert WorkspaceNames.of("alice", "").pod == "jupyter-alice"
    assert WorkspaceNames.of("alice", "big").pod == "jupyter-alice--big"
    assert WorkspaceNames.of("alice", "big").claim == "claim-alice"  # one home per user
    assert WorkspaceNames.of("alice", "big").service_account == "spark-alice"
    digest = hashlib.sha256(b"alice@example.com").hexdigest()[:8]
    odd = WorkspaceNames.of("alice@example.com", "big")
    assert odd.pod == f"jupyter-alice-example-com---{digest}--big"
    assert odd.claim == f"claim-alice-example-com---{digest}"
    assert odd.user_label == f"alice-example-com---{digest}"
    assert (
        WorkspaceNames.of("alice--big", "").pod
        == f"jupyter-alice-big---{hashlib.sha256(b'alice--big').hexdigest()[:8]}"
    )
    assert (
        WorkspaceNames.of("Alice", "").user_label == "Alice"
    )  # a valid label value stays as it is
    assert WorkspaceNames.of("7of9", "").pod.startswith(
        "jupyter-x-7of9---"
    )  # names start with a letter


@given(
    user=st.from_regex(USERNAME, fullmatch=True).filter(lambda u: u not in (".", "..")),
    server=st.one_of(st.just(""), st.from_regex(SERVER_NAME, fullmatch=True)),
)
def test_any_username_gives_valid_names(user: str, server: str) -> None:
    names = WorkspaceNames.of(user, server)
    for name in (names.pod, names.driver_service, names.claim, names.service_account):
        assert is_object_name(name), name
    assert is_label_value(names.user_label) and is_label_value(names.server_label)


# ---------------------------------------------------------------------- what the pod runs


def local_twin(user: str, server: str, tmp_path: Path) -> Any:
    """The workload the local backend would run for the same server."""
    built = BuiltEnvironment(
        "base", tmp_path / "envs" / "base", tmp_path / "envs" / "base" / "bin" / "python", "digest"
    )
    return jupyterlab_workload(
        user=user,
        server=server,
        environment=BASE_ENV,
        built=built,
        data_dir=tmp_path,
        settings=settings().workspaces,
        secret="local-secret",
        tracking_uri="http://labdeck.labdeck:8080",
        tracking_token=None,
    )


@pytest.mark.parametrize("server", ["", "big"])
def test_the_pod_runs_jupyterlab_like_the_local_backend(server: str, tmp_path: Path) -> None:
    found = check_objects(
        render_workspace(
            "alice", server, BASE_ENV, settings(), tracking_uri="http://labdeck.labdeck:8080"
        )
    )
    pod = the(found, "Pod")
    container = container_of(pod)
    local = local_twin("alice", server, tmp_path)
    home = str(tmp_path / "homes" / "alice")
    # the same flags, listening on every address of the pod, port 8888, the home as root
    expected = [
        a.replace("{host}", "0.0.0.0").replace("{port:http}", "8888").replace(home, "/home/jovyan")
        for a in local.args
        if a != "--allow-root"
    ]
    assert container["args"] == expected
    assert "--allow-root" not in container["args"]
    assert container["command"] == ["python", "-m", "jupyterlab"] and local.program[1:] == (
        "-m",
        "jupyterlab",
    )
    assert container["readinessProbe"]["httpGet"]["path"] == local.readiness_path
    assert container["image"] == "ghcr.io/labdeck/workspace-base:latest"  # BASE_ENV names no image
    assert container["workingDir"] == "/home/jovyan"
    env = env_of(container)
    for name in ("LABDECK_ENVIRONMENT", "LABDECK_WORKSPACE", "MLFLOW_TRACKING_URI"):
        assert env[name] == local.env[name]
    assert env["HOME"] == "/home/jovyan"
    assert env["JUPYTER_RUNTIME_DIR"].startswith(
        "/tmp/"
    )  # the server's own, not on the shared home
    # runs as jovyan (uid 1000), the home's files owned by group 100, as in z2jh
    security = pod["spec"]["securityContext"]
    assert (security["runAsUser"], security["fsGroup"], security["runAsNonRoot"]) == (
        1000,
        100,
        True,
    )
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["spec"]["terminationGracePeriodSeconds"] == 10  # workspaces.stop_grace_s


def test_the_secret_is_made_at_render_time_and_the_token_left_to_the_hub() -> None:
    first = check_objects(render_workspace("alice", "", BASE_ENV, settings(), tracking_uri=None))
    second = check_objects(render_workspace("alice", "", BASE_ENV, settings(), tracking_uri=None))
    secret = the(first, "Secret")
    assert (
        secret["type"] == "Opaque"
        and set(secret["stringData"]) == {"workspace-secret"}
        and "data" not in secret
    )
    value = secret["stringData"]["workspace-secret"]
    assert len(value) >= 40 and value != the(second, "Secret")["stringData"]["workspace-secret"]
    assert "mlflow-tracking-token" in secret["metadata"]["annotations"]["labdeck/note"]
    env = env_of(container_of(the(first, "Pod")))
    assert env["LABDECK_WORKSPACE_SECRET"] == {
        "secretKeyRef": {"name": "jupyter-alice", "key": "workspace-secret"}
    }
    assert env["MLFLOW_TRACKING_TOKEN"] == {
        "secretKeyRef": {"name": "jupyter-alice", "key": "mlflow-tracking-token", "optional": True}
    }
    assert "MLFLOW_TRACKING_URI" not in env  # none given
    # nothing of the secret is in the pod itself
    assert value not in yaml.safe_dump(the(first, "Pod"))


def test_a_base_workspace_gets_no_api_token() -> None:
    found = check_objects(render_workspace("alice", "", BASE_ENV, settings(), tracking_uri=None))
    pod = the(found, "Pod")
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod["spec"]
    assert not any("serviceaccount" in str(m).lower() for m in container_of(pod)["volumeMounts"])
    assert not {"ServiceAccount", "Role", "RoleBinding"} & found.keys()


def test_a_users_servers_share_a_node_because_the_home_is_read_write_once() -> None:
    default = the(
        check_objects(render_workspace("alice", "", BASE_ENV, settings(), tracking_uri=None)), "Pod"
    )
    named = the(
        check_objects(render_workspace("alice", "big", SPARK_ENV, settings(), tracking_uri=None)),
        "Pod",
    )
    bob = the(
        check_objects(render_workspace("bob", "", BASE_ENV, settings(), tracking_uri=None)), "Pod"
    )
    (term,) = named["spec"]["affinity"]["podAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    wanted = term["labelSelector"]["matchLabels"].items()
    assert (
        wanted <= default["metadata"]["labels"].items()
        and wanted <= named["metadata"]["labels"].items()
    )
    assert not wanted <= bob["metadata"]["labels"].items()


# ---------------------------------------------------------------------- Spark


def test_a_spark_workspace_runs_executors_as_pods(tmp_path: Path) -> None:
    environment = SPARK_ENV.model_copy(update={"image": "registry.example.com/labdeck/spark:1"})
    found = check_objects(
        render_workspace(
            "alice@example.com", "big", environment, settings(namespace="team-a"), tracking_uri=None
        )
    )
    names = WorkspaceNames.of("alice@example.com", "big")
    pod = the(found, "Pod")
    container = container_of(pod)
    assert container["image"] == "registry.example.com/labdeck/spark:1"
    assert (
        pod["spec"]["serviceAccountName"] == names.service_account
        and pod["spec"]["automountServiceAccountToken"] is True
    )

    role = the(found, "Role")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["pods", "services", "configmaps"],
            "verbs": ["create", "get", "list", "watch", "delete", "deletecollection"],
        },
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]
    binding = the(found, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": names.service_account, "namespace": "team-a"}
    ]

    # Spark reads spark-defaults.conf from the ConfigMap, mounted where SPARK_CONF_DIR says
    config_map = the(found, "ConfigMap")
    (conf_volume,) = [v for v in pod["spec"]["volumes"] if "configMap" in v]
    assert conf_volume["configMap"]["name"] == config_map["metadata"]["name"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == conf_volume["name"]]
    assert env_of(container)["SPARK_CONF_DIR"] == mount["mountPath"]
    conf = spark_conf(config_map)
    assert conf["spark.master"] == "k8s://https://kubernetes.default.svc"
    assert conf["spark.submit.deployMode"] == "client"
    assert conf["spark.kubernetes.namespace"] == "team-a"
    assert conf["spark.kubernetes.container.image"] == container["image"]
    assert conf["spark.kubernetes.driver.pod.name"] == pod["metadata"]["name"]
    # the executors reach the driver through the headless Service, on the pod's ports
    workspace_service, driver_service = services(found)
    assert driver_service is not None and driver_service["spec"]["publishNotReadyAddresses"] is True
    assert conf["spark.driver.host"] == f"{driver_service['metadata']['name']}.team-a.svc"
    assert conf["spark.driver.bindAddress"] == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    driver_ports = {p["name"]: p["port"] for p in driver_service["spec"]["ports"]}
    assert driver_ports == {
        "spark-driver": int(conf["spark.driver.port"]),
        "spark-blockmgr": int(conf["spark.driver.blockManager.port"]),
    }
    assert all(ports[name] == port for name, port in driver_ports.items())
    # the Spark UI: on a port of the workspace's Service, its links under the server's URL
    assert {p["name"]: p["port"] for p in workspace_service["spec"]["ports"]}["spark-ui"] == int(
        conf["spark.ui.port"]
    )
    assert conf["spark.ui.proxyBase"] == "/user/alice@example.com/big/spark-ui"

    # the executors' pod template: a valid Pod, no API token, selected by nothing of the workspace
    template_path = conf["spark.kubernetes.executor.podTemplateFile"]
    assert (
        Path(template_path).parent == Path(mount["mountPath"])
        and Path(template_path).name in config_map["data"]
    )
    template = yaml.safe_load(config_map["data"][Path(template_path).name])
    check_schema(template)
    assert template["spec"]["automountServiceAccountToken"] is False
    (executor,) = template["spec"]["containers"]
    assert executor["name"] == conf["spark.kubernetes.executor.podTemplateContainerName"]
    executor_labels = template["metadata"]["labels"]
    assert not workspace_service["spec"]["selector"].items() <= executor_labels.items()
    affinity = pod["spec"]["affinity"]["podAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ][0]
    assert not affinity["labelSelector"]["matchLabels"].items() <= executor_labels.items()


def test_the_executor_command_starts_sparks_executor_backend(
    spark_env: BuiltEnvironment, tmp_path: Path
) -> None:
    """The rendered template's command, run with a real Spark environment on PATH as in the
    image and the variables Spark sets on an executor pod, starts Spark's Kubernetes
    executor backend, which connects to the driver it is given."""
    found = check_objects(render_workspace("alice", "", SPARK_ENV, settings(), tracking_uri=None))
    template = yaml.safe_load(the(found, "ConfigMap")["data"]["executor-pod-template.yaml"])
    (executor,) = template["spec"]["containers"]

    driver = socket.create_server(("127.0.0.1", 0))
    driver.settimeout(120)  # a safety net: the JVM starts in seconds
    connected: list[tuple[str, int]] = []

    def accept() -> None:
        with driver:
            conn, address = driver.accept()
            connected.append(address)
            conn.close()  # not a Spark driver: the executor gives up

    waiter = threading.Thread(target=accept, daemon=True)
    waiter.start()
    port = driver.getsockname()[1]
    env = {
        "PATH": f"{spark_env.path / 'bin'}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_EXECUTOR_MEMORY": "512m",
        "SPARK_DRIVER_URL": f"spark://CoarseGrainedScheduler@127.0.0.1:{port}",
        "SPARK_EXECUTOR_ID": "1",
        "SPARK_EXECUTOR_CORES": "1",
        "SPARK_APPLICATION_ID": "spark-application-1",
        "SPARK_EXECUTOR_POD_IP": "127.0.0.1",
        "SPARK_RESOURCE_PROFILE_ID": "0",
        "SPARK_EXECUTOR_POD_NAME": "jupyter-alice-exec-1",
        "SPARK_JAVA_OPT_0": "-Dspark.network.timeout=10s",
        "EXECUTOR_DRIVER_PROPS_FETCHER_MAX_ATTEMPTS": "1",
    }
    if "JAVA_HOME" in os.environ:
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    # Spark appends "executor" to the template's command
    result = subprocess.run(
        [*executor["command"], "executor"], env=env, capture_output=True, text=True, timeout=180
    )
    waiter.join(timeout=10)
    output = result.stdout + result.stderr
    assert "KubernetesExecutorBackend: Started daemon" in output, output[-3000:]
    assert connected, output[-3000:]
    assert result.returncode != 0  # no driver answered


# ---------------------------------------------------------------------- the checks bite


def test_the_checks_are_not_vacuous() -> None:
    def objects() -> list[dict[str, Any]]:
        return render_workspace("alice", "", SPARK_ENV, settings(), tracking_uri=None)

    def broken(kind: str, change: Any) -> list[dict[str, Any]]:
        out = objects()
        for obj in out:
            if obj["kind"] == kind:
                change(obj)
                break
        return out

    with pytest.raises(AssertionError, match="selects 0 workloads"):
        check_objects(
            broken(
                "Service",
                lambda s: s["spec"]["selector"].update(
                    {"app.kubernetes.io/instance": "jupyter-bob"}
                ),
            )
        )
    with pytest.raises(AssertionError, match="unknown port"):
        check_objects(
            broken(
                "Pod",
                lambda p: container_of(p)["readinessProbe"]["httpGet"].update({"port": "jupyter"}),
            )
        )
    with pytest.raises(AssertionError, match="PersistentVolumeClaim claim-bob"):
        check_objects(
            broken(
                "Pod",
                lambda p: p["spec"]["volumes"][0]["persistentVolumeClaim"].update(
                    {"claimName": "claim-bob"}
                ),
            )
        )
    with pytest.raises(AssertionError, match="binds Role spark-bob"):
        check_objects(broken("RoleBinding", lambda b: b["roleRef"].update({"name": "spark-bob"})))
    with pytest.raises(AssertionError, match="no ServiceAccount spark-bob"):
        check_objects(
            broken("RoleBinding", lambda b: b["subjects"][0].update({"name": "spark-bob"}))
        )
    with pytest.raises(AssertionError, match="needs key"):
        check_objects(broken("Secret", lambda s: s["stringData"].clear()))
    with pytest.raises(kubernetes_validate.ValidationError, match="automountServiceAccountTokens"):
        check_objects(
            broken("Pod", lambda p: p["spec"].update({"automountServiceAccountTokens": False}))
        )
    with pytest.raises(kubernetes_validate.ValidationError):
        check_objects(
            broken(
                "PersistentVolumeClaim",
                lambda c: c["spec"].update({"accessModes": "ReadWriteOnce"}),
            )
        )


def test_bad_input_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidParameter, match="server name 'api'"):
        render_workspace("alice", "api", BASE_ENV, settings(), tracking_uri=None)
    with pytest.raises(InvalidParameter, match="server name 'Big'"):
        render_workspace("alice", "Big", BASE_ENV, settings(), tracking_uri=None)
    with pytest.raises(InvalidParameter, match="not a folder name"):
        render_workspace("a/b", "", BASE_ENV, settings(), tracking_uri=None)
    with pytest.raises(InvalidParameter, match="namespace 'Team_A'"):
        render_workspace("alice", "", BASE_ENV, settings(namespace="Team_A"), tracking_uri=None)


# ------------------------------------------------------------ labdeck k8s render-workspace


def without_secrets(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for obj in objects:
        if obj["kind"] == "Secret":
            obj["stringData"] = {key: "<random>" for key in obj["stringData"]}
    return objects


def config_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "labdeck.toml"
    path.write_text(body)
    return path


def test_render_workspace_prints_valid_multi_document_yaml() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "k8s",
            "render-workspace",
            "alice@example.com",
            "--tracking-uri",
            "http://labdeck.labdeck:8080",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("---\n") and "warning" not in result.stderr
    objects = parse_yaml(result.stdout)
    found = check_objects(objects)
    assert [o["kind"] for o in objects] == [
        "PersistentVolumeClaim",
        "Secret",
        "Service",
        "Pod",
    ]  # base, the default
    assert {o["metadata"]["namespace"] for o in objects} == {"labdeck-users"}
    defaults = Settings.load()
    direct = render_workspace(
        "alice@example.com",
        "",
        find(defaults.workspaces, "base"),
        defaults,
        tracking_uri="http://labdeck.labdeck:8080",
    )
    assert without_secrets(objects) == without_secrets(direct)
    assert (
        env_of(container_of(the(found, "Pod")))["MLFLOW_TRACKING_URI"]
        == "http://labdeck.labdeck:8080"
    )


def test_render_workspace_of_a_named_spark_server_with_a_config_file(tmp_path: Path) -> None:
    config = config_file(
        tmp_path,
        '[workspaces.kubernetes]\nnamespace = "from-config"\nstorage_class = "fast-ssd"\n\n'
        '[[workspaces.environments]]\nname = "spark"\nspark = true\n'
        'image = "reg/spark:2"\ncpu_limit = "4"\n',
    )
    result = CliRunner().invoke(
        cli,
        [
            "k8s",
            "render-workspace",
            "bob",
            "--server",
            "big",
            "--env",
            "spark",
            "--config",
            str(config),
            "--namespace",
            "team-b",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "--tracking-uri" in result.stderr  # no tracking server: said so, on stderr
    objects = parse_yaml(result.stdout)
    found = check_objects(objects)
    assert {o["metadata"]["namespace"] for o in objects} == {
        "team-b"
    }  # the flag wins over the file
    assert the(found, "PersistentVolumeClaim")["spec"]["storageClassName"] == "fast-ssd"
    pod = the(found, "Pod")
    assert pod["metadata"]["name"] == "jupyter-bob--big"
    assert container_of(pod)["image"] == "reg/spark:2"
    assert container_of(pod)["resources"] == {"limits": {"cpu": "4"}}
    assert spark_conf(the(found, "ConfigMap"))["spark.kubernetes.namespace"] == "team-b"
    assert sorted(found["Service"]) == ["jupyter-bob--big", "spark-driver-bob--big"]


def test_render_workspace_refuses_what_it_cannot_render(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["k8s", "render-workspace", "alice", "--env", "gpu"])
    assert result.exit_code == 1
    assert (
        "no environment named 'gpu'" in result.stderr
        and "the known ones: base, spark" in result.stderr
    )
    config = config_file(tmp_path, '[[workspaces.environments]]\nname = "torch"\n')
    result = CliRunner().invoke(cli, ["k8s", "render-workspace", "alice", "--config", str(config)])
    assert (
        result.exit_code == 1
        and "no environment named 'base'; the known ones: torch" in result.stderr
    )
    result = CliRunner().invoke(cli, ["k8s", "render-workspace", "alice", "--server", "lab"])
    assert result.exit_code == 1 and "Invalid server name 'lab'" in result.stderr
    result = CliRunner().invoke(
        cli, ["k8s", "render-workspace", "alice", "--namespace", "Not_A_Label"]
    )
    assert result.exit_code == 1 and "Invalid namespace 'Not_A_Label'" in result.stderr
    assert result.stdout == ""
