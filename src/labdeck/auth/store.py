"""Identity storage: users, teams, tokens, sessions, resource ownership and grants, and
failed-login counters, in SQL (SQLite and PostgreSQL alike).

Only digests of secrets reach this module. Each method is one transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from labdeck.auth import tables as t
from labdeck.auth.entities import Access, Grant, Level, Team, TokenInfo, User
from labdeck.clock import now_ms
from labdeck.db import Database
from labdeck.db.sql import insert_ignore, upsert
from labdeck.errors import AlreadyExists, NotFound


def _user(row: Any) -> User:
    return User(
        user_id=row.user_id,
        username=row.username,
        email=row.email,
        display_name=row.display_name,
        is_admin=row.is_admin,
        is_active=row.is_active,
        created_at=row.created_at,
        last_login_at=row.last_login_at,
        has_password=row.password_hash is not None,
        oidc_subject=row.oidc_subject,
    )


def _token(row: Any) -> TokenInfo:
    return TokenInfo(
        token_id=row.token_id,
        user_id=row.user_id,
        name=row.name,
        prefix=row.prefix,
        read_only=row.read_only,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
    )


class SqlAuthStore:
    def __init__(self, db: Database):
        self.db = db

    # ------------------------------------------------------------------ users

    async def create_user(
        self,
        username: str,
        *,
        email: str | None = None,
        display_name: str | None = None,
        password_hash: str | None = None,
        is_admin: bool = False,
        oidc_subject: str | None = None,
    ) -> User:
        def work(conn: Connection) -> User:
            try:
                result = conn.execute(
                    t.users.insert().values(
                        username=username,
                        email=email,
                        display_name=display_name,
                        password_hash=password_hash,
                        oidc_subject=oidc_subject,
                        is_admin=is_admin,
                        is_active=True,
                        created_at=now_ms(),
                    )
                )
            except IntegrityError:
                raise AlreadyExists(f"User '{username}' already exists.") from None
            return _user(conn.execute(select(t.users).where(t.users.c.user_id == result.inserted_primary_key[0])).one())

        return await self.db.write(work)

    async def user(self, *, user_id: int | None = None, username: str | None = None, oidc_subject: str | None = None) -> User | None:
        u = t.users
        condition = u.c.user_id == user_id if user_id is not None else (
            u.c.username == username if username is not None else u.c.oidc_subject == oidc_subject
        )
        row = await self.db.read(lambda conn: conn.execute(select(u).where(condition)).first())
        return _user(row) if row else None

    async def password_hash(self, username: str) -> tuple[User, str | None] | None:
        row = await self.db.read(lambda conn: conn.execute(select(t.users).where(t.users.c.username == username)).first())
        return (_user(row), row.password_hash) if row else None

    async def users(self) -> list[User]:
        rows = await self.db.read(lambda conn: conn.execute(select(t.users).order_by(t.users.c.username)).all())
        return [_user(r) for r in rows]

    async def update_user(self, user_id: int, **values: Any) -> User:
        def work(conn: Connection) -> User:
            if values:
                conn.execute(update(t.users).where(t.users.c.user_id == user_id).values(**values))
            row = conn.execute(select(t.users).where(t.users.c.user_id == user_id)).first()
            if row is None:
                raise NotFound(f"No user with id {user_id}.")
            return _user(row)

        return await self.db.write(work)

    async def delete_user(self, user_id: int) -> None:
        """Remove the user with their tokens, sessions, memberships and grants."""

        def work(conn: Connection) -> None:
            for table in (t.tokens, t.sessions, t.team_members):
                conn.execute(delete(table).where(table.c.user_id == user_id))
            g = t.grants
            conn.execute(delete(g).where(g.c.principal_type == "user", g.c.principal_id == user_id))
            conn.execute(update(t.resources).where(t.resources.c.owner_id == user_id).values(owner_id=None))
            conn.execute(delete(t.users).where(t.users.c.user_id == user_id))

        await self.db.write(work)

    async def team_ids(self, user_id: int) -> frozenset[int]:
        m = t.team_members
        rows = await self.db.read(lambda conn: conn.execute(select(m.c.team_id).where(m.c.user_id == user_id)).all())
        return frozenset(r[0] for r in rows)

    # ------------------------------------------------------------------ tokens

    async def create_token(
        self, user_id: int, name: str, token_hash: str, prefix: str, read_only: bool, expires_at: int | None
    ) -> TokenInfo:
        def work(conn: Connection) -> TokenInfo:
            result = conn.execute(
                t.tokens.insert().values(
                    user_id=user_id,
                    name=name,
                    token_hash=token_hash,
                    prefix=prefix,
                    read_only=read_only,
                    created_at=now_ms(),
                    expires_at=expires_at,
                )
            )
            return _token(conn.execute(select(t.tokens).where(t.tokens.c.token_id == result.inserted_primary_key[0])).one())

        return await self.db.write(work)

    async def tokens(self, user_id: int | None) -> list[TokenInfo]:
        q = select(t.tokens).order_by(t.tokens.c.token_id)
        if user_id is not None:
            q = q.where(t.tokens.c.user_id == user_id)
        rows = await self.db.read(lambda conn: conn.execute(q).all())
        return [_token(r) for r in rows]

    async def token_by_hash(self, token_hash: str) -> tuple[TokenInfo, User] | None:
        def work(conn: Connection) -> tuple[TokenInfo, User] | None:
            row = conn.execute(select(t.tokens).where(t.tokens.c.token_hash == token_hash)).first()
            if row is None:
                return None
            user = conn.execute(select(t.users).where(t.users.c.user_id == row.user_id)).first()
            return (_token(row), _user(user)) if user else None

        return await self.db.read(work)

    async def delete_token(self, token_id: int, user_id: int | None) -> bool:
        def work(conn: Connection) -> bool:
            q = delete(t.tokens).where(t.tokens.c.token_id == token_id)
            if user_id is not None:
                q = q.where(t.tokens.c.user_id == user_id)
            return conn.execute(q).rowcount > 0

        return await self.db.write(work)

    async def touch_token(self, token_id: int, when: int) -> None:
        await self.db.write(
            lambda conn: conn.execute(update(t.tokens).where(t.tokens.c.token_id == token_id).values(last_used_at=when)),
            small=True,
        )

    # ------------------------------------------------------------------ sessions

    async def create_session(self, session_hash: str, user_id: int, csrf_token: str, expires_at: int) -> None:
        def work(conn: Connection) -> None:
            now = now_ms()
            conn.execute(delete(t.sessions).where(t.sessions.c.expires_at < now))
            conn.execute(
                t.sessions.insert().values(
                    session_hash=session_hash, user_id=user_id, csrf_token=csrf_token, created_at=now, expires_at=expires_at
                )
            )
            conn.execute(update(t.users).where(t.users.c.user_id == user_id).values(last_login_at=now))

        await self.db.write(work)

    async def session(self, session_hash: str) -> tuple[User, str, int] | None:
        """(user, csrf token, expiry) of a live session."""

        def work(conn: Connection) -> tuple[User, str, int] | None:
            s = t.sessions
            row = conn.execute(select(s).where(s.c.session_hash == session_hash, s.c.expires_at > now_ms())).first()
            if row is None:
                return None
            user = conn.execute(select(t.users).where(t.users.c.user_id == row.user_id)).first()
            return (_user(user), row.csrf_token, row.expires_at) if user else None

        return await self.db.read(work)

    async def delete_session(self, session_hash: str) -> None:
        await self.db.write(lambda conn: conn.execute(delete(t.sessions).where(t.sessions.c.session_hash == session_hash)))

    async def delete_sessions(self, user_id: int, keep: str | None) -> None:
        """End every session of a user but ``keep`` (a session hash)."""
        s = t.sessions
        await self.db.write(lambda conn: conn.execute(delete(s).where(s.c.user_id == user_id, s.c.session_hash != (keep or ""))))

    # ------------------------------------------------------------------ failed logins

    async def count_failure(self, keys: list[str], window_ms: int) -> dict[str, int]:
        """Add one failure to each key's current window; the counts after it."""

        def work(conn: Connection) -> dict[str, int]:
            now = now_ms()
            f = t.login_failures
            counts = {}
            for key in keys:
                row = conn.execute(select(f).where(f.c.key == key)).first()
                if row is None or row.window_start < now - window_ms:
                    conn.execute(upsert(conn, f, ["key"], ["window_start", "failures"]), {"key": key, "window_start": now, "failures": 1})
                    counts[key] = 1
                else:
                    conn.execute(update(f).where(f.c.key == key).values(failures=f.c.failures + 1))
                    counts[key] = row.failures + 1
            return counts

        return await self.db.write(work)

    async def failures(self, keys: list[str], window_ms: int) -> dict[str, int]:
        """Each key's failures in its current window (keys without any are left out)."""

        def work(conn: Connection) -> dict[str, int]:
            f = t.login_failures
            q = select(f.c.key, f.c.failures).where(f.c.key.in_(keys), f.c.window_start >= now_ms() - window_ms)
            return {key: failures for key, failures in conn.execute(q)}

        return await self.db.read(work)

    async def clear_failures(self, keys: list[str]) -> None:
        await self.db.write(lambda conn: conn.execute(delete(t.login_failures).where(t.login_failures.c.key.in_(keys))))

    # ------------------------------------------------------------------ teams

    async def create_team(self, name: str, description: str | None, private: bool) -> Team:
        def work(conn: Connection) -> Team:
            try:
                result = conn.execute(
                    t.teams.insert().values(name=name, description=description, private=private, created_at=now_ms())
                )
            except IntegrityError:
                raise AlreadyExists(f"Team '{name}' already exists.") from None
            return _teams(conn, [result.inserted_primary_key[0]])[0]

        return await self.db.write(work)

    async def teams(self, names: list[str] | None = None) -> list[Team]:
        def work(conn: Connection) -> list[Team]:
            q = select(t.teams.c.team_id).order_by(t.teams.c.name)
            if names is not None:
                q = q.where(t.teams.c.name.in_(names))
            return _teams(conn, [r[0] for r in conn.execute(q)])

        return await self.db.read(work)

    async def update_team(self, team_id: int, **values: Any) -> Team:
        def work(conn: Connection) -> Team:
            conn.execute(update(t.teams).where(t.teams.c.team_id == team_id).values(**values))
            return _teams(conn, [team_id])[0]

        return await self.db.write(work)

    async def delete_team(self, team_id: int) -> None:
        def work(conn: Connection) -> None:
            conn.execute(delete(t.team_members).where(t.team_members.c.team_id == team_id))
            g = t.grants
            conn.execute(delete(g).where(g.c.principal_type == "team", g.c.principal_id == team_id))
            conn.execute(update(t.resources).where(t.resources.c.team_id == team_id).values(team_id=None))
            conn.execute(delete(t.teams).where(t.teams.c.team_id == team_id))

        await self.db.write(work)

    async def set_membership(self, team_id: int, user_id: int, member: bool) -> None:
        def work(conn: Connection) -> None:
            m = t.team_members
            if member:
                conn.execute(insert_ignore(conn, m), {"team_id": team_id, "user_id": user_id})
            else:
                conn.execute(delete(m).where(m.c.team_id == team_id, m.c.user_id == user_id))

        await self.db.write(work)

    # ------------------------------------------------------------------ resources and grants

    async def record_resource(self, resource_type: str, resource_id: str, owner_id: int | None) -> None:
        """The creator owns the resource and holds MANAGE on it."""

        def work(conn: Connection) -> None:
            conn.execute(
                upsert(conn, t.resources, ["resource_type", "resource_id"], ["owner_id", "team_id"]),
                {"resource_type": resource_type, "resource_id": resource_id, "owner_id": owner_id, "team_id": None},
            )
            if owner_id is not None:
                conn.execute(
                    upsert(conn, t.grants, ["resource_type", "resource_id", "principal_type", "principal_id"], ["level"]),
                    {
                        "resource_type": resource_type,
                        "resource_id": resource_id,
                        "principal_type": "user",
                        "principal_id": owner_id,
                        "level": Level.MANAGE.name,
                    },
                )

        await self.db.write(work)

    async def forget_resource(self, resource_type: str, resource_id: str) -> None:
        def work(conn: Connection) -> None:
            for table in (t.grants, t.resources):
                conn.execute(
                    delete(table).where(table.c.resource_type == resource_type, table.c.resource_id == resource_id)
                )

        await self.db.write(work)

    async def set_resource_team(self, resource_type: str, resource_id: str, team_id: int | None) -> None:
        await self.db.write(
            lambda conn: conn.execute(
                upsert(conn, t.resources, ["resource_type", "resource_id"], ["team_id"]),
                {"resource_type": resource_type, "resource_id": resource_id, "owner_id": None, "team_id": team_id},
            )
        )

    async def set_grant(self, resource_type: str, resource_id: str, principal_type: str, principal_id: int, level: Level | None) -> None:
        """Grant ``level`` (None revokes)."""

        def work(conn: Connection) -> None:
            g = t.grants
            key = {
                "resource_type": resource_type,
                "resource_id": resource_id,
                "principal_type": principal_type,
                "principal_id": principal_id,
            }
            if level is None:
                conn.execute(delete(g).where(*(g.c[k] == v for k, v in key.items())))
            else:
                conn.execute(upsert(conn, g, list(key), ["level"]), {**key, "level": level.name})

        await self.db.write(work)

    async def access(self, resource_type: str, resource_id: str) -> Access:
        def work(conn: Connection) -> Access:
            r, g, u, tm = t.resources, t.grants, t.users, t.teams
            row = conn.execute(
                select(u.c.username, tm.c.name, tm.c.private)
                .select_from(r.outerjoin(u, u.c.user_id == r.c.owner_id).outerjoin(tm, tm.c.team_id == r.c.team_id))
                .where(r.c.resource_type == resource_type, r.c.resource_id == resource_id)
            ).first()
            grants = []
            for gr in conn.execute(
                select(g.c.principal_type, g.c.principal_id, g.c.level, u.c.username, tm.c.name)
                .select_from(
                    g.outerjoin(u, and_(g.c.principal_type == "user", u.c.user_id == g.c.principal_id)).outerjoin(
                        tm, and_(g.c.principal_type == "team", tm.c.team_id == g.c.principal_id)
                    )
                )
                .where(g.c.resource_type == resource_type, g.c.resource_id == resource_id)
                .order_by(g.c.principal_type, g.c.principal_id)
            ):
                grants.append(Grant(gr[0], gr[1], gr[3] or gr[4] or "?", Level[gr[2]]))
            return Access(
                resource_type,
                resource_id,
                owner=row[0] if row else None,
                team=row[1] if row else None,
                team_private=bool(row[2]) if row else False,
                grants=grants,
            )

        return await self.db.read(work)

    async def levels(self, resource_type: str, resource_ids: list[str], user_id: int, team_ids: frozenset[int]) -> dict[str, tuple[Level | None, int | None, bool]]:
        """For each resource: the best level granted to the user or their teams (None if
        no grant), the owning team, and whether that team is private."""

        def work(conn: Connection) -> dict[str, tuple[Level | None, int | None, bool]]:
            g, r, tm = t.grants, t.resources, t.teams
            best: dict[str, Level] = {}
            who = [and_(g.c.principal_type == "user", g.c.principal_id == user_id)]
            if team_ids:
                who.append(and_(g.c.principal_type == "team", g.c.principal_id.in_(sorted(team_ids))))
            for resource_id, level in conn.execute(
                select(g.c.resource_id, g.c.level).where(
                    g.c.resource_type == resource_type, g.c.resource_id.in_(resource_ids), or_(*who)
                )
            ):
                best[resource_id] = max(best.get(resource_id, Level.NONE), Level[level])
            owners = {
                row[0]: (row[1], bool(row[2]))
                for row in conn.execute(
                    select(r.c.resource_id, r.c.team_id, tm.c.private)
                    .select_from(r.outerjoin(tm, tm.c.team_id == r.c.team_id))
                    .where(r.c.resource_type == resource_type, r.c.resource_id.in_(resource_ids))
                )
            }
            return {rid: (best.get(rid), *owners.get(rid, (None, False))) for rid in resource_ids}

        return await self.db.read(work)

    async def restricted(self, resource_type: str) -> list[tuple[str, int | None, bool]]:
        """Resources whose owning team is set: (id, team id, private)."""

        def work(conn: Connection) -> list[tuple[str, int | None, bool]]:
            r, tm = t.resources, t.teams
            return [
                (row[0], row[1], bool(row[2]))
                for row in conn.execute(
                    select(r.c.resource_id, r.c.team_id, tm.c.private)
                    .join(tm, tm.c.team_id == r.c.team_id)
                    .where(r.c.resource_type == resource_type)
                )
            ]

        return await self.db.read(work)

    async def granted(self, resource_type: str, user_id: int, team_ids: frozenset[int], at_least: Level) -> dict[str, Level]:
        """Resources of a type on which the user or their teams hold at least ``at_least``."""

        def work(conn: Connection) -> dict[str, Level]:
            g = t.grants
            who = [and_(g.c.principal_type == "user", g.c.principal_id == user_id)]
            if team_ids:
                who.append(and_(g.c.principal_type == "team", g.c.principal_id.in_(sorted(team_ids))))
            out: dict[str, Level] = {}
            for resource_id, level in conn.execute(
                select(g.c.resource_id, g.c.level).where(g.c.resource_type == resource_type, or_(*who))
            ):
                if Level[level] >= at_least:
                    out[resource_id] = max(out.get(resource_id, Level.NONE), Level[level])
            return out

        return await self.db.read(work)


def _teams(conn: Connection, ids: list[int]) -> list[Team]:
    if not ids:
        return []
    tm, m, u = t.teams, t.team_members, t.users
    members: dict[int, list[str]] = {}
    for team_id, username in conn.execute(
        select(m.c.team_id, u.c.username).join(u, u.c.user_id == m.c.user_id).where(m.c.team_id.in_(ids)).order_by(u.c.username)
    ):
        members.setdefault(team_id, []).append(username)
    rows = {r.team_id: r for r in conn.execute(select(tm).where(tm.c.team_id.in_(ids)))}
    return [
        Team(rows[i].team_id, rows[i].name, rows[i].description, rows[i].private, rows[i].created_at, members.get(i, []))
        for i in ids
        if i in rows
    ]
