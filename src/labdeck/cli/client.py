"""How client-side commands reach a labdeck server: ``--url`` / ``LABDECK_URL`` (default
http://127.0.0.1:8080) and ``--token`` / ``LABDECK_TOKEN``, shared by every such command;
without a token, the one ``labdeck login`` kept for that server is used."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx

DEFAULT_URL = "http://127.0.0.1:8080"


def client_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)
    fn = click.option("--token", envvar="LABDECK_TOKEN", help="API token [env: LABDECK_TOKEN].")(fn)
    fn = click.option("--url", envvar="LABDECK_URL", default=DEFAULT_URL, show_default=True, help="labdeck server [env: LABDECK_URL].")(fn)
    return fn


def credentials_file() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "labdeck" / "credentials.json"


def saved_token(url: str) -> str | None:
    try:
        return json.loads(credentials_file().read_text()).get(url.rstrip("/"))
    except (OSError, ValueError):
        return None


def save_token(url: str, token: str) -> Path:
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    saved[url.rstrip("/")] = token
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # the mode above applies only to a new file: tighten an old one too
    with os.fdopen(fd, "w") as f:
        json.dump(saved, f, indent=2)
    return path


class ServerClient:
    def __init__(self, url: str, token: str | None, *, basic: tuple[str, str] | None = None):
        self.url = url.rstrip("/")
        token = token or (None if basic else saved_token(self.url))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, auth=basic, timeout=60)
        self._last_status = 0

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise click.ClickException(f"cannot reach labdeck at {self.url}: {exc}") from None
        self._last_status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            if not isinstance(body, dict):
                body = {}
            raise click.ClickException(f"{body.get('error_code', response.status_code)}: {body.get('message', response.text)}")
        if not isinstance(body, dict):
            raise click.ClickException(f"unexpected answer from {self.url}{path}: {response.text[:200]}")
        return body

    def find(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        """Like ``call``, but None when the server says there is no such thing (404)."""
        try:
            return self.call(method, path, **kwargs)
        except click.ClickException:
            if self._last_status == 404:
                return None
            raise

    def mlflow(self, method: str, rpc: str, **kwargs: Any) -> dict[str, Any]:
        return self.call(method, f"/api/2.0/mlflow/{rpc}", **kwargs)


def emit(data: Any, as_json: bool, rows: list[list[Any]], headers: list[str]) -> None:
    """Print ``data`` as JSON, or ``rows`` as an aligned table."""
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if not rows:
        click.echo("(none)")
        return
    table = [headers, *[["" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
