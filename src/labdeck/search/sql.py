"""SQL conditions for checked search clauses, shared by every store that searches.

Key/value children (tags, params) are matched with EXISTS subqueries, so a clause on a
missing key never matches, except ``IS NULL`` which asks exactly for that.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, bindparam, exists, not_, select
from sqlalchemy.sql import ColumnElement

from labdeck.db.sql import compare, like
from labdeck.search.grammar import Clause


def string_condition(conn: Connection, column: ColumnElement, clause: Clause) -> ColumnElement:
    """A string column against =, !=, LIKE, ILIKE, IN, NOT IN."""
    op, value = clause.op, clause.value
    if op == "LIKE":
        return like(conn, column, str(value), case_sensitive=True)
    if op == "ILIKE":
        return like(conn, column, str(value), case_sensitive=False)
    if op == "IN":
        return column.in_(list(value))  # type: ignore[arg-type]
    if op == "NOT IN":
        return column.notin_(list(value))  # type: ignore[arg-type]
    return compare(column, op, value)


def numeric_condition(column: ColumnElement, clause: Clause) -> ColumnElement:
    value: Any = clause.value
    # Whole numbers compare as integers, exactly; beyond 64 bits no database takes an
    # integer parameter, and the float compares just as well with any stored value.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        value = int(value)
    return compare(column, clause.op, value)


def tag_condition(conn: Connection, table: Table, owner: ColumnElement, clause: Clause) -> ColumnElement:
    """A key/value child table (``table.c.key``, ``table.c.value``) linked by ``owner``."""
    has_key = select(1).where(owner, table.c.key == clause.key)
    if clause.op == "IS NULL":
        return not_(exists(has_key))
    if clause.op == "IS NOT NULL":
        return exists(has_key)
    return exists(has_key.where(string_condition(conn, table.c.value, clause)))


def join_tag(conn: Connection, query: Any, table: Table, link: str, owner: ColumnElement, clause: Clause, n: int) -> Any:
    """``query`` narrowed by a tag clause as an inner join rather than EXISTS, which lets
    the database start from the (key, value) index instead of probing every row.

    Only for child tables keyed by (owner, key), where a join cannot repeat a row, and
    for clauses that need the key to exist (not IS NULL)."""
    alias = table.alias(f"tag_filter_{n}")
    on = (alias.c[link] == owner) & (alias.c.key == clause.key)
    if clause.op != "IS NOT NULL":
        on = on & string_condition(conn, alias.c.value, clause)
    return query.join(alias, on)


def visible_only(column: ColumnElement, only: Any, hidden: Any) -> tuple[str, ColumnElement | None, dict[str, Any]]:
    """The condition that keeps a search to what the caller may see: ``only`` these ids,
    or all but ``hidden`` (both None: no condition). Returns a name for the variant (part
    of a cached statement's key), the condition, and its parameters."""
    if only is not None:
        return "only", column.in_(bindparam("visible_only", expanding=True)), {"visible_only": sorted(only)}
    if hidden:
        return "hidden", column.notin_(bindparam("visible_hidden", expanding=True)), {"visible_hidden": sorted(hidden)}
    return "all", None, {}
