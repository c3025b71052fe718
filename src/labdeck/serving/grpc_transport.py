"""gRPC's transport for unary methods: HTTP/2 without TLS (prior knowledge, as gRPC clients
speak to an insecure channel), length-prefixed messages, status in the trailers.

It runs on the event loop that serves REST and knows nothing of inference: it is given a
table from method path (``/package.Service/Method``) to an async function from request
bytes to response bytes, which raises ``GrpcError`` to end a call with a status. The
HTTP/2 state machine (frames, HPACK, flow control, stream states) is the ``h2`` library's;
this module maps streams to calls. With the same model behind it, ``labdeck serve`` answers
about a third more calls per second this way than on grpcio's server (bench/README.md,
"Model server").

What a client sees:
- a call to a method not in the table ends UNIMPLEMENTED; a request that is not gRPC (another
  method than POST, another content type) gets HTTP 415, as the gRPC spec asks;
- a message over ``max_message_bytes`` ends RESOURCE_EXHAUSTED as soon as its length prefix
  arrives; a compressed message UNIMPLEMENTED (the server advertises ``identity`` only);
- a stream the client resets (a deadline, a cancellation) cancels its call;
- ``stop(grace)`` refuses new calls with UNAVAILABLE, lets the ones in flight finish for up
  to ``grace`` seconds, then says GOAWAY and closes every connection.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import cast
from urllib.parse import quote

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

log = logging.getLogger("labdeck.serving")

UnaryMethod = Callable[[bytes], Awaitable[bytes]]

# HTTP/2's default windows are 64 KiB: a large tensor would wait on a round trip per window.
WINDOW = 16 * 1024 * 1024
MAX_CONCURRENT_STREAMS = 1024
_PREFIX = struct.Struct(">BI")  # compressed flag, message length

_CONFIG = h2.config.H2Configuration(
    client_side=False,
    header_encoding=None,
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
    # the headers this module sends are constants it built itself
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)
_RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
_UNCOMPRESSED_ONLY = "Compressed messages are not accepted: send them uncompressed (identity)."


class Status(IntEnum):
    """The gRPC status codes this server answers with."""

    OK = 0
    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    RESOURCE_EXHAUSTED = 8
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14


_OK_TRAILERS = [(b"grpc-status", b"%d" % Status.OK)]


class GrpcError(Exception):
    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# grpc-message is percent-encoded UTF-8 that leaves printable ASCII other than '%' as it is
_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F) if c != 0x25)


def _status_headers(status: Status, message: str) -> list[tuple[bytes, bytes]]:
    return [(b"grpc-status", b"%d" % status), (b"grpc-message", quote(message, safe=_PRINTABLE).encode())]


@dataclass
class _Stream:
    method: UnaryMethod | None  # None once the call has been answered or refused
    body: bytearray = field(default_factory=bytearray)
    call: asyncio.Task[None] | None = None
    outgoing: memoryview | None = None  # response bytes still waiting on flow control


class _Connection(asyncio.Protocol):
    def __init__(self, server: GrpcServer):
        self.server = server
        self.h2 = h2.connection.H2Connection(config=_CONFIG)
        self.streams: dict[int, _Stream] = {}
        self.transport: asyncio.Transport | None = None
        self._flush_pending = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it
        self.server.connections.add(self)
        self.h2.initiate_connection()
        self.h2.update_settings({
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
        })
        self.h2.increment_flow_control_window(WINDOW - self.h2.inbound_flow_control_window)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        for stream in self.streams.values():
            if stream.call is not None:
                stream.call.cancel()
        self.streams.clear()
        self.transport = None

    def flush_soon(self) -> None:
        """Flush once the calls finishing in this turn of the loop have all queued their
        answers: one write for them all, not one each."""
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:  # not HTTP/2, or a peer breaking its rules: h2 queued a GOAWAY
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self._on_data(event)
            elif isinstance(event, h2.events.RequestReceived):
                self._on_request(event.stream_id, event.headers)
            elif isinstance(event, h2.events.StreamEnded):
                self._on_end(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self._on_reset(event.stream_id)
            elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                self._resume_sending()
            elif isinstance(event, h2.events.ConnectionTerminated) and self.transport is not None:
                self.transport.close()
        self.flush()

    def _on_request(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        fields = dict(headers)
        if fields.get(b":method") != b"POST" or not fields.get(b"content-type", b"").startswith(b"application/grpc"):
            self.streams[stream_id] = _Stream(None)
            self.h2.send_headers(stream_id, [(b":status", b"415"), (b"content-type", b"text/plain")], end_stream=True)
            return
        path = fields.get(b":path", b"").decode("latin-1")
        method = self.server.methods.get(path)
        self.streams[stream_id] = _Stream(method)
        if self.server.stopping:
            self._refuse(stream_id, Status.UNAVAILABLE, "The server is shutting down.")
        elif method is None:
            self._refuse(stream_id, Status.UNIMPLEMENTED, f"Method not found: {path}")
        elif fields.get(b"grpc-encoding", b"identity") != b"identity":
            self._refuse(stream_id, Status.UNIMPLEMENTED, _UNCOMPRESSED_ONLY)

    def _on_data(self, event: h2.events.DataReceived) -> None:
        self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        stream = self.streams.get(event.stream_id)
        if stream is None or stream.method is None:
            return  # an answered call's remaining bytes are read and dropped
        stream.body += event.data
        if len(stream.body) >= _PREFIX.size:
            flag, length = _PREFIX.unpack_from(stream.body)
            if length > self.server.max_message_bytes:
                self._refuse(
                    event.stream_id,
                    Status.RESOURCE_EXHAUSTED,
                    f"The request message has {length} bytes, over this server's limit of {self.server.max_message_bytes} (--max-body-mb).",
                )
            elif flag:
                self._refuse(event.stream_id, Status.UNIMPLEMENTED, _UNCOMPRESSED_ONLY)

    def _on_end(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if stream.method is None:
            if stream.outgoing is None:
                del self.streams[stream_id]
            return
        body = stream.body
        if len(body) < _PREFIX.size or _PREFIX.unpack_from(body)[1] != len(body) - _PREFIX.size:
            self._refuse(stream_id, Status.INVALID_ARGUMENT, "A unary call carries exactly one length-prefixed message.")
            return
        method, stream.method = stream.method, None
        stream.call = asyncio.get_running_loop().create_task(self._call(stream_id, method, bytes(body[_PREFIX.size :])))
        stream.body = bytearray()
        self.server.in_flight.add(stream.call)
        stream.call.add_done_callback(self.server.in_flight.discard)

    def _on_reset(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None and stream.call is not None:
            stream.call.cancel()

    async def _call(self, stream_id: int, method: UnaryMethod, request: bytes) -> None:
        try:
            response = await method(request)
        except GrpcError as error:
            self._refuse(stream_id, error.status, error.message)
        except Exception as exc:  # a bug: the client still gets an answer, the log the traceback
            log.exception("gRPC call failed")
            self._refuse(stream_id, Status.INTERNAL, f"{type(exc).__name__}: {exc}")
        else:
            if stream_id in self.streams and self.transport is not None:
                self.h2.send_headers(stream_id, _RESPONSE_HEADERS)
                self.streams[stream_id].outgoing = memoryview(_PREFIX.pack(0, len(response)) + response)
                self._send(stream_id)
        self.flush_soon()

    def _refuse(self, stream_id: int, status: Status, message: str) -> None:
        """End a call with a status and no message (gRPC's trailers-only answer)."""
        stream = self.streams.get(stream_id)
        if stream is None or self.transport is None:
            return
        stream.method = None
        stream.body = bytearray()
        headers = [*_RESPONSE_HEADERS, *_status_headers(status, message)]
        try:
            self.h2.send_headers(stream_id, headers, end_stream=True)
        except h2.exceptions.StreamClosedError:
            pass  # the client is gone from this stream already
        if self.h2.streams.get(stream_id) is None or self.h2.streams[stream_id].closed:
            self.streams.pop(stream_id, None)

    def _send(self, stream_id: int) -> None:
        """Send what flow control allows of the stream's response; the trailers once it is all out."""
        stream = self.streams[stream_id]
        view = stream.outgoing
        assert view is not None
        while view:
            allowed = min(self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size, len(view))
            if allowed <= 0:
                stream.outgoing = view
                return  # the rest goes when the client opens its window
            self.h2.send_data(stream_id, view[:allowed].tobytes())
            view = view[allowed:]
        stream.outgoing = None
        self.h2.send_headers(stream_id, _OK_TRAILERS, end_stream=True)
        if self.h2.streams.get(stream_id) is None or self.h2.streams[stream_id].closed:
            del self.streams[stream_id]

    def _resume_sending(self) -> None:
        for stream_id in [i for i, s in self.streams.items() if s.outgoing is not None]:
            self._send(stream_id)

    def close(self) -> None:
        if self.transport is None:
            return
        self.h2.close_connection()
        self.flush()
        self.transport.close()


class GrpcServer:
    """Serves ``methods`` on a TCP port until ``stop``."""

    def __init__(self, methods: dict[str, UnaryMethod], max_message_bytes: int):
        self.methods = methods
        self.max_message_bytes = max_message_bytes
        self.connections: set[_Connection] = set()
        self.in_flight: set[asyncio.Task[None]] = set()
        self.stopping = False
        self._listener: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port``; SO_REUSEPORT, so ``--workers`` processes share it."""
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(lambda: _Connection(self), host, port, reuse_port=True)

    async def stop(self, grace: float) -> None:
        self.stopping = True
        if self._listener is not None:
            self._listener.close()
        if self.in_flight:
            await asyncio.wait(set(self.in_flight), timeout=grace)
        for connection in list(self.connections):
            connection.close()
