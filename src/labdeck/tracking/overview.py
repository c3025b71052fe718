"""Read-only summaries of tracking data that the web UI needs and MLflow's API does not give.

``RunOverview`` answers three questions, each with one or two SQL statements over tracking's
tables (it is the only other module besides ``store.py`` that reads them, and it never writes):

- which param, metric and tag keys an experiment's active runs use (a runs table's column list);
- how many active runs each experiment has;
- a metric's history reduced to at most ``max_points`` points for drawing: the points are cut
  into equal buckets in step order and each bucket keeps its lowest and its highest point, so
  a one-step spike in a 100,000-point history still shows (every n-th point would drop it).

The checks on input (ids, limits) live here too, so the HTTP layer only shapes responses.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, func, select, text

from labdeck.db import Database
from labdeck.db.sql import driver_statement
from labdeck.errors import InvalidParameter, NotFound
from labdeck.tracking import tables as t
from labdeck.tracking import validation as v
from labdeck.tracking.entities import LifecycleStage

MIN_POINTS = 10
MAX_POINTS = 20_000
MAX_COUNTED_EXPERIMENTS = 1000


@dataclass(frozen=True, slots=True)
class Columns:
    """The distinct keys of an experiment's active runs, each list sorted."""

    params: list[str]
    metrics: list[str]
    tags: list[str]
    run_count: int


@dataclass(frozen=True, slots=True)
class Point:
    step: int
    timestamp: int
    value: float | None  # None: NaN or infinite, which JSON cannot carry


@dataclass(frozen=True, slots=True)
class Bucket:
    """A run of consecutive points (in step order) and its extremes; NaN points are counted
    but never a bucket's min or max (both None when the bucket holds only NaN)."""

    first_step: int
    last_step: int
    count: int
    min: float | None
    max: float | None


@dataclass(frozen=True, slots=True)
class SampledHistory:
    total_count: int
    points: list[Point]  # every point, or each bucket's min and max in step order
    buckets: list[Bucket] | None  # None when no reduction was needed


# A large experiment's metric keys without reading all its latest_metrics rows (10,000 runs x
# 50 metrics is 500,000): walk the distinct keys of the (key, value) index, one seek each (a
# "loose index scan"), and keep a key when one of its rows belongs to an active run of the
# experiment. The unary plus keeps SQLite from driving that check from the runs index, which
# would cost a pass over the experiment's runs for every key it lacks. Measured on SQLite:
# 11 ms against 200 ms for SELECT DISTINCT over the join; small experiments use the latter.
_METRIC_KEYS_OF_LARGE_EXPERIMENT = text(
    """
    WITH RECURSIVE walk(key) AS (
        SELECT min(key) FROM latest_metrics
        UNION ALL
        SELECT (SELECT min(key) FROM latest_metrics WHERE key > walk.key) FROM walk
        WHERE walk.key IS NOT NULL
    )
    SELECT key FROM walk
    WHERE key IS NOT NULL AND EXISTS (
        SELECT 1 FROM latest_metrics AS lm JOIN runs AS r ON r.run_uuid = lm.run_uuid
        WHERE lm.key = walk.key AND +r.experiment_id = :experiment_id AND r.lifecycle_stage = 'active'
    )
    ORDER BY key
    """
)
LARGE_EXPERIMENT_RUNS = 2000


