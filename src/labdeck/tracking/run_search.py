"""The SQL of ``runs/search``: MLflow's run filter and order_by over tracking's tables.

Filters become EXISTS subqueries on the key/value tables (index lookups on their primary
keys); each order_by on a metric, param or tag is an outer join on its key. Missing values
sort last in either direction, a NaN metric after every number and before missing, and
ties break on ``start_time DESC`` then ``run_id``, as MLflow orders them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, exists, false, or_, select, true
from sqlalchemy.sql import ColumnElement, Select

from labdeck.search import grammar
from labdeck.search.sql import numeric_condition, string_condition, tag_condition
from labdeck.tracking import tables as t
from labdeck.tracking.entities import ViewType

_STRING_ATTRIBUTES = {k: k for k in ("run_id", "run_name", "user_id", "status", "artifact_uri")}
# The spaced aliases of run_name work in filters only; MLflow refuses them in order_by.
_RUN_NAME_ALIASES = {"Run name": "run_name", "run name": "run_name", "Run Name": "run_name"}
_NUMERIC_ATTRIBUTES = {"start_time": "start_time", "end_time": "end_time", "created": "start_time", "Created": "start_time"}

RUN_SPEC = grammar.SearchSpec(
    entity="runs",
    string_attributes={**_STRING_ATTRIBUTES, **_RUN_NAME_ALIASES},
    numeric_attributes=_NUMERIC_ATTRIBUTES,
    list_attributes=frozenset({"run_id"}),
    kinds=frozenset({"metric", "param", "tag", "attribute", "dataset"}),
    orderable_attributes={**_STRING_ATTRIBUTES, **_NUMERIC_ATTRIBUTES},
    orderable_kinds=frozenset({"metric", "param", "tag", "attribute"}),
    forbidden_attributes={
        "lifecycle_stage": "Invalid attribute key 'lifecycle_stage' specified: use run_view_type to select deleted runs."
    },
)


# MLflow's attribute names for the columns that are named otherwise here.
_COLUMNS = {"run_id": "run_uuid", "run_name": "name"}


def _column(name: str) -> Any:
    return t.runs.c[_COLUMNS.get(name, name)]


def search_runs_query(
    conn: Connection,
    view_type: ViewType,
    clauses: list[grammar.Clause],
    orders: list[grammar.OrderBy],
) -> Select[Any]:
    runs = t.runs
    query = select(runs.c.run_uuid).where(
        runs.c.experiment_id.in_(bindparam("experiment_ids", expanding=True)),
        runs.c.lifecycle_stage.in_(view_type.stages()),
    )
    for clause in clauses:
        query = query.where(_condition(conn, clause))
    order_columns: list[Any] = []
    for index, order in enumerate(orders):
        query, columns = _order(query, index, order)
        order_columns.extend(columns)
    if not any(o.kind == "attribute" and o.key == "start_time" for o in orders):
        order_columns.append(runs.c.start_time.desc())
    order_columns.append(runs.c.run_uuid)
    return query.order_by(*order_columns)


def _condition(conn: Connection, clause: grammar.Clause) -> ColumnElement[bool]:
    runs = t.runs
    if clause.kind == "attribute":
        if clause.key in ("start_time", "end_time"):
            return numeric_condition(runs.c[clause.key], clause)
        return string_condition(conn, _column(clause.key), clause)
    if clause.kind == "metric":
        # A NaN is stored as 0 with is_nan set: it satisfies only "!=", as NaN does.
        lm = t.latest_metrics
        value = numeric_condition(lm.c.value, clause)
        value = or_(value, lm.c.is_nan == true()) if clause.op == "!=" else and_(value, lm.c.is_nan == false())
        return exists(select(1).where(lm.c.run_uuid == runs.c.run_uuid, lm.c.key == clause.key, value))
    if clause.kind in ("param", "tag"):
        table = t.params if clause.kind == "param" else t.tags
        return tag_condition(conn, table, table.c.run_uuid == runs.c.run_uuid, clause)
    return _dataset_condition(conn, clause)


def _dataset_condition(conn: Connection, clause: grammar.Clause) -> ColumnElement[bool]:
    runs, rdi = t.runs, t.run_dataset_inputs
    if clause.key == "context":
        tags = t.run_dataset_input_tags
        return exists(
            select(1).where(
                tags.c.run_uuid == runs.c.run_uuid,
                tags.c.key == "mlflow.data.context",
                string_condition(conn, tags.c.value, clause),
            )
        )
    datasets = t.datasets
    return exists(
        select(1)
        .select_from(rdi.join(datasets, datasets.c.dataset_uuid == rdi.c.dataset_uuid))
        .where(rdi.c.run_uuid == runs.c.run_uuid, string_condition(conn, datasets.c[clause.key], clause))
    )


def _order(query: Select[Any], index: int, order: grammar.OrderBy) -> tuple[Select[Any], list[Any]]:
    runs = t.runs
    if order.kind == "attribute":
        column = _column(order.key)
        missing_last = case((column.is_(None), 1), else_=0)
        return query, [missing_last, column.asc() if order.ascending else column.desc()]
    table = {"metric": t.latest_metrics, "param": t.params, "tag": t.tags}[order.kind]
    alias = table.alias(f"order_{index}")
    query = query.outerjoin(alias, and_(alias.c.run_uuid == runs.c.run_uuid, alias.c.key == order.key))
    if order.kind == "metric":
        rank = case((alias.c.run_uuid.is_(None), 2), (alias.c.is_nan == true(), 1), else_=0)
    else:
        rank = case((alias.c.run_uuid.is_(None), 1), else_=0)
    value = alias.c.value
    return query, [rank, value.asc() if order.ascending else value.desc()]
