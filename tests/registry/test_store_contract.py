"""The registry store's contract, driven through ``RegistryService`` and ``SqlRegistryStore``
directly, on SQLite and PostgreSQL: version numbers under concurrent creation, the history
of every alias move, alias removal and stage change (with from/to, also under concurrent
moves), delete cascades proven on the tables themselves, and tombstoned versions that no
read can see."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from labdeck.db import Database
from labdeck.errors import AlreadyExists, InvalidParameter, NotFound
from labdeck.registry import tables as t
from labdeck.registry.entities import HistoryEvent
from labdeck.registry.service import RegistryService
from labdeck.registry.store import SqlRegistryStore
from labdeck.tracking.logged_models import SqlLoggedModelStore
from labdeck.tracking.service import TrackingService
from labdeck.tracking.store import SqlTrackingStore

T = TypeVar("T")

CHILD_TABLES = (
    t.model_versions,
    t.registered_model_tags,
    t.model_version_tags,
    t.registered_model_aliases,
    t.model_history,
)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    database = Database(url)
    database.migrate()
    database.start()
    yield database
    database.close()


@pytest.fixture
def registry(db: Database) -> RegistryService:
    tracking = TrackingService(SqlTrackingStore(db), SqlLoggedModelStore(db))
    return RegistryService(SqlRegistryStore(db), tracking)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def in_threads(count: int, work: Callable[[int], None]) -> None:
    """``work(i)`` on ``count`` threads released together; re-raises the first failure."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as error:  # noqa: BLE001 (handed to the test thread)
            errors.append(error)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def new_model(registry: RegistryService, name: str, versions: int = 0, **tags: str) -> list[int]:
    run(registry.create_model(name, [{"key": k, "value": v} for k, v in tags.items()], None, "ana"))
    return [new_version(registry, name) for _ in range(versions)]


def new_version(registry: RegistryService, name: str, **tags: str) -> int:
    created = run(
        registry.create_version(
            name, f"s3://bucket/{name}", None, [{"key": k, "value": v} for k, v in tags.items()], None, None, None, "ana"
        )
    )
    return created.version


def history(registry: RegistryService, name: str) -> list[HistoryEvent]:
    """Every event of the model, oldest first."""
    events, more = run(registry.history(name, 1000, None))
    assert more is None
    return list(reversed(events))


def shape(event: HistoryEvent) -> tuple[Any, ...]:
    return (
        event.kind,
        event.alias,
        event.version,
        event.from_version,
        event.to_version,
        event.from_stage,
        event.to_stage,
    )


def model_pk(db: Database, name: str) -> int:
    rm = t.registered_models
    return db.read_now(lambda conn: conn.execute(select(rm.c.model_pk).where(rm.c.name == name)).scalar_one())


def rows_of(db: Database, pk: int) -> dict[str, int]:
    """How many rows each child table holds for the model ``pk``."""

    def count(conn: Any) -> dict[str, int]:
        return {
            table.name: conn.execute(select(func.count()).select_from(table).where(table.c.model_pk == pk)).scalar_one()
            for table in CHILD_TABLES
        }

    return db.read_now(count)


def stored_versions(db: Database, pk: int) -> list[tuple[int, bool]]:
    mv = t.model_versions
    return db.read_now(
        lambda conn: [
            (r.version, bool(r.deleted))
            for r in conn.execute(select(mv.c.version, mv.c.deleted).where(mv.c.model_pk == pk).order_by(mv.c.version))
        ]
    )


# ---------------------------------------------------------------------------- numbering


