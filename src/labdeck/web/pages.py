"""The UI's routes: one HTML shell per page under ``/ui/``, and the static assets.

A shell is a few hundred bytes: the navigation, a ``<main>`` carrying the page's arguments
as data attributes, and the page's ES module, which fetches what it shows from the JSON APIs.
Assets are served under a path holding a fingerprint of their contents, so browsers may cache
them for a year and still never run a stale script after an upgrade; they are gzipped once,
in memory, on first use.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from labdeck import __version__
from labdeck.auth.middleware import PRINCIPAL
from labdeck.auth.needs import Public, needs
from labdeck.config import AuthSettings

STATIC_DIR = Path(__file__).with_name("static")


@dataclass(frozen=True)
class Page:
    """A page: its URL pattern, the module that draws it and the title before data loads."""

    path: str
    module: str
    title: str
    admin_only: bool = False


PAGES = [
    Page("/ui/", "home", "Home"),
    Page("/ui/experiments", "experiments", "Experiments"),
    Page("/ui/experiments/{experiment_id}", "experiment", "Experiment"),
    Page("/ui/runs/{run_id}", "run", "Run"),
    Page("/ui/compare", "compare", "Compare runs"),
    Page("/ui/models", "models", "Models"),
    Page("/ui/models/{name:path}", "model", "Model"),
    Page("/ui/deployments", "deployments", "Deployments"),
    Page("/ui/deployments/{name}", "deployment", "Deployment"),
    Page("/ui/workspaces", "workspaces", "Workspaces"),
    Page("/ui/admin", "admin", "Administration", admin_only=True),
]

NAVIGATION = [
    ("/ui/", "Home"),
    ("/ui/experiments", "Experiments"),
    ("/ui/models", "Models"),
    ("/ui/deployments", "Deployments"),
    ("/ui/workspaces", "Workspaces"),
]


CURRENT = ' aria-current="page"'


class StaticAssets:
    """The files under ``static/``, read and gzipped once each."""

    def __init__(self) -> None:
        digest = hashlib.sha256(__version__.encode())
        for path in sorted(STATIC_DIR.rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(STATIC_DIR)).encode())
                digest.update(path.read_bytes())
        self.fingerprint = digest.hexdigest()[:12]
        self.prefix = f"/ui/static/{self.fingerprint}/"
        self._cache: dict[str, tuple[bytes, bytes, str]] = {}

    def _file(self, name: str) -> Path | None:
        path = (STATIC_DIR / name).resolve()
        if not path.is_relative_to(STATIC_DIR.resolve()) or not path.is_file():
            return None
        return path

    def load(self, name: str) -> tuple[bytes, bytes, str] | None:
        if name not in self._cache:
            path = self._file(name)
            if path is None:
                return None
            body = path.read_bytes()
            media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if path.suffix in (".js", ".mjs"):
                media_type = "text/javascript"
            self._cache[name] = (body, gzip.compress(body, 6), media_type)
        return self._cache[name]


def _shell(page: Page, assets: StaticAssets, request: Request, principal: Any, settings: AuthSettings) -> str:
    args = {key: str(value) for key, value in request.path_params.items()}
    links = NAVIGATION + ([("/ui/admin", "Admin")] if principal.is_admin else [])
    nav = "".join(
        f'<a href="{href}"{CURRENT if _is_current(href, request.url.path) else ""}>{label}</a>' for href, label in links
    )
    signed_in = settings.mode != "none"
    sign_out = (
        '<button type="button" id="sign-out" class="link">Sign out</button>' if signed_in else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(page.title)} · labdeck</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{assets.prefix}app.css">
<script type="module" src="{assets.prefix}pages/{page.module}.js"></script>
</head><body>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><a class="brand" href="/ui/">labdeck</a>
<nav aria-label="Main">{nav}</nav>
<span class="who">{html.escape(principal.username)}{sign_out}</span></header>
<main id="main" tabindex="-1" data-page="{page.module}" data-args="{html.escape(json.dumps(args))}"
 data-static="{assets.prefix}" data-user="{html.escape(principal.username)}"
 data-admin="{str(principal.is_admin).lower()}" data-auth="{html.escape(settings.mode)}">
<p class="loading" role="status">Loading…</p></main>
</body></html>"""


def _is_current(href: str, path: str) -> bool:
    return path == href if href == "/ui/" else path.startswith(href)


def routes(settings: AuthSettings) -> list[tuple[str, Any, list[str]]]:
    """The UI's routes, each declaring its access rule like every other route.

    Shells are ``Public`` so that a browser without a session is sent to the sign-in page
    instead of getting a JSON 401; they show nothing but the navigation, and every piece of
    data on them comes through the APIs, which check the caller."""
    assets = StaticAssets()

    def page_endpoint(page: Page) -> Any:
        @needs(Public())
        async def show(request: Request) -> Response:
            principal = request.scope.get(PRINCIPAL)
            if principal is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/auth/login?next={quote(target)}", status_code=303)
            if page.admin_only and not principal.is_admin:
                return HTMLResponse(_forbidden(principal.username), status_code=403)
            body = _shell(page, assets, request, principal, settings)
            return HTMLResponse(body, headers={"Cache-Control": "no-store", **SECURITY_HEADERS})

        show.__name__ = f"page_{page.module}"
        return show

    @needs(Public())
    async def root(_request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=307)

    @needs(Public())
    async def static(request: Request) -> Response:
        if request.path_params["fingerprint"] != assets.fingerprint:
            return Response("Not found: this asset belongs to another labdeck version.", 404, media_type="text/plain")
        found = assets.load(request.path_params["name"])
        if found is None:
            return Response("Not found.", 404, media_type="text/plain")
        body, zipped, media_type = found
        headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(zipped, headers=headers, media_type=media_type)
        return Response(body, headers=headers, media_type=media_type)

    table: list[tuple[str, Any, list[str]]] = [("/", root, ["GET"]), ("/ui", root, ["GET"])]
    table += [(page.path, page_endpoint(page), ["GET"]) for page in PAGES]
    table.append(("/ui/static/{fingerprint}/{name:path}", static, ["GET"]))
    return table


# The shells run only our own modules; nothing inline, no third-party origins.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _forbidden(username: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not allowed · labdeck</title></head>'
        f"<body><main><h1>Not allowed</h1><p>{html.escape(username)} is not an administrator."
        ' <a href="/ui/">Home</a></p></main></body></html>'
    )
