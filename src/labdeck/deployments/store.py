"""Storage of deployments, their predictors' observed status and their events (SQLite
and PostgreSQL alike). Each method is one transaction."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from labdeck.clock import now_ms
from labdeck.db import Database
from labdeck.db.sql import upsert
from labdeck.deployments import tables as t
from labdeck.deployments.entities import Deployment, DeploymentState, Event, PredictorStatus, Revision
from labdeck.deployments.spec import ModelDeployment
from labdeck.errors import AlreadyExists, NotFound

EVENTS_KEPT = 200  # per deployment; older events are dropped as new ones arrive


def _predictor(row: Any) -> PredictorStatus:
    return PredictorStatus(
        name=row.predictor,
        state=DeploymentState(row.state),
        desired_replicas=row.desired_replicas,
        ready_replicas=row.ready_replicas,
        serving=Revision.from_json(json.loads(row.serving)) if row.serving else None,
        target=Revision.from_json(json.loads(row.target)) if row.target else None,
        failed_revision=row.failed_revision,
        message=row.message,
        replicas=json.loads(row.replicas),
        updated_at=row.updated_at,
    )


def _deployment(row: Any, predictors: list[PredictorStatus]) -> Deployment:
    return Deployment(
        name=row.name,
        namespace=row.namespace,
        source_kind=row.source_kind,
        spec=ModelDeployment.model_validate_json(row.spec),
        source=json.loads(row.source),
        generation=row.generation,
        state=DeploymentState(row.state),
        message=row.message,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        predictors=tuple(predictors),
    )


def _load(conn: Connection, names: list[str] | None) -> list[Deployment]:
    d, p = t.deployments, t.deployment_predictors
    query = select(d).order_by(d.c.name)
    predictors_query = select(p).order_by(p.c.deployment, p.c.predictor)
    if names is not None:
        query = query.where(d.c.name.in_(names))
        predictors_query = predictors_query.where(p.c.deployment.in_(names))
    by_deployment: dict[str, list[PredictorStatus]] = {}
    for row in conn.execute(predictors_query):
        by_deployment.setdefault(row.deployment, []).append(_predictor(row))
    found = []
    for row in conn.execute(query):
        spec_names = {pr.name for pr in ModelDeployment.model_validate_json(row.spec).spec.predictors}
        found.append(_deployment(row, [s for s in by_deployment.get(row.name, []) if s.name in spec_names]))
    return found


class SqlDeploymentStore:
    def __init__(self, db: Database):
        self.db = db

    async def create(self, spec: ModelDeployment, source_kind: str, source: dict[str, Any], created_by: str | None) -> Deployment:
        def work(conn: Connection) -> Deployment:
            now = now_ms()
            try:
                conn.execute(
                    t.deployments.insert().values(
                        name=spec.metadata.name,
                        namespace=spec.metadata.namespace,
                        source_kind=source_kind,
                        spec=spec.model_dump_json(by_alias=True),
                        source=json.dumps(source),
                        generation=1,
                        state=DeploymentState.PENDING,
                        message=None,
                        created_by=created_by,
                        created_at=now,
                        updated_at=now,
                    )
                )
            except IntegrityError:
                # names are unique across namespaces (the name is the key), so only the name clashes
                raise AlreadyExists(
                    f"Deployment '{spec.metadata.name}' already exists: change it with PUT "
                    f"/api/v1/deployments/{spec.metadata.name} (labdeck deploy does), or delete it first."
                ) from None
            return _load(conn, [spec.metadata.name])[0]

        return await self.db.write(work)

    async def replace(self, spec: ModelDeployment, source_kind: str, source: dict[str, Any]) -> Deployment:
        def work(conn: Connection) -> Deployment:
            d = t.deployments
            row = conn.execute(select(d.c.state, d.c.namespace).where(d.c.name == spec.metadata.name)).first()
            if row is None:
                raise NotFound(f"Deployment '{spec.metadata.name}' not found.")
            if row.state == DeploymentState.DELETING:
                raise NotFound(f"Deployment '{spec.metadata.name}' is being deleted.")
            # Until the controller has looked at the new spec, the state it reported for the
            # old one says nothing: whoever waits for AVAILABLE after a change must not see
            # the old AVAILABLE (or the old failure).
            serving = row.state in (DeploymentState.AVAILABLE, DeploymentState.PROGRESSING, DeploymentState.DEGRADED)
            try:
                conn.execute(
                    update(d)
                    .where(d.c.name == spec.metadata.name)
                    .values(
                        namespace=spec.metadata.namespace,
                        source_kind=source_kind,
                        spec=spec.model_dump_json(by_alias=True),
                        source=json.dumps(source),
                        generation=d.c.generation + 1,
                        state=DeploymentState.PROGRESSING if serving else DeploymentState.PENDING,
                        message=None,
                        updated_at=now_ms(),
                    )
                )
            except IntegrityError:
                raise AlreadyExists(f"Namespace '{spec.metadata.namespace}' already has a deployment of that name.") from None
            return _load(conn, [spec.metadata.name])[0]

        return await self.db.write(work)

    async def get(self, name: str) -> Deployment:
        found = await self.db.read(lambda conn: _load(conn, [name]))
        if not found:
            raise NotFound(f"Deployment '{name}' not found.")
        return found[0]

    async def all(self) -> list[Deployment]:
        return await self.db.read(lambda conn: _load(conn, None))

    async def set_state(self, name: str, state: DeploymentState, message: str | None, generation: int | None = None) -> None:
        """Record the state observed; with ``generation``, only while the spec is still that
        generation (a state worked out from a spec replaced meanwhile is stale), and never
        over DELETING."""
        d = t.deployments

        def work(conn: Connection) -> None:
            query = update(d).where(d.c.name == name, d.c.state != DeploymentState.DELETING)
            if generation is not None:
                query = query.where(d.c.generation == generation)
            conn.execute(query.values(state=state, message=message, updated_at=now_ms()))

        await self.db.write(work, small=True)

    async def mark_deleting(self, name: str) -> Deployment:
        def work(conn: Connection) -> Deployment:
            d = t.deployments
            done = conn.execute(
                update(d).where(d.c.name == name).values(state=DeploymentState.DELETING, updated_at=now_ms())
            )
            if done.rowcount == 0:
                raise NotFound(f"Deployment '{name}' not found.")
            return _load(conn, [name])[0]

        return await self.db.write(work)

    async def remove(self, name: str) -> None:
        def work(conn: Connection) -> None:
            conn.execute(delete(t.deployment_events).where(t.deployment_events.c.deployment == name))
            conn.execute(delete(t.deployment_predictors).where(t.deployment_predictors.c.deployment == name))
            conn.execute(delete(t.deployments).where(t.deployments.c.name == name))

        await self.db.write(work)

    async def save_predictor(self, deployment: str, status: PredictorStatus) -> None:
        values = {
            "deployment": deployment,
            "predictor": status.name,
            "state": status.state,
            "desired_replicas": status.desired_replicas,
            "ready_replicas": status.ready_replicas,
            "serving": json.dumps(status.serving.to_json()) if status.serving else None,
            "target": json.dumps(status.target.to_json()) if status.target else None,
            "failed_revision": status.failed_revision,
            "message": status.message,
            "replicas": json.dumps(status.replicas),
            "updated_at": status.updated_at,
        }
        columns = [c for c in values if c not in ("deployment", "predictor")]
        table = t.deployment_predictors
        await self.db.write(
            lambda conn: conn.execute(upsert(conn, table, ["deployment", "predictor"], columns), values), small=True
        )

    async def add_event(self, deployment: str, predictor: str | None, kind: str, message: str) -> None:
        def work(conn: Connection) -> None:
            e = t.deployment_events
            conn.execute(e.insert().values(deployment=deployment, predictor=predictor, at=now_ms(), kind=kind, message=message))
            too_old = conn.execute(
                select(e.c.event_id)
                .where(e.c.deployment == deployment)
                .order_by(e.c.event_id.desc())
                .offset(EVENTS_KEPT)
                .limit(1)
            ).scalar()
            if too_old is not None:
                conn.execute(delete(e).where(e.c.deployment == deployment, e.c.event_id <= too_old))

        await self.db.write(work, small=True)

    async def events(self, deployment: str, limit: int) -> list[Event]:
        def work(conn: Connection) -> list[Event]:
            e = t.deployment_events
            rows = conn.execute(
                select(e).where(e.c.deployment == deployment).order_by(e.c.event_id.desc()).limit(limit)
            ).all()
            return [Event(r.event_id, r.deployment, r.predictor, r.at, r.kind, r.message) for r in reversed(rows)]

        return await self.db.read(work)