def test_concurrent_creation_numbers_versions_without_gaps_or_repeats(registry, db):
    new_model(registry, "alpha")
    new_model(registry, "beta")
    per_thread = 6
    created: list[tuple[str, int]] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        async def burst() -> list[tuple[str, int]]:
            # within each thread too, the creations overlap
            names = ["alpha" if (i + n) % 2 else "beta" for n in range(per_thread)]
            versions = await asyncio.gather(
                *(registry.create_version(name, f"s3://b/{i}/{n}", None, [], None, None, None, None) for n, name in enumerate(names))
            )
            return [(v.name, v.version) for v in versions]

        found = asyncio.run(burst())
        with lock:
            created.extend(found)

    in_threads(8, work)

    total = 8 * per_thread
    assert len(created) == total
    for name in ("alpha", "beta"):
        numbers = sorted(v for n, v in created if n == name)
        assert numbers == list(range(1, len(numbers) + 1)), name
        assert stored_versions(db, model_pk(db, name)) == [(v, False) for v in numbers]
        page = run(registry.search_versions(f"name = '{name}'", 1000, [], None))
        assert sorted(v.version for v in page.items) == numbers
        events = [e for e in history(registry, name) if e.kind == "VERSION_CREATED"]
        assert sorted(e.version for e in events) == numbers
    assert len([v for n, v in created if n == "alpha"]) == total // 2


def test_a_deleted_number_is_never_given_again(registry, db):
    assert new_model(registry, "m", 3) == [1, 2, 3]
    run(registry.delete_version("m", 3, None))
    assert new_version(registry, "m") == 4
    run(registry.delete_version("m", 4, None))
    run(registry.delete_version("m", 1, None))

    def work(i: int) -> None:
        run(registry.create_version("m", f"s3://b/{i}", None, [], None, None, None, None))

    in_threads(4, work)
    pk = model_pk(db, "m")
    assert stored_versions(db, pk) == [(1, True), (2, False), (3, True), (4, True), (5, False), (6, False), (7, False), (8, False)]
    live = run(registry.search_versions("name = 'm'", 100, ["version_number ASC"], None)).items
    assert [v.version for v in live] == [2, 5, 6, 7, 8]


# ---------------------------------------------------------------------------- history


