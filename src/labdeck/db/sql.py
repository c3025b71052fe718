"""Small SQL helpers that differ between SQLite and PostgreSQL, kept in one place."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ColumnElement


def insert(conn: Connection, table: Table) -> Any:
    """An INSERT that supports ON CONFLICT on the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignore(conn: Connection, table: Table) -> Any:
    return insert(conn, table).on_conflict_do_nothing()


def upsert(conn: Connection, table: Table, keys: list[str], update: list[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET each ``update`` column to the new value."""
    stmt = insert(conn, table)
    return stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update})


def like(conn: Connection, column: ColumnElement, pattern: str, *, case_sensitive: bool) -> ColumnElement:
    """MLflow's LIKE is case-sensitive and ILIKE is not, on every backend.

    SQLite's LIKE ignores ASCII case, so a case-sensitive match there becomes GLOB with the
    pattern translated (``%``→``*``, ``_``→``?``, GLOB's own metacharacters escaped).
    """
    if not case_sensitive:
        return column.ilike(pattern)
    if conn.dialect.name == "sqlite":
        return column.op("GLOB")(like_to_glob(pattern))
    return column.like(pattern)


def like_to_glob(pattern: str) -> str:
    out = []
    for ch in pattern:
        if ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
    return "".join(out)


def compare(column: ColumnElement, op: str, value: Any) -> ColumnElement:
    """``column <op> value`` for the six plain comparators."""
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    raise ValueError(op)


def chunks(items: list[Any], size: int = 500) -> list[list[Any]]:
    """Split long IN lists so no statement binds more parameters than a backend allows."""
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


def in_chunks(column: ColumnElement, items: list[Any]) -> ColumnElement:
    parts = chunks(items)
    return or_(*(column.in_(part) for part in parts)) if len(parts) > 1 else column.in_(parts[0])
