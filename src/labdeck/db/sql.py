"""Small SQL helpers that differ between SQLite and PostgreSQL, kept in one place."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table, bindparam, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ColumnElement


def insert(conn: Connection, table: Table) -> Any:
    """An INSERT that supports ON CONFLICT on the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


_STATEMENTS: OrderedDict[tuple[str, Hashable], Any] = OrderedDict()
_STATEMENTS_MAX = 1024
_DRIVER_STATEMENTS: dict[tuple[str, str], DriverStatement] = {}


def prepared(conn: Connection, name: Hashable, build: Callable[[Connection], Any]) -> Any:
    """The statement ``build(conn)`` makes, built once per dialect and reused.

    Building a SQLAlchemy statement (an upsert, a search filter) costs far more than
    running it on SQLite; callers build theirs once, with ``bindparam`` for what varies.
    ``name`` may be any hashable key, e.g. a search's filter text: the least recently used
    statements are dropped beyond ``_STATEMENTS_MAX``.
    """
    key = (conn.dialect.name, name)
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = _STATEMENTS[key] = build(conn)
        if len(_STATEMENTS) > _STATEMENTS_MAX:
            _STATEMENTS.popitem(last=False)
    else:
        _STATEMENTS.move_to_end(key)
    return statement


def paged(query: Any) -> Any:
    """``query`` taking its page as the parameters ``limit`` and ``offset``."""
    return query.limit(bindparam("limit")).offset(bindparam("offset"))


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


def rows_in(conn: Connection, name: str, build: Callable[[Connection], Any], ids: list[Any], **params: Any) -> list[Any]:
    """The rows of the prepared statement ``build(conn)``, which takes the expanding
    bindparam ``ids``, run once per chunk of ``ids`` so no backend's parameter limit is hit."""
    statement = prepared(conn, name, build)
    rows: list[Any] = []
    for part in chunks(ids, 10_000):
        if part:
            rows.extend(conn.execute(statement, {"ids": part, **params}).all())
    return rows


def expanding(name: str = "ids") -> Any:
    """The bindparam a ``rows_in`` statement takes its list in."""
    return bindparam(name, expanding=True)


class DriverStatement:
    """A statement compiled once for a dialect and run on the DB-API cursor directly.

    For the few statements on the hottest paths (logging a metric), SQLAlchemy's
    per-execution work costs more than SQLite's. Parameters must already be in the form
    the driver takes (str, int, float, bool, None): no SQLAlchemy type processing runs.
    """

    def __init__(self, conn: Connection, statement: Any):
        compiled = statement.compile(dialect=conn.dialect)
        self.sql = str(compiled)
        if compiled.positional:
            names = list(compiled.positiontup)
            pick = itemgetter(*names)
            self._params: Callable[[dict[str, Any]], Any] = (
                pick if len(names) > 1 else (lambda row: (row[names[0]],))
            )
        else:
            self._params = lambda row: row

    def execute(self, conn: Connection, row: dict[str, Any]) -> Any:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(self.sql, self._params(row))
        return cursor

    def executemany(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if len(rows) == 1:
            self.execute(conn, rows[0]).close()
        elif rows:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.executemany(self.sql, list(map(self._params, rows)))
            cursor.close()


def driver_statement(conn: Connection, name: str, build: Callable[[Connection], Any]) -> DriverStatement:
    """``prepared``'s counterpart for ``DriverStatement``: compiled once per dialect."""
    key = (conn.dialect.name, name)
    statement = _DRIVER_STATEMENTS.get(key)
    if statement is None:
        statement = _DRIVER_STATEMENTS[key] = DriverStatement(conn, build(conn))
    return statement
