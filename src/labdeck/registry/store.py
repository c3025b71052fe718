"""Registry storage: registered models, versions, tags, aliases and the history of aliases
and stages, in SQL (SQLite and PostgreSQL alike; the contract suite runs on both).

Each method is one transaction on a database thread (``labdeck.db.Database``). Semantics:

- version numbers of a model are 1, 2, 3, ... with no gaps or repeats, also under
  concurrent creation, and a deleted version keeps its number (it stays as a tombstone);
- a write that reads the model's state before changing it (taking the next number, moving
  or removing an alias, a stage change, deleting a version) first locks the model's row
  (PostgreSQL; SQLite has a single writer), so such writes to one model never interleave;
- deleting a version deletes its tags and the aliases pointing at it; deleting a model
  deletes everything it owns; artifacts are never deleted here (they belong to runs and
  logged models);
- every alias move and stage change appends a ``HistoryEvent`` in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from labdeck.clock import now_ms
from labdeck.db import Database
from labdeck.db.sql import expanding, paged, prepared, rows_in, upsert
from labdeck.errors import AlreadyExists, InvalidParameter, NotFound
from labdeck.registry import tables as t
from labdeck.registry.entities import (
    HistoryEvent,
    HistoryKind,
    ModelVersion,
    RegisteredModel,
    Stage,
    VersionStatus,
)
from labdeck.registry.search import MODEL_SPEC, VERSION_SPEC, model_query, version_query
from labdeck.search import grammar
from labdeck.search.paging import make_token, read_token
from labdeck.search.sql import visible_only
from labdeck.tracking.entities import Page


class SqlRegistryStore:
    def __init__(self, db: Database):
        self.db = db

    # ------------------------------------------------------------------ registered models

    async def create_model(
        self, name: str, tags: dict[str, str], description: str | None, user_id: str | None
    ) -> RegisteredModel:
        def work(conn: Connection) -> RegisteredModel:
            now = now_ms()
            try:
                result = conn.execute(
                    t.registered_models.insert().values(
                        name=name, creation_time=now, last_updated_time=now, description=description, user_id=user_id
                    )
                )
            except IntegrityError:
                raise AlreadyExists(f"Registered Model (name={name}) already exists.") from None
            model_pk = result.inserted_primary_key[0]
            if tags:
                conn.execute(
                    t.registered_model_tags.insert(),
                    [{"model_pk": model_pk, "key": k, "value": v} for k, v in tags.items()],
                )
            return _models(conn, [model_pk])[model_pk]

        return await self.db.write(work)

    async def get_model(self, name: str) -> RegisteredModel:
        def work(conn: Connection) -> RegisteredModel:
            model_pk = _model_pk(conn, name)
            return _models(conn, [model_pk])[model_pk]

        return await self.db.read(work)

    async def rename_model(self, name: str, new_name: str, actor: str | None) -> RegisteredModel:
        def work(conn: Connection) -> RegisteredModel:
            model_pk = _model_pk(conn, name)
            try:
                conn.execute(
                    update(t.registered_models)
                    .where(t.registered_models.c.model_pk == model_pk)
                    .values(name=new_name, last_updated_time=now_ms())
                )
            except IntegrityError:
                raise AlreadyExists(f"Registered Model (name={new_name}) already exists.") from None
            _record(conn, model_pk, actor, HistoryKind.RENAMED, from_name=name, to_name=new_name)
            return _models(conn, [model_pk])[model_pk]

        return await self.db.write(work)

    async def update_model(self, name: str, description: str | None) -> RegisteredModel:
        def work(conn: Connection) -> RegisteredModel:
            model_pk = _model_pk(conn, name)
            if description is not None:
                conn.execute(
                    update(t.registered_models)
                    .where(t.registered_models.c.model_pk == model_pk)
                    .values(description=description, last_updated_time=now_ms())
                )
            return _models(conn, [model_pk])[model_pk]

        return await self.db.write(work)

    async def delete_model(self, name: str) -> None:
        """Delete the model with its versions, tags, aliases and history (not artifacts)."""

        def work(conn: Connection) -> None:
            model_pk = _model_pk(conn, name)
            # Children first: SQLite only cascades when foreign keys are on, and the order
            # keeps PostgreSQL from checking rows that are about to go.
            for table in (t.registered_model_aliases, t.model_version_tags, t.model_history, t.registered_model_tags):
                conn.execute(delete(table).where(table.c.model_pk == model_pk))
            conn.execute(delete(t.model_versions).where(t.model_versions.c.model_pk == model_pk))
            conn.execute(delete(t.registered_models).where(t.registered_models.c.model_pk == model_pk))

        await self.db.write(work)

    async def search_models(
        self,
        filter_string: str | None,
        max_results: int,
        order_by: list[str],
        page_token: str | None,
        *,
        only: frozenset[int] | None = None,
        hidden: frozenset[int] | None = None,
    ) -> Page[RegisteredModel]:
        clauses = grammar.check(grammar.parse_filter(filter_string), MODEL_SPEC)
        orders = grammar.parse_order_by(order_by, MODEL_SPEC)
        query_key = ["registered-models", filter_string, order_by]
        offset = read_token(page_token, query_key)
        variant, visible, visible_params = visible_only(t.registered_models.c.model_pk, only, hidden)
        restriction = [] if visible is None else [visible]

        def work(conn: Connection) -> Page[RegisteredModel]:
            query = prepared(
                conn,
                ("search-models", variant, filter_string, *order_by),
                lambda c: paged(model_query(c, clauses, orders).where(*restriction)),
            )
            ids = [r[0] for r in conn.execute(query, {"limit": max_results + 1, "offset": offset, **visible_params})]
            token = make_token(offset + max_results, query_key) if len(ids) > max_results else None
            ids = ids[:max_results]
            models = _models(conn, ids)
            return Page([models[i] for i in ids], token)

        return await self.db.read(work)

    async def model_key(self, name: str) -> int:
        """The model's stable key (names change on rename; this does not)."""
        return await self.db.read(lambda conn: _model_pk(conn, name))

    async def latest_versions(self, name: str, stages: list[Stage] | None) -> list[ModelVersion]:
        def work(conn: Connection) -> list[ModelVersion]:
            model = _models(conn, [_model_pk(conn, name)])
            latest = next(iter(model.values())).latest_versions
            wanted = set(stages) if stages else set(Stage)
            return [mv for mv in latest if mv.current_stage in wanted]

        return await self.db.read(work)

    async def set_model_tag(self, name: str, key: str, value: str) -> None:
        def work(conn: Connection) -> None:
            model_pk = _model_pk(conn, name)
            conn.execute(
                upsert(conn, t.registered_model_tags, ["model_pk", "key"], ["value"]),
                {"model_pk": model_pk, "key": key, "value": value},
            )

        await self.db.write(work)

    async def delete_model_tag(self, name: str, key: str) -> None:
        def work(conn: Connection) -> None:
            model_pk = _model_pk(conn, name)
            tag = t.registered_model_tags
            conn.execute(delete(tag).where(tag.c.model_pk == model_pk, tag.c.key == key))

        await self.db.write(work)

    # ------------------------------------------------------------------ aliases

    async def set_alias(self, name: str, alias: str, version: int, actor: str | None) -> None:
        def work(conn: Connection) -> None:
            model_pk = _model_pk(conn, name, lock=True)
            _version_row(conn, model_pk, name, version)
            a = t.registered_model_aliases
            before = conn.execute(select(a.c.version).where(a.c.model_pk == model_pk, a.c.alias == alias)).scalar()
            if before == version:
                return
            conn.execute(
                upsert(conn, a, ["model_pk", "alias"], ["version"]),
                {"model_pk": model_pk, "alias": alias, "version": version},
            )
            _record(conn, model_pk, actor, HistoryKind.ALIAS_SET, alias=alias, from_version=before, to_version=version)

        await self.db.write(work)

    async def delete_alias(self, name: str, alias: str, actor: str | None) -> None:
        def work(conn: Connection) -> None:
            model_pk = _model_pk(conn, name, lock=True)
            a = t.registered_model_aliases
            before = conn.execute(select(a.c.version).where(a.c.model_pk == model_pk, a.c.alias == alias)).scalar()
            if before is None:
                return
            conn.execute(delete(a).where(a.c.model_pk == model_pk, a.c.alias == alias))
            _record(conn, model_pk, actor, HistoryKind.ALIAS_DELETED, alias=alias, from_version=before)

        await self.db.write(work)

    async def version_by_alias(self, name: str, alias: str) -> ModelVersion:
        def work(conn: Connection) -> ModelVersion:
            model_pk = _model_pk(conn, name)
            a = t.registered_model_aliases
            statement = prepared(
                conn,
                "alias_version",
                lambda _: select(a.c.version).where(a.c.model_pk == bindparam("model_pk"), a.c.alias == bindparam("alias")),
            )
            version = conn.execute(statement, {"model_pk": model_pk, "alias": alias}).scalar()
            if version is None:
                raise InvalidParameter(f"Registered model alias {alias} not found.")
            return _versions(conn, [(model_pk, version)])[(model_pk, version)]

        return await self.db.read(work)

    # ------------------------------------------------------------------ versions

    async def create_version(
        self,
        name: str,
        source: str,
        storage_location: str | None,
        run_id: str | None,
        tags: dict[str, str],
        run_link: str | None,
        description: str | None,
        model_id: str | None,
        user_id: str | None,
    ) -> ModelVersion:
        def work(conn: Connection) -> ModelVersion:
            model_pk = _model_pk(conn, name, lock=True)
            mv = t.model_versions
            version = (conn.execute(select(func.max(mv.c.version)).where(mv.c.model_pk == model_pk)).scalar() or 0) + 1
            now = now_ms()
            conn.execute(
                mv.insert().values(
                    model_pk=model_pk,
                    version=version,
                    creation_time=now,
                    last_updated_time=now,
                    description=description,
                    user_id=user_id,
                    current_stage=Stage.NONE,
                    source=source,
                    storage_location=storage_location,
                    run_id=run_id,
                    run_link=run_link,
                    model_id=model_id,
                    status=VersionStatus.READY,
                    deleted=False,
                )
            )
            if tags:
                conn.execute(
                    t.model_version_tags.insert(),
                    [{"model_pk": model_pk, "version": version, "key": k, "value": v} for k, v in tags.items()],
                )
            _touch(conn, model_pk, now)
            _record(conn, model_pk, user_id, HistoryKind.VERSION_CREATED, version=version)
            return _versions(conn, [(model_pk, version)])[(model_pk, version)]

        return await self.db.write(work)

    async def get_version(self, name: str, version: int) -> ModelVersion:
        def work(conn: Connection) -> ModelVersion:
            model_pk = _model_pk(conn, name)
            _version_row(conn, model_pk, name, version)
            return _versions(conn, [(model_pk, version)])[(model_pk, version)]

        return await self.db.read(work)

    async def update_version(self, name: str, version: int, description: str | None) -> ModelVersion:
        def work(conn: Connection) -> ModelVersion:
            model_pk = _model_pk(conn, name)
            _version_row(conn, model_pk, name, version)
            if description is not None:
                now = now_ms()
                conn.execute(
                    update(t.model_versions)
                    .where(t.model_versions.c.model_pk == model_pk, t.model_versions.c.version == version)
                    .values(description=description, last_updated_time=now)
                )
                _touch(conn, model_pk, now)
            return _versions(conn, [(model_pk, version)])[(model_pk, version)]

        return await self.db.write(work)

    async def transition_stage(
        self, name: str, version: int, stage: Stage, archive_existing: bool, actor: str | None
    ) -> ModelVersion:
        def work(conn: Connection) -> ModelVersion:
            model_pk = _model_pk(conn, name, lock=True)
            row = _version_row(conn, model_pk, name, version)
            mv = t.model_versions
            now = now_ms()
            moves: list[tuple[int, str, str]] = []
            if archive_existing:
                others = conn.execute(
                    select(mv.c.version).where(
                        mv.c.model_pk == model_pk,
                        mv.c.version != version,
                        mv.c.current_stage == stage,
                        mv.c.deleted.is_(False),
                    )
                ).scalars().all()
                moves += [(v, stage, Stage.ARCHIVED) for v in others]
            if row.current_stage != stage:
                moves.append((version, row.current_stage, stage))
            for moved, from_stage, to_stage in moves:
                conn.execute(
                    update(mv)
                    .where(mv.c.model_pk == model_pk, mv.c.version == moved)
                    .values(current_stage=to_stage, last_updated_time=now)
                )
                _record(conn, model_pk, actor, HistoryKind.STAGE_CHANGED, version=moved, from_stage=from_stage, to_stage=to_stage)
            _touch(conn, model_pk, now)
            return _versions(conn, [(model_pk, version)])[(model_pk, version)]

        return await self.db.write(work)

    async def delete_version(self, name: str, version: int, actor: str | None) -> None:
        """Tombstone the version (its number is never reused); drop its tags and aliases."""

        def work(conn: Connection) -> None:
            model_pk = _model_pk(conn, name, lock=True)
            _version_row(conn, model_pk, name, version)
            a, tag, mv = t.registered_model_aliases, t.model_version_tags, t.model_versions
            for alias in conn.execute(
                select(a.c.alias).where(a.c.model_pk == model_pk, a.c.version == version)
            ).scalars().all():
                _record(conn, model_pk, actor, HistoryKind.ALIAS_DELETED, alias=alias, from_version=version)
            conn.execute(delete(a).where(a.c.model_pk == model_pk, a.c.version == version))
            conn.execute(delete(tag).where(tag.c.model_pk == model_pk, tag.c.version == version))
            now = now_ms()
            conn.execute(
                update(mv)
                .where(mv.c.model_pk == model_pk, mv.c.version == version)
                .values(
                    deleted=True,
                    last_updated_time=now,
                    description=None,
                    source="REDACTED-SOURCE-PATH",
                    storage_location=None,
                    run_id=None,
                    run_link=None,
                    model_id=None,
                )
            )
            _touch(conn, model_pk, now)
            _record(conn, model_pk, actor, HistoryKind.VERSION_DELETED, version=version)

        await self.db.write(work)

    async def search_versions(
        self,
        filter_string: str | None,
        max_results: int,
        order_by: list[str],
        page_token: str | None,
        *,
        only: frozenset[int] | None = None,
        hidden: frozenset[int] | None = None,
    ) -> Page[ModelVersion]:
        clauses = grammar.check(grammar.parse_filter(filter_string), VERSION_SPEC)
        orders = grammar.parse_order_by(order_by, VERSION_SPEC)
        query_key = ["model-versions", filter_string, order_by]
        offset = read_token(page_token, query_key)
        variant, visible, visible_params = visible_only(t.model_versions.c.model_pk, only, hidden)
        restriction = [] if visible is None else [visible]

        def work(conn: Connection) -> Page[ModelVersion]:
            query = prepared(
                conn,
                ("search-versions", variant, filter_string, *order_by),
                lambda c: paged(version_query(c, clauses, orders).where(*restriction)),
            )
            page = {"limit": max_results + 1, "offset": offset, **visible_params}
            keys = [(r[0], r[1]) for r in conn.execute(query, page)]
            token = make_token(offset + max_results, query_key) if len(keys) > max_results else None
            keys = keys[:max_results]
            versions = _versions(conn, keys)
            return Page([versions[k] for k in keys], token)

        return await self.db.read(work)

    async def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        def work(conn: Connection) -> None:
            model_pk = _model_pk(conn, name)
            _version_row(conn, model_pk, name, version)
            conn.execute(
                upsert(conn, t.model_version_tags, ["model_pk", "version", "key"], ["value"]),
                {"model_pk": model_pk, "version": version, "key": key, "value": value},
            )

        await self.db.write(work)

    async def delete_version_tag(self, name: str, version: int, key: str) -> None:
        def work(conn: Connection) -> None:
            model_pk = _model_pk(conn, name)
            _version_row(conn, model_pk, name, version)
            tag = t.model_version_tags
            conn.execute(delete(tag).where(tag.c.model_pk == model_pk, tag.c.version == version, tag.c.key == key))

        await self.db.write(work)

    async def versions_of_run(self, run_id: str) -> list[ModelVersion]:
        """Every live version registered from ``run_id`` (for a run's 'registered as')."""

        def work(conn: Connection) -> list[ModelVersion]:
            mv = t.model_versions
            keys = [
                (r[0], r[1])
                for r in conn.execute(
                    select(mv.c.model_pk, mv.c.version).where(mv.c.run_id == run_id, mv.c.deleted.is_(False))
                )
            ]
            found = _versions(conn, keys)
            return [found[k] for k in keys]

        return await self.db.read(work)

    # ------------------------------------------------------------------ history

    async def record_deployed(self, name: str, version: int, deployment: str) -> None:
        def work(conn: Connection) -> None:
            _record(conn, _model_pk(conn, name), None, HistoryKind.DEPLOYED, version=version, deployment=deployment)

        await self.db.write(work, small=True)

    async def history(self, name: str, limit: int, before: int | None) -> list[HistoryEvent]:
        """The model's events, newest first; ``before`` is an event id to page back from."""

        def work(conn: Connection) -> list[HistoryEvent]:
            model_pk = _model_pk(conn, name)
            h = t.model_history
            q = select(h).where(h.c.model_pk == model_pk)
            if before is not None:
                q = q.where(h.c.event_id < before)
            rows = conn.execute(q.order_by(h.c.event_id.desc()).limit(limit)).all()
            return [
                HistoryEvent(
                    event_id=r.event_id,
                    model=name,
                    timestamp=r.timestamp,
                    actor=r.actor,
                    kind=r.kind,
                    alias=r.alias,
                    version=r.version,
                    from_version=r.from_version,
                    to_version=r.to_version,
                    from_stage=r.from_stage,
                    to_stage=r.to_stage,
                    from_name=r.from_name,
                    to_name=r.to_name,
                    deployment=r.deployment,
                )
                for r in rows
            ]

        return await self.db.read(work)


