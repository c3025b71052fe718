"""The ``labdeck`` command: one click group; each subcommand lives in its own module.

Subcommands are imported when they run, not before: ``labdeck serve`` runs in every model
server process, and must not carry the server's web framework, database layer and
identity code in its memory.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from labdeck import __version__

# name -> "module:attribute", in the order `labdeck --help` lists them
COMMANDS = {
    "up": "labdeck.cli.server_cmd:up",
    "server": "labdeck.cli.server_cmd:server",
    "config": "labdeck.cli.config_cmd:config",
    "db": "labdeck.cli.db_cmd:db",
    "models": "labdeck.cli.models_cmd:models",
    "serve": "labdeck.cli.serve_cmd:serve",
    "deploy": "labdeck.cli.deploy_cmd:deploy",
    "deployments": "labdeck.cli.deploy_cmd:deployments",
    "k8s": "labdeck.cli.k8s_cmd:k8s",
    "workspaces": "labdeck.cli.workspaces_cmd:workspaces",
    "envs": "labdeck.cli.envs_cmd:envs",
    "users": "labdeck.cli.identity_cmd:users",
    "teams": "labdeck.cli.identity_cmd:teams",
    "tokens": "labdeck.cli.identity_cmd:tokens",
    "grant": "labdeck.cli.identity_cmd:grant",
    "revoke": "labdeck.cli.identity_cmd:revoke",
    "login": "labdeck.cli.identity_cmd:login",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> Any:
        where = COMMANDS.get(name)
        if where is None:
            return None
        module, attribute = where.split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="labdeck")
def cli() -> None:
    """labdeck: workspaces, experiment tracking, a model registry and model deployments for a team."""


def main() -> None:
    cli()
