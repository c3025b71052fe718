"""Logged models (MLflow 3): storage and search.

A logged model is created PENDING by ``mlflow.<flavor>.log_model`` before its files are
uploaded, then finalized READY (or UPLOAD_FAILED). Its artifacts live under its
experiment's location at ``models/<model_id>/artifacts``; its metrics are the points a
client logged with its ``model_id``. Deletion is soft: a deleted model is not found.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, and_, case, delete, exists, false, or_, select, update
from sqlalchemy.sql import ColumnElement

from labdeck.clock import now_ms
from labdeck.db import Database
from labdeck.db.sql import in_chunks, upsert
from labdeck.errors import InvalidParameter, NotFound
from labdeck.search import grammar
from labdeck.search.paging import make_token, read_token
from labdeck.search.sql import numeric_condition, string_condition, tag_condition
from labdeck.tracking import tables as t
from labdeck.tracking.entities import LifecycleStage, LoggedModel, LoggedModelStatus, Metric, Page
from labdeck.tracking.names import random_run_name

_NUMERIC = {
    "creation_timestamp": "creation_timestamp_ms",
    "creation_time": "creation_timestamp_ms",
    "last_updated_timestamp": "last_updated_timestamp_ms",
    "last_updated_time": "last_updated_timestamp_ms",
}
_STRINGS = {k: k for k in ("name", "model_id", "model_type", "status", "source_run_id")}

LOGGED_MODEL_SPEC = grammar.SearchSpec(
    entity="logged models",
    string_attributes=_STRINGS,
    numeric_attributes=_NUMERIC,
    list_attributes=frozenset({"model_id", "name", "status", "source_run_id"}),
    kinds=frozenset({"attribute", "tag", "param", "metric"}),
    kind_words=frozenset({"attributes", "metrics", "params", "tags"}),
    tag_comparators=grammar.STRING_COMPARATORS | grammar.LIST_COMPARATORS,
    orderable_attributes={**_STRINGS, **_NUMERIC},
    orderable_kinds=frozenset({"attribute", "metric"}),
)

# One order_by entry of logged-model search: field name, ascending, and for a metric the
# dataset (name, digest) whose value to sort by.
ModelOrder = tuple[str, bool, str | None, str | None]


class SqlLoggedModelStore:
    def __init__(self, db: Database):
        self.db = db

    async def create(
        self,
        experiment_id: int,
        name: str | None,
        model_type: str | None,
        source_run_id: str | None,
        params: dict[str, str],
        tags: dict[str, str],
        creator_id: str | None,
    ) -> LoggedModel:
        model_id = f"m-{uuid.uuid4().hex}"

        def work(conn: Connection) -> LoggedModel:
            e = t.experiments
            row = conn.execute(
                select(e.c.artifact_location, e.c.lifecycle_stage).where(e.c.experiment_id == experiment_id)
            ).first()
            if row is None:
                raise NotFound(f"No Experiment with id={experiment_id} exists")
            if row.lifecycle_stage != LifecycleStage.ACTIVE:
                raise InvalidParameter(
                    f"The experiment {experiment_id} must be in the 'active' state. Current state is {row.lifecycle_stage}."
                )
            if source_run_id is not None:
                found = conn.execute(select(t.runs.c.run_uuid).where(t.runs.c.run_uuid == source_run_id)).first()
                if found is None:
                    raise NotFound(f"Run with id={source_run_id} not found")
            now = now_ms()
            conn.execute(
                t.logged_models.insert().values(
                    model_id=model_id,
                    experiment_id=experiment_id,
                    name=name or random_run_name(),
                    artifact_location=f"{row.artifact_location.rstrip('/')}/models/{model_id}/artifacts",
                    creation_timestamp_ms=now,
                    last_updated_timestamp_ms=now,
                    status=LoggedModelStatus.PENDING,
                    lifecycle_stage=LifecycleStage.ACTIVE,
                    model_type=model_type,
                    source_run_id=source_run_id,
                    creator_id=creator_id,
                )
            )
            _put_pairs(conn, t.logged_model_params, model_id, params)
            _put_pairs(conn, t.logged_model_tags, model_id, tags)
            return _load(conn, [model_id])[model_id]

        return await self.db.write(work)

    async def get(self, model_id: str) -> LoggedModel:
        return await self.db.read(lambda conn: _one(conn, model_id))

    async def finalize(self, model_id: str, status: str) -> LoggedModel:
        def work(conn: Connection) -> LoggedModel:
            _one(conn, model_id)
            conn.execute(
                update(t.logged_models)
                .where(t.logged_models.c.model_id == model_id)
                .values(status=status, last_updated_timestamp_ms=now_ms())
            )
            return _one(conn, model_id)

        return await self.db.write(work)

    async def delete(self, model_id: str) -> None:
        def work(conn: Connection) -> None:
            _one(conn, model_id)
            conn.execute(
                update(t.logged_models)
                .where(t.logged_models.c.model_id == model_id)
                .values(lifecycle_stage=LifecycleStage.DELETED, last_updated_timestamp_ms=now_ms())
            )

        await self.db.write(work)

    async def set_tags(self, model_id: str, tags: dict[str, str]) -> LoggedModel:
        def work(conn: Connection) -> LoggedModel:
            _one(conn, model_id)
            _put_pairs(conn, t.logged_model_tags, model_id, tags)
            _touch(conn, model_id)
            return _one(conn, model_id)

        return await self.db.write(work)

    async def delete_tag(self, model_id: str, key: str) -> None:
        def work(conn: Connection) -> None:
            _one(conn, model_id)
            tag = t.logged_model_tags
            result = conn.execute(delete(tag).where(tag.c.model_id == model_id, tag.c.key == key))
            if result.rowcount == 0:
                raise NotFound(f"No tag with key '{key}' found for logged model with ID '{model_id}'.")
            _touch(conn, model_id)

        await self.db.write(work)

    async def log_params(self, model_id: str, params: dict[str, str]) -> None:
        def work(conn: Connection) -> None:
            _one(conn, model_id)
            _put_pairs(conn, t.logged_model_params, model_id, params)

        await self.db.write(work)

    async def search(
        self,
        experiment_ids: list[int],
        filter_string: str | None,
        datasets: list[tuple[str, str | None]],
        max_results: int,
        order_by: list[ModelOrder],
        page_token: str | None,
    ) -> Page[LoggedModel]:
        """MLflow's order: each key with missing values last, a metric by its latest value
        (newest timestamp, then step) on the entry's dataset if it names one, then
        ``creation_timestamp DESC`` and ``model_id``."""
        clauses = grammar.check(grammar.parse_filter(filter_string), LOGGED_MODEL_SPEC)
        orders = [
            (grammar.parse_order_by([field], LOGGED_MODEL_SPEC)[0], ascending, name, digest)
            for field, ascending, name, digest in order_by
        ]
        query_key = ["logged-models", sorted(experiment_ids), filter_string, datasets, order_by]
        offset = read_token(page_token, query_key)

        def work(conn: Connection) -> Page[LoggedModel]:
            lm = t.logged_models
            q = select(lm.c.model_id).where(
                lm.c.experiment_id.in_(experiment_ids), lm.c.lifecycle_stage == LifecycleStage.ACTIVE
            )
            for clause in clauses:
                q = q.where(_condition(conn, clause, datasets))
            if datasets and not any(c.kind == "metric" for c in clauses):
                # Datasets without a metric filter still select models with a metric on them.
                m = t.logged_model_metrics
                q = q.where(
                    exists(
                        select(1).where(
                            m.c.model_id == lm.c.model_id, *_dataset_filter(m.c.dataset_name, m.c.dataset_digest, datasets)
                        )
                    )
                )
            columns: list[Any] = []
            for order, ascending, dataset_name, dataset_digest in orders:
                if order.kind == "metric":
                    column: Any = _latest_metric_value(order.key, dataset_name, dataset_digest)
                else:
                    column = lm.c[_NUMERIC.get(order.key, order.key)]
                columns += [case((column.is_(None), 1), else_=0), column.asc() if ascending else column.desc()]
            columns += [lm.c.creation_timestamp_ms.desc(), lm.c.model_id]
            ids = [r[0] for r in conn.execute(q.order_by(*columns).limit(max_results + 1).offset(offset))]
            token = make_token(offset + max_results, query_key) if len(ids) > max_results else None
            ids = ids[:max_results]
            models = _load(conn, ids)
            return Page([models[i] for i in ids], token)

        return await self.db.read(work)


def _one(conn: Connection, model_id: str) -> LoggedModel:
    found = _load(conn, [model_id])
    if model_id not in found:
        raise NotFound(f"Logged model with ID '{model_id}' not found.")
    return found[model_id]


def _touch(conn: Connection, model_id: str) -> None:
    conn.execute(
        update(t.logged_models).where(t.logged_models.c.model_id == model_id).values(last_updated_timestamp_ms=now_ms())
    )


def _put_pairs(conn: Connection, table: Any, model_id: str, pairs: dict[str, str]) -> None:
    if pairs:
        conn.execute(
            upsert(conn, table, ["model_id", "key"], ["value"]),
            [{"model_id": model_id, "key": k, "value": v} for k, v in pairs.items()],
        )


def _load(conn: Connection, ids: list[str]) -> dict[str, LoggedModel]:
    if not ids:
        return {}
    lm = t.logged_models
    rows = conn.execute(
        select(lm).where(in_chunks(lm.c.model_id, ids), lm.c.lifecycle_stage == LifecycleStage.ACTIVE)
    ).all()
    if not rows:
        return {}
    tags = _pairs(conn, t.logged_model_tags, ids)
    params = _pairs(conn, t.logged_model_params, ids)
    metrics: dict[str, list[Metric]] = {}
    m = t.logged_model_metrics
    nan = float("nan")
    for r in conn.execute(
        select(m).where(in_chunks(m.c.model_id, ids)).order_by(m.c.model_id, m.c.key, m.c.step, m.c.timestamp)
    ):
        metrics.setdefault(r.model_id, []).append(
            Metric(r.key, nan if r.is_nan else r.value, r.timestamp, r.step, r.model_id, r.dataset_name, r.dataset_digest, r.run_uuid)
        )
    return {
        r.model_id: LoggedModel(
            model_id=r.model_id,
            experiment_id=str(r.experiment_id),
            name=r.name,
            artifact_location=r.artifact_location,
            creation_timestamp_ms=r.creation_timestamp_ms,
            last_updated_timestamp_ms=r.last_updated_timestamp_ms,
            status=r.status,
            lifecycle_stage=r.lifecycle_stage,
            model_type=r.model_type,
            source_run_id=r.source_run_id,
            status_message=r.status_message,
            creator_id=r.creator_id,
            tags=tags.get(r.model_id, {}),
            params=params.get(r.model_id, {}),
            metrics=metrics.get(r.model_id, []),
        )
        for r in rows
    }


def _pairs(conn: Connection, table: Any, ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for model_id, key, value in conn.execute(
        select(table.c.model_id, table.c.key, table.c.value).where(in_chunks(table.c.model_id, ids))
    ):
        out.setdefault(model_id, {})[key] = value
    return out


def _dataset_filter(column_name: Any, column_digest: Any, datasets: list[tuple[str, str | None]]) -> list[Any]:
    if not datasets:
        return []
    return [
        or_(
            *(
                and_(column_name == name, column_digest == digest) if digest else column_name == name
                for name, digest in datasets
            )
        )
    ]


def _condition(conn: Connection, clause: grammar.Clause, datasets: list[tuple[str, str | None]]) -> ColumnElement[bool]:
    lm = t.logged_models
    if clause.kind == "attribute":
        if clause.key in _NUMERIC:
            return numeric_condition(lm.c[_NUMERIC[clause.key]], clause)
        return string_condition(conn, lm.c[clause.key], clause)
    if clause.kind in ("tag", "param"):
        table = t.logged_model_tags if clause.kind == "tag" else t.logged_model_params
        return tag_condition(conn, table, table.c.model_id == lm.c.model_id, clause)
    m = t.logged_model_metrics
    return exists(
        select(1).where(
            m.c.model_id == lm.c.model_id,
            m.c.key == clause.key,
            m.c.is_nan == false(),
            numeric_condition(m.c.value, clause),
            *_dataset_filter(m.c.dataset_name, m.c.dataset_digest, datasets),
        )
    )


def _latest_metric_value(key: str, dataset_name: str | None, dataset_digest: str | None) -> Any:
    m, lm = t.logged_model_metrics, t.logged_models
    on_dataset = []
    if dataset_name:
        on_dataset.append(m.c.dataset_name == dataset_name)
    if dataset_digest:
        on_dataset.append(m.c.dataset_digest == dataset_digest)
    return (
        select(m.c.value)
        .where(m.c.model_id == lm.c.model_id, m.c.key == key, *on_dataset)
        .order_by(m.c.timestamp.desc(), m.c.step.desc(), m.c.run_uuid.asc())
        .limit(1)
        .scalar_subquery()
    )
