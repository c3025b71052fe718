"""``labdeck db current`` / ``labdeck db upgrade`` on a real SQLite file, and a server told
not to migrate (``database.migrate_on_start`` off, as the cluster renders it) refusing an
old schema with the command that fixes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from labdeck.app import wait_for_schema
from labdeck.cli import cli
from labdeck.db import Database
from labdeck.db.migrate import head_revision


def test_current_then_upgrade_then_nothing_to_do(tmp_path: Path) -> None:
    runner = CliRunner()
    where = ["--data-dir", str(tmp_path / "data")]
    before = runner.invoke(cli, ["db", "current", *where])
    assert before.exit_code == 0, before.output
    assert "current: (empty)" in before.output and "run `labdeck db upgrade`" in before.output

    upgraded = runner.invoke(cli, ["db", "upgrade", *where])
    assert upgraded.exit_code == 0, upgraded.output
    db = Database(f"sqlite:///{tmp_path / 'data' / 'labdeck.db'}")
    head = head_revision(db.engine)
    assert f"upgraded the database from (empty) to {head}" in upgraded.output

    after = runner.invoke(cli, ["db", "current", *where])
    assert f"current: {head}" in after.output and "run `labdeck db upgrade`" not in after.output
    again = runner.invoke(cli, ["db", "upgrade", *where])
    assert again.exit_code == 0 and "nothing to do" in again.output
    wait_for_schema(db, 0)  # current: the server goes on at once
    db.close()


def test_a_server_that_does_not_migrate_refuses_an_old_schema(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'labdeck.db'}")
    with pytest.raises(RuntimeError, match="run `labdeck db upgrade`"):
        wait_for_schema(db, 0)
    db.close()


def test_an_unreachable_database_is_said_plainly() -> None:
    result = CliRunner().invoke(cli, ["db", "current", "--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none"])
    assert result.exit_code == 1 and "cannot read the database: OperationalError" in result.output
