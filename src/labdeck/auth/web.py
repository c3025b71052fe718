"""Browser sign-in: the login form (password accounts), single sign-on through OpenID
Connect, and logout. A successful login sets two cookies: ``labdeck_session`` (signed,
HttpOnly, SameSite=Lax, Secure over HTTPS) and ``labdeck_csrf``, the token pages send back
in ``X-CSRF-Token`` with every change they make."""

from __future__ import annotations

import html
import json
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from labdeck.auth import credentials
from labdeck.auth.entities import User
from labdeck.auth.middleware import SESSION_COOKIE
from labdeck.auth.needs import Public, needs
from labdeck.auth.oidc import OidcClient, Pending
from labdeck.auth.service import AuthService
from labdeck.config import AuthSettings, Settings
from labdeck.errors import LabdeckError
from labdeck.wire.errors import http_status, labdeck_body

CSRF_COOKIE = "labdeck_csrf"
PENDING_COOKIE = "labdeck_oidc"
PENDING_MAX_AGE_S = 600


def session_key(settings: Settings) -> bytes:
    """The key session cookies are signed with: the setting, else a file made once."""
    if settings.auth.session_secret:
        return settings.auth.session_secret.encode()
    path = Path(settings.data_dir) / "session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def _safe_next(value: str | None) -> str:
    """Only paths on this site: never redirect a login somewhere else. Control characters
    are refused too: browsers drop tabs and newlines from URLs, so ``/<tab>/evil`` would be
    ``//evil``."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        return "/"
    return value


def _base_url(request: Request, settings: AuthSettings) -> str:
    return (settings.public_url or str(request.base_url)).rstrip("/")


def _secure(request: Request, settings: AuthSettings) -> bool:
    return _base_url(request, settings).startswith("https://")


def _set_login_cookies(response: Response, cookie: str, csrf: str, request: Request, settings: AuthSettings) -> None:
    age = int(settings.session_hours * 3600)
    secure = _secure(request, settings)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=age, httponly=True, samesite="lax", secure=secure, path="/")
    response.set_cookie(CSRF_COOKIE, csrf, max_age=age, httponly=False, samesite="lax", secure=secure, path="/")


def _error(error: LabdeckError) -> Response:
    return JSONResponse(labdeck_body(error), status_code=http_status(error))


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · labdeck</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>body{{font-family:system-ui,sans-serif;display:grid;place-items:center;min-height:90vh;background:#f6f7f9}}
form{{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002;display:grid;gap:.8rem;min-width:18rem}}
.error{{color:#b00020}} button,a.sso{{padding:.5rem;font-size:1rem}}</style></head>
<body><form method="post" action="/auth/login">
<h1>labdeck</h1>{error}
<input type="hidden" name="next" value="{next}">
<label>Username <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>{sso}
</form></body></html>"""


