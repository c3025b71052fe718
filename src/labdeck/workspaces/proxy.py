"""The notebook proxy: ``/user/<name>/[<server>/]...`` forwarded to that JupyterLab, over
HTTP and WebSocket (pure ASGI, nothing buffered).

What it owns:

- Which server: when the first segment after ``/user/<name>/`` names a running named
  server of that user, that one; when it names one the hub knows (``state_of``) that is
  not running, that one's "not running" answer; otherwise the default server.
  ``.../spark-ui/...`` goes to the server's Spark UI (its "spark-ui" endpoint; the UI
  writes its links under that prefix, which is stripped here).
- Who may: the request's principal (``auth.middleware``) must be the owner or an admin;
  nobody at all gets a 302 to the login page (a browser asking for a page) or a 401;
  anyone else 403. Read-only tokens may only read (no WebSocket: kernels run code).
- No server running: 404 in labdeck's error shape, or a small page saying how to start
  it for a browser; 503 with Retry-After while the hub says it is starting.
- What JupyterLab sees: the path unchanged (it runs with base_url ``/user/<name>/...``),
  the client's Host (its Origin check compares the two), the request's headers minus
  hop-by-hop ones, labdeck's credentials and any ``X-Labdeck-*``, plus the three headers
  of ``routes`` (its secret, the person, token or cookie) and ``X-Forwarded-*``.
- Bodies stream both ways as they come: a 100 MB download is never held in memory.
  Redirects and Set-Cookie pass through untouched.
- Activity: every request and WebSocket message notes the route (at most once a second),
  which the culler reads.

It does not start or stop anything (``hub``), nor decide who a request is (``auth``).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from urllib.parse import quote

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from labdeck.auth.entities import Principal
from labdeck.auth.guard import PRINCIPAL, principal_of
from labdeck.auth.middleware import CREDENTIAL, SESSION_COOKIE
from labdeck.auth.web import CSRF_COOKIE
from labdeck.errors import InvalidParameter, LabdeckError, NotFound, PermissionDenied, Unavailable
from labdeck.wire.errors import error_headers, http_status, labdeck_body
from labdeck.wire.types import Receive, Scope, Send
from labdeck.workspaces.entities import base_url
from labdeck.workspaces.routes import (
    AUTH_HEADER,
    DEFAULT_SERVER,
    SECRET_HEADER,
    USER_HEADER,
    WorkspaceRoute,
    WorkspaceRoutes,
)
from labdeck.workspaces.workloads import RESERVED_SERVER_NAMES, SERVER_NAME

log = logging.getLogger(__name__)

PREFIX = "/user/"
JUPYTER = "http"  # the port names of a workspace's endpoints
SPARK_UI = "spark-ui"
ACTIVITY_RESOLUTION_S = 1.0  # the culler thinks in minutes: one note a second is plenty
RETRY_AFTER_S = 3  # a starting server answers within seconds
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0  # a safety net only: a kernel restart or a big save may be slow
WEBSOCKET_OPEN_TIMEOUT_S = 30.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# RFC 9110 section 7.6.1: they describe one hop, not the message.
HOP_BY_HOP = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection",
        b"te", b"trailer", b"transfer-encoding", b"upgrade",
    }
)
# Replaced by the proxy's own, or answered by it (100-continue).
REPLACED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-real-ip", b"expect"})
# The client side of a WebSocket handshake is the websockets client's to write.
HANDSHAKE = frozenset(
    {
        b"host", b"origin", b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
        b"sec-websocket-protocol", b"content-length",
    }
)
LABDECK_COOKIES = frozenset({SESSION_COOKIE, CSRF_COOKIE})
# uvicorn writes its own.
NOT_RELAYED = HOP_BY_HOP | {b"date", b"server"}

Headers = Sequence[tuple[bytes, bytes]]
# What the hub says of a server that has no route: its state's name ("STARTING", ...), or None.
StateOf = Callable[[str, str], Awaitable[str | None]]


class NotebookProxy:
    def __init__(self, routes: WorkspaceRoutes, *, state_of: StateOf | None = None):
        self.routes = routes
        self.state_of = state_of
        self._http: httpx.AsyncClient | None = None

    @staticmethod
    def owns(path: str) -> bool:
        return path.startswith(PREFIX)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and (await receive())["type"] != "websocket.connect":
            return
        name, rest = _split(scope["path"])
        try:
            principal = self._admit(scope, name)
        except LabdeckError as error:
            if scope.get(PRINCIPAL) is None and _wants_page(scope):
                await _redirect(send, "/auth/login?next=" + quote(_path_and_query(scope), safe="/"))
            else:
                await _refuse(scope, send, error)
            return
        route, server, state = await self._find(name, rest)
        base = route.base_url if route is not None else base_url(name, server)
        if scope["type"] == "http" and scope["path"] + "/" == base:
            await _redirect(send, quote(base) + _query(scope))  # as JupyterLab's own base URL is
            return
        if route is None:
            await _not_running(scope, send, name, server, state)
            return
        port, target = _upstream(route, scope)
        endpoint = route.endpoints.get(port)
        if endpoint is None:
            await _refuse(scope, send, NotFound(f"{_server_label(route.user, route.server)} has no Spark UI."))
            return
        self._note_activity(route)
        forwarded = _forwarded_headers(scope, principal, route, to_jupyter=port == JUPYTER)
        if scope["type"] == "http":
            await self._forward_http(scope, receive, send, route, port, endpoint, target, forwarded)
        else:
            await self._forward_websocket(scope, receive, send, route, port, endpoint, target, forwarded)

    # ------------------------------------------------------------------ who and where

    def _admit(self, scope: Scope, name: str) -> Principal:
        principal = principal_of(scope)  # Unauthenticated / PermissionDenied saying why not
        if not name:
            raise NotFound("Give a user name: /user/<name>/.")
        if principal.username != name and not principal.is_admin:
            raise PermissionDenied(f"Permission denied: only {name} (or an admin) may open {name}'s workspaces.")
        if principal.read_only and (scope["type"] == "websocket" or scope["method"] not in SAFE_METHODS):
            raise PermissionDenied("This token is read-only: it may look at a workspace, not run or change anything.")
        return principal

    async def _find(self, name: str, rest: str) -> tuple[WorkspaceRoute | None, str, str | None]:
        """(route, server, state): the route to forward to, if any; else which server the
        path meant and what the hub says of it (None: nothing)."""
        first = rest.split("/", 1)[0]
        if first:
            named = self.routes.get(name, first)
            if named is not None:
                return named, first, None
            if self.state_of is not None and _could_name_a_server(first):
                state = await self.state_of(name, first)
                if state is not None:
                    return None, first, state
        default = self.routes.get(name, DEFAULT_SERVER)
        if default is not None:
            return default, DEFAULT_SERVER, None
        state = await self.state_of(name, DEFAULT_SERVER) if self.state_of is not None else None
        return None, DEFAULT_SERVER, state

    def _note_activity(self, route: WorkspaceRoute) -> None:
        if time.time() - route.last_activity >= ACTIVITY_RESOLUTION_S:
            self.routes.touch(route)

    # ------------------------------------------------------------------ HTTP

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64, keepalive_expiry=30),
                follow_redirects=False,
                trust_env=False,
            )
        return self._http

    async def _forward_http(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: WorkspaceRoute,
        port: str,
        endpoint: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        host, _, number = endpoint.rpartition(":")
        body = _RequestBody(receive) if _has_body(scope) else None
        request = httpx.Request(
            scope["method"],
            httpx.URL(scheme="http", host=host, port=int(number), raw_path=target),
            headers=headers,
            content=body,
        )
        try:
            response = await self._client().send(request, stream=True)
        except _ClientGone:
            return
        except httpx.TimeoutException:
            await _refuse(scope, send, Unavailable(f"{_server_label(route.user, route.server)} did not answer in time."))
            return
        except httpx.TransportError as problem:
            log.info("workspace not answering", extra={"user": route.user, "server": route.server, "reason": str(problem)})
            await _refuse(scope, send, Unavailable(_unreachable(route, port)))
            return
        try:
            await self._relay(response, send, receive if body is None or body.done else None)
        finally:
            await response.aclose()

    async def _relay(self, response: httpx.Response, send: Send, receive: Receive | None) -> None:
        """The answer, chunk by chunk as it comes; stopped when the client goes away (watched
        once the request's body has been read: the two cannot share ``receive``)."""
        headers = [(name.lower(), value) for name, value in response.headers.raw if name.lower() not in NOT_RELAYED]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        gone = asyncio.ensure_future(_disconnected(receive)) if receive is not None else None
        try:
            async for chunk in response.aiter_raw():  # as it comes: holding back would stall streams
                if gone is not None and gone.done():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.TransportError as problem:
            # Part of the answer is out: all that is left is to cut the connection short.
            log.warning("workspace answer cut short", extra={"reason": str(problem)})
        finally:
            if gone is not None:
                gone.cancel()

    # ------------------------------------------------------------------ WebSocket

    async def _forward_websocket(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: WorkspaceRoute,
        port: str,
        endpoint: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        host, _, number = endpoint.rpartition(":")
        client_host = _header(scope, b"host") or endpoint
        origin = _header(scope, b"origin")
        try:
            # The URI carries the client's Host (written into the handshake as is); the
            # connection itself goes to the server's endpoint.
            upstream = await connect(
                f"ws://{client_host}{target.decode('latin-1')}",
                host=host,
                port=int(number),
                origin=origin,  # type: ignore[arg-type]
                subprotocols=scope.get("subprotocols") or None,
                additional_headers=[(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers if n not in HANDSHAKE],
                user_agent_header=None,
                compression=None,  # loopback: compressing costs CPU and saves nothing
                max_size=None,  # as JupyterLab itself: outputs can be large
                ping_interval=None,
                open_timeout=WEBSOCKET_OPEN_TIMEOUT_S,
                proxy=None,
            )
        except InvalidStatus as refused:
            answer = refused.response
            content_type = answer.headers.get("Content-Type", "text/plain")
            await _deny_websocket(scope, send, answer.status_code, content_type, answer.body or b"")
            return
        except InvalidURI:
            await _refuse(scope, send, InvalidParameter(f"Bad Host header {client_host!r}."))
            return
        except (OSError, TimeoutError, InvalidHandshake) as problem:
            log.info("workspace not answering", extra={"user": route.user, "server": route.server, "reason": str(problem)})
            await _refuse(scope, send, Unavailable(_unreachable(route, port)))
            return
        async with upstream:
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
            await self._pump(receive, send, upstream, route)

    async def _pump(self, receive: Receive, send: Send, upstream: ClientConnection, route: WorkspaceRoute) -> None:
        """Messages both ways until one side closes; then the other side is closed with its
        code. Each side waits for the other to take a message: nothing queues up here."""

        async def from_client() -> None:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    await upstream.close(_sendable(message.get("code", 1000)), message.get("reason") or "")
                    return
                data = message.get("bytes")
                try:
                    await upstream.send(data if data is not None else message.get("text", ""))
                except ConnectionClosed:
                    return
                self._note_activity(route)

        async def from_upstream() -> None:
            try:
                async for data in upstream:
                    kind = "bytes" if isinstance(data, bytes) else "text"
                    await send({"type": "websocket.send", kind: data})
                    self._note_activity(route)
            except ConnectionClosed:
                pass
            except OSError:
                return  # the client went away while we were sending: from_client sees it
            await _close_client(send, upstream)

        tasks = [asyncio.ensure_future(from_client()), asyncio.ensure_future(from_upstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------------- request pieces


class _ClientGone(Exception):
    """The client disconnected before it had sent the whole body."""


class _RequestBody:
    """The request's body, handed to httpx chunk by chunk as the client sends it."""

    def __init__(self, receive: Receive):
        self.receive = receive
        self.done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not self.done:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            self.done = not message.get("more_body", False)
            chunk = message.get("body", b"")
            if chunk:
                yield chunk


async def _not_running(scope: Scope, send: Send, name: str, server: str, state: str | None) -> None:
    starting = state == "STARTING"
    label = _server_label(name, server)
    error: LabdeckError
    if starting:
        error = Unavailable(f"{label} is starting; try again in a few seconds.")
    else:
        error = NotFound(
            f"{label} is not running. Start it with `labdeck workspaces start{' ' + server if server else ''}` "
            f"or POST {_start_path(name, server)}."
        )
    extra = [(b"retry-after", str(RETRY_AFTER_S).encode())] if starting else []
    if _wants_page(scope):
        page = _not_running_page(name, server, starting).encode()
        await _respond(send, http_status(error), b"text/html; charset=utf-8", page, extra)
    else:
        await _refuse(scope, send, error, extra)


def _could_name_a_server(segment: str) -> bool:
    return bool(SERVER_NAME.match(segment)) and segment not in RESERVED_SERVER_NAMES


def _split(path: str) -> tuple[str, str]:
    """``/user/alice/big/lab`` -> ("alice", "big/lab"); ``/user/alice`` -> ("alice", "")."""
    name, _, rest = path[len(PREFIX) :].partition("/")
    return name, rest


def _upstream(route: WorkspaceRoute, scope: Scope) -> tuple[str, bytes]:
    """(port name, request target): JupyterLab gets the path as the client sent it, the
    Spark UI the part after ``spark-ui``."""
    raw = scope.get("raw_path") or quote(scope["path"]).encode()
    query = (b"?" + scope["query_string"]) if scope.get("query_string") else b""
    spark_prefix = (route.base_url + SPARK_UI).encode()
    if raw == spark_prefix or raw.startswith(spark_prefix + b"/"):
        return SPARK_UI, b"/" + raw[len(spark_prefix) + 1 :] + query
    return JUPYTER, raw + query


def _forwarded_headers(
    scope: Scope, principal: Principal, route: WorkspaceRoute, *, to_jupyter: bool
) -> list[tuple[bytes, bytes]]:
    credential = scope.get(CREDENTIAL, "cookie")
    dropped = HOP_BY_HOP | REPLACED | _named_in_connection(scope["headers"])
    headers: list[tuple[bytes, bytes]] = []
    forwarded_for: list[bytes] = []
    host = b""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value
        elif name == b"x-forwarded-for":
            forwarded_for += [hop.strip() for hop in value.split(b",")]
        if name in dropped or name.startswith(b"x-labdeck-"):
            continue
        if name == b"authorization" and credential == "token" and principal.via != "local":
            continue  # labdeck's token or password: JupyterLab has no use for it
        if name == b"cookie":
            value = _without_labdeck_cookies(value)
            if not value:
                continue
        headers.append((name, value))
    client = scope.get("client")
    # uvicorn takes the client from X-Forwarded-For when a trusted proxy sent it: not twice
    if client and (not forwarded_for or forwarded_for[-1] != client[0].encode()):
        forwarded_for.append(client[0].encode())
    if forwarded_for:
        headers.append((b"x-forwarded-for", b", ".join(forwarded_for)))
    headers.append((b"x-forwarded-proto", {"ws": b"http", "wss": b"https"}.get(scope["scheme"], scope["scheme"].encode())))
    if host:
        headers.append((b"x-forwarded-host", host))
    if to_jupyter:  # never to the Spark UI: whatever listens there is the notebook's own code
        headers += [
            (SECRET_HEADER.lower().encode(), route.secret.encode()),
            (USER_HEADER.lower().encode(), principal.username.encode()),
            (AUTH_HEADER.lower().encode(), b"token" if credential == "token" else b"cookie"),
        ]
    return headers


def _named_in_connection(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Headers the Connection header names are hop-by-hop too."""
    named = set()
    for name, value in headers:
        if name == b"connection":
            named.update(token.strip().lower() for token in value.split(b","))
    return frozenset(named)


def _without_labdeck_cookies(header: bytes) -> bytes:
    """The Cookie header minus labdeck's session and CSRF cookies; Jupyter's ``_xsrf`` and
    anything else stay, byte for byte."""
    kept = []
    for pair in header.split(b";"):
        name = pair.split(b"=", 1)[0].strip()
        if name and name.decode("latin-1") not in LABDECK_COOKIES:
            kept.append(pair.strip())
    return b"; ".join(kept)


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if (name == b"content-length" and value.strip() not in (b"", b"0")) or name == b"transfer-encoding":
            return True
    return False


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return value.decode("latin-1")
    return None


def _wants_page(scope: Scope) -> bool:
    """A browser navigating (not a script, not the page's own API calls)."""
    return scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and "text/html" in (_header(scope, b"accept") or "")


def _query(scope: Scope) -> str:
    query = scope.get("query_string", b"")
    return "?" + query.decode("latin-1") if query else ""


def _path_and_query(scope: Scope) -> str:
    return scope["path"] + _query(scope)


def _server_label(user: str, server: str) -> str:
    return f"{user}'s server '{server}'" if server else f"{user}'s default server"


def _start_path(user: str, server: str) -> str:
    return f"/api/v1/workspaces/{user}" + (f"/{server}" if server else "")


def _unreachable(route: WorkspaceRoute, port: str) -> str:
    if port == SPARK_UI:
        return f"The Spark UI of {_server_label(route.user, route.server)} is not running: start a SparkSession in a notebook first."
    return f"{_server_label(route.user, route.server)} is not answering; it may be restarting."


def _sendable(code: int | None) -> int:
    """A close code that may be sent on: 1005 (none given) and 1006 (connection lost) are
    only ever observed."""
    if code is None or code == 1005:
        return 1000
    if code in (1006, 1015):
        return 1011
    return code


async def _close_client(send: Send, upstream: ClientConnection) -> None:
    with contextlib.suppress(OSError):  # the client is already gone
        await send({"type": "websocket.close", "code": _sendable(upstream.close_code), "reason": upstream.close_reason or ""})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


# ---------------------------------------------------------------------- answers of the proxy itself


async def _respond(send: Send, status: int, content_type: bytes, body: bytes, extra: Headers = ()) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    await send({"type": "http.response.start", "status": 302, "headers": [(b"location", location.encode()), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def _refuse(scope: Scope, send: Send, error: LabdeckError, extra: Headers = ()) -> None:
    body = orjson.dumps(labdeck_body(error))
    if scope["type"] == "websocket":
        await _deny_websocket(scope, send, http_status(error), "application/json", body, [*error_headers(error), *extra])
        return
    await _respond(send, http_status(error), b"application/json", body, [*error_headers(error), *extra])


async def _deny_websocket(scope: Scope, send: Send, status: int, content_type: str, body: bytes, extra: Headers = ()) -> None:
    """An HTTP answer to the handshake where the server can send one; else a bare 403."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · labdeck</title>{refresh}
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}
code{{background:#f1f2f4;padding:.1rem .3rem;border-radius:4px}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


def _not_running_page(user: str, server: str, starting: bool) -> str:
    label = html.escape(_server_label(user, server))
    if starting:
        return _PAGE.format(
            title=f"{label} is starting",
            refresh=f'<meta http-equiv="refresh" content="{RETRY_AFTER_S}">',
            body="<p>This page reloads by itself until JupyterLab answers.</p>",
        )
    command = html.escape("labdeck workspaces start" + (f" {server}" if server else ""))
    return _PAGE.format(
        title=f"{label} is not running",
        refresh="",
        body=(
            f"<p>Start it from a terminal with <code>{command}</code>, or with the API: "
            f"<code>POST {html.escape(_start_path(user, server))}</code>. Then reload this page.</p>"
        ),
    )
