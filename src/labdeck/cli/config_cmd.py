"""``labdeck config show``: the effective settings and where each knob is documented."""

from __future__ import annotations

import json
from typing import Any

import click

from labdeck.cli.options import load_settings, settings_options
from labdeck.config import redacted_dump


@click.group()
def config() -> None:
    """Inspect labdeck's settings."""


@config.command("show")
@settings_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def show(as_json: bool, **flags: Any) -> None:
    """Print the effective settings (flag > LABDECK_* env > --config file > default)."""
    settings = load_settings(**flags)
    if as_json:
        click.echo(json.dumps(redacted_dump(settings), indent=2))
        return
    for name, value, description in settings.described():
        click.echo(f"{name} = {_shown(value)}")
        click.echo(f"    {description}")


def _shown(value: Any) -> str:
    """TOML-like: strings and paths quoted, None as unset."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))
