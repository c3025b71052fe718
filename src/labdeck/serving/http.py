"""The model server's own HTTP/1.1 server: an asyncio protocol on httptools' parser that
hands each request to ``ServingApp.handle`` and writes each response (status line,
headers and body) as one buffer.

Why not uvicorn here: a prediction's answer is small, and uvicorn writes its head and its
body separately (two system calls and two TCP segments per response), builds an ASGI
scope and two message dictionaries per request and checks every header it writes against
a regular expression; profiled at 16 connections, that was about a third of the model
server's time. The rest of labdeck (the platform's server) stays on uvicorn; this module
owns only what the model server needs. Answers are also held until the end of the event
loop's pass and written then (``HttpServer.flush``): the answers of one pass go out
together, which wakes a client on another core once for them rather than once each.

What it keeps from a general-purpose server: keep-alive, HTTP/1.0 (closed after the answer
unless it asked for keep-alive), ``Connection: close``, pipelined requests (answered in
order, one at a time), ``Content-Length`` and chunked request bodies, ``Expect:
100-continue`` (the ``100 Continue`` goes out when a handler first reads the body, so a
body refused by its declared length is never sent), a body size limit (``read`` raises
``BodyTooLarge``, which the app turns into a 413 in its protocol's shape; the rest of that
body is read and dropped so that the connection goes on), a ``Date`` header, a 400 for a
request that cannot be parsed and a 431 for a head over 64 KiB (both end the connection),
request targets in absolute form, an idle keep-alive timeout, back-pressure on slow
readers and on many pipelined requests, and a graceful drain: ``shutdown`` stops
accepting, closes idle connections, lets requests in flight finish (their answers then
say ``Connection: close``), and after ``timeout`` seconds closes what is left.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import unquote

import httptools
import orjson

from labdeck.errors import InvalidParameter
from labdeck.serving.rest import JSON, BodyTooLarge, Call

if TYPE_CHECKING:
    from labdeck.serving.rest import ServingApp

log = logging.getLogger("labdeck.serving")

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# A client may queue this many requests on one connection before its reading is paused.
_PIPELINE_LIMIT = 32
# A request line and headers larger than this are refused (431) rather than buffered.
_MAX_HEAD = 64 * 1024
# Bodies up to this size are copied after the head (one buffer); larger ones go as a
# second buffer of the same write, without the copy.
_COPY_BELOW = 64 * 1024


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} Status\r\n".encode()


class _HeadTooLarge(Exception):
    pass


class _BadTarget(Exception):
    pass


class HttpCall(Call):
    """A request on one of this server's connections. The connection fills the body in as
    it arrives; ``read`` waits for the end of it, ``answer`` writes the response."""

    __slots__ = (
        "answered", "chunks", "complete", "connection", "declared", "expect_continue",
        "head_only", "http10", "keep_alive", "size", "too_large", "waiter",
    )

    def __init__(self, connection: HttpConnection, method: str, path: str, headers: list[tuple[bytes, bytes]]):
        super().__init__(method, path, headers)
        self.connection = connection
        self.chunks: list[bytes] = []
        self.size = 0
        self.complete = False
        self.too_large = False
        self.answered = False
        self.waiter: asyncio.Future[None] | None = None
        self.keep_alive = True
        self.http10 = False
        self.head_only = method == "HEAD"
        self.expect_continue = False
        self.declared: int | None = None  # the Content-Length header's value

    async def read(self, limit: int) -> bytes:
        if self.declared is not None and self.declared > limit:
            raise BodyTooLarge(f"The request body is larger than the limit of {limit} bytes.")
        connection = self.connection
        if not self.complete:
            if self.expect_continue and not connection.lost:
                connection.send(_CONTINUE)
                self.expect_continue = False
            while not self.complete and not connection.lost and not self.too_large:
                self.waiter = connection.loop.create_future()
                connection.resume()
                await self.waiter
        if self.too_large or self.size > limit:
            raise BodyTooLarge(f"The request body is larger than the limit of {limit} bytes.")
        if not self.complete:
            raise InvalidParameter("The client disconnected before sending the whole body.")
        chunks = self.chunks
        self.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return self.body

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def answer(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = JSON) -> None:
        self.respond(status, body, headers)

    def respond(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        if self.answered:
            raise RuntimeError("A request is answered once.")
        self.answered = True
        self.status = status
        connection = self.connection
        if connection.lost:
            return
        # An unread body the client was told to hold back (Expect: 100-continue) may
        # never come: the connection cannot be read past it, so it ends with this answer.
        keep_alive = (
            self.keep_alive
            and not connection.server.draining
            and (self.complete or not self.expect_continue)
        )
        head = [_status_line(status), connection.server.date]
        for name, value in headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-length: %d\r\n" % len(body))
        if self.request_id is not None:
            head.append(b"x-request-id: " + self.request_id + b"\r\n")
        if not keep_alive:
            head.append(b"connection: close\r\n")
        elif self.http10:
            head.append(b"connection: keep-alive\r\n")
        head.append(b"\r\n")
        if self.head_only:
            connection.send(b"".join(head))
        elif len(body) < _COPY_BELOW:
            head.append(body)
            connection.send(b"".join(head))
        else:
            connection.send(b"".join(head))
            connection.send(body)
        if not keep_alive:
            connection.close()


class HttpConnection(asyncio.Protocol):
    """One client connection: parses requests and runs their handlers one at a time."""

    def __init__(self, server: HttpServer):
        self.server = server
        self.app = server.app
        self.loop = server.loop
        self.max_body = server.max_body
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made
        self.lost = False
        self.closing = False
        self.paused = False
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.out: list[bytes] = []  # answers not yet written (see send)
        self.parsing: HttpCall | None = None  # the request whose body is arriving
        self.pending: deque[HttpCall] = deque()  # parsed requests; the first one is being answered
        self.idle_since: float | None = None  # monotonic time the connection went idle

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.idle_since = time.monotonic()
        self.server.connections.add(self)
        if self.server.draining:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.server.connections.discard(self)
        for call in self.pending:
            call.wake()
        if self.parsing is not None:
            self.parsing.wake()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # no protocol to switch to: the request is answered as plain HTTP/1.1 and the
            # connection ends there, since what follows it is not HTTP/1.1
            call = self.parsing
            if call is not None:
                call.keep_alive = False
                call.complete = True
                call.wake()
                self.parsing = None
            elif self.pending:
                self.pending[-1].keep_alive = False
        except httptools.HttpParserCallbackError as exc:  # raised by a callback below
            if isinstance(exc.__context__, _HeadTooLarge):
                self.refuse(431, f"The request line and headers are larger than {_MAX_HEAD} bytes.")
            elif isinstance(exc.__context__, _BadTarget):
                self.refuse(400, "Malformed HTTP request: the request target is not a path or a URL.")
            else:
                log.error("error parsing a request", exc_info=exc.__context__)
                self.refuse(400, "Malformed HTTP request.")
        except httptools.HttpParserError as exc:
            # httptools' own words, e.g. "Invalid method encountered"
            self.refuse(400, f"Malformed HTTP request: {exc or type(exc).__name__}.")

    def pause_writing(self) -> None:
        # the client reads slowly: stop reading its requests until it has caught up
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.paused and not self.closing:
            self.transport.resume_reading()

    # ------------------------------------------------------------------ httptools callbacks

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.head_size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)
        if self.head_size > _MAX_HEAD:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))
        self.head_size += len(name) + len(value)
        if self.head_size > _MAX_HEAD:
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        parser = self.parser
        url = self.url
        if url[:1] != b"/":  # the absolute form, http://host/path, that proxies may send
            try:
                url = httptools.parse_url(url).path or b"/"
            except httptools.HttpParserInvalidURLError:
                raise _BadTarget from None
        query = url.find(b"?")
        raw_path = url if query < 0 else url[:query]
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        call = HttpCall(self, parser.get_method().decode("ascii"), path, self.headers)
        call.keep_alive = parser.should_keep_alive()
        call.http10 = parser.get_http_version() == "1.0"
        for name, value in self.headers:
            if name == b"content-length":
                try:
                    call.declared = int(value)
                except ValueError:
                    pass  # httptools has already refused a malformed length
            elif name == b"expect" and value.lower() == b"100-continue":
                call.expect_continue = True
        self.idle_since = None
        self.parsing = call
        self.pending.append(call)
        if len(self.pending) == 1:
            self.start(call)
        elif len(self.pending) > _PIPELINE_LIMIT:
            self.pause()

    def on_body(self, body: bytes) -> None:
        call = self.parsing
        if call is None:
            return
        call.size += len(body)
        if call.size > self.max_body:
            if not call.too_large:
                call.too_large = True
                call.chunks = []
                call.wake()
        elif not call.answered:
            call.chunks.append(body)

    def on_message_complete(self) -> None:
        call = self.parsing
        if call is not None:
            self.parsing = None
            call.complete = True
            call.wake()
            if call.answered and not self.pending:  # the rest of a refused body has been dropped
                self.idle_since = time.monotonic()

    # ------------------------------------------------------------------ requests

    def start(self, call: HttpCall) -> None:
        self.loop.create_task(self.run(call))

    async def run(self, call: HttpCall) -> None:
        try:
            await self.app.handle(call)
        except Exception:  # handle() answers every error itself: this is a bug
            log.exception("unhandled error answering %s %s", call.method, call.path)
        if not call.answered:
            call.keep_alive = False
            call.respond(500, b'{"error":"Internal error; the server log has the details."}', JSON)
        self.finished(call)

    def finished(self, call: HttpCall) -> None:
        pending = self.pending
        if pending and pending[0] is call:
            pending.popleft()
        if self.closing or self.lost:
            return
        if pending:
            self.start(pending[0])
            if self.paused and len(pending) <= _PIPELINE_LIMIT // 2:
                self.resume()
        else:
            if self.parsing is None:
                self.idle_since = time.monotonic()
            self.resume()

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and not self.closing:
            self.paused = False
            self.transport.resume_reading()

    def refuse(self, status: int, message: str) -> None:
        """A 4xx for bytes that are not an HTTP/1.1 request this server takes, then the
        connection ends (the parser cannot find where the next request would start)."""
        if self.pending and not self.pending[-1].answered:
            # an earlier request still being answered: answering this one first would
            # put the answers out of order, so the connection just ends after that one
            self.pending[-1].keep_alive = False
            self.closing = True
            return
        body = orjson.dumps({"error": message})
        self.send(
            _status_line(status) + self.server.date + b"content-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body
        )
        self.close()

    def send(self, data: bytes) -> None:
        """Queue bytes for this connection; the server writes them at the end of the
        event loop's pass (``HttpServer.flush``)."""
        if not self.out:
            self.server.to_flush.append(self)
            if len(self.server.to_flush) == 1:
                self.loop.call_soon(self.server.flush)
        self.out.append(data)

    def flush(self) -> None:
        out = self.out
        if out:
            self.out = []
            if self.lost:
                return
            if len(out) == 1:
                self.transport.write(out[0])
            else:
                self.transport.writelines(out)

    def close(self) -> None:
        self.closing = True
        if not self.lost:
            self.flush()
            self.transport.close()

    @property
    def idle(self) -> bool:
        return not self.pending and self.parsing is None


