"""The ``labdeck`` command: one click group; each subcommand lives in its own module."""

from __future__ import annotations

import click

from labdeck import __version__
from labdeck.cli.config_cmd import config
from labdeck.cli.deploy_cmd import deploy, deployments
from labdeck.cli.identity_cmd import grant, login, revoke, teams, tokens, users
from labdeck.cli.k8s_cmd import k8s
from labdeck.cli.models_cmd import models
from labdeck.cli.serve_cmd import serve
from labdeck.cli.server_cmd import server, up


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="labdeck")
def cli() -> None:
    """labdeck: workspaces, experiment tracking, a model registry and model deployments for a team."""


cli.add_command(up)
cli.add_command(server)
cli.add_command(config)
cli.add_command(models)
cli.add_command(serve)
cli.add_command(deploy)
cli.add_command(deployments)
cli.add_command(k8s)
for command in (users, teams, tokens, grant, revoke, login):
    cli.add_command(command)


def main() -> None:
    cli()
