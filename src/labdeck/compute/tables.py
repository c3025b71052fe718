"""The local backend's table: every replica process it started, so that a restarted
server adopts them (pid and its start time, to never mistake a reused pid) instead of
losing or duplicating them. Only ``compute/store.py`` queries it."""

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from labdeck.db.metadata import metadata

local_replicas = Table(
    "local_replicas",
    metadata,
    Column("replica_id", String(64), primary_key=True),
    Column("workload", String(128), nullable=False),
    Column("revision", String(64), nullable=False),
    Column("pid", Integer, nullable=True),
    Column("pid_started", BigInteger, nullable=True),  # /proc/<pid>/stat start time, in clock ticks
    Column("ports", Text, nullable=False),  # JSON: port name -> port number
    Column("state", String(16), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("restarts", Integer, nullable=False),
    Column("message", Text, nullable=True),
    Index(None, "workload"),
)