class HttpServer:
    """Serves ``app`` on already-bound sockets; ``shutdown`` drains it."""

    def __init__(self, app: ServingApp, *, max_body: int, keep_alive_timeout: float = 30.0):
        self.app = app
        self.max_body = max_body
        self.keep_alive_timeout = keep_alive_timeout
        self.connections: set[HttpConnection] = set()
        self.draining = False
        self.date = b""
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start
        self._servers: list[asyncio.base_events.Server] = []
        self.to_flush: list[HttpConnection] = []
        self._ticker: asyncio.Task[None] | None = None

    async def start(self, sockets: list[socket.socket]) -> None:
        self.loop = asyncio.get_running_loop()
        self._tick()
        for sock in sockets:
            self._servers.append(await self.loop.create_server(lambda: HttpConnection(self), sock=sock, backlog=2048))
        self._ticker = self.loop.create_task(self._every_second())

    def flush(self) -> None:
        """Write what every connection has queued since the last flush: the answers that
        one pass of the event loop produced go out together, so a client machine is woken
        once for them rather than once per answer."""
        connections, self.to_flush = self.to_flush, []
        for connection in connections:
            connection.flush()

    def _tick(self) -> None:
        self.date = b"date: " + formatdate(usegmt=True).encode() + b"\r\n"
        now = time.monotonic()
        for connection in list(self.connections):
            since = connection.idle_since
            if since is not None and now - since > self.keep_alive_timeout and connection.idle:
                connection.close()

    async def _every_second(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._tick()

    async def shutdown(self, timeout: float) -> None:
        """Stop accepting, let requests in flight finish for at most ``timeout`` seconds,
        then close every connection."""
        self.draining = True
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            if connection.idle:
                connection.close()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.transport.abort()
        if self._ticker is not None:
            self._ticker.cancel()
