"""Tracking storage: experiments, runs and what is logged to them, in SQL.

``SqlTrackingStore`` is the one implementation, on SQLite and PostgreSQL alike (the
contract suite runs on both). Its methods are coroutines: each runs one transaction on a
database thread (``labdeck.db.Database``), so a method either happens entirely or not at
all, even where MLflow's own store allows partial writes.

Semantics the callers rely on:

- ids: experiments are integers written as strings ("0" is Default); runs are uuid4 hex.
- every write to a run or experiment requires it to be active, else INVALID_PARAMETER_VALUE
  "The run <id> must be in the 'active' state. Current state is deleted.";
- a param is immutable: the same value again is accepted, another value is refused;
- a run's ``metrics`` are the latest point per key, the max of (step, timestamp, value);
- search methods return a ``Page`` whose ``next_page_token`` is None on the last page.

Logged models live in ``tracking/logged_models.py`` and run search SQL in
``tracking/run_search.py``; this module owns everything else.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from labdeck.clock import now_ms
from labdeck.db import Database
from labdeck.db.sql import driver_statement, in_chunks, insert, insert_ignore, paged, prepared, upsert
from labdeck.errors import AlreadyExists, InvalidParameter, NotFound
from labdeck.search import grammar
from labdeck.search.paging import make_token, read_token
from labdeck.search.sql import visible_only
from labdeck.tracking import tables as t
from labdeck.tracking.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
    Page,
    Run,
    RunInfo,
    RunStatus,
    ViewType,
)
from labdeck.tracking.names import random_run_name
from labdeck.tracking.run_search import RUN_SPEC, search_runs_query

RUN_NAME_TAG = "mlflow.runName"

EXPERIMENT_SPEC = grammar.SearchSpec(
    entity="experiments",
    string_attributes={"name": "name", "experiment_id": "experiment_id"},
    numeric_attributes={"creation_time": "creation_time", "last_update_time": "last_update_time"},
    list_attributes=frozenset({"experiment_id"}),
    kinds=frozenset({"attribute", "tag"}),
    kind_words=frozenset({"attribute", "tag", "tags"}),
    orderable_attributes={k: k for k in ("name", "experiment_id", "creation_time", "last_update_time")},
    forbidden_attributes={
        "lifecycle_stage": "Invalid attribute key 'lifecycle_stage' specified: use view_type to select deleted experiments."
    },
)


class SqlTrackingStore:
    def __init__(self, db: Database):
        self.db = db

    # ------------------------------------------------------------------ experiments

    async def create_experiment(self, name: str, artifact_location: str | None, tags: dict[str, str]) -> str:
        """Create an active experiment; its default artifact location is ``mlflow-artifacts:/<id>``."""

        def work(conn: Connection) -> str:
            now = now_ms()
            try:
                result = conn.execute(
                    t.experiments.insert().values(
                        name=name,
                        artifact_location=artifact_location or "",
                        lifecycle_stage=LifecycleStage.ACTIVE,
                        creation_time=now,
                        last_update_time=now,
                    )
                )
            except IntegrityError:
                raise AlreadyExists(f"Experiment(name={name}) already exists.") from None
            experiment_id = result.inserted_primary_key[0]
            if not artifact_location:
                conn.execute(
                    update(t.experiments)
                    .where(t.experiments.c.experiment_id == experiment_id)
                    .values(artifact_location=f"mlflow-artifacts:/{experiment_id}")
                )
            if tags:
                conn.execute(
                    t.experiment_tags.insert(),
                    [{"experiment_id": experiment_id, "key": k, "value": v} for k, v in tags.items()],
                )
            return str(experiment_id)

        return await self.db.write(work)

    async def get_experiment(self, experiment_id: int) -> Experiment:
        return await self.db.read(lambda conn: _experiment(conn, experiment_id))

    async def get_experiment_by_name(self, name: str) -> Experiment | None:
        def work(conn: Connection) -> Experiment | None:
            row = conn.execute(select(t.experiments.c.experiment_id).where(t.experiments.c.name == name)).first()
            return _experiment(conn, row[0]) if row else None

        return await self.db.read(work)

    async def search_experiments(
        self,
        view_type: ViewType,
        max_results: int,
        filter_string: str | None,
        order_by: list[str],
        page_token: str | None,
        *,
        only: frozenset[int] | None = None,
        hidden: frozenset[int] | None = None,
    ) -> Page[Experiment]:
        """``only`` / ``hidden`` keep the result to the experiments the caller may see."""
        clauses = grammar.check(grammar.parse_filter(filter_string), EXPERIMENT_SPEC)
        orders = grammar.parse_order_by(order_by, EXPERIMENT_SPEC)
        query_key = ["experiments", view_type, filter_string, order_by]
        offset = read_token(page_token, query_key)

        variant, visible, visible_params = visible_only(t.experiments.c.experiment_id, only, hidden)

        def query(conn: Connection) -> Any:
            e = t.experiments
            q = select(e.c.experiment_id).where(e.c.lifecycle_stage.in_(view_type.stages()))
            if visible is not None:
                q = q.where(visible)
            for clause in clauses:
                q = q.where(_experiment_condition(conn, clause))
            # MLflow's order: newest first by default; after explicit keys, experiment_id DESC.
            order_cols = [e.c[o.key].asc() if o.ascending else e.c[o.key].desc() for o in orders]
            if not orders:
                order_cols = [e.c.creation_time.desc(), e.c.experiment_id.asc()]
            elif not any(o.key == "experiment_id" for o in orders):
                order_cols.append(e.c.experiment_id.desc())
            return paged(q.order_by(*order_cols))

        def work(conn: Connection) -> Page[Experiment]:
            statement = prepared(conn, ("search-experiments", variant, view_type, filter_string, *order_by), query)
            page = {"limit": max_results + 1, "offset": offset, **visible_params}
            ids = [r[0] for r in conn.execute(statement, page)]
            token = make_token(offset + max_results, query_key) if len(ids) > max_results else None
            ids = ids[:max_results]
            experiments = _experiments(conn, ids)
            return Page([experiments[i] for i in ids], token)

        return await self.db.read(work)

    async def rename_experiment(self, experiment_id: int, new_name: str) -> None:
        def work(conn: Connection) -> None:
            experiment = _experiment(conn, experiment_id)
            if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
                raise InvalidParameter("Cannot rename a non-active experiment.")
            try:
                conn.execute(
                    update(t.experiments)
                    .where(t.experiments.c.experiment_id == experiment_id)
                    .values(name=new_name, last_update_time=now_ms())
                )
            except IntegrityError:
                raise AlreadyExists(f"Experiment(name={new_name}) already exists.") from None

        await self.db.write(work)

    async def delete_experiment(self, experiment_id: int) -> None:
        """Soft delete: the experiment and its runs become 'deleted'; the name stays taken."""
        await self.db.write(lambda conn: _set_experiment_stage(conn, experiment_id, LifecycleStage.DELETED))

    async def restore_experiment(self, experiment_id: int) -> None:
        await self.db.write(lambda conn: _set_experiment_stage(conn, experiment_id, LifecycleStage.ACTIVE))

    async def set_experiment_tag(self, experiment_id: int, key: str, value: str) -> None:
        def work(conn: Connection) -> None:
            _require_active_experiment(conn, experiment_id)
            conn.execute(
                upsert(conn, t.experiment_tags, ["experiment_id", "key"], ["value"]),
                {"experiment_id": experiment_id, "key": key, "value": value},
            )

        await self.db.write(work)

    async def delete_experiment_tag(self, experiment_id: int, key: str) -> None:
        def work(conn: Connection) -> None:
            _require_active_experiment(conn, experiment_id)
            tag = t.experiment_tags
            result = conn.execute(delete(tag).where(tag.c.experiment_id == experiment_id, tag.c.key == key))
            if result.rowcount == 0:
                raise NotFound(f"No tag with name: {key} in experiment with id {experiment_id}")

        await self.db.write(work)

    # ------------------------------------------------------------------ runs

    async def create_run(
        self, experiment_id: int, user_id: str, start_time: int, run_name: str | None, tags: dict[str, str]
    ) -> Run:
        tag_name = tags.get(RUN_NAME_TAG)
        if run_name and tag_name and run_name != tag_name:
            raise InvalidParameter(
                "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values "
                f"(run_name='{run_name}', mlflow.runName='{tag_name}')."
            )
        name = run_name or tag_name or random_run_name()
        tags = {**tags, RUN_NAME_TAG: name}
        run_id = uuid.uuid4().hex

        def work(conn: Connection) -> Run:
            experiment = _experiment(conn, experiment_id)
            if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
                raise InvalidParameter(
                    f"The experiment {experiment_id} must be in the 'active' state. "
                    f"Current state is {experiment.lifecycle_stage}."
                )
            info = RunInfo(
                run_id=run_id,
                run_name=name,
                experiment_id=str(experiment_id),
                user_id=user_id,
                status=RunStatus.RUNNING,
                start_time=start_time,
                end_time=None,
                artifact_uri=f"{experiment.artifact_location.rstrip('/')}/{run_id}/artifacts",
                lifecycle_stage=LifecycleStage.ACTIVE,
            )
            conn.execute(
                t.runs.insert().values(
                    run_uuid=run_id,
                    name=name,
                    experiment_id=experiment_id,
                    user_id=user_id,
                    status=info.status,
                    start_time=start_time,
                    lifecycle_stage=info.lifecycle_stage,
                    artifact_uri=info.artifact_uri,
                )
            )
            conn.execute(t.tags.insert(), [{"run_uuid": run_id, "key": k, "value": v} for k, v in tags.items()])
            return Run(info=info, tags=tags)

        return await self.db.write(work)

    async def get_run(self, run_id: str) -> Run:
        def work(conn: Connection) -> Run:
            runs = load_runs(conn, [run_id])
            if not runs:
                raise NotFound(f"Run with id={run_id} not found")
            return runs[0]

        return await self.db.read(work)

    async def get_run_info(self, run_id: str) -> RunInfo:
        return await self.db.read(lambda conn: _run_info(conn, run_id))

    async def update_run(
        self, run_id: str, status: str | None, end_time: int | None, run_name: str | None
    ) -> RunInfo:
        def work(conn: Connection) -> RunInfo:
            _require_active_run(conn, run_id)
            values: dict[str, Any] = {}
            if status is not None:
                values["status"] = status
            if end_time is not None:
                values["end_time"] = end_time
            if run_name:
                values["name"] = run_name
                conn.execute(
                    upsert(conn, t.tags, ["run_uuid", "key"], ["value"]),
                    {"run_uuid": run_id, "key": RUN_NAME_TAG, "value": run_name},
                )
            if values:
                conn.execute(update(t.runs).where(t.runs.c.run_uuid == run_id).values(**values))
            return _run_info(conn, run_id)

        return await self.db.write(work)

    async def delete_run(self, run_id: str) -> None:
        await self.db.write(lambda conn: _set_run_stage(conn, run_id, LifecycleStage.DELETED))

    async def restore_run(self, run_id: str) -> None:
        await self.db.write(lambda conn: _set_run_stage(conn, run_id, LifecycleStage.ACTIVE))

    async def log_batch(
        self,
        run_id: str,
        metrics: list[dict[str, Any]],
        params: list[tuple[str, str]],
        tags: list[tuple[str, str]],
    ) -> None:
        """The one write primitive for metrics, params and tags, all or nothing.

        ``metrics`` are dicts with the columns of the metrics table minus ``run_uuid``:
        key, value (NaN stored as 0 with is_nan), timestamp, step, is_nan, model_id,
        dataset_name, dataset_digest.
        """
        small = len(metrics) + len(params) + len(tags) <= 10
        await self.db.write(lambda conn: _log_batch(conn, run_id, metrics, params, tags), small=small)

    async def append_to_json_tag(self, run_id: str, key: str, item: Any) -> None:
        """Append ``item`` to the JSON list held in a run tag, in one transaction."""

        def work(conn: Connection) -> None:
            _require_active_run(conn, run_id)
            tag = t.tags
            current = conn.execute(select(tag.c.value).where(tag.c.run_uuid == run_id, tag.c.key == key)).scalar()
            try:
                items = orjson.loads(current) if current else []
            except orjson.JSONDecodeError:
                items = []
            if not isinstance(items, list):
                items = []
            items.append(item)
            conn.execute(
                upsert(conn, tag, ["run_uuid", "key"], ["value"]),
                {"run_uuid": run_id, "key": key, "value": orjson.dumps(items).decode()},
            )

        await self.db.write(work)

    async def delete_tag(self, run_id: str, key: str) -> None:
        def work(conn: Connection) -> None:
            _require_active_run(conn, run_id)
            result = conn.execute(delete(t.tags).where(t.tags.c.run_uuid == run_id, t.tags.c.key == key))
            if result.rowcount == 0:
                raise NotFound(f"No tag with name: {key} in run with id {run_id}")

        await self.db.write(work)

    async def log_inputs(
        self, run_id: str, datasets: list[tuple[dict[str, Any], list[tuple[str, str]]]], model_ids: list[str]
    ) -> None:
        """Record datasets (deduplicated per experiment by name and digest) and model inputs."""

        def work(conn: Connection) -> None:
            info = _require_active_run(conn, run_id)
            experiment_id = int(info.experiment_id)
            position = conn.execute(
                select(func.count()).select_from(t.run_dataset_inputs).where(t.run_dataset_inputs.c.run_uuid == run_id)
            ).scalar_one()
            for dataset, input_tags in datasets:
                dataset_uuid = _dataset_uuid(conn, experiment_id, dataset)
                result = conn.execute(
                    insert_ignore(conn, t.run_dataset_inputs),
                    {"run_uuid": run_id, "dataset_uuid": dataset_uuid, "position": position},
                )
                position += result.rowcount
                if input_tags:
                    conn.execute(
                        upsert(conn, t.run_dataset_input_tags, ["run_uuid", "dataset_uuid", "key"], ["value"]),
                        [{"run_uuid": run_id, "dataset_uuid": dataset_uuid, "key": k, "value": v} for k, v in input_tags],
                    )
            if model_ids:
                conn.execute(
                    insert_ignore(conn, t.run_model_inputs),
                    [{"run_uuid": run_id, "model_id": m} for m in dict.fromkeys(model_ids)],
                )

        await self.db.write(work)

    async def search_datasets(self, experiment_ids: list[int], limit: int = 1000) -> list[tuple[str, str, str, str | None]]:
        """Distinct (experiment_id, name, digest, context) of the datasets runs used."""

        def work(conn: Connection) -> list[tuple[str, str, str, str | None]]:
            d, rdi, tag = t.datasets, t.run_dataset_inputs, t.run_dataset_input_tags
            rows = conn.execute(
                select(d.c.experiment_id, d.c.name, d.c.digest, tag.c.value)
                .select_from(
                    d.join(rdi, rdi.c.dataset_uuid == d.c.dataset_uuid).outerjoin(
                        tag,
                        (tag.c.run_uuid == rdi.c.run_uuid)
                        & (tag.c.dataset_uuid == rdi.c.dataset_uuid)
                        & (tag.c.key == "mlflow.data.context"),
                    )
                )
                .where(d.c.experiment_id.in_(experiment_ids))
                .distinct()
                .order_by(d.c.experiment_id, d.c.name, d.c.digest, tag.c.value)
                .limit(limit)
            )
            return [(str(r[0]), r[1], r[2], r[3]) for r in rows]

        return await self.db.read(work)

    async def log_outputs(self, run_id: str, models: list[tuple[str, int]]) -> None:
        def work(conn: Connection) -> None:
            _require_active_run(conn, run_id)
            if models:  # an empty parameter list would run the INSERT once, with no values
                conn.execute(
                    upsert(conn, t.run_model_outputs, ["run_uuid", "model_id"], ["step"]),
                    [{"run_uuid": run_id, "model_id": m, "step": s} for m, s in models],
                )

        await self.db.write(work)

    async def search_runs(
        self,
        experiment_ids: list[int],
        filter_string: str | None,
        view_type: ViewType,
        max_results: int,
        order_by: list[str],
        page_token: str | None,
    ) -> Page[Run]:
        clauses = grammar.check(grammar.parse_filter(filter_string), RUN_SPEC)
        orders = grammar.parse_order_by(order_by, RUN_SPEC)
        query_key = ["runs", sorted(experiment_ids), filter_string, view_type, order_by]
        offset = read_token(page_token, query_key)

        def work(conn: Connection) -> Page[Run]:
            if not experiment_ids:
                return Page([])
            query = prepared(
                conn,
                ("search-runs", view_type, filter_string, *order_by),
                lambda c: paged(search_runs_query(c, view_type, clauses, orders)),
            )
            page = {"experiment_ids": experiment_ids, "limit": max_results + 1, "offset": offset}
            ids = [r[0] for r in conn.execute(query, page)]
            token = make_token(offset + max_results, query_key) if len(ids) > max_results else None
            return Page(load_runs(conn, ids[:max_results]), token)

        return await self.db.read(work)

    # ------------------------------------------------------------------ metric history

    async def get_metric_history(
        self, run_id: str, key: str, max_results: int | None, page_token: str | None
    ) -> Page[Metric]:
        query_key = ["history", run_id, key]
        offset = read_token(page_token, query_key)

        def work(conn: Connection) -> Page[Metric]:
            _run_info(conn, run_id)
            params = {"run_id": run_id, "key": key}
            if max_results is None and not offset:
                statement = driver_statement(conn, "history", lambda _: _history_query())
            else:
                statement = driver_statement(
                    conn, "history_page", lambda _: _history_query().limit(bindparam("limit")).offset(bindparam("offset"))
                )
                params.update(limit=-1 if max_results is None else max_results + 1, offset=offset)
                if max_results is None and conn.dialect.name == "postgresql":
                    params["limit"] = None
            cursor = statement.execute(conn, params)
            rows = cursor.fetchall()
            cursor.close()
            token = None
            if max_results is not None and len(rows) > max_results:
                rows = rows[:max_results]
                token = make_token(offset + max_results, query_key)
            nan = float("nan")
            return Page(
                [
                    Metric(key, nan if r[3] else r[0], r[1], r[2], r[4], r[5], r[6], run_id)
                    for r in rows
                ],
                token,
            )

        return await self.db.read(work)

    async def get_metric_history_bulk_interval(
        self, run_ids: list[str], key: str, start_step: int | None, end_step: int | None, max_results: int
    ) -> list[Metric]:
        """Each run's points for ``key`` on at most ``max_results`` evenly spread steps,
        always keeping the run's first and last step (what MLflow's charts ask for)."""

        def work(conn: Connection) -> list[Metric]:
            m = t.metrics
            out: list[Metric] = []
            nan = float("nan")
            for run_id in dict.fromkeys(run_ids):
                step_q = select(m.c.step).where(m.c.run_uuid == run_id, m.c.key == key).distinct()
                if start_step is not None:
                    step_q = step_q.where(m.c.step >= start_step, m.c.step <= end_step)
                steps = sorted(r[0] for r in conn.execute(step_q))
                chosen = _sample_steps(steps, max_results)
                if not chosen:
                    continue
                rows = conn.execute(
                    select(m.c.value, m.c.timestamp, m.c.step, m.c.is_nan)
                    .where(m.c.run_uuid == run_id, m.c.key == key, in_chunks(m.c.step, chosen))
                    .order_by(m.c.step, m.c.timestamp, m.c.value)
                )
                out.extend(Metric(key, nan if r[3] else r[0], r[1], r[2], run_id=run_id) for r in rows)
            return out

        return await self.db.read(work)


# ---------------------------------------------------------------------- helpers


def _history_query() -> Any:
    m = t.metrics
    return (
        select(m.c.value, m.c.timestamp, m.c.step, m.c.is_nan, m.c.model_id, m.c.dataset_name, m.c.dataset_digest)
        .where(m.c.run_uuid == bindparam("run_id"), m.c.key == bindparam("key"))
        .order_by(m.c.timestamp, m.c.step, m.c.value)
    )


def _experiment(conn: Connection, experiment_id: int) -> Experiment:
    found = _experiments(conn, [experiment_id])
    if experiment_id not in found:
        raise NotFound(f"No Experiment with id={experiment_id} exists")
    return found[experiment_id]


def _experiments(conn: Connection, ids: list[int]) -> dict[int, Experiment]:
    if not ids:
        return {}
    e, tag = t.experiments, t.experiment_tags
    tags: dict[int, dict[str, str]] = {}
    for exp_id, key, value in conn.execute(
        select(tag.c.experiment_id, tag.c.key, tag.c.value).where(in_chunks(tag.c.experiment_id, ids))
    ):
        tags.setdefault(exp_id, {})[key] = value
    rows = conn.execute(select(e).where(in_chunks(e.c.experiment_id, ids)))
    return {
        r.experiment_id: Experiment(
            experiment_id=str(r.experiment_id),
            name=r.name,
            artifact_location=r.artifact_location,
            lifecycle_stage=r.lifecycle_stage,
            creation_time=r.creation_time,
            last_update_time=r.last_update_time,
            tags=tags.get(r.experiment_id, {}),
        )
        for r in rows
    }


def _experiment_condition(conn: Connection, clause: grammar.Clause) -> Any:
    from labdeck.search.sql import numeric_condition, string_condition, tag_condition

    e = t.experiments
    if clause.kind == "tag":
        tag = t.experiment_tags
        return tag_condition(conn, tag, tag.c.experiment_id == e.c.experiment_id, clause)
    if clause.key == "experiment_id":
        values = clause.value if isinstance(clause.value, tuple) else (clause.value,)
        if clause.op not in ("=", "!=", "IN", "NOT IN"):
            raise InvalidParameter(f"Invalid comparator '{clause.op}' for experiment_id: use =, !=, IN or NOT IN.")
        try:
            ids = [int(v) for v in values]
        except ValueError:
            raise InvalidParameter(f"Invalid experiment ID in filter: {clause.value!r}. Experiment IDs are integers.") from None
        return e.c.experiment_id.in_(ids) if clause.op in ("=", "IN") else e.c.experiment_id.notin_(ids)
    if clause.key in ("creation_time", "last_update_time"):
        if not isinstance(clause.value, float) or not clause.value.is_integer():
            raise InvalidParameter(f"Invalid value for numeric attribute '{clause.key}': '{clause.value}'")
        return numeric_condition(e.c[clause.key], clause)
    return string_condition(conn, e.c[clause.key], clause)


def _require_active_experiment(conn: Connection, experiment_id: int) -> Experiment:
    experiment = _experiment(conn, experiment_id)
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise InvalidParameter(
            f"The experiment {experiment_id} must be in the 'active' state. Current state is {experiment.lifecycle_stage}."
        )
    return experiment


def _set_experiment_stage(conn: Connection, experiment_id: int, stage: str) -> None:
    experiment = _experiment(conn, experiment_id)
    if experiment.lifecycle_stage == stage:
        verb = "delete" if stage == LifecycleStage.DELETED else "restore"
        raise InvalidParameter(
            f"Cannot {verb} experiment {experiment_id}: it is already {experiment.lifecycle_stage}."
        )
    now = now_ms()
    conn.execute(
        update(t.experiments)
        .where(t.experiments.c.experiment_id == experiment_id)
        .values(lifecycle_stage=stage, last_update_time=now)
    )
    conn.execute(
        update(t.runs)
        .where(t.runs.c.experiment_id == experiment_id)
        .values(lifecycle_stage=stage, deleted_time=now if stage == LifecycleStage.DELETED else None)
    )


_RUN_INFO_COLUMNS = (
    t.runs.c.run_uuid,
    t.runs.c.name,
    t.runs.c.experiment_id,
    t.runs.c.user_id,
    t.runs.c.status,
    t.runs.c.start_time,
    t.runs.c.end_time,
    t.runs.c.artifact_uri,
    t.runs.c.lifecycle_stage,
)


def _to_run_info(row: Any) -> RunInfo:
    return RunInfo(row[0], row[1], str(row[2]), row[3], row[4], row[5], row[6], row[7], row[8])


def _run_info(conn: Connection, run_id: str) -> RunInfo:
    statement = driver_statement(
        conn, "run_info", lambda _: select(*_RUN_INFO_COLUMNS).where(t.runs.c.run_uuid == bindparam("run_id"))
    )
    cursor = statement.execute(conn, {"run_id": run_id})
    row = cursor.fetchone()
    cursor.close()
    if row is None:
        raise NotFound(f"Run with id={run_id} not found")
    return _to_run_info(row)


def _require_active_run(conn: Connection, run_id: str) -> RunInfo:
    info = _run_info(conn, run_id)
    if info.lifecycle_stage != LifecycleStage.ACTIVE:
        raise InvalidParameter(
            f"The run {run_id} must be in the 'active' state. Current state is {info.lifecycle_stage}."
        )
    return info


def _set_run_stage(conn: Connection, run_id: str, stage: str) -> None:
    info = _run_info(conn, run_id)
    if stage == LifecycleStage.ACTIVE and info.lifecycle_stage == LifecycleStage.ACTIVE:
        return
    if stage == LifecycleStage.ACTIVE:
        experiment = _experiment(conn, int(info.experiment_id))
        if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
            raise InvalidParameter(
                f"Cannot restore run {run_id}: its experiment {experiment.experiment_id} is deleted; restore the experiment."
            )
    conn.execute(
        update(t.runs)
        .where(t.runs.c.run_uuid == run_id)
        .values(lifecycle_stage=stage, deleted_time=now_ms() if stage == LifecycleStage.DELETED else None)
    )


def _log_batch(
    conn: Connection,
    run_id: str,
    metrics: list[dict[str, Any]],
    params: list[tuple[str, str]],
    tags: list[tuple[str, str]],
) -> None:
    _require_active_run(conn, run_id)
    if params:
        _log_params(conn, run_id, params)
    if metrics:
        rows = [{"run_uuid": run_id, **m} for m in metrics]
        driver_statement(conn, "insert_metrics", lambda c: insert_ignore(c, t.metrics)).executemany(conn, rows)
        _update_latest_metrics(conn, rows)
        for_models = [r for r in rows if r["model_id"]]
        if for_models:
            conn.execute(prepared(conn, "insert_model_metrics", lambda c: insert_ignore(c, t.logged_model_metrics)), for_models)
    if tags:
        conn.execute(
            prepared(conn, "upsert_tags", lambda c: upsert(c, t.tags, ["run_uuid", "key"], ["value"])),
            [{"run_uuid": run_id, "key": k, "value": v} for k, v in tags],
        )
        names = [v for k, v in tags if k == RUN_NAME_TAG]
        if names:
            conn.execute(update(t.runs).where(t.runs.c.run_uuid == run_id).values(name=names[-1][:250]))


def _log_params(conn: Connection, run_id: str, params: list[tuple[str, str]]) -> None:
    p = t.params
    wanted = dict(params)
    statement = prepared(
        conn,
        "params_by_key",
        lambda _: select(p.c.key, p.c.value).where(p.c.run_uuid == bindparam("run_id"), p.c.key.in_(bindparam("keys", expanding=True))),
    )
    existing = dict(conn.execute(statement, {"run_id": run_id, "keys": list(wanted)}).all())
    conflicts = [(k, existing[k], v) for k, v in wanted.items() if k in existing and existing[k] != v]
    if conflicts:
        described = [{"key": k, "old_value": o, "new_value": n} for k, o, n in conflicts]
        raise InvalidParameter(
            f"Changing param values is not allowed. Params were already logged='{described}' for run ID='{run_id}'.",
            details=described,
        )
    new = [{"run_uuid": run_id, "key": k, "value": v} for k, v in wanted.items() if k not in existing]
    if new:
        conn.execute(prepared(conn, "insert_params", lambda c: insert_ignore(c, p)), new)


_LATEST_UPDATE = ("value", "timestamp", "step", "is_nan", "model_id", "dataset_name", "dataset_digest")


def _update_latest_metrics(conn: Connection, rows: list[dict[str, Any]]) -> None:
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        current = newest.get(row["key"])
        if current is None or (row["step"], row["timestamp"], row["value"]) > (
            current["step"],
            current["timestamp"],
            current["value"],
        ):
            newest[row["key"]] = row
    statement = driver_statement(conn, "upsert_latest_metrics", _upsert_latest_metric)
    statement.executemany(conn, [newest[k] for k in sorted(newest)])


def _upsert_latest_metric(conn: Connection) -> Any:
    """Replace a run's latest point for a key only by a newer one (step, timestamp, value)."""
    stmt = insert(conn, t.latest_metrics)
    lm = t.latest_metrics
    return stmt.on_conflict_do_update(
        index_elements=["run_uuid", "key"],
        set_={c: stmt.excluded[c] for c in _LATEST_UPDATE},
        where=tuple_(stmt.excluded.step, stmt.excluded.timestamp, stmt.excluded.value)
        > tuple_(lm.c.step, lm.c.timestamp, lm.c.value),
    )


