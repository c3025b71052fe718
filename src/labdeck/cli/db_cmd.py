"""``labdeck db upgrade`` and ``labdeck db current``: the database schema, by hand or from
the cluster's migration Job.

``upgrade`` applies every Alembic migration the database lacks (what the server does on
start unless ``database.migrate_on_start`` is off, ``--no-migrate``); ``current`` prints the
revision the database is at and the one this version of labdeck needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from labdeck.cli.options import load_settings, settings_options


@click.group()
def db() -> None:
    """The metadata database's schema."""


@contextlib.contextmanager
def _database(flags: dict[str, Any], doing: str) -> Iterator[Any]:
    """An engine on the configured database; its errors end the command saying what failed."""
    from sqlalchemy.exc import SQLAlchemyError

    from labdeck.db.engine import make_engine

    settings = load_settings(**flags)
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # the embedded SQLite file lives there
    engine = make_engine(settings.database_url, 1)
    try:
        yield engine
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot {doing} the database: {exc.__class__.__name__}: {exc.orig or exc}") from None
    finally:
        engine.dispose()


@db.command("upgrade")
@settings_options
def upgrade(**flags: Any) -> None:
    """Upgrade the schema to the newest migration (safe to run again)."""
    from labdeck.db.migrate import current_revision
    from labdeck.db.migrate import upgrade as upgrade_to

    with _database(flags, "upgrade") as engine:
        before = current_revision(engine)
        upgrade_to(engine)
        after = current_revision(engine)
    if before == after:
        click.echo(f"the database is at {after}, the newest revision: nothing to do")
    else:
        click.echo(f"upgraded the database from {before or '(empty)'} to {after}")


@db.command("current")
@settings_options
def current(**flags: Any) -> None:
    """Print the database's schema revision and the one this labdeck needs."""
    from labdeck.db.migrate import current_revision, head_revision

    with _database(flags, "read") as engine:
        found = current_revision(engine)
        head = head_revision(engine)
    click.echo(f"current: {found or '(empty)'}")
    click.echo(f"needed:  {head}" + ("" if found == head else "  (run `labdeck db upgrade`)"))
