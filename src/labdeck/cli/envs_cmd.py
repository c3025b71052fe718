"""``labdeck envs list|build|dockerfile``: the workspace environments of this installation.

They read the settings (``--config``, ``--data-dir``, ``LABDECK_*``), not a server: ``build``
does on this machine what the hub does on a workspace's first start, so that start is quick;
``dockerfile`` writes what a Kubernetes image of an environment is built from.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import click

from labdeck.cli.options import load_settings, where_options
from labdeck.config import EnvironmentSettings, Settings
from labdeck.errors import LabdeckError
from labdeck.workspaces.environments import ENVKIT_DIR, BuildState, EnvironmentBuilder, dockerfile, find


def _environment(settings: Settings, name: str) -> EnvironmentSettings:
    try:
        return find(settings.workspaces, name)
    except LabdeckError as exc:
        raise click.ClickException(exc.message) from None


@click.group()
def envs() -> None:
    """Workspace environments: list them, build them, write their Dockerfiles."""


@envs.command("list")
@where_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """The environments in the settings, and whether each is built on this machine."""
    settings = load_settings(config_file, data_dir)
    builder = EnvironmentBuilder.from_settings(settings)
    rows = []
    for env in settings.workspaces.environments:
        status = builder.status(env)
        rows.append(
            {
                "name": env.name,
                "description": env.description,
                "state": str(status.state),
                "path": str(builder.path(env.name)),
                "built_at": status.built_at,
                "message": status.message,
                "spark": env.spark,
                "teams": env.teams,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = [("NAME", "STATE", "PATH", "DESCRIPTION")]
    table += [(row["name"], row["state"], row["path"], row["description"]) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(3)]
    for line in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[3])


@envs.command("build")
@where_options
@click.argument("names", nargs=-1)
@click.option("--all", "build_all", is_flag=True, help="Build every environment in the settings.")
def build(config_file: Path | None, data_dir: Path | None, names: tuple[str, ...], build_all: bool) -> None:
    """Build environments NAMES (or --all) now, printing uv's output; built ones are reused."""
    if bool(names) == build_all:
        raise click.UsageError("name the environments to build, or give --all (not both)")
    settings = load_settings(config_file, data_dir)
    environments = settings.workspaces.environments if build_all else [_environment(settings, n) for n in names]
    builder = EnvironmentBuilder.from_settings(settings)
    failed = []
    for env in environments:
        if builder.status(env).state is BuildState.BUILT:
            click.echo(f"{env.name}: already built at {builder.path(env.name)}")
            continue
        started = time.monotonic()
        try:
            built = builder.build(env, on_line=click.echo)
        except LabdeckError as exc:
            click.echo(f"error: {exc.message}", err=True)
            failed.append(env.name)
            continue
        click.echo(f"{env.name}: built at {built.path} in {time.monotonic() - started:.1f} s")
    if failed:
        raise click.ClickException(f"failed to build: {', '.join(failed)}")


@envs.command("dockerfile")
@where_options
@click.argument("name")
@click.option(
    "--context",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the Dockerfile and what it copies (envkit/, the lock file) into this folder.",
)
def dockerfile_(config_file: Path | None, data_dir: Path | None, name: str, context: Path | None) -> None:
    """Print the Dockerfile of environment NAME's workspace image."""
    settings = load_settings(config_file, data_dir)
    env = _environment(settings, name)
    try:
        text = dockerfile(env)
    except LabdeckError as exc:
        raise click.ClickException(exc.message) from None
    if context is None:
        click.echo(text, nl=False)
        return
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(text)
    shutil.rmtree(context / "envkit", ignore_errors=True)
    shutil.copytree(ENVKIT_DIR, context / "envkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if env.lock_file:
        lock_file = env.lock_file.expanduser()
        if not lock_file.is_file():
            raise click.ClickException(f"the lock file of environment {name!r}, {lock_file}, does not exist")
        shutil.copyfile(lock_file, context / "requirements.txt")
    if env.image:
        click.echo(f"wrote {context / 'Dockerfile'}; build the image with: docker build -t {env.image} {context}")
    else:
        click.echo(
            f"wrote {context / 'Dockerfile'}; build the image with: docker build -t IMAGE {context}\n"
            f'then set image = "IMAGE" in the [[workspaces.environments]] table of {name!r} (for Kubernetes)'
        )
