"""The hub on Kubernetes: a real labdeck server (sign-in on) whose deployments backend is
Kubernetes, pointed at the fake API server of ``tests.compute.k8s_kit`` (there is no
cluster here), starting, watching, stopping and adopting workspace pods through
``/api/v1/workspaces``. The test plays the kubelet: it sets the Pod's status."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labdeck.workspaces.manifests import SECRET_KEY, TOKEN_KEY, render_workspace
from tests.compute.k8s_kit import FakeKube, Request, check_objects, pod
from tests.workspaces.conftest import BASE_ENV, SPARK_ENV, workspace_settings
from tests.workspaces.hub_kit import (
    Hub,
    hub_server,
    hub_settings,
    open_hub,
    path_of,
    shut,
    wait_until,
)

NS = "labdeck-users"
APPLY = "application/apply-patch+yaml"
PLURALS = {
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "Service": "services",
    "Pod": "pods",
}


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube()
    yield fake
    fake.stop()


def on_kube(kube: FakeKube, folder: Path) -> dict[str, Any]:
    """The settings of a labdeck whose backend is the fake cluster."""
    return {
        "deployments": {"backend": "kubernetes", "kubernetes": {"namespace": "ml", "kubeconfig": str(kube.kubeconfig(folder))}},
        "workspaces": {**workspace_settings(BASE_ENV, SPARK_ENV), "kubernetes": {"namespace": NS}},
    }


def set_pod_status(kube: FakeKube, name: str, status: dict[str, Any]) -> None:
    """What the kubelet would report of the pod."""
    found = kube.get("pods", NS, name)
    assert found is not None, f"no pod {name}"
    found["status"] = status
    kube.put("pods", found)


def ready() -> dict[str, Any]:
    return pod("any", {}, ip="10.4.0.7")["status"]


def applies(kube: FakeKube) -> list[Request]:
    return kube.made("PATCH")


def test_a_start_applies_the_rendered_objects_and_a_ready_pod_runs(kube: FakeKube, tmp_path: Path) -> None:
    overrides = on_kube(kube, tmp_path)
    with hub_server(tmp_path / "data", **overrides) as hub:
        started = hub.start("alice")
        assert started["state"] == "STARTING"
        hub.wait(
            "alice", "", lambda s: s["progress"] == "starting JupyterLab" and kube.get("pods", NS, "jupyter-alice"), "its pod applied"
        )

        sent = applies(kube)
        assert all(r.content_type == APPLY and r.query["fieldManager"] == "labdeck" and r.query["force"] == "true" for r in sent)
        applied = [r.body for r in sent]
        secret = next(o for o in applied if o["kind"] == "Secret")
        filled = secret["stringData"]
        assert set(filled) == {SECRET_KEY, TOKEN_KEY}
        # exactly the rendered objects, in order; only the Secret's values are the hub's own
        expected = render_workspace(
            "alice", "", BASE_ENV, hub_settings(tmp_path / "data", **copy.deepcopy(overrides)), tracking_uri=hub.url
        )
        for obj in expected:
            if obj["kind"] == "Secret":
                obj["stringData"] = filled
        assert applied == expected
        assert [r.path for r in sent] == [
            f"/api/v1/namespaces/{NS}/{PLURALS[o['kind']]}/{o['metadata']['name']}" for o in expected
        ]
        check_objects(applied)
        # the token in the Secret is alice's own, good for labdeck's API
        with_token = hub.as_("root").get(path_of("alice"), headers={"Authorization": f"Bearer {filled[TOKEN_KEY]}"})
        assert with_token.status_code == 200, with_token.text

        set_pod_status(
            kube,
            "jupyter-alice",
            {
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient memory."}
                ],
            },
        )
        hub.wait("alice", "", lambda s: "Insufficient memory" in (s["progress"] or ""), "the scheduler's message")
        assert hub.status("alice")["state"] == "STARTING"

        set_pod_status(kube, "jupyter-alice", ready())
        running = hub.wait_state("alice", "", "RUNNING")
        assert running["message"] is None
        route = hub.route("alice")
        assert route is not None
        assert route.endpoints == {"http": f"jupyter-alice.{NS}.svc:8888"}
        assert route.secret == filled[SECRET_KEY]
        assert route.base_url == "/user/alice/"

        hub.halt("alice")
        gone = hub.as_("root").get(path_of("alice"), headers={"Authorization": f"Bearer {filled[TOKEN_KEY]}"})
        assert gone.status_code == 401, gone.text  # the pod's token is revoked with it
        assert hub.route("alice") is None


def test_a_crash_loop_fails_the_server_with_its_reason(kube: FakeKube, tmp_path: Path) -> None:
    with hub_server(tmp_path / "data", **on_kube(kube, tmp_path)) as hub:
        hub.start("bob")
        hub.wait("bob", "", lambda s: s["progress"] == "starting JupyterLab", "its pod applied")
        crashing = pod(
            "jupyter-bob",
            {},
            ready=False,
            waiting={"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container"},
            last_terminated={"exitCode": 1, "reason": "Error", "message": "ModuleNotFoundError: No module named 'jupyterlab'"},
            restarts=3,
        )
        set_pod_status(kube, "jupyter-bob", crashing["status"])
        failed = hub.wait_state("bob", "", "FAILED")
        assert "CrashLoopBackOff" in failed["message"]
        assert "No module named 'jupyterlab'" in failed["message"]
        assert hub.route("bob") is None
        # a failed server's pod is torn down; the home stays
        hub.wait("bob", "", lambda s: kube.get("pods", NS, "jupyter-bob") is None, "its pod deleted")
        assert kube.get("persistentvolumeclaims", NS, "claim-bob") is not None


def test_a_stop_deletes_everything_but_the_users_own(kube: FakeKube, tmp_path: Path) -> None:
    with hub_server(tmp_path / "data", **on_kube(kube, tmp_path)) as hub:
        hub.start("alice", "big", environment="spark")
        hub.wait("alice", "big", lambda s: kube.get("pods", NS, "jupyter-alice--big") is not None, "its pod applied")
        set_pod_status(kube, "jupyter-alice--big", ready())
        hub.wait_state("alice", "big", "RUNNING")
        route = hub.route("alice", "big")
        assert route is not None
        host = f"jupyter-alice--big.{NS}.svc"
        assert route.endpoints == {"http": f"{host}:8888", "spark-ui": f"{host}:4040"}

        kube.clear()
        hub.halt("alice", "big")
        deleted = kube.made("DELETE")
        assert all(r.query.get("propagationPolicy") == "Foreground" for r in deleted)
        assert sorted(r.path.rsplit("/", 2)[1] for r in deleted) == ["configmaps", "pods", "secrets", "services", "services"]
        left = sorted((plural, name) for plural, _, name in kube.objects)
        assert left == [
            ("persistentvolumeclaims", "claim-alice"),
            ("rolebindings", "spark-alice"),
            ("roles", "spark-alice"),
            ("serviceaccounts", "spark-alice"),
        ]


def test_a_restarted_labdeck_adopts_a_running_pod(kube: FakeKube, tmp_path: Path) -> None:
    overrides = on_kube(kube, tmp_path)
    data = tmp_path / "data"
    with hub_server(data, **overrides) as first:
        first.start("alice")
        first.wait("alice", "", lambda s: kube.get("pods", NS, "jupyter-alice") is not None, "its pod applied")
        set_pod_status(kube, "jupyter-alice", ready())
        first.wait_state("alice", "", "RUNNING")
        secret = kube.get("secrets", NS, "jupyter-alice")
        assert secret is not None
        first.server.stop()
    assert kube.get("pods", NS, "jupyter-alice") is not None  # a stopping labdeck leaves servers running

    kube.clear()
    second: Hub = open_hub(data, **copy.deepcopy(overrides))
    try:
        second.wait("alice", "", lambda s: second.route("alice") is not None, "its route rebuilt")
        assert second.status("alice", by="root")["state"] == "RUNNING"
        route = second.route("alice")
        assert route is not None and route.secret == secret["stringData"][SECRET_KEY]
        assert route.endpoints == {"http": f"jupyter-alice.{NS}.svc:8888"}
        assert not applies(kube), "adopted, not made again"
        assert f"/api/v1/namespaces/{NS}/pods/jupyter-alice" in [r.path for r in kube.made("GET")]
    finally:
        shut(second)


def test_an_unreachable_api_server_fails_the_start_clearly(tmp_path: Path) -> None:
    gone = FakeKube()
    overrides = on_kube(gone, tmp_path)
    gone.stop()
    with hub_server(tmp_path / "data", **overrides) as hub:
        hub.start("alice")
        failed = hub.wait_state("alice", "", "FAILED")
        assert "cannot reach the Kubernetes API server" in failed["message"]
        listed = hub.as_("alice").get("/api/v1/workspaces")
        assert listed.status_code == 200, listed.text
        again = hub.as_("alice").post(path_of("alice"))  # asked again: tried again, said again
        assert again.status_code == 202, again.text
        hub.wait("alice", "", lambda s: s["state"] == "FAILED" and s["started_at"] > failed["started_at"], "the second start failed")


def test_a_running_server_outlives_an_api_server_outage(kube: FakeKube, tmp_path: Path) -> None:
    """Not knowing is not failing: while the API server is away a running server stays
    RUNNING (its route kept), and a stop waits, saying why, until it can delete the pod."""
    with hub_server(tmp_path / "data", **on_kube(kube, tmp_path)) as hub:
        hub.start("alice")
        hub.wait("alice", "", lambda s: kube.get("pods", NS, "jupyter-alice") is not None, "its pod applied")
        set_pod_status(kube, "jupyter-alice", ready())
        hub.wait_state("alice", "", "RUNNING")

        kube.clear()
        kube.down = True
        wait_until(lambda: len([r for r in kube.made("GET") if r.path.endswith("/pods/jupyter-alice")]) >= 3, "the hub looking at the pod while the API server is down")
        assert hub.status("alice")["state"] == "RUNNING"
        assert hub.route("alice") is not None

        hub.stop("alice")
        stopping = hub.wait("alice", "", lambda s: "waiting to delete its pod" in (s["progress"] or ""), "why it waits")
        assert stopping["state"] == "STOPPING"
        assert "503" in stopping["progress"]

        kube.down = False
        hub.wait_state("alice", "", "STOPPED")
        assert kube.get("pods", NS, "jupyter-alice") is None