class RunOverview:
    def __init__(self, db: Database, large_experiment_runs: int = LARGE_EXPERIMENT_RUNS):
        self.db = db
        self.large_experiment_runs = large_experiment_runs

    async def columns(self, experiment_id: Any) -> Columns:
        experiment = v.experiment_id(experiment_id)

        def work(conn: Connection) -> Columns:
            exists = select(t.experiments.c.experiment_id).where(t.experiments.c.experiment_id == experiment)
            if conn.execute(exists).first() is None:
                raise NotFound(f"No Experiment with id={experiment} exists")
            runs = t.runs
            active = select(runs.c.run_uuid).where(
                runs.c.experiment_id == experiment, runs.c.lifecycle_stage == LifecycleStage.ACTIVE.value
            )
            count = conn.execute(select(func.count()).select_from(active.subquery())).scalar_one()
            found: dict[str, list[str]] = {}
            for name, table in (("params", t.params), ("metrics", t.latest_metrics), ("tags", t.tags)):
                if name == "metrics" and count > self.large_experiment_runs:
                    rows = conn.execute(_METRIC_KEYS_OF_LARGE_EXPERIMENT, {"experiment_id": experiment})
                else:
                    query = select(table.c.key).where(table.c.run_uuid.in_(active)).distinct().order_by(table.c.key)
                    rows = conn.execute(query)
                found[name] = [row[0] for row in rows]
            return Columns(found["params"], found["metrics"], found["tags"], count)

        return await self.db.read(work)

    async def run_counts(self, experiment_ids: list[str]) -> dict[str, int]:
        if len(experiment_ids) > MAX_COUNTED_EXPERIMENTS:
            raise InvalidParameter(
                f"Invalid value for parameter 'experiment_ids': at most {MAX_COUNTED_EXPERIMENTS} experiments "
                f"at a time, got {len(experiment_ids)}."
            )
        ids = sorted({v.experiment_id(e, "experiment_ids") for e in experiment_ids})

        def work(conn: Connection) -> dict[str, int]:
            if not ids:
                return {}
            runs = t.runs
            query = (
                select(runs.c.experiment_id, func.count())
                .where(runs.c.experiment_id.in_(ids), runs.c.lifecycle_stage == LifecycleStage.ACTIVE.value)
                .group_by(runs.c.experiment_id)
            )
            counted = {str(e): n for e, n in conn.execute(query)}
            return {str(e): counted.get(str(e), 0) for e in ids}

        return await self.db.read(work)

    async def sampled_history(self, run_id: str, key: str, max_points: int) -> SampledHistory:
        if not MIN_POINTS <= max_points <= MAX_POINTS:
            raise InvalidParameter(
                f"Invalid value {max_points} for parameter 'max_points': expected {MIN_POINTS} to {MAX_POINTS}."
            )
        if not key:
            raise InvalidParameter("Missing value for required parameter 'key'.")
        run_id = v.run_id(run_id)

        def work(conn: Connection) -> SampledHistory:
            # straight on the driver's cursor: SQLAlchemy's per-row work would cost more than
            # the query itself on a 100,000-point history
            statement = driver_statement(conn, "overview-history", lambda _: _history_points())
            cursor = statement.execute(conn, {"run_id": run_id, "key": key})
            rows = cursor.fetchall()
            cursor.close()
            return downsample(rows, max_points)  # here, off the event loop

        return await self.db.read(work)


def _history_points() -> Any:
    m = t.metrics
    return (
        select(m.c.step, m.c.timestamp, m.c.value, m.c.is_nan)
        .where(m.c.run_uuid == bindparam("run_id"), m.c.key == bindparam("key"))
        .order_by(m.c.timestamp, m.c.step, m.c.value)  # the primary key's order: no sort in SQL
    )


def downsample(rows: list[Any], max_points: int) -> SampledHistory:
    """``rows`` of (step, timestamp, value, is_nan) reduced to at most ``max_points`` points
    in step order: ``max_points // 2`` buckets of consecutive points, each kept as its min
    and its max (once when they are the same point). Vectorised with numpy: a 100,000-point
    history takes a few milliseconds here, far less than reading it."""
    total = len(rows)
    if total == 0:
        return SampledHistory(0, [], None)
    table = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=total * 4).reshape(total, 4)
    if np.any(np.diff(table[:, 0]) < 0):  # rows come in time order; charts want step order
        table = table[np.lexsort((table[:, 1], table[:, 0]))]
    values = table[:, 2]
    usable = (table[:, 3] == 0) & np.isfinite(values)

    def point(i: int) -> Point:
        return Point(int(table[i, 0]), int(table[i, 1]), float(values[i]) if usable[i] else None)

    if total <= max_points:
        return SampledHistory(total, [point(i) for i in range(total)], None)
    bucket_count = max_points // 2
    bounds = (np.arange(bucket_count + 1) * total) // bucket_count
    starts, sizes = bounds[:-1], np.diff(bounds)
    bucket_of = np.repeat(np.arange(bucket_count), sizes)
    low_values = np.where(usable, values, np.inf)
    high_values = np.where(usable, values, -np.inf)
    lows = np.minimum.reduceat(low_values, starts)
    highs = np.maximum.reduceat(high_values, starts)
    # the first point of each bucket that reaches the bucket's min (max); a bucket with no
    # usable value keeps its first point
    first_low = _first_per_bucket(np.flatnonzero(low_values == lows[bucket_of]), bucket_of, starts)
    first_high = _first_per_bucket(np.flatnonzero(high_values == highs[bucket_of]), bucket_of, starts)
    kept = np.unique(np.concatenate([first_low, first_high]))
    buckets = [
        Bucket(
            int(table[starts[b], 0]),
            int(table[starts[b] + sizes[b] - 1, 0]),
            int(sizes[b]),
            float(lows[b]) if np.isfinite(lows[b]) else None,
            float(highs[b]) if np.isfinite(highs[b]) else None,
        )
        for b in range(bucket_count)
    ]
    return SampledHistory(total, [point(int(i)) for i in kept], buckets)


def _first_per_bucket(hits: Any, bucket_of: Any, starts: Any) -> Any:
    chosen = starts.copy()
    buckets, first = np.unique(bucket_of[hits], return_index=True)
    chosen[buckets] = hits[first]
    return chosen
