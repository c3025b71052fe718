"""Storage of the local backend's replica processes (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select

from labdeck.compute import tables as t
from labdeck.db import Database
from labdeck.db.sql import upsert


@dataclass
class ReplicaRow:
    replica_id: str
    workload: str
    revision: str
    pid: int | None
    pid_started: int | None
    ports: dict[str, int]
    state: str
    started_at: int
    restarts: int
    message: str | None


def _row(row: Any) -> ReplicaRow:
    return ReplicaRow(
        row.replica_id, row.workload, row.revision, row.pid, row.pid_started, json.loads(row.ports),
        row.state, row.started_at, row.restarts, row.message,
    )


class ReplicaStore:
    def __init__(self, db: Database):
        self.db = db

    async def all(self) -> list[ReplicaRow]:
        def work(conn: Connection) -> list[ReplicaRow]:
            return [_row(r) for r in conn.execute(select(t.local_replicas).order_by(t.local_replicas.c.started_at))]

        return await self.db.read(work)

    async def save(self, replica: ReplicaRow) -> None:
        values = {
            "replica_id": replica.replica_id,
            "workload": replica.workload,
            "revision": replica.revision,
            "pid": replica.pid,
            "pid_started": replica.pid_started,
            "ports": json.dumps(replica.ports),
            "state": replica.state,
            "started_at": replica.started_at,
            "restarts": replica.restarts,
            "message": replica.message,
        }
        columns = [c for c in values if c != "replica_id"]
        await self.db.write(lambda conn: conn.execute(upsert(conn, t.local_replicas, ["replica_id"], columns), values), small=True)

    async def remove(self, replica_id: str) -> None:
        table = t.local_replicas
        await self.db.write(lambda conn: conn.execute(delete(table).where(table.c.replica_id == replica_id)), small=True)
