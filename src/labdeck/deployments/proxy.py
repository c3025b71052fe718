"""A lean HTTP/1.1 client for the gateway: keep-alive connections to each replica, pooled,
on asyncio protocols with httptools parsing the answers.

The gateway sits on the path of every prediction, so it must cost little next to the
model server itself: no per-request client objects, no header models, one write per
request and the answer parsed in C. Bodies are small (a prediction) and read whole.

``UpstreamError`` says whether any of the answer had arrived: until then the request
can be sent again elsewhere (predictions have no side effects).
"""

from __future__ import annotations

import asyncio
from collections import deque

import httptools

# Never forwarded: they describe one hop, or carry the caller's credentials.
HOP_BY_HOP = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
        b"transfer-encoding", b"upgrade", b"host", b"content-length", b"authorization", b"cookie", b"expect",
    }
)
MAX_IDLE_PER_ENDPOINT = 64


class UpstreamError(Exception):
    def __init__(self, message: str, *, answered: bool, fresh: bool):
        super().__init__(message)
        self.answered = answered  # part of an answer arrived: sending again is not safe
        self.fresh = fresh  # the connection was new (so the replica itself is the problem)


class Answer:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.started = False
        self.closed = False
        self.fresh = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.started = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"the replica sent a malformed answer: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail("the replica closed the connection" + (f" ({exc})" if exc else ""))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(self.parser.get_status_code(), self.headers, b"".join(self.body)))
        if not self.parser.should_keep_alive():
            self.close()

    def _fail(self, message: str) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(UpstreamError(message, answered=self.started, fresh=self.fresh))

    def send(self, request: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self.headers, self.body, self.started = [], [], False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Keep-alive connections per replica endpoint ("host:port")."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._idle: dict[str, deque[_Connection]] = {}

    async def request(
        self, endpoint: str, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Answer:
        connection = await self._connection(endpoint)
        request = _serialize(method, target, endpoint, headers, body)
        try:
            answer = await asyncio.wait_for(connection.send(request), self.timeout_s)
        except TimeoutError:
            connection.close()
            raise UpstreamError(f"the replica did not answer within {self.timeout_s:g} s", answered=True, fresh=connection.fresh) from None
        except UpstreamError:
            connection.close()
            raise
        if not connection.closed:
            connection.fresh = False
            idle = self._idle.setdefault(endpoint, deque())
            if len(idle) < MAX_IDLE_PER_ENDPOINT:
                idle.append(connection)
            else:
                connection.close()
        return answer

    async def _connection(self, endpoint: str) -> _Connection:
        idle = self._idle.get(endpoint)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        host, _, port = endpoint.rpartition(":")
        try:
            _transport, connection = await asyncio.wait_for(
                asyncio.get_running_loop().create_connection(_Connection, host, int(port)), self.timeout_s
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to the replica at {endpoint}: {exc}", answered=False, fresh=True) from None
        return connection

    def forget(self, endpoint: str) -> None:
        for connection in self._idle.pop(endpoint, ()):
            connection.close()

    def close(self) -> None:
        for endpoint in list(self._idle):
            self.forget(endpoint)


def _serialize(method: str, target: bytes, endpoint: str, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = [b"%s %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n" % (method.encode(), target, endpoint.encode(), len(body))]
    for name, value in headers:
        if name not in HOP_BY_HOP:
            lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(b"\r\n")
    lines.append(body)
    return b"".join(lines)


def forwardable(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An answer's headers, minus what describes the replica's own connection."""
    return [(n, v) for n, v in headers if n not in HOP_BY_HOP and n != b"date" and n != b"server"]
