"""The one place a request's credentials become a principal (pure ASGI, no buffering).

In order: ``Authorization: Bearer <token>``, ``Authorization: Basic`` (the password may be
a token, as the mlflow client sends ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``), then the
session cookie. A cookie-authenticated request that changes state must carry the
session's CSRF token in ``X-CSRF-Token`` (or the ``csrf_token`` form field of the UI's own
forms, checked by those routes); without it the request has no principal and a reason.
In single-user mode everyone is the local user.

Under ``/user/`` (the notebook proxy, HTTP and WebSocket) a session cookie stands without
labdeck's CSRF token: JupyterLab's pages send Jupyter's own (``_xsrf``), and Jupyter checks
it, because the proxy says the request came with a cookie. How the credentials came is
recorded for that in ``scope["labdeck.credential"]``: ``token`` (Authorization: Bearer or
Basic) or ``cookie`` (in single-user mode, under ``/user/``: ``token`` only when an
Authorization header came).

The principal goes in ``scope["labdeck.principal"]``; routes decide what they need.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from http.cookies import CookieError, SimpleCookie

from labdeck.auth.entities import Principal
from labdeck.auth.guard import AUTH_PROBLEM, PRINCIPAL
from labdeck.auth.service import AuthService
from labdeck.wire.types import ASGIApp, Receive, Scope, Send

SESSION_COOKIE = "labdeck_session"
CSRF_HEADER = b"x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CREDENTIAL = "labdeck.credential"  # "token" | "cookie": how the principal proved who it is
NOTEBOOK_PREFIX = "/user/"  # the notebook proxy: JupyterLab checks its own XSRF token


class AuthMiddleware:
    def __init__(self, app: ASGIApp, auth: AuthService):
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            if self.auth.enabled:
                await self._resolve(scope)
            else:
                scope[PRINCIPAL] = self.auth.local_principal()
                if scope["path"].startswith(NOTEBOOK_PREFIX):
                    scope[CREDENTIAL] = _unchecked_credential(scope["headers"])
        await self.app(scope, receive, send)

    async def _resolve(self, scope: Scope) -> None:
        authorization = cookie = csrf = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"cookie":
                cookie = value
            elif name == CSRF_HEADER:
                csrf = value
        principal: Principal | None = None
        if authorization is not None:
            client = scope.get("client")
            principal = await self._from_authorization(authorization, client[0] if client else "unknown")
            if principal is None:
                scope[AUTH_PROBLEM] = None  # wrong credentials: a plain 401
            scope[CREDENTIAL] = "token"
        elif cookie is not None:
            session = _cookie_value(cookie, SESSION_COOKIE)
            if session:
                principal = await self.auth.from_session(session)
                scope[CREDENTIAL] = "cookie"
                if (
                    principal is not None
                    and scope.get("method", "GET") not in SAFE_METHODS
                    and scope["type"] == "http"
                    and not scope["path"].startswith(NOTEBOOK_PREFIX)
                ):
                    sent = csrf.decode("latin-1") if csrf else ""
                    if not principal.csrf_token or not hmac.compare_digest(sent, principal.csrf_token):
                        scope[AUTH_PROBLEM] = "Missing or wrong CSRF token (send the X-CSRF-Token header)."
                        principal = None
        scope[PRINCIPAL] = principal

    async def _from_authorization(self, header: bytes, address: str) -> Principal | None:
        scheme, _, credential = header.decode("latin-1").partition(" ")
        scheme = scheme.lower()
        credential = credential.strip()
        if scheme in ("bearer", "token") and credential:
            return await self.auth.from_token(credential)
        if scheme == "basic" and credential:
            try:
                username, _, password = base64.b64decode(credential, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return await self.auth.from_basic(username, password, address)
        return None


def _unchecked_credential(headers: list[tuple[bytes, bytes]]) -> str:
    """Single-user mode checks nothing, but a page on another site can still make the browser
    send requests here, and only an Authorization header is beyond its reach (without a CORS
    preflight, which labdeck never approves): without one, JupyterLab keeps its XSRF check."""
    return "token" if any(name == b"authorization" for name, _ in headers) else "cookie"


def _cookie_value(header: bytes, name: str) -> str | None:
    try:
        jar = SimpleCookie(header.decode("latin-1"))
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None