def test_history_records_every_alias_move_removal_and_stage_change(registry):
    new_model(registry, "m", 3)
    run(registry.set_alias("m", "champion", "1", "ana"))
    run(registry.set_alias("m", "champion", 1, "bob"))  # no move: no event
    run(registry.set_alias("m", "champion", 2, "bob"))
    run(registry.set_alias("m", "challenger", 3, "bob"))
    run(registry.delete_alias("m", "champion", "cy"))
    run(registry.delete_alias("m", "champion", "cy"))  # nothing left to remove: no event
    run(registry.transition_stage("m", 1, "staging", False, "ana"))
    run(registry.transition_stage("m", 2, "Production", False, "ana"))
    run(registry.transition_stage("m", 1, "PRODUCTION", True, "bob"))  # archives 2
    run(registry.transition_stage("m", 1, "Production", True, "bob"))  # already there: no event
    run(registry.transition_stage("m", 2, "None", False, "cy"))
    run(registry.delete_version("m", 3, "cy"))  # takes 'challenger' with it

    events = history(registry, "m")
    assert [shape(e) for e in events] == [
        ("VERSION_CREATED", None, 1, None, None, None, None),
        ("VERSION_CREATED", None, 2, None, None, None, None),
        ("VERSION_CREATED", None, 3, None, None, None, None),
        ("ALIAS_SET", "champion", None, None, 1, None, None),
        ("ALIAS_SET", "champion", None, 1, 2, None, None),
        ("ALIAS_SET", "challenger", None, None, 3, None, None),
        ("ALIAS_DELETED", "champion", None, 2, None, None, None),
        ("STAGE_CHANGED", None, 1, None, None, "None", "Staging"),
        ("STAGE_CHANGED", None, 2, None, None, "None", "Production"),
        ("STAGE_CHANGED", None, 2, None, None, "Production", "Archived"),
        ("STAGE_CHANGED", None, 1, None, None, "Staging", "Production"),
        ("STAGE_CHANGED", None, 2, None, None, "Archived", "None"),
        ("ALIAS_DELETED", "challenger", None, 3, None, None, None),
        ("VERSION_DELETED", None, 3, None, None, None, None),
    ]
    assert [e.actor for e in events[3:]] == ["ana", "bob", "bob", "cy", "ana", "ana", "bob", "bob", "cy", "cy", "cy"]
    assert all(e.model == "m" for e in events)
    ids = [e.event_id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    timestamps = [e.timestamp for e in events]
    assert timestamps == sorted(timestamps)

    # newest first, and paged back with ``before``
    newest, before = run(registry.history("m", 5, None))
    assert [e.event_id for e in newest] == ids[::-1][:5] and before == newest[-1].event_id
    older, _ = run(registry.history("m", 5, before))
    assert [e.event_id for e in older] == ids[::-1][5:10]

    # the state the history replays to is the state the registry holds
    stages: dict[int, str] = {}
    aliases: dict[str, int] = {}
    for e in events:
        if e.kind == "VERSION_CREATED":
            stages[e.version] = "None"
        elif e.kind == "VERSION_DELETED":
            del stages[e.version]
        elif e.kind == "STAGE_CHANGED":
            assert stages[e.version] == e.from_stage
            stages[e.version] = e.to_stage
        elif e.kind == "ALIAS_SET":
            assert aliases.get(e.alias) == e.from_version
            aliases[e.alias] = e.to_version
        elif e.kind == "ALIAS_DELETED":
            assert aliases.pop(e.alias) == e.from_version
    model = run(registry.get_model("m"))
    assert model.aliases == aliases == {}
    assert {v: run(registry.get_version("m", v)).current_stage for v in stages} == stages == {1: "Production", 2: "None"}


def test_concurrent_alias_moves_and_archiving_transitions_stay_consistent(registry):
    versions = new_model(registry, "m", 8)

    def work(i: int) -> None:
        version = versions[i]
        run(registry.set_alias("m", "champion", version, f"user{i}"))
        run(registry.transition_stage("m", version, "Production", True, f"user{i}"))
        run(registry.set_alias("m", f"own{i}", version, f"user{i}"))

    in_threads(8, work)

    events = history(registry, "m")
    moves = [e for e in events if e.kind == "ALIAS_SET" and e.alias == "champion"]
    assert len(moves) >= 1 and moves[0].from_version is None
    for before, after in zip(moves, moves[1:], strict=False):
        assert after.from_version == before.to_version, "each move starts where the previous one ended"
    model = run(registry.get_model("m"))
    assert model.aliases["champion"] == moves[-1].to_version
    assert {a: v for a, v in model.aliases.items() if a != "champion"} == {f"own{i}": versions[i] for i in range(8)}

    live = run(registry.search_versions("name = 'm'", 100, [], None)).items
    production = [v.version for v in live if v.current_stage == "Production"]
    assert len(production) == 1, f"archive_existing_versions must leave one version in Production, not {production}"
    assert sorted(v.current_stage for v in live) == ["Archived"] * 7 + ["Production"]
    stages = dict.fromkeys(versions, "None")
    for e in events:
        if e.kind == "STAGE_CHANGED":
            assert stages[e.version] == e.from_stage, f"event {e.event_id} starts from a stale stage"
            stages[e.version] = e.to_stage
    assert stages == {v.version: v.current_stage for v in live}


# ---------------------------------------------------------------------------- cascades


def build_model(registry: RegistryService, name: str) -> None:
    new_model(registry, name, 0, team="ds", tier="gold")
    for n in range(3):
        new_version(registry, name, origin=f"v{n}", kind="sk")
    run(registry.set_version_tag(name, 2, "extra", "x"))
    run(registry.set_alias(name, "champion", 2, None))
    run(registry.set_alias(name, "challenger", 3, None))
    run(registry.transition_stage(name, 1, "Production", False, None))
    run(registry.transition_stage(name, 3, "Staging", False, None))


def test_deleting_a_model_leaves_no_orphaned_rows(registry, db):
    build_model(registry, "gone")
    build_model(registry, "kept")
    run(registry.delete_version("gone", 1, None))  # a tombstone goes too
    gone, kept = model_pk(db, "gone"), model_pk(db, "kept")
    before_kept = rows_of(db, kept)
    assert all(before_kept.values())
    assert rows_of(db, gone)["model_versions"] == 3

    run(registry.delete_model("gone"))

    assert rows_of(db, gone) == {table.name: 0 for table in CHILD_TABLES}
    assert rows_of(db, kept) == before_kept
    rm = t.registered_models
    assert db.read_now(lambda conn: conn.execute(select(rm.c.name).order_by(rm.c.name)).scalars().all()) == ["kept"]
    with pytest.raises(NotFound):
        run(registry.get_model("gone"))
    with pytest.raises(NotFound):
        run(registry.get_version("gone", 2))
    with pytest.raises(NotFound):
        run(registry.history("gone", 10, None))
    assert run(registry.search_versions("name = 'gone'", 100, [], None)).items == []
    assert [m.name for m in run(registry.search_models(None, 100, [], None)).items] == ["kept"]

    # the same name starts again from nothing
    assert new_model(registry, "gone", 1) == [1]
    again = run(registry.get_model("gone"))
    assert (again.tags, again.aliases) == ({}, {})
    assert [(v.version, v.current_stage, v.tags, v.aliases) for v in again.latest_versions] == [(1, "None", {}, [])]
    assert [shape(e) for e in history(registry, "gone")] == [("VERSION_CREATED", None, 1, None, None, None, None)]
    with pytest.raises(InvalidParameter, match="alias champion not found"):
        run(registry.version_by_alias("gone", "champion"))
    assert rows_of(db, model_pk(db, "gone")) == {
        "model_versions": 1,
        "registered_model_tags": 0,
        "model_version_tags": 0,
        "registered_model_aliases": 0,
        "model_history": 1,
    }


def test_deleting_a_version_drops_its_tags_and_aliases_and_keeps_a_tombstone(registry, db):
    build_model(registry, "m")
    pk = model_pk(db, "m")
    run(registry.delete_version("m", 2, None))

    mvt, a = t.model_version_tags, t.registered_model_aliases
    tags = db.read_now(lambda conn: conn.execute(select(mvt.c.version, mvt.c.key).where(mvt.c.model_pk == pk)).all())
    assert sorted(tags) == [(1, "kind"), (1, "origin"), (3, "kind"), (3, "origin")]
    aliases = db.read_now(lambda conn: conn.execute(select(a.c.alias, a.c.version).where(a.c.model_pk == pk)).all())
    assert aliases == [("challenger", 3)]
    mv = t.model_versions
    tomb = db.read_now(lambda conn: conn.execute(select(mv).where(mv.c.model_pk == pk, mv.c.version == 2)).one())
    assert tomb.deleted and tomb.source == "REDACTED-SOURCE-PATH" and tomb.run_id is None


# ---------------------------------------------------------------------------- tombstones


def test_tombstoned_versions_are_invisible(registry, db):
    new_model(registry, "m", 4)
    run(registry.create_version("m", "s3://b/run", "r" * 32, [], None, None, None, None))  # version 5
    run(registry.transition_stage("m", 4, "Production", False, None))
    run(registry.transition_stage("m", 2, "Production", False, None))
    run(registry.set_alias("m", "champion", 4, None))
    run(registry.delete_version("m", 4, None))
    run(registry.delete_version("m", 5, None))

    for read in (
        registry.get_version("m", 4),
        registry.update_version("m", 4, "new"),
        registry.set_version_tag("m", 4, "k", "v"),
        registry.delete_version_tag("m", 4, "k"),
        registry.transition_stage("m", 4, "Staging", False, None),
        registry.set_alias("m", "other", 4, None),
        registry.delete_version("m", 4, None),
        registry.download_uri("m", 4),
        registry.resolve_version("m", "version", 4, None, None),
    ):
        with pytest.raises(NotFound, match=r"version=4"):
            run(read)
    with pytest.raises(InvalidParameter, match="alias champion not found"):
        run(registry.version_by_alias("m", "champion"))

    # the newest live version in Production is 2; the newest of all is 3
    assert [v.version for v in run(registry.latest_versions("m", ["Production"]))] == [2]
    assert sorted(v.version for v in run(registry.latest_versions("m", []))) == [2, 3]
    assert run(registry.version_by_alias("m", "latest")).version == 3
    assert run(registry.resolve_version("m", "latest", None, None, None)).version == 3
    assert run(registry.resolve_version("m", "stage", None, "production", None)).version == 2
    model = run(registry.get_model("m"))
    assert sorted(v.version for v in model.latest_versions) == [2, 3]
    assert model.aliases == {}

    everything = run(registry.search_versions(None, 1000, [], None)).items
    assert sorted(v.version for v in everything) == [1, 2, 3]
    for text in ("version_number >= 4", "version_number = 5", f"run_id = '{'r' * 32}'", "source_path LIKE 'REDACTED%'"):
        assert run(registry.search_versions(text, 1000, [], None)).items == [], text
    assert run(registry.store.versions_of_run("r" * 32)) == []
    assert stored_versions(db, model_pk(db, "m")) == [(1, False), (2, False), (3, False), (4, True), (5, True)]

    # with only tombstones left, there is no latest version at all
    for version in (1, 2, 3):
        run(registry.delete_version("m", version, None))
    assert run(registry.latest_versions("m", [])) == []
    with pytest.raises(NotFound, match="Latest version not found"):
        run(registry.version_by_alias("m", "latest"))
    with pytest.raises(NotFound):
        run(registry.resolve_version("m", "latest", None, None, None))
    assert run(registry.get_model("m")).latest_versions == []
    assert new_version(registry, "m") == 6


# ---------------------------------------------------------------------------- rename


def test_rename_moves_everything_and_frees_the_old_name(registry, db):
    build_model(registry, "old")
    pk = model_pk(db, "old")
    before = rows_of(db, pk)
    run(registry.rename_model("old", "new", "ana"))

    assert model_pk(db, "new") == pk
    assert rows_of(db, pk) == {**before, "model_history": before["model_history"] + 1}
    with pytest.raises(NotFound):
        run(registry.get_model("old"))
    with pytest.raises(NotFound):
        run(registry.get_version("old", 1))
    model = run(registry.get_model("new"))
    assert model.tags == {"team": "ds", "tier": "gold"}
    assert model.aliases == {"challenger": 3, "champion": 2}
    assert [(v.name, v.version) for v in run(registry.search_versions("name = 'new'", 10, ["version_number"], None)).items] == [
        ("new", 1),
        ("new", 2),
        ("new", 3),
    ]
    assert history(registry, "new")[-1].kind == "RENAMED"

    # the old name is free again, and taking an existing name is refused
    new_model(registry, "old", 1)
    with pytest.raises(AlreadyExists):
        run(registry.rename_model("new", "old", None))
    assert run(registry.get_model("new")).aliases == {"challenger": 3, "champion": 2}


def test_names_of_any_allowed_length_can_be_renamed(registry):
    long_a, long_b = "a" * 256, "b" * 256
    new_model(registry, long_a, 1)
    run(registry.rename_model(long_a, long_b, None))
    assert run(registry.get_model(long_b)).name == long_b
    event = history(registry, long_b)[-1]
    assert event.kind == "RENAMED" and (event.from_name, event.to_name) == (long_a, long_b)


# ---------------------------------------------------------------------------- tags


def test_deleting_an_absent_tag_is_accepted_as_mlflow_does(registry):
    new_model(registry, "m", 1, team="ds")
    run(registry.set_version_tag("m", 1, "k", "v"))
    run(registry.delete_model_tag("m", "team"))
    run(registry.delete_model_tag("m", "team"))
    run(registry.delete_version_tag("m", 1, "k"))
    run(registry.delete_version_tag("m", 1, "k"))
    assert run(registry.get_model("m")).tags == {}
    assert run(registry.get_version("m", 1)).tags == {}
    with pytest.raises(NotFound):
        run(registry.delete_model_tag("absent", "team"))
    with pytest.raises(NotFound):
        run(registry.delete_version_tag("m", 9, "k"))
