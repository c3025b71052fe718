"""The deployment controller: reconciles what should run with what runs.

On start-up and then on a timer (and at once after any change through the API) it reads
every deployment from the database, resolves each predictor's model to a ``Revision``
(an alias is looked up again every time, so a moved alias rolls the deployment), asks the
compute backend to converge each predictor's workload, and records what it observed:
predictor status, events, the routing table, and in the registry's history which version
started serving where. Nothing is remembered only in memory.

Rollouts: the backend replaces replicas one at a time. When the new revision cannot
become ready and an older one still serves, the controller marks the new revision failed,
records why, and goes back to the revision that served; it tries again only when the
desired revision changes (a new spec, a moved alias).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from labdeck.artifacts.store import ArtifactStore
from labdeck.artifacts.uri import run_relative_root
from labdeck.clock import now_ms
from labdeck.compute.backend import ComputeBackend
from labdeck.compute.workload import ReplicaState, RolloutState, Workload, WorkloadStatus
from labdeck.deployments.entities import Deployment, DeploymentState, PredictorStatus, Revision
from labdeck.deployments.routes import DeploymentRoute, PredictorRoute, RoutingTable
from labdeck.deployments.spec import Predictor
from labdeck.deployments.store import SqlDeploymentStore
from labdeck.deployments.workloads import (
    WORKLOAD_PREFIX,
    predictor_workload,
    revision_of,
    workload_name,
)
from labdeck.errors import InvalidParameter, LabdeckError
from labdeck.model_uri import parse_model_uri
from labdeck.registry.locator import InProcessModelLocator
from labdeck.registry.service import RegistryService

log = logging.getLogger(__name__)

IDLE_TICK_S = 2.0
BUSY_TICK_S = 0.2  # while anything starts, stops or rolls out


class DeploymentController:
    def __init__(
        self,
        store: SqlDeploymentStore,
        registry: RegistryService,
        artifacts: ArtifactStore,
        backend: ComputeBackend,
        *,
        cache_dir: Path,
        image: str | None = None,
        model_env: dict[str, str] | None = None,
    ):
        self.store = store
        self.registry = registry
        self.locator = InProcessModelLocator(registry)
        self.artifacts = artifacts
        self.backend = backend
        self.cache_dir = cache_dir
        self.image = image
        self.model_env = model_env or {}
        self.routes = RoutingTable()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._deleting: dict[str, asyncio.Task[None]] = {}
        self._busy = False
        self._backend_started = False

    async def start(self) -> None:
        """Start the backend (once: it adopts what runs) and the reconcile loop."""
        if not self._backend_started:
            await self.backend.start()
            self._backend_started = True
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="deployment-controller")

    async def pause(self) -> None:
        """Stop reconciling, keeping the backend: a replica that no longer leads."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        deleting = list(self._deleting.values())
        for task in deleting:
            task.cancel()
        await asyncio.gather(*deleting, return_exceptions=True)

    @property
    def reconciling(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        await self.pause()
        await self.backend.close()

    async def follow(self) -> None:
        """A replica that does not lead: the routing table from what the leader recorded
        (each predictor's replicas and their endpoints), without asking the backend."""
        self.routes.update([route_from_record(d) for d in await self.store.all() if d.state is not DeploymentState.DELETING])

    def poke(self) -> None:
        """Something changed: reconcile now rather than at the next tick."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop every deployment's supervision
                log.exception("reconcile failed")
            try:
                await asyncio.wait_for(self._wake.wait(), BUSY_TICK_S if self._busy else IDLE_TICK_S)
            except TimeoutError:
                pass
            self._wake.clear()

    # ------------------------------------------------------------------ reconciling

    async def reconcile(self) -> None:
        deployments = await self.store.all()
        wanted: set[str] = set()
        routes: list[DeploymentRoute] = []
        busy = False
        for deployment in deployments:
            if deployment.state is DeploymentState.DELETING:
                self._delete_in_background(deployment)
                busy = True
                continue
            statuses = []
            for predictor in deployment.spec.spec.predictors:
                wanted.add(workload_name(deployment.name, predictor.name))
                status, observed = await self._predictor(deployment, predictor)
                statuses.append(status)
                busy = busy or status.state is not DeploymentState.AVAILABLE
            await self._deployment_state(deployment, statuses)
            routes.append(self._route(deployment, statuses))
        self.routes.update(routes)
        for name in await self.backend.names():
            if name.startswith(WORKLOAD_PREFIX) and name not in wanted and not self._deleting_workload(name):
                log.info("stopping a workload no deployment wants", extra={"workload": name})
                await self.backend.delete(name)
        self._busy = busy

    async def _predictor(self, deployment: Deployment, predictor: Predictor) -> tuple[PredictorStatus, WorkloadStatus | None]:
        previous = deployment.predictor(predictor.name)
        serving = previous.serving if previous else None
        failed = previous.failed_revision if previous else None
        try:
            desired = await self._revision(deployment, predictor)
        except LabdeckError as error:
            # The model cannot be resolved now (deleted, alias removed): keep what serves.
            message = f"cannot resolve {predictor.model}: {error.message}"
            if previous is None or previous.message != message:
                await self.store.add_event(deployment.name, predictor.name, "ModelUnavailable", message)
            desired = serving
            if desired is None:
                status = PredictorStatus(
                    predictor.name, DeploymentState.FAILED, predictor.replicas, 0, None, None, failed, message, [], now_ms()
                )
                await self.store.save_predictor(deployment.name, status)
                return status, None
        assert desired is not None
        target = serving if (desired.revision_id == failed and serving is not None) else desired
        observed = await self.backend.apply(self._workload(deployment, predictor, target))
        message = None
        if target is not desired:
            # The reason (the failed replica's last words) was said once, when the rollout
            # failed; the backend forgets it as soon as the old revision is applied again,
            # so it is carried over from the stored status for as long as the failure holds.
            kept = previous.message if previous is not None and previous.failed_revision == desired.revision_id else None
            message = kept or f"the rollout of {_describe(desired)} failed; {_describe(serving)} serves"

        if observed.rollout is RolloutState.FAILED and serving is not None and target.revision_id != serving.revision_id:
            failed = target.revision_id
            message = f"the rollout of {_describe(target)} failed; {_describe(serving)} serves: {observed.message}"
            await self.store.add_event(deployment.name, predictor.name, "RolloutFailed", message)
        elif observed.rollout is RolloutState.COMPLETE and (serving is None or serving.revision_id != target.revision_id):
            await self.store.add_event(
                deployment.name, predictor.name, "Serving",
                f"serving {_describe(target)}" + (f" (was {_describe(serving)})" if serving else ""),
            )
            if target.version is not None and parse_model_uri(target.model_uri).is_registry:
                await self._record_in_registry(deployment, predictor, target)
            serving = target
            if failed == target.revision_id:
                failed = None
        elif serving is not None and target.revision_id != serving.revision_id:
            announced = previous.target.revision_id if previous and previous.target else None
            if announced != target.revision_id:
                await self.store.add_event(
                    deployment.name, predictor.name, "RolloutStarted", f"rolling out {_describe(target)} (serving {_describe(serving)})"
                )

        ready = len(observed.ready)
        if observed.rollout is RolloutState.FAILED and serving is None:
            state, message = DeploymentState.FAILED, observed.message
        elif ready == 0:
            state = DeploymentState.PENDING if serving is None else DeploymentState.DEGRADED
        elif failed is not None and desired.revision_id == failed:
            state = DeploymentState.DEGRADED
        elif observed.rollout is RolloutState.COMPLETE:
            state = DeploymentState.AVAILABLE
        else:
            state = DeploymentState.PROGRESSING
        replicas = [
            {
                "id": r.replica_id,
                "revision": r.revision,
                "state": r.state.value,
                "endpoints": r.endpoints,
                "pid": r.pid,
                "started_at": r.started_at,
                "restarts": r.restarts,
                "message": r.message,
            }
            for r in observed.replicas
        ]
        await self._replica_events(deployment, predictor, previous, replicas)
        status = PredictorStatus(
            name=predictor.name,
            state=state,
            desired_replicas=predictor.replicas,
            ready_replicas=ready,
            serving=serving,
            target=None if serving is not None and target.revision_id == serving.revision_id else target,
            failed_revision=failed,
            message=message,
            replicas=replicas,
            updated_at=now_ms(),
        )
        if previous is None or _changed(previous, status):
            await self.store.save_predictor(deployment.name, status)
        return status, observed

    async def _replica_events(
        self, deployment: Deployment, predictor: Predictor, previous: PredictorStatus | None, replicas: list[dict[str, Any]]
    ) -> None:
        before = {r["id"]: r for r in previous.replicas} if previous else {}
        for replica in replicas:
            old = before.get(replica["id"])
            if replica["state"] == ReplicaState.CRASHED and (old is None or old["state"] != ReplicaState.CRASHED):
                await self.store.add_event(deployment.name, predictor.name, "ReplicaCrashed", replica["message"] or replica["id"])

    async def _deployment_state(self, deployment: Deployment, statuses: list[PredictorStatus]) -> None:
        order = [DeploymentState.FAILED, DeploymentState.DEGRADED, DeploymentState.PENDING, DeploymentState.PROGRESSING]
        state = next((s for s in order if any(p.state is s for p in statuses)), DeploymentState.AVAILABLE)
        message = "; ".join(f"{p.name}: {p.message}" for p in statuses if p.message) or None
        if state is not deployment.state or message != deployment.message:
            await self.store.set_state(deployment.name, state, message, deployment.generation)

    async def _record_in_registry(self, deployment: Deployment, predictor: Predictor, revision: Revision) -> None:
        uri = parse_model_uri(revision.model_uri)
        try:
            await self.registry.record_deployed(uri.name, int(revision.version), f"{deployment.name}/{predictor.name}")  # type: ignore[arg-type]
        except LabdeckError as error:
            log.warning("could not record the deployment in the registry", extra={"reason": error.message})

    # ------------------------------------------------------------------ deleting

    def _delete_in_background(self, deployment: Deployment) -> None:
        if deployment.name in self._deleting:
            return

        async def delete() -> None:
            try:
                for predictor in deployment.spec.spec.predictors:
                    await self.backend.delete(workload_name(deployment.name, predictor.name))
                await self.store.remove(deployment.name)
                log.info("deployment deleted", extra={"deployment": deployment.name})
            finally:
                self._deleting.pop(deployment.name, None)

        self._deleting[deployment.name] = asyncio.create_task(delete())

    def _deleting_workload(self, name: str) -> bool:
        return any(name.startswith(f"{WORKLOAD_PREFIX}{d}-") for d in self._deleting)

    # ------------------------------------------------------------------ the desired revision

    async def _revision(self, deployment: Deployment, predictor: Predictor) -> Revision:
        uri = parse_model_uri(predictor.model)
        version = None
        if uri.is_registry:
            found = await self.registry.resolve_version(uri.name, uri.kind, uri.version, uri.stage, uri.alias)  # type: ignore[arg-type]
            version = str(found.version)
            location = found.storage_location or await self.locator.locate(parse_model_uri(found.source))
        else:
            location = await self.locator.locate(uri)
        return revision_of(predictor, self.reachable(location), version)

    def reachable(self, location: str) -> str:
        """Where a model server finds the files: inside labdeck's store, the store's own
        path or s3:// URI (never the proxied mlflow-artifacts:/ form, which needs a token)."""
        try:
            relative = run_relative_root(location, self.artifacts)
        except InvalidParameter:
            return location
        root = self.artifacts.root_uri.rstrip("/")
        return f"{root}/{relative}" if relative else root

    def _workload(self, deployment: Deployment, predictor: Predictor, revision: Revision) -> Workload:
        return predictor_workload(
            deployment.name, predictor, revision, cache_dir=self.cache_dir, image=self.image, env=self.model_env
        )

    # ------------------------------------------------------------------ routing

    def _route(self, deployment: Deployment, statuses: list[PredictorStatus]) -> DeploymentRoute:
        return route_of(deployment, statuses)


def route_from_record(deployment: Deployment) -> DeploymentRoute:
    """The route of a deployment as its stored predictor statuses say."""
    return route_of(deployment, list(deployment.predictors))


def route_of(deployment: Deployment, statuses: list[PredictorStatus]) -> DeploymentRoute:
    """Where each predictor's traffic goes: its ready replicas' endpoints."""
    by_name = {s.name: s for s in statuses}
    predictors = []
    for predictor in deployment.spec.spec.predictors:
        status = by_name.get(predictor.name)
        ready = [r for r in status.replicas if r["state"] == ReplicaState.READY] if status else []
        predictors.append(
            PredictorRoute(
                predictor.name,
                deployment.spec.traffic(predictor),
                predictor.shadow,
                [r["endpoints"]["http"] for r in ready],
                [r["endpoints"]["grpc"] for r in ready if "grpc" in r["endpoints"]],
            )
        )
    return DeploymentRoute(deployment.name, deployment.namespace, predictors)


def _describe(revision: Revision | None) -> str:
    if revision is None:
        return "nothing"
    if revision.version is not None:
        return f"version {revision.version} ({revision.model_uri})"
    return revision.model_uri


def _changed(before: PredictorStatus, after: PredictorStatus) -> bool:
    return replace(before, updated_at=0) != replace(after, updated_at=0)

