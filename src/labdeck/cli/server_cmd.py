"""``labdeck server`` and ``labdeck up``: run the platform's HTTP server.

``up`` is the README's one command: the embedded default (SQLite and a local folder under
``~/.labdeck``) on http://127.0.0.1:8080. ``server`` is the same process with every knob
open, for team and cluster installs.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import click
import uvicorn

from labdeck.app import create_app
from labdeck.cli.options import load_settings, settings_options
from labdeck.config import Settings
from labdeck.logs import configure


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says TCP; without it each keep-alive response waits ~40 ms (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` reaches this machine only: ``localhost`` or a loopback
    address (not any name that merely starts like one, e.g. ``127.example.com``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_open_single_user(settings: Settings) -> None:
    """Without sign-in anyone who reaches the port is the owner: only loopback is allowed."""
    host = settings.server.host
    if settings.auth.mode == "none" and not is_loopback(host):
        raise click.UsageError(
            f"labdeck runs without sign-in (auth mode 'none'), so it only listens on loopback, not on {host}. "
            "Turn sign-in on to serve a team: --auth password (and create the first admin with "
            "`labdeck users create NAME --admin --direct`), or --auth oidc with your provider's settings."
        )


def run(settings: Settings, banner: bool) -> None:
    refuse_open_single_user(settings)
    configure(settings.logging.level, settings.logging.format, settings.logging.access_log)
    sock = bind(settings.server.host, settings.server.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    click.echo(f"labdeck is listening at {url}", err=True)
    if banner:
        click.echo(
            f"  web UI: {url}/ui/\n  data folder: {settings.data_dir}\n  MLflow clients: export MLFLOW_TRACKING_URI={url}",
            err=True,
        )
    config = uvicorn.Config(
        create_app(settings),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=settings.logging.access_log,
        timeout_keep_alive=30,
        proxy_headers=settings.server.proxy_headers,
        forwarded_allow_ips=settings.server.forwarded_allow_ips,
    )
    uvicorn.Server(config).run(sockets=[sock])


@click.command()
@settings_options
@click.option(
    "--no-migrate",
    is_flag=True,
    help="Do not upgrade the database schema on start (a migration Job runs `labdeck db upgrade`); wait for it instead.",
)
def server(no_migrate: bool, **flags: Any) -> None:
    """Run the labdeck server."""
    settings = load_settings(**flags)
    if no_migrate:
        settings.database.migrate_on_start = False
    run(settings, banner=False)


@click.command()
@settings_options
def up(**flags: Any) -> None:
    """Start the whole platform on the embedded default (SQLite + a local folder)."""
    run(load_settings(**flags), banner=True)
