"""``labdeck config show``: the effective settings and where each knob is documented."""

from __future__ import annotations

from typing import Any

import click

from labdeck.cli.options import load_settings, settings_options


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
        click.echo(settings.model_dump_json(indent=2))
        return
    for name, value, description in settings.described():
        click.echo(f"{name} = {value!r}")
        click.echo(f"    {description}")