# ---------------------------------------------------------------------- helpers


def _model_pk(conn: Connection, name: str, *, lock: bool = False) -> int:
    """The model's key; ``lock`` holds its row until the transaction ends (PostgreSQL)."""
    rm = t.registered_models
    locking = lock and conn.dialect.name == "postgresql"
    statement = prepared(
        conn,
        "model_pk_for_update" if locking else "model_pk",
        lambda _: select(rm.c.model_pk).where(rm.c.name == bindparam("name")).with_for_update(read=False)
        if locking
        else select(rm.c.model_pk).where(rm.c.name == bindparam("name")),
    )
    model_pk = conn.execute(statement, {"name": name}).scalar()
    if model_pk is None:
        raise NotFound(f"Registered Model with name={name} not found")
    return model_pk


def _version_row(conn: Connection, model_pk: int, name: str, version: int) -> Any:
    mv = t.model_versions
    statement = prepared(
        conn,
        "live_version",
        lambda _: select(mv.c.current_stage).where(
            mv.c.model_pk == bindparam("model_pk"), mv.c.version == bindparam("version"), mv.c.deleted.is_(False)
        ),
    )
    row = conn.execute(statement, {"model_pk": model_pk, "version": version}).first()
    if row is None:
        raise NotFound(f"Model Version (name={name}, version={version}) not found")
    return row


