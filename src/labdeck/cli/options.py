"""Flags shared by subcommands, so that every command spells them the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from labdeck.config import Settings


_WHERE = [
    click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help="TOML settings file."),
    click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data folder [default: ~/.labdeck]."),
]
_SERVER = [
    click.option("--host", help="Address to listen on [default: 127.0.0.1]."),
    click.option("--port", type=int, help="Port to listen on; 0 picks a free one [default: 8080]."),
    click.option("--database-url", help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db [default: SQLite in the data folder]."),
    click.option("--artifacts-uri", help="Folder or s3://bucket/prefix for artifacts [default: <data-dir>/artifacts]."),
    click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)),
    click.option(
        "--auth",
        "auth_mode",
        type=click.Choice(["none", "password", "oidc"]),
        help="none: single user, loopback only [default]; password: local accounts; oidc: single sign-on.",
    ),
]


def _apply(options: list[Callable[..., Any]], fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(options):
        fn = option(fn)
    return fn


def settings_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--config, --data-dir, --host, --port, --database-url, --artifacts-uri, --log-level, --auth."""
    return _apply(_WHERE + _SERVER, fn)


def where_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--config and --data-dir: for commands that work on this machine's installation."""
    return _apply(_WHERE, fn)


def load_settings(
    config_file: Path | None = None,
    data_dir: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    database_url: str | None = None,
    artifacts_uri: str | None = None,
    log_level: str | None = None,
    auth_mode: str | None = None,
) -> Settings:
    try:
        return Settings.load(
            config_file,
            data_dir=data_dir,
            server={"host": host, "port": port},
            database={"url": database_url},
            artifacts={"uri": artifacts_uri},
            logging={"level": log_level},
            auth={"mode": auth_mode},
        )
    except ValidationError as exc:
        # Each problem with its field, never the value given: it may be a secret.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False))
        raise click.UsageError(f"invalid settings: {problems}") from None
    except FileNotFoundError as exc:
        raise click.UsageError(f"invalid settings: {exc}") from None
