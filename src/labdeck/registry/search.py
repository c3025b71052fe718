"""The SQL of registered-model and model-version search, with MLflow's rules
(``SearchModelUtils``, ``SearchModelVersionUtils``): which keys filter and order, and the
tie-breakers after the requested order (models by name; versions by name, then newest
version first; the service asks for ``last_updated_timestamp DESC`` when no order is given).

Prompts (MLflow 3 keeps them as registered models tagged ``mlflow.prompt.is_prompt=true``)
are left out of both searches unless the filter asks for them, as MLflow's store does: the
``mlflow`` client adds ``tag.`mlflow.prompt.is_prompt` != 'true'`` to every model search,
and that must match the models that have no such tag at all."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, exists, not_, select
from sqlalchemy.sql import ColumnElement, Select

from labdeck.registry import tables as t
from labdeck.search import grammar
from labdeck.search.sql import join_tag, numeric_condition, string_condition, tag_condition

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


PROMPT_TAG = "mlflow.prompt.is_prompt"


def _without_prompts(clauses: list[grammar.Clause]) -> tuple[list[grammar.Clause], bool]:
    """The clauses to apply, and whether prompts are left out.

    Like MLflow, the first clause on the prompt tag decides: ``= 'true'`` or ``!= 'false'``
    asks for prompts (and is applied as written); otherwise every prompt-tag clause is
    dropped and prompts are excluded."""
    for clause in clauses:
        if clause.kind == "tag" and clause.key == PROMPT_TAG:
            value = str(clause.value).lower()
            if (clause.op == "=" and value == "true") or (clause.op == "!=" and value == "false"):
                return clauses, False
            break
    return [c for c in clauses if not (c.kind == "tag" and c.key == PROMPT_TAG)], True


def _is_prompt(tag: Any, model_pk: ColumnElement[Any]) -> ColumnElement[bool]:
    return exists(select(1).where(tag.c.model_pk == model_pk, tag.c.key == PROMPT_TAG, tag.c.value == "true"))


def model_query(conn: Connection, clauses: list[grammar.Clause], orders: list[grammar.OrderBy]) -> Select[Any]:
    """``model_pk`` of the matching models, in order."""
    rm = t.registered_models
    query = select(rm.c.model_pk)
    clauses, exclude_prompts = _without_prompts(clauses)
    if exclude_prompts:
        query = query.where(not_(_is_prompt(t.registered_model_tags, rm.c.model_pk)))
    tag = t.registered_model_tags
    for n, clause in enumerate(clauses):
        if clause.kind == "tag" and clause.op != "IS NULL":
            query = join_tag(conn, query, tag, "model_pk", rm.c.model_pk, clause, n)
        elif clause.kind == "tag":
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
    clauses, exclude_prompts = _without_prompts(clauses)
    if exclude_prompts:
        # MLflow leaves out every version of a model any of whose versions is a prompt's
        query = query.where(not_(_is_prompt(t.model_version_tags, mv.c.model_pk)))
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
