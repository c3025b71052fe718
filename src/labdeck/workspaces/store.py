"""Storage of workspace servers and their events (SQLite and PostgreSQL alike). Each
method is one transaction; the ones that decide (``request_start``, ``request_stop``)
read and write in the same transaction, so that two requests at once cannot both take
the last server a user may run.

The hub changes a server's observed state only while it is still what the hub saw
(``update(..., when=..., for_start=...)``): a stop (or another start) asked for meanwhile
is never overwritten by an observation made before it. An ``event`` (kind, message) given with a change is recorded
in the same transaction, when the change is made.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, and_, delete, func, or_, select, update

from labdeck.clock import now_ms
from labdeck.db import Database
from labdeck.errors import AlreadyExists, InvalidState, NotFound
from labdeck.workspaces import tables as t
from labdeck.workspaces.entities import (
    ACTIVE,
    Desired,
    ServerState,
    WorkspaceEvent,
    WorkspaceServer,
    label,
)

EVENTS_KEPT = 200  # per server; older events are dropped as new ones arrive
Event = tuple[str, str]  # kind, message
WAITING_TO_START = "waiting to start"
WAITING_FOR_STOP = "waiting for the previous JupyterLab to stop"

servers = t.workspace_servers


def _server(row: Any) -> WorkspaceServer:
    return WorkspaceServer(
        user=row.username,
        server=row.server,
        environment=row.environment,
        desired=Desired(row.desired),
        state=ServerState(row.state),
        message=row.message,
        progress=row.progress,
        workload=row.workload,
        token_id=row.token_id,
        started_at=row.started_at,
        stopped_at=row.stopped_at,
        last_activity=row.last_activity,
        updated_at=row.updated_at,
        launch=json.loads(row.launch) if row.launch else None,
    )


def _key(user: str, server: str) -> Any:
    return and_(servers.c.username == user, servers.c.server == server)


def _get(conn: Connection, user: str, server: str) -> WorkspaceServer | None:
    row = conn.execute(select(servers).where(_key(user, server))).first()
    return _server(row) if row is not None else None


def _add_event(conn: Connection, user: str, server: str, event: Event | None) -> None:
    if event is None:
        return
    e = t.workspace_events
    kind, message = event
    conn.execute(e.insert().values(username=user, server=server, at=now_ms(), kind=kind, message=message))
    too_old = conn.execute(
        select(e.c.event_id)
        .where(e.c.username == user, e.c.server == server)
        .order_by(e.c.event_id.desc())
        .offset(EVENTS_KEPT)
        .limit(1)
    ).scalar()
    if too_old is not None:
        conn.execute(delete(e).where(e.c.username == user, e.c.server == server, e.c.event_id <= too_old))


def _tearing_down(found: WorkspaceServer) -> bool:
    """Whether a JupyterLab of this server may still run (or its token still work)."""
    return found.state is ServerState.STOPPING or (
        found.state is ServerState.FAILED and (found.launch is not None or found.token_id is not None)
    )


class SqlWorkspaceStore:
    def __init__(self, db: Database):
        self.db = db

    # ------------------------------------------------------------------ reading

    async def get(self, user: str, server: str) -> WorkspaceServer | None:
        return await self.db.read(lambda conn: _get(conn, user, server))

    async def all(self, user: str | None = None) -> list[WorkspaceServer]:
        """Every server (of ``user``), by user then name (the default server first)."""

        def work(conn: Connection) -> list[WorkspaceServer]:
            query = select(servers).order_by(servers.c.username, servers.c.server)
            if user is not None:
                query = query.where(servers.c.username == user)
            return [_server(row) for row in conn.execute(query)]

        return await self.db.read(work)

    # ------------------------------------------------------------------ what users ask for

    async def request_start(
        self, user: str, server: str, environment: str, workload: str, *, limit: int, event: Event | None = None
    ) -> tuple[WorkspaceServer, bool]:
        """Ask for the server to run; returns it and whether anything changed (False: it
        already runs or starts). Raises InvalidState when it runs another environment or
        the user already runs ``limit`` servers, AlreadyExists when another server has the
        same workload name."""

        def work(conn: Connection) -> tuple[WorkspaceServer, bool]:
            found = _get(conn, user, server)
            if found is not None and found.desired is Desired.RUNNING:
                if found.environment != environment:
                    raise InvalidState(
                        f"Workspace {label(user, server)} already runs environment '{found.environment}': "
                        f"stop it first to start it in '{environment}'."
                    )
                return found, False
            running = conn.execute(
                select(func.count())
                .select_from(servers)
                .where(servers.c.username == user, servers.c.server != server, servers.c.desired == Desired.RUNNING)
            ).scalar_one()
            if running >= limit:
                raise InvalidState(
                    f"{user} already runs {running} workspace server(s), the most one user may run "
                    f"(workspaces.max_servers_per_user = {limit}): stop one first."
                )
            clash = conn.execute(
                select(servers.c.username, servers.c.server).where(
                    servers.c.workload == workload,
                    or_(servers.c.username != user, servers.c.server != server),
                    or_(servers.c.desired == Desired.RUNNING, servers.c.state.in_([x.value for x in ACTIVE])),
                )
            ).first()
            if clash is not None:
                raise AlreadyExists(
                    f"Workspace {label(user, server)} would run as '{workload}', the name of the running "
                    f"workspace {label(clash.username, clash.server)}: stop that one or choose another name."
                )
            now = now_ms()
            values: dict[str, Any] = {
                "environment": environment,
                "desired": Desired.RUNNING,
                "message": None,
                "workload": workload,
                "started_at": now,
                "stopped_at": None,
                "last_activity": now,
                "updated_at": now,
            }
            if found is not None and _tearing_down(found):
                values |= {"state": ServerState.STOPPING, "progress": WAITING_FOR_STOP}  # the hub starts it after
            else:
                values |= {"state": ServerState.STARTING, "progress": WAITING_TO_START, "launch": None, "token_id": None}
            if found is None:
                conn.execute(servers.insert().values(username=user, server=server, **values))
            else:
                conn.execute(update(servers).where(_key(user, server)).values(**values))
            _add_event(conn, user, server, event)
            return _get(conn, user, server), True  # type: ignore[return-value]

        return await self.db.write(work)

    async def request_stop(
        self, user: str, server: str, message: str | None = None, *, event: Event | None = None
    ) -> tuple[WorkspaceServer, bool]:
        """Ask for the server to stop (``message``: why, when it is not its user's wish);
        returns it and whether anything changed."""

        def work(conn: Connection) -> tuple[WorkspaceServer, bool]:
            found = _get(conn, user, server)
            if found is None:
                raise NotFound(f"No workspace server {label(user, server)}.")
            if found.desired is Desired.STOPPED:
                return found, False
            values: dict[str, Any] = {"desired": Desired.STOPPED, "message": message, "updated_at": now_ms()}
            if found.state in (ServerState.STARTING, ServerState.RUNNING):
                values |= {"state": ServerState.STOPPING, "progress": "stopping"}
            conn.execute(update(servers).where(_key(user, server)).values(**values))
            _add_event(conn, user, server, event)
            return _get(conn, user, server), True  # type: ignore[return-value]

        return await self.db.write(work)

    # ------------------------------------------------------------------ what the hub observes

    async def update(
        self,
        user: str,
        server: str,
        *,
        when: Collection[ServerState] | None = None,
        when_desired: Desired | None = None,
        unlaunched: bool = False,
        for_start: int | None = None,
        event: Event | None = None,
        **values: Any,
    ) -> bool:
        """Set columns of a server while it is in one of the states ``when`` (and desired
        ``when_desired``, not launched yet with ``unlaunched``, and still in the start asked
        for at ``for_start``); whether it was."""
        if "launch" in values and values["launch"] is not None:
            values["launch"] = json.dumps(values["launch"])

        def work(conn: Connection) -> bool:
            query = update(servers).where(_key(user, server))
            if when is not None:
                query = query.where(servers.c.state.in_([state.value for state in when]))
            if when_desired is not None:
                query = query.where(servers.c.desired == when_desired)
            if unlaunched:
                query = query.where(servers.c.launch.is_(None))
            if for_start is not None:
                query = query.where(servers.c.started_at == for_start)
            changed = conn.execute(query.values(updated_at=now_ms(), **values)).rowcount > 0
            if changed:
                _add_event(conn, user, server, event)
            return changed

        return await self.db.write(work, small=True)

    async def note_activity(self, user: str, server: str, at: int) -> bool:
        """Record proxy traffic seen at ``at`` (ms) unless a later time is recorded already
        (replicas write what each of them saw, in any order); whether it was later."""

        def work(conn: Connection) -> bool:
            query = (
                update(servers)
                .where(_key(user, server))
                .where((servers.c.last_activity.is_(None)) | (servers.c.last_activity < at))
                .values(last_activity=at)
            )
            return conn.execute(query).rowcount > 0

        return await self.db.write(work, small=True)

    async def failed(self, user: str, server: str, kind: str, message: str, *, for_start: int | None) -> bool:
        """It cannot run: FAILED with the reason (and an event of ``kind``), no longer
        desired (a new start tries again). Not when it was asked to stop meanwhile."""
        return await self.update(
            user,
            server,
            when=(ServerState.STARTING, ServerState.RUNNING),
            when_desired=Desired.RUNNING,
            for_start=for_start,
            event=(kind, message),
            state=ServerState.FAILED,
            desired=Desired.STOPPED,
            message=message,
            progress=None,
        )

    async def torn_down(self, user: str, server: str, stopped: Event) -> WorkspaceServer | None:
        """Its JupyterLab has stopped and its token is revoked: STOPPED (with the event
        ``stopped``; FAILED stays FAILED), or STARTING again when a start was asked for
        meanwhile."""

        def work(conn: Connection) -> WorkspaceServer | None:
            found = _get(conn, user, server)
            if found is None:
                return None
            now = now_ms()
            values: dict[str, Any] = {"launch": None, "token_id": None, "updated_at": now}
            if found.desired is Desired.RUNNING:
                values |= {"state": ServerState.STARTING, "progress": WAITING_TO_START}
            else:
                values |= {"stopped_at": now, "progress": None}
                if found.state is not ServerState.FAILED:
                    values["state"] = ServerState.STOPPED
                    _add_event(conn, user, server, stopped)
            conn.execute(update(servers).where(_key(user, server)).values(**values))
            return _get(conn, user, server)

        return await self.db.write(work)

    # ------------------------------------------------------------------ events

    async def events(self, user: str, server: str, limit: int) -> list[WorkspaceEvent]:
        """The last ``limit`` events of a server, oldest first."""

        def work(conn: Connection) -> list[WorkspaceEvent]:
            e = t.workspace_events
            rows = conn.execute(
                select(e).where(e.c.username == user, e.c.server == server).order_by(e.c.event_id.desc()).limit(limit)
            ).all()
            return [WorkspaceEvent(r.event_id, r.username, r.server, r.at, r.kind, r.message) for r in reversed(rows)]

        return await self.db.read(work)