def _dataset_uuid(conn: Connection, experiment_id: int, dataset: dict[str, Any]) -> str:
    d = t.datasets
    row = conn.execute(
        select(d.c.dataset_uuid).where(
            d.c.experiment_id == experiment_id, d.c.name == dataset["name"], d.c.digest == dataset["digest"]
        )
    ).first()
    if row:
        return row[0]
    dataset_uuid = uuid.uuid4().hex
    conn.execute(d.insert().values(dataset_uuid=dataset_uuid, experiment_id=experiment_id, **dataset))
    return dataset_uuid


def _sample_steps(steps: list[int], max_results: int) -> list[int]:
    if len(steps) <= max_results:
        return steps
    if max_results == 1:
        return [steps[-1]]
    stride = (len(steps) - 1) / (max_results - 1)
    return sorted({steps[round(i * stride)] for i in range(max_results)} | {steps[0], steps[-1]})


def load_runs(conn: Connection, run_ids: list[str]) -> list[Run]:
    """Whole runs (info, latest metrics, params, tags, inputs, outputs) in the given order,
    with one query per kind of child row rather than one per run."""
    if not run_ids:
        return []
    infos = {
        r[0]: _to_run_info(r) for r in conn.execute(select(*_RUN_INFO_COLUMNS).where(in_chunks(t.runs.c.run_uuid, run_ids)))
    }
    ids = [i for i in run_ids if i in infos]
    if not ids:
        return []
    metrics = _group_metrics(conn, ids)
    params = _group_pairs(conn, t.params, ids)
    tags = _group_pairs(conn, t.tags, ids)
    datasets = _group_dataset_inputs(conn, ids)
    model_inputs: dict[str, list[str]] = {}
    for run_uuid, model_id in conn.execute(
        select(t.run_model_inputs.c.run_uuid, t.run_model_inputs.c.model_id).where(
            in_chunks(t.run_model_inputs.c.run_uuid, ids)
        )
    ):
        model_inputs.setdefault(run_uuid, []).append(model_id)
    outputs: dict[str, list[tuple[str, int]]] = {}
    mo = t.run_model_outputs
    for run_uuid, model_id, step in conn.execute(
        select(mo.c.run_uuid, mo.c.model_id, mo.c.step).where(in_chunks(mo.c.run_uuid, ids))
    ):
        outputs.setdefault(run_uuid, []).append((model_id, step))
    return [
        Run(
            info=infos[i],
            metrics=metrics.get(i, []),
            params=params.get(i, {}),
            tags=tags.get(i, {}),
            dataset_inputs=datasets.get(i, []),
            model_inputs=model_inputs.get(i, []),
            model_outputs=outputs.get(i, []),
        )
        for i in ids
    ]


