"""Workspaces' tables (SQLAlchemy Core). Only ``workspaces/store.py`` queries them.

``workspace_servers`` holds each server's desired state and what the hub observed, plus
the workload it launched (JSON, secrets included: what a restarted hub needs to adopt the
process and rebuild its route); ``workspace_events`` is the record of what happened
(starts, stops, crashes, culls), newest last.
"""

from sqlalchemy import BigInteger, Column, Index, Integer, PrimaryKeyConstraint, String, Table, Text

from labdeck.db.metadata import metadata

workspace_servers = Table(
    "workspace_servers",
    metadata,
    Column("username", String(256), nullable=False),
    Column("server", String(32), nullable=False),  # "" for the user's default server
    Column("environment", String(63), nullable=False),
    Column("desired", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("message", Text, nullable=True),
    Column("progress", String(256), nullable=True),
    Column("workload", String(300), nullable=False),
    Column("launch", Text, nullable=True),  # JSON: the workload started, until it is stopped
    Column("token_id", Integer, nullable=True),
    Column("started_at", BigInteger, nullable=True),
    Column("stopped_at", BigInteger, nullable=True),
    Column("last_activity", BigInteger, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("username", "server"),
    Index(None, "workload"),
)

workspace_events = Table(
    "workspace_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(256), nullable=False),
    Column("server", String(32), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Index(None, "username", "server", "event_id"),
)
