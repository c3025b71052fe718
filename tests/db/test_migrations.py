"""Migrations create exactly the schema the code declares, on SQLite and PostgreSQL, and
upgrading twice changes nothing."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

import labdeck.auth.tables
import labdeck.compute.tables
import labdeck.deployments.tables
import labdeck.registry.tables
import labdeck.tracking.tables
import labdeck.workspaces.tables  # noqa: F401  (registers every area's tables on the metadata)
from labdeck.db import Database
from labdeck.db.metadata import metadata
from labdeck.db.migrate import current_revision, head_revision
from labdeck.tracking.tables import experiments


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'm.db'}"
    db = Database(url)
    yield db
    db.close()


def test_upgrade_from_empty_matches_the_declared_tables(database):
    assert current_revision(database.engine) is None
    database.migrate()
    assert current_revision(database.engine) == head_revision(database.engine)
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_upgrade_is_idempotent_and_keeps_data(database):
    database.migrate()
    database.start()
    database.write_now(lambda conn: conn.execute(experiments.update().values(name="Renamed default")))
    database.migrate()
    names = database.read_now(lambda conn: conn.execute(select(experiments.c.name)).scalars().all())
    assert names == ["Renamed default"]
    assert "runs" in inspect(database.engine).get_table_names()


def test_default_experiment_is_created(database):
    database.migrate()
    row = database.read_now(lambda conn: conn.execute(select(experiments)).one())
    assert (row.experiment_id, row.name, row.artifact_location, row.lifecycle_stage) == (
        0,
        "Default",
        "mlflow-artifacts:/0",
        "active",
    )