def _touch(conn: Connection, model_pk: int, now: int) -> None:
    conn.execute(
        update(t.registered_models).where(t.registered_models.c.model_pk == model_pk).values(last_updated_time=now)
    )


def _record(conn: Connection, model_pk: int, actor: str | None, kind: HistoryKind, **fields: Any) -> None:
    conn.execute(t.model_history.insert().values(model_pk=model_pk, timestamp=now_ms(), actor=actor, kind=kind, **fields))


def _models(conn: Connection, ids: list[int]) -> dict[int, RegisteredModel]:
    if not ids:
        return {}
    rm, tag, a, mv = t.registered_models, t.registered_model_tags, t.registered_model_aliases, t.model_versions
    tags: dict[int, dict[str, str]] = {}
    for model_pk, key, value in rows_in(
        conn, "model_tags", lambda _: select(tag.c.model_pk, tag.c.key, tag.c.value).where(tag.c.model_pk.in_(expanding())), ids
    ):
        tags.setdefault(model_pk, {})[key] = value
    aliases: dict[int, dict[str, int]] = {}
    for model_pk, alias, version in rows_in(
        conn,
        "model_aliases",
        lambda _: select(a.c.model_pk, a.c.alias, a.c.version).where(a.c.model_pk.in_(expanding())).order_by(a.c.alias),
        ids,
    ):
        aliases.setdefault(model_pk, {})[alias] = version
    # The newest live version in each stage, per model.
    latest_keys = [
        (r[0], r[1])
        for r in rows_in(
            conn,
            "newest_per_stage",
            lambda _: select(mv.c.model_pk, func.max(mv.c.version))
            .where(mv.c.model_pk.in_(expanding()), mv.c.deleted.is_(False))
            .group_by(mv.c.model_pk, mv.c.current_stage),
            ids,
        )
    ]
    latest = _versions(conn, latest_keys)
    by_model: dict[int, list[ModelVersion]] = {}
    for key in sorted(latest_keys):
        by_model.setdefault(key[0], []).append(latest[key])
    return {
        r.model_pk: RegisteredModel(
            name=r.name,
            creation_timestamp=r.creation_time,
            last_updated_timestamp=r.last_updated_time,
            description=r.description,
            user_id=r.user_id,
            tags=tags.get(r.model_pk, {}),
            aliases=aliases.get(r.model_pk, {}),
            latest_versions=by_model.get(r.model_pk, []),
        )
        for r in rows_in(conn, "models", lambda _: select(rm).where(rm.c.model_pk.in_(expanding())), ids)
    }


