"""``KubernetesBackend`` driven against a fake Kubernetes API server on 127.0.0.1 (there is
no cluster here): the requests it sends through the official client, and how it reads a
Deployment's status and its pods back. The last test runs a whole labdeck server whose
controller deploys through it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from labdeck.app import compute_backend
from labdeck.compute import manifests
from labdeck.compute.kubernetes import KubernetesBackend
from labdeck.compute.workload import ReplicaState, Resources, RolloutState, Workload
from labdeck.config import KubernetesSettings, Settings
from labdeck.errors import Unavailable
from tests.compute.k8s_kit import FakeKube, check_objects, pod

NS = "ml"
APPLY = "application/apply-patch+yaml"


def run(scenario: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(scenario())


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube()
    yield fake
    fake.stop()


@pytest.fixture
def settings(kube: FakeKube, tmp_path: Path) -> KubernetesSettings:
    return KubernetesSettings(namespace=NS, image="ghcr.io/labdeck/labdeck:test", kubeconfig=str(kube.kubeconfig(tmp_path)))


def workload(name: str = "md-iris-main", revision: str = "rev1", **changes: Any) -> Workload:
    base = Workload(
        name=name,
        revision=revision,
        args=("serve", "s3://models/iris/1", "--host", "{host}", "--port", "{port:http}", "--grpc-port", "{port:grpc}"),
        ports=("http", "grpc"),
        container_ports={"http": 9000, "grpc": 9001},
        replicas=2,
        env={"MLFLOW_S3_ENDPOINT_URL": "http://minio:9000"},
        image="ghcr.io/labdeck/labdeck:test",
        labels={"labdeck/deployment": "iris", "labdeck/predictor": "main"},
        scratch=("/var/cache/labdeck/models",),
    )
    return replace(base, **changes)


def pod_labels(w: Workload, revision: str | None = None) -> dict[str, str]:
    return {**manifests.selector(w.name), "labdeck/revision": revision or w.revision, "app.kubernetes.io/managed-by": "labdeck"}


def rolled_out(generation: int, count: int) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "replicas": count,
        "updatedReplicas": count,
        "readyReplicas": count,
        "availableReplicas": count,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "has successfully progressed."},
        ],
    }


def test_apply_server_side_applies_the_rendered_objects(kube: FakeKube, settings: KubernetesSettings) -> None:
    w = workload(min_replicas=2, max_replicas=5, resources=Resources(cpu_request="1", memory_limit="1Gi"))
    backend = KubernetesBackend(settings)

    async def scenario() -> Any:
        await backend.start()
        try:
            return await backend.apply(w)
        finally:
            await backend.close()

    status = run(scenario)
    patches = kube.made("PATCH")
    expected = manifests.workload_objects(w, settings)
    check_objects(expected)
    assert [r.path for r in patches] == [
        f"/apis/apps/v1/namespaces/{NS}/deployments/md-iris-main",
        f"/api/v1/namespaces/{NS}/services/md-iris-main",
        f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/md-iris-main",
    ]
    for request, obj in zip(patches, expected, strict=True):
        # the client spells the flag "True"; the API server takes any value but "false"
        # and "0" as true (apimachinery's Convert_Slice_string_To_bool)
        assert request.query.keys() == {"fieldManager", "force"} and request.query["fieldManager"] == "labdeck"
        assert request.query["force"].lower() == "true"
        assert request.content_type == APPLY
        assert request.body == obj  # exactly what was rendered
    gets = kube.made("GET")
    assert {r.path for r in gets} == {f"/apis/apps/v1/namespaces/{NS}/deployments/md-iris-main", f"/api/v1/namespaces/{NS}/pods"}
    (pods_query,) = [r.query for r in gets if r.path.endswith("/pods")]
    assert pods_query["labelSelector"] == "app.kubernetes.io/instance=md-iris-main"
    assert not kube.made("DELETE")  # autoscaled: the HPA stays
    # just applied: the Deployment controller has not seen it yet
    assert status.rollout is RolloutState.PROGRESSING and status.replicas == () and status.revision == "rev1"


def test_ready_updated_replicas_complete_the_rollout(kube: FakeKube, settings: KubernetesSettings) -> None:
    w = workload()
    backend = KubernetesBackend(settings)

    async def scenario() -> tuple[Any, Any]:
        first = await backend.apply(w)
        # not autoscaled: an HPA left from an earlier spec must go (there was none: a 404)
        assert [r.path for r in kube.made("DELETE")] == [f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/md-iris-main"]
        kube.status["md-iris-main"] = rolled_out(generation=1, count=2)
        kube.pods = [
            pod("md-iris-main-7d9f-a", pod_labels(w), ip="10.1.0.7", restarts=1),
            pod("md-iris-main-7d9f-b", pod_labels(w), ip="fd00::5"),
        ]
        kube.clear()
        second = await backend.apply(w)
        await backend.close()
        return first, second

    first, second = run(scenario)
    assert first.rollout is RolloutState.PROGRESSING
    assert second.rollout is RolloutState.COMPLETE and second.desired == 2 and second.updated_ready == 2
    a, b = second.replicas
    assert (a.replica_id, a.state, a.revision, a.restarts) == ("md-iris-main-7d9f-a", ReplicaState.READY, "rev1", 1)
    assert a.endpoints == {"http": "10.1.0.7:9000", "grpc": "10.1.0.7:9001"}
    assert b.endpoints == {"http": "[fd00::5]:9000", "grpc": "[fd00::5]:9001"}
    assert a.started_at == 1767323045000 and a.pid is None
    # nothing changed since the last apply: no PATCH, only reads
    assert {r.method for r in kube.made()} == {"GET"}


def test_pod_states(kube: FakeKube, settings: KubernetesSettings) -> None:
    w = workload(replicas=4)
    kube.pods = [
        pod("p-crash", pod_labels(w), ready=False, restarts=3,
            waiting={"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"},
            last_terminated={"exitCode": 3, "reason": "Error", "message": "labdeck serve: cannot load the model s3://models/iris/1: no such key\n"}),
        pod("p-pull", pod_labels(w), ready=False, ip=None, waiting={"reason": "ImagePullBackOff", "message": "Back-off pulling image"}),
        pod("p-new", pod_labels(w), ready=False, ip=None, waiting={"reason": "ContainerCreating"}),
        pod("p-old", pod_labels(w, "rev0"), deleting=True),
    ]
    backend = KubernetesBackend(settings)

    async def scenario() -> Any:
        status = await backend.apply(w)
        await backend.close()
        return status

    status = run(scenario)
    by_id = {r.replica_id: r for r in status.replicas}
    crash = by_id["p-crash"]
    assert crash.state is ReplicaState.CRASHED and crash.restarts == 3
    assert "CrashLoopBackOff" in crash.message and "exited with status 3" in crash.message
    assert "cannot load the model s3://models/iris/1: no such key" in crash.message
    assert by_id["p-pull"].state is ReplicaState.CRASHED and "ImagePullBackOff" in by_id["p-pull"].message
    assert by_id["p-new"].state is ReplicaState.STARTING and by_id["p-new"].endpoints == {}
    assert by_id["p-old"].state is ReplicaState.STOPPING and by_id["p-old"].revision == "rev0"
    assert status.ready == ()


def test_progress_deadline_exceeded_fails_the_rollout(kube: FakeKube, settings: KubernetesSettings) -> None:
    w = workload(revision="rev2", replicas=1)
    backend = KubernetesBackend(settings)

    async def scenario() -> Any:
        await backend.apply(w)
        kube.status["md-iris-main"] = {
            "observedGeneration": 1,
            "replicas": 2,
            "updatedReplicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": 'ReplicaSet "md-iris-main-5c8d" has timed out progressing.',
                },
            ],
        }
        kube.pods = [
            pod("md-iris-main-old", pod_labels(w, "rev1"), ip="10.1.0.8"),
            pod("md-iris-main-new", pod_labels(w), ready=False, restarts=5, waiting={"reason": "CrashLoopBackOff"},
                last_terminated={"exitCode": 1, "message": "Traceback ...\nValueError: bad model\n"}),
        ]
        status = await backend.apply(w)
        await backend.close()
        return status

    status = run(scenario)
    assert status.rollout is RolloutState.FAILED
    assert status.message.startswith('ReplicaSet "md-iris-main-5c8d" has timed out progressing.')
    assert "ValueError: bad model" in status.message  # the new pod's last words
    assert [(r.revision, r.state) for r in status.replicas] == [("rev2", ReplicaState.CRASHED), ("rev1", ReplicaState.READY)]


def test_a_new_revision_is_applied_and_progresses(kube: FakeKube, settings: KubernetesSettings) -> None:
    backend = KubernetesBackend(settings)

    async def scenario() -> Any:
        await backend.apply(workload())
        kube.status["md-iris-main"] = rolled_out(generation=1, count=2)
        kube.clear()
        status = await backend.apply(workload(revision="rev2"))
        await backend.close()
        return status

    status = run(scenario)
    (patch,) = [r for r in kube.made("PATCH") if "deployments" in r.path]
    assert patch.body["spec"]["template"]["metadata"]["labels"]["labdeck/revision"] == "rev2"
    assert kube.get("deployments", NS, "md-iris-main")["metadata"]["generation"] == 2
    # the status still describes generation 1: not COMPLETE for rev2
    assert status.rollout is RolloutState.PROGRESSING and status.revision == "rev2"


def test_an_object_the_api_server_refuses_fails_the_rollout_with_its_message(kube: FakeKube, settings: KubernetesSettings) -> None:
    kube.refuse[("deployments", "md-iris-main")] = (403, 'deployments.apps "md-iris-main" is forbidden: exceeded quota: compute')
    backend = KubernetesBackend(settings)

    async def scenario() -> Any:
        status = await backend.apply(workload())
        await backend.close()
        return status

    status = run(scenario)
    assert status.rollout is RolloutState.FAILED
    assert "exceeded quota: compute" in status.message and "Deployment ml/md-iris-main" in status.message
    assert len(kube.made("PATCH")) == 1  # it stopped at the first refusal


def test_turning_autoscaling_off_deletes_the_hpa(kube: FakeKube, settings: KubernetesSettings) -> None:
    backend = KubernetesBackend(settings)

    async def scenario() -> None:
        await backend.apply(workload(min_replicas=1, max_replicas=3))
        assert kube.get("horizontalpodautoscalers", NS, "md-iris-main") is not None
        await backend.apply(workload(replicas=3))
        await backend.close()

    run(scenario)
    assert kube.get("horizontalpodautoscalers", NS, "md-iris-main") is None
    assert kube.get("deployments", NS, "md-iris-main")["spec"]["replicas"] == 3


def test_a_deployment_deleted_behind_its_back_is_applied_again(kube: FakeKube, settings: KubernetesSettings) -> None:
    backend = KubernetesBackend(settings)

    async def scenario() -> None:
        await backend.apply(workload())
        del kube.objects[("deployments", NS, "md-iris-main")]
        kube.clear()
        await backend.apply(workload())
        await backend.close()

    run(scenario)
    assert kube.get("deployments", NS, "md-iris-main") is not None
    assert [r.path.rsplit("/", 2)[-2] for r in kube.made("PATCH")] == ["deployments", "services"]


def test_delete_removes_all_three_kinds_in_the_foreground(kube: FakeKube, settings: KubernetesSettings) -> None:
    backend = KubernetesBackend(settings)

    async def scenario() -> None:
        await backend.apply(workload(min_replicas=2, max_replicas=4))
        kube.clear()
        await backend.delete("md-iris-main")
        await backend.delete("md-iris-main")  # already gone: nothing to do, no error
        await backend.close()

    run(scenario)
    deletes = kube.made("DELETE")
    assert [(r.path, r.query) for r in deletes[:3]] == [
        (f"/apis/apps/v1/namespaces/{NS}/deployments/md-iris-main", {"propagationPolicy": "Foreground"}),
        (f"/api/v1/namespaces/{NS}/services/md-iris-main", {"propagationPolicy": "Foreground"}),
        (f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/md-iris-main", {"propagationPolicy": "Foreground"}),
    ]
    assert len(deletes) == 6 and not kube.objects


def test_names_lists_labdeck_deployments_by_label(kube: FakeKube, settings: KubernetesSettings) -> None:
    long_name = "md-" + "a" * 40 + "-" + "p" * 20  # 64 characters: its objects get a shorter name
    kube.put("deployments", {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "someone-else", "namespace": NS, "labels": {"app": "x"}}})
    backend = KubernetesBackend(settings)

    async def scenario() -> list[str]:
        await backend.apply(workload())
        await backend.apply(workload(name=long_name))
        kube.clear()
        names = await backend.names()
        await backend.close()
        return names

    names = run(scenario)
    assert names == sorted(["md-iris-main", long_name])
    (request,) = kube.made()
    assert request.path == f"/apis/apps/v1/namespaces/{NS}/deployments"
    assert request.query["labelSelector"] == "app.kubernetes.io/managed-by=labdeck"


def test_logs_are_read_per_pod(kube: FakeKube, settings: KubernetesSettings) -> None:
    w = workload()
    kube.pods = [pod("md-iris-main-a", pod_labels(w)), pod("md-iris-main-b", pod_labels(w), ready=False)]
    kube.logs["md-iris-main-a"] = "one\ntwo\nthree\n"
    backend = KubernetesBackend(settings)

    async def scenario() -> dict[str, list[str]]:
        logs = await backend.logs("md-iris-main", 2)
        await backend.close()
        return logs

    logs = run(scenario)
    assert logs["md-iris-main-a"] == ["two", "three"]
    assert logs["md-iris-main-b"][0].startswith("(no logs: ")
    (query,) = [r.query for r in kube.made() if r.path.endswith("/md-iris-main-a/log")]
    assert query == {"container": "model", "tailLines": "2"}


def test_an_unreachable_api_server_is_unavailable(tmp_path: Path) -> None:
    gone = FakeKube()
    kubeconfig = gone.kubeconfig(tmp_path)
    gone.stop()
    backend = KubernetesBackend(KubernetesSettings(namespace=NS, kubeconfig=str(kubeconfig)))

    async def scenario() -> None:
        try:
            await backend.apply(workload())
        finally:
            await backend.close()

    with pytest.raises(Unavailable, match="cannot reach the Kubernetes API server"):
        run(scenario)


def test_the_settings_choose_this_backend(settings: KubernetesSettings, tmp_path: Path) -> None:
    chosen = compute_backend(Settings.load(None, data_dir=tmp_path, deployments={"backend": "kubernetes", "kubernetes": settings.model_dump()}), None)  # type: ignore[arg-type]
    assert isinstance(chosen, KubernetesBackend) and chosen.namespace == NS


def test_a_labdeck_server_deploys_through_it(tmp_path: Path, start_server: Callable[..., Any]) -> None:
    """The whole path: the API accepts a deployment, the controller applies it through this
    backend, the (fake) cluster rolls it out, the deployment becomes AVAILABLE with the
    pods' IPs as endpoints; deleting it deletes its objects."""
    kube = FakeKube(auto=True)
    try:
        server = start_server(
            deployments={"backend": "kubernetes", "kubernetes": {"namespace": NS, "kubeconfig": str(kube.kubeconfig(tmp_path))}}
        )
        document = """\
apiVersion: labdeck.dev/v1
kind: ModelDeployment
metadata: {name: iris}
spec:
  predictors:
  - {name: main, model: "s3://models/iris/1", replicas: 2, traffic: 90}
  - {name: canary, model: "s3://models/iris/2", traffic: 10}
"""
        with server.http() as http:
            created = http.post("/api/v1/deployments", content=document, headers={"Content-Type": "application/yaml"})
            assert created.status_code == 201, created.text
            found = _wait(http, lambda d: d["state"] == "AVAILABLE")
            main = next(p for p in found["predictors"] if p["name"] == "main")
            assert main["ready_replicas"] == 2
            assert all(r["http"].startswith("10.0.") and r["http"].endswith(":9000") for r in main["replicas"])
            deployment = kube.get("deployments", NS, "md-iris-main")
            check_objects([deployment, kube.get("services", NS, "md-iris-main")])
            assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["serve", "s3://models/iris/1"]
            assert http.delete("/api/v1/deployments/iris").status_code == 200
            _wait(http, None)
        assert not kube.objects
    finally:
        kube.stop()


def _wait(http: Any, done: Callable[[dict[str, Any]], bool] | None) -> dict[str, Any]:
    """Poll the deployment until ``done`` (None: until it is gone); pytest-timeout bounds it."""
    while True:
        answer = http.get("/api/v1/deployments/iris")
        if done is None and answer.status_code == 404:
            return {}
        if done is not None and answer.status_code == 200 and done(answer.json()):
            return answer.json()
        time.sleep(0.1)
