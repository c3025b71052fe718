"""The SQL of registered-model and model-version search, with MLflow's rules
(``SearchModelUtils``, ``SearchModelVersionUtils``): which keys filter and order, and the
default orders (models by name; versions by name, then newest version first)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.sql import ColumnElement, Select

from labdeck.registry import tables as t
from labdeck.search import grammar
from labdeck.search.sql import numeric_condition, string_condition, tag_condition

_ORDER_TIMESTAMPS = {
    "creation_timestamp": "creation_time",
    "timestamp": "creation_time",
    "last_updated_timestamp": "last_updated_time",
}

MODEL_SPEC = grammar.SearchSpec(
    entity="registered models",
    string_attributes={"name": "name"},
    numeric_attributes={},
    list_attributes=frozenset({"name"}),
    kinds=frozenset({"attribute", "tag"}),
    kind_words=frozenset({"attribute", "tag", "tags"}),
    tag_comparators=grammar.STRING_COMPARATORS,
    orderable_attributes={"name": "name", **_ORDER_TIMESTAMPS},
)

VERSION_SPEC = grammar.SearchSpec(
    entity="model versions",
    string_attributes={"name": "name", "run_id": "run_id", "source_path": "source"},
    numeric_attributes={"version_number": "version"},
    list_attributes=frozenset({"name", "run_id"}),
    kinds=frozenset({"attribute", "tag"}),
    kind_words=frozenset({"attribute", "tag", "tags"}),
    tag_comparators=grammar.STRING_COMPARATORS,
    orderable_attributes={
        "name": "name",
        "version_number": "version",
        "creation_timestamp": "creation_time",
        "last_updated_timestamp": "last_updated_time",
    },
)


def model_query(conn: Connection, clauses: list[grammar.Clause], orders: list[grammar.OrderBy]) -> Select[Any]:
    """``model_pk`` of the matching models, in order."""
    rm = t.registered_models
    query = select(rm.c.model_pk)
    for clause in clauses:
        if clause.kind == "tag":
            tag = t.registered_model_tags
            query = query.where(tag_condition(conn, tag, tag.c.model_pk == rm.c.model_pk, clause))
        else:
            query = query.where(string_condition(conn, rm.c.name, clause))
    columns = [rm.c[o.key].asc() if o.ascending else rm.c[o.key].desc() for o in orders]
    if not any(o.key == "name" for o in orders):
        columns.append(rm.c.name.asc())
    return query.order_by(*columns)


def version_query(conn: Connection, clauses: list[grammar.Clause], orders: list[grammar.OrderBy]) -> Select[Any]:
    """``(model_pk, version)`` of the matching live versions, in order."""
    mv, rm = t.model_versions, t.registered_models
    query = select(mv.c.model_pk, mv.c.version).join(rm, rm.c.model_pk == mv.c.model_pk).where(mv.c.deleted.is_(False))
    for clause in clauses:
        query = query.where(_version_condition(conn, clause))
    columns = []
    for order in orders:
        column = rm.c.name if order.key == "name" else mv.c[order.key]
        columns.append(column.asc() if order.ascending else column.desc())
    keys = {o.key for o in orders}
    if "name" not in keys:
        columns.append(rm.c.name.asc())
    if "version" not in keys:
        columns.append(mv.c.version.desc())
    return query.order_by(*columns)


def _version_condition(conn: Connection, clause: grammar.Clause) -> ColumnElement[bool]:
    mv, rm = t.model_versions, t.registered_models
    if clause.kind == "tag":
        tag = t.model_version_tags
        return tag_condition(conn, tag, (tag.c.model_pk == mv.c.model_pk) & (tag.c.version == mv.c.version), clause)
    if clause.key == "version":
        return numeric_condition(mv.c.version, clause)
    column = rm.c.name if clause.key == "name" else mv.c[clause.key]
    return string_condition(conn, column, clause)
