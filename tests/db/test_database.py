"""The database runner: SQLite's single writer with group commit keeps each operation
atomic on its own, and many threads writing at once never see "database is locked"."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, insert, select

from labdeck.db import Database
from labdeck.tracking.tables import experiments


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'w.db'}", group_commit_max=64)
    database.migrate()
    database.start()
    yield database
    database.close()


def _insert(name):
    def work(conn):
        conn.execute(
            insert(experiments).values(
                name=name, artifact_location="x", lifecycle_stage="active", creation_time=1, last_update_time=1
            )
        )
        return name

    return work


def _fail_after_insert(name):
    def work(conn):
        _insert(name)(conn)
        raise ValueError(f"refused {name}")

    return work


def test_a_failing_write_in_a_group_rolls_back_alone(db):
    futures = []
    for i in range(200):
        work = _fail_after_insert(f"bad-{i}") if i % 3 == 0 else _insert(f"good-{i}")
        futures.append((i, db.submit_write(work)))
    for i, future in futures:
        if i % 3 == 0:
            with pytest.raises(ValueError, match=f"refused bad-{i}"):
                future.result()
        else:
            assert future.result() == f"good-{i}"
    names = set(db.read_now(lambda conn: conn.execute(select(experiments.c.name)).scalars().all()))
    assert {n for n in names if n.startswith("bad")} == set()
    assert len([n for n in names if n.startswith("good")]) == len([i for i in range(200) if i % 3])


def test_sixteen_threads_write_without_lock_errors(db):
    errors: list[BaseException] = []

    def writer(thread: int) -> None:
        try:
            for i in range(100):
                db.write_now(_insert(f"t{thread}-{i}"))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    count = db.read_now(lambda conn: conn.execute(select(func.count()).select_from(experiments)).scalar_one())
    assert count == 1 + 16 * 100
