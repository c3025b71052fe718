"""What a replica that does not lead serves from: the routes rebuilt from what the leader
recorded in the database (a real SQLite file, the real stores), and the proxy traffic it
saw written back there, at most every ``activity_write_s`` per server, for the culler."""

from __future__ import annotations

import asyncio
from pathlib import Path

from labdeck.app import Platform
from labdeck.clock import now_ms
from labdeck.compute.workload import ReplicaState
from labdeck.config import Settings
from labdeck.deployments.entities import DeploymentState, PredictorStatus
from labdeck.deployments.spec import parse_model_deployment
from labdeck.workspaces.entities import ServerState
from labdeck.workspaces.hub import POD_SECRET


def follower(tmp_path: Path) -> Platform:
    kubeconfig = tmp_path / "kubeconfig.yaml"  # never read: a follower asks no API server
    settings = Settings.load(
        data_dir=tmp_path / "data",
        deployments={"backend": "kubernetes", "kubernetes": {"kubeconfig": str(kubeconfig)}},
        workspaces={"kubernetes": {"namespace": "users"}},
        cluster={"leader_election": {"enabled": True}},
    )
    platform = Platform.build(settings)
    platform.db.migrate()
    platform.db.start()
    return platform


def test_a_follower_routes_running_workspaces_and_writes_their_activity(tmp_path: Path) -> None:
    platform = follower(tmp_path)
    hub, store, routes = platform.workspaces, platform.workspaces.store, platform.workspace_routes

    async def scenario() -> None:
        # what the leader recorded: alice's server runs in a pod, bob's still starts
        for user in ("alice", "bob"):
            await store.request_start(user, "", "spark" if user == "alice" else "base", f"ws-{user}", limit=3)
        await store.update("alice", "", state=ServerState.RUNNING, launch={POD_SECRET: "alice-secret"})
        await hub.follow(activity_every_s=30)

        route = routes.get("alice", "")
        assert route is not None and routes.get("bob", "") is None
        assert route.secret == "alice-secret" and route.base_url == "/user/alice/"
        assert set(route.endpoints) == {"http", "spark-ui"}  # the spark environment's UI too
        assert route.endpoints["http"].endswith(".users.svc:8888")

        # traffic through this replica's proxy reaches the database, for the leader's culler
        routes.touch(route)
        seen = int(route.last_activity * 1000)
        await hub.follow(activity_every_s=30)
        recorded = await store.get("alice", "")
        assert recorded is not None and recorded.last_activity == seen
        # more traffic at once is not written again within activity_every_s ...
        route.last_activity += 5
        await hub.follow(activity_every_s=30)
        recorded = await store.get("alice", "")
        assert recorded is not None and recorded.last_activity == seen
        # ... and an older time never overwrites a later one another replica wrote
        assert await store.note_activity("alice", "", seen - 1000) is False

        # stopped by the leader: the route goes
        await store.update("alice", "", state=ServerState.STOPPED)
        await hub.follow(activity_every_s=30)
        assert routes.get("alice", "") is None

    try:
        asyncio.run(scenario())
    finally:
        platform.db.close()


def test_a_follower_routes_deployments_to_the_ready_replicas_the_leader_recorded(tmp_path: Path) -> None:
    platform = follower(tmp_path)
    controller = platform.deployments.controller
    spec = parse_model_deployment(
        {
            "apiVersion": "labdeck.dev/v1",
            "kind": "ModelDeployment",
            "metadata": {"name": "churn"},
            "spec": {"predictors": [{"name": "main", "model": "models:/churn/1", "replicas": 2}]},
        }
    )

    def replica(name: str, state: ReplicaState, ip: str) -> dict[str, object]:
        return {"id": name, "state": state.value, "endpoints": {"http": f"{ip}:9000", "grpc": f"{ip}:9001"}}

    async def scenario() -> None:
        await controller.store.create(spec, "ModelDeployment", spec.document(), None)
        await controller.follow()
        route = controller.routes.get("churn")
        assert route is not None and route.predictors[0].endpoints == []  # nothing ready yet

        status = PredictorStatus(
            "main", DeploymentState.PROGRESSING, 2, 1, None, None, None, None,
            [replica("a", ReplicaState.READY, "10.0.0.1"), replica("b", ReplicaState.STARTING, "10.0.0.2")],
            now_ms(),
        )
        await controller.store.save_predictor("churn", status)
        await controller.follow()
        route = controller.routes.get("churn")
        assert route is not None
        assert route.predictors[0].endpoints == ["10.0.0.1:9000"] and route.predictors[0].grpc_endpoints == ["10.0.0.1:9001"]
        assert not controller.reconciling  # a follower asks no backend

    try:
        asyncio.run(scenario())
    finally:
        platform.db.close()