def _versions(conn: Connection, keys: list[tuple[int, int]]) -> dict[tuple[int, int], ModelVersion]:
    if not keys:
        return {}
    mv, rm, tag, a = t.model_versions, t.registered_models, t.model_version_tags, t.registered_model_aliases
    wanted = set(keys)
    model_ids = sorted({k[0] for k in keys})
    # The keys' models and the keys' version numbers: a small superset of the keys that
    # plain indexed IN lists find (row-value IN lists cost far more to bind).
    numbers = {"numbers": sorted({k[1] for k in keys})}

    def among(table: Any) -> Any:
        return and_(table.c.model_pk.in_(expanding()), table.c.version.in_(expanding("numbers")))

    tags: dict[tuple[int, int], dict[str, str]] = {}
    for model_pk, version, key, value in rows_in(
        conn,
        "version_tags",
        lambda _: select(tag.c.model_pk, tag.c.version, tag.c.key, tag.c.value).where(among(tag)),
        model_ids,
        **numbers,
    ):
        if (model_pk, version) in wanted:
            tags.setdefault((model_pk, version), {})[key] = value
    aliases: dict[tuple[int, int], list[str]] = {}
    for model_pk, alias, version in rows_in(
        conn,
        "version_aliases",
        lambda _: select(a.c.model_pk, a.c.alias, a.c.version).where(among(a)).order_by(a.c.alias),
        model_ids,
        **numbers,
    ):
        if (model_pk, version) in wanted:
            aliases.setdefault((model_pk, version), []).append(alias)
    rows = rows_in(
        conn,
        "versions",
        lambda _: select(mv, rm.c.name).join(rm, rm.c.model_pk == mv.c.model_pk).where(among(mv), mv.c.deleted.is_(False)),
        model_ids,
        **numbers,
    )
    out: dict[tuple[int, int], ModelVersion] = {}
    for r in rows:
        key = (r.model_pk, r.version)
        if key not in wanted:
            continue
        out[key] = ModelVersion(
            name=r.name,
            version=r.version,
            creation_timestamp=r.creation_time,
            last_updated_timestamp=r.last_updated_time,
            current_stage=r.current_stage,
            source=r.source,
            status=r.status,
            description=r.description,
            user_id=r.user_id,
            run_id=r.run_id,
            run_link=r.run_link,
            model_id=r.model_id,
            status_message=r.status_message,
            storage_location=r.storage_location,
            tags=tags.get(key, {}),
            aliases=aliases.get(key, []),
        )
    return out