def _group_pairs(conn: Connection, table: Any, ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for run_uuid, key, value in conn.execute(
        select(table.c.run_uuid, table.c.key, table.c.value).where(in_chunks(table.c.run_uuid, ids))
    ):
        out.setdefault(run_uuid, {})[key] = value
    return out


def _group_metrics(conn: Connection, ids: list[str]) -> dict[str, list[Metric]]:
    lm = t.latest_metrics
    out: dict[str, list[Metric]] = {}
    nan = float("nan")
    for r in conn.execute(
        select(
            lm.c.run_uuid, lm.c.key, lm.c.value, lm.c.timestamp, lm.c.step, lm.c.is_nan,
            lm.c.model_id, lm.c.dataset_name, lm.c.dataset_digest,
        ).where(in_chunks(lm.c.run_uuid, ids))
    ):
        out.setdefault(r[0], []).append(Metric(r[1], nan if r[5] else r[2], r[3], r[4], r[6], r[7], r[8]))
    return out


def _group_dataset_inputs(conn: Connection, ids: list[str]) -> dict[str, list[DatasetInput]]:
    rdi, d, tag = t.run_dataset_inputs, t.datasets, t.run_dataset_input_tags
    rows = conn.execute(
        select(rdi.c.run_uuid, rdi.c.dataset_uuid, d.c.name, d.c.digest, d.c.source_type, d.c.source, d.c.schema, d.c.profile)
        .join(d, d.c.dataset_uuid == rdi.c.dataset_uuid)
        .where(in_chunks(rdi.c.run_uuid, ids))
        .order_by(rdi.c.run_uuid, rdi.c.position)
    ).all()
    if not rows:
        return {}
    input_tags: dict[tuple[str, str], dict[str, str]] = {}
    for run_uuid, dataset_uuid, key, value in conn.execute(
        select(tag.c.run_uuid, tag.c.dataset_uuid, tag.c.key, tag.c.value).where(in_chunks(tag.c.run_uuid, ids))
    ):
        input_tags.setdefault((run_uuid, dataset_uuid), {})[key] = value
    out: dict[str, list[DatasetInput]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(
            DatasetInput(Dataset(r[2], r[3], r[4], r[5], r[6], r[7]), input_tags.get((r[0], r[1]), {}))
        )
    return out