def routes(auth: AuthService, settings: AuthSettings) -> list[tuple[str, Any, list[str]]]:
    oidc = OidcClient(settings.oidc) if settings.mode == "oidc" else None

    async def finish_login(request: Request, user: User, cookie: str, next_url: str, as_json: bool) -> Response:
        principal = await auth.from_session(cookie)
        csrf = principal.csrf_token if principal else ""
        if as_json:
            response: Response = JSONResponse({"username": user.username, "csrf_token": csrf})
        else:
            response = RedirectResponse(next_url, status_code=303)
        _set_login_cookies(response, cookie, csrf or "", request, settings)
        return response

    @needs(Public())
    async def login_page(request: Request) -> Response:
        next_url = _safe_next(request.query_params.get("next"))
        if settings.mode == "oidc" and request.query_params.get("local") != "1":
            return RedirectResponse(f"/auth/oidc/login?next={quote(next_url)}", status_code=302)
        error = request.query_params.get("error")
        sso = f'<a class="sso" href="/auth/oidc/login?next={quote(next_url)}">Sign in with single sign-on</a>' if oidc else ""
        page = _LOGIN_PAGE.format(
            error=f'<p class="error">{html.escape(error)}</p>' if error else "",
            next=html.escape(next_url),
            sso=sso,
        )
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @needs(Public())
    async def login(request: Request) -> Response:
        as_json = request.headers.get("content-type", "").startswith("application/json")
        try:
            if as_json:
                body = json.loads(await request.body() or b"{}")
                fields = body if isinstance(body, dict) else {}
            else:
                fields = dict(await request.form())
        except (ValueError, UnicodeDecodeError):
            fields = {}
        username, password = str(fields.get("username") or ""), str(fields.get("password") or "")
        next_url = _safe_next(str(fields.get("next") or "/"))
        address = request.client.host if request.client else "unknown"
        try:
            if not username or not password:
                from labdeck.errors import InvalidParameter

                raise InvalidParameter("Give a username and a password.")
            cookie, user = await auth.login(username, password, address)
        except LabdeckError as error:
            if as_json:
                return _error(error)
            return RedirectResponse(f"/auth/login?error={quote(error.message)}&next={quote(next_url)}", status_code=303)
        return await finish_login(request, user, cookie, next_url, as_json)

    @needs(Public())
    async def logout(request: Request) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            await auth.logout(cookie)
        # With single sign-on, /auth/login goes straight to the provider, whose own session
        # would sign the browser right back in: land on the page that offers both instead.
        target = "/auth/login?local=1" if settings.mode == "oidc" else "/auth/login"
        response: Response = RedirectResponse(target, status_code=303)
        if request.headers.get("accept", "").startswith("application/json"):
            response = JSONResponse({"next": target})  # where a page should go now
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return response

    @needs(Public())
    async def oidc_login(request: Request) -> Response:
        if oidc is None:
            return _error(_not_configured())
        redirect_uri = f"{_base_url(request, settings)}/auth/oidc/callback"
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                url, pending = await oidc.begin(http, redirect_uri, _safe_next(request.query_params.get("next")))
        except LabdeckError as error:
            return _error(error)
        response = RedirectResponse(url, status_code=302)
        value = credentials.sign(json.dumps([pending.state, pending.nonce, pending.verifier, pending.next_url]), auth.session_key)
        response.set_cookie(
            PENDING_COOKIE, value, max_age=PENDING_MAX_AGE_S, httponly=True, samesite="lax",
            secure=_secure(request, settings), path="/auth/oidc",
        )
        return response

    @needs(Public())
    async def oidc_callback(request: Request) -> Response:
        if oidc is None:
            return _error(_not_configured())
        raw = credentials.unsign(request.cookies.get(PENDING_COOKIE, ""), auth.session_key)
        try:
            if raw is None:
                from labdeck.errors import PermissionDenied

                raise PermissionDenied("Sign-on failed: no login was started from this browser (or it expired); start again.")
            pending = Pending(*json.loads(raw))
            redirect_uri = f"{_base_url(request, settings)}/auth/oidc/callback"
            async with httpx.AsyncClient(timeout=10) as http:
                identity = await oidc.finish(http, pending, dict(request.query_params), redirect_uri)
            user = await auth.oidc_user(identity.subject, identity.username, identity.email, identity.name)
            cookie = await auth.start_session(user)
        except LabdeckError as error:
            return _error(error)
        response = await finish_login(request, user, cookie, pending.next_url, as_json=False)
        response.delete_cookie(PENDING_COOKIE, path="/auth/oidc")
        return response

    return [
        ("/auth/login", login_page, ["GET"]),
        ("/auth/login", login, ["POST"]),
        ("/auth/logout", logout, ["POST"]),
        ("/auth/oidc/login", oidc_login, ["GET"]),
        ("/auth/oidc/callback", oidc_callback, ["GET"]),
    ]


def _not_configured() -> LabdeckError:
    from labdeck.errors import NotFound

    return NotFound("Single sign-on is not configured on this server (auth.mode is not oidc).")
