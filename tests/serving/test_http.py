"""The model server's own HTTP/1.1 server (``labdeck.serving.http``), spoken to over raw
sockets where a client library would hide the case: pipelined requests, chunked bodies,
``Expect: 100-continue``, the body limit, ``Connection: close``, HTTP/1.0, malformed
requests, requests that arrive a few bytes at a time, NaN through the binary extension.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import numpy as np
import orjson

from tests.serving.models_kit import IRIS_ROWS, MAX_BODY_MB, Models, Server, Servers, expected

INFER = "/v2/models/iris/infer"


def infer_body(rows: np.ndarray) -> bytes:
    return orjson.dumps({"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.reshape(-1).tolist()}]})


def post_bytes(path: str, body: bytes, *extra: str, version: str = "1.1") -> bytes:
    head = [f"POST {path} HTTP/{version}", "Host: test", "Content-Type: application/json", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)


class Wire:
    """One raw connection, reading responses as they come."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def read_head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"connection closed before a response head; got {self.buffer!r}"
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ")[:2]
        assert version == "HTTP/1.1", lines[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status), headers

    def read(self) -> Response:
        status, headers = self.read_head()
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            assert self._fill(), "connection closed inside a response body"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Response(status, headers, body)

    def closed(self) -> bool:
        """Whether the server has closed the connection (after anything still buffered)."""
        self.sock.settimeout(10)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


@contextmanager
def wire(server: Server) -> Iterator[Wire]:
    url = urlparse(server.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    try:
        yield Wire(sock)
    finally:
        sock.close()


def predicted(trained: Models, rows: np.ndarray) -> list[Any]:
    return expected(trained["lr_skops"], rows).tolist()


def test_pipelined_requests_are_answered_in_order(servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    first, second = IRIS_ROWS[:1], IRIS_ROWS[1:]
    with wire(iris) as conn:
        conn.send(
            post_bytes(INFER, infer_body(first), "X-Request-Id: one")
            + b"GET /v2/health/ready HTTP/1.1\r\nHost: test\r\nX-Request-Id: two\r\n\r\n"
            + post_bytes(INFER, infer_body(second), "X-Request-Id: three")
        )
        answers = [conn.read() for _ in range(3)]
        assert [a.status for a in answers] == [200, 200, 200]
        assert [a.headers["x-request-id"] for a in answers] == ["one", "two", "three"]
        assert answers[0].json()["outputs"][0]["data"] == predicted(trained, first)
        assert answers[1].json() == {"ready": True}
        assert answers[2].json()["outputs"][0]["data"] == predicted(trained, second)
        assert "date" in answers[0].headers
        # and the connection stays open for more
        conn.send(post_bytes(INFER, infer_body(first)))
        assert conn.read().json()["outputs"][0]["data"] == predicted(trained, first)


def test_a_chunked_body_arriving_in_pieces(servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    body = infer_body(IRIS_ROWS)
    pieces = [body[:7], body[7:40], body[40:]]
    with wire(iris) as conn:
        conn.send(f"POST {INFER} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        for piece in pieces:
            conn.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
        conn.send(b"0\r\n\r\n")
        answer = conn.read()
        assert answer.status == 200, answer.body
        assert answer.json()["outputs"][0]["data"] == predicted(trained, IRIS_ROWS)


def test_a_request_sent_a_few_bytes_at_a_time(servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    request = post_bytes(INFER, infer_body(IRIS_ROWS))
    with wire(iris) as conn:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(request), 5):
            conn.send(request[start : start + 5])
        answer = conn.read()
        assert answer.status == 200
        assert answer.json()["outputs"][0]["data"] == predicted(trained, IRIS_ROWS)


def test_expect_100_continue(servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    body = infer_body(IRIS_ROWS)
    with wire(iris) as conn:
        head = post_bytes(INFER, b"", "Expect: 100-continue").replace(b"Content-Length: 0", b"Content-Length: %d" % len(body))
        conn.send(head)
        status, _ = conn.read_head()
        assert status == 100
        conn.send(body)
        answer = conn.read()
        assert answer.status == 200
        assert answer.json()["outputs"][0]["data"] == predicted(trained, IRIS_ROWS)


def test_expect_100_continue_with_a_body_over_the_limit_is_refused_before_it_is_sent(servers: Servers) -> None:
    iris = servers.get("iris")
    too_big = int(MAX_BODY_MB * 1024 * 1024) + 1
    with wire(iris) as conn:
        conn.send(
            f"POST {INFER} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {too_big}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        answer = conn.read()  # at once: no 100 Continue first
        assert answer.status == 413
        assert "larger than the limit" in answer.json()["error"]
        # the body it declared never came, so the connection cannot go on
        assert answer.headers["connection"] == "close"
        assert conn.closed()


def test_a_body_over_the_limit_is_413_and_the_connection_goes_on(servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    limit = int(MAX_BODY_MB * 1024 * 1024)
    for declared in (True, False):  # by Content-Length, and chunked (known only as it arrives)
        with wire(iris) as conn:
            big = b" " * (limit + 4096)
            if declared:
                conn.send(post_bytes(INFER, big))
            else:
                conn.send(f"POST {INFER} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
                for start in range(0, len(big), 65536):
                    piece = big[start : start + 65536]
                    conn.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
                conn.send(b"0\r\n\r\n")
            answer = conn.read()
            assert answer.status == 413, answer.body
            assert f"limit of {limit} bytes" in answer.json()["error"]
            assert "connection" not in answer.headers
            conn.send(post_bytes(INFER, infer_body(IRIS_ROWS)))
            again = conn.read()
            assert again.status == 200
            assert again.json()["outputs"][0]["data"] == predicted(trained, IRIS_ROWS)


def test_connection_close_is_honoured(servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    with wire(iris) as conn:
        conn.send(post_bytes(INFER, infer_body(IRIS_ROWS), "Connection: close"))
        answer = conn.read()
        assert answer.status == 200
        assert answer.json()["outputs"][0]["data"] == predicted(trained, IRIS_ROWS)
        assert answer.headers["connection"] == "close"
        assert conn.closed()


def test_http_1_0(servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    with wire(iris) as conn:  # closed after the answer, as HTTP/1.0 expects by default
        conn.send(post_bytes(INFER, infer_body(IRIS_ROWS), version="1.0"))
        answer = conn.read()
        assert answer.status == 200
        assert answer.json()["outputs"][0]["data"] == predicted(trained, IRIS_ROWS)
        assert conn.closed()
    with wire(iris) as conn:  # unless it asks to keep the connection
        for _ in range(2):
            conn.send(post_bytes(INFER, infer_body(IRIS_ROWS), "Connection: keep-alive", version="1.0"))
            answer = conn.read()
            assert answer.status == 200
            assert answer.headers["connection"] == "keep-alive"


def test_a_malformed_request_is_400_and_the_connection_ends(servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    for garbage in (b"HELLO?\r\n\r\n", b"GET / HTTP/9.9x\r\n\r\n", b"POST /v2 HTTP/1.1\r\nContent-Length: ten\r\n\r\n"):
        with wire(iris) as conn:
            conn.send(garbage)
            answer = conn.read()
            assert answer.status == 400, garbage
            assert "Malformed HTTP request" in answer.json()["error"]
            assert conn.closed()
    with iris.http() as http:  # the server is none the worse
        assert http.post(INFER, content=infer_body(IRIS_ROWS)).json()["outputs"][0]["data"] == predicted(trained, IRIS_ROWS)


def test_head_gets_the_headers_without_a_body(servers: Servers) -> None:
    iris = servers.get("iris")
    with wire(iris) as conn:
        conn.send(b"HEAD /v2/health/ready HTTP/1.1\r\nHost: test\r\n\r\n")
        status, headers = conn.read_head()
        assert status == 404 and int(headers["content-length"]) > 0
        conn.send(b"GET /v2/health/ready HTTP/1.1\r\nHost: test\r\n\r\n")
        assert conn.read().json() == {"ready": True}  # nothing of the HEAD's body came between


def test_nan_in_binary_data_is_refused_or_predicted_as_scikit_learn_would(servers: Servers, trained: Models) -> None:
    """The server skips scikit-learn's own NaN check only for inputs that are all finite:
    a NaN that arrives as binary data still meets it (a 400 here, as LogisticRegression
    takes no missing values), and finite binary data predicts exactly as JSON does."""
    iris = servers.get("iris")
    for rows, status in ((IRIS_ROWS, 200), (np.array([[5.1, np.nan, 1.4, 0.2]]), 400), (np.array([[np.inf, 3.0, 1.4, 0.2]]), 400)):
        raw = rows.astype("<f8").tobytes()
        head = orjson.dumps({"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64", "parameters": {"binary_data_size": len(raw)}}]})
        with wire(iris) as conn:
            conn.send(post_bytes(INFER, head + raw, f"Inference-Header-Content-Length: {len(head)}"))
            answer = conn.read()
        assert answer.status == status, answer.body
        if status == 200:
            assert answer.json()["outputs"][0]["data"] == predicted(trained, rows)
        else:
            assert "NaN" in answer.json()["error"] or "infinity" in answer.json()["error"], answer.json()



def test_headers_over_64_kib_are_431(servers: Servers) -> None:
    iris = servers.get("iris")
    with wire(iris) as conn:
        conn.send(b"GET /v2/health/ready HTTP/1.1\r\nHost: test\r\n" + b"X-Filler: " + b"a" * 70_000 + b"\r\n\r\n")
        answer = conn.read()
        assert answer.status == 431
        assert "larger than 65536 bytes" in answer.json()["error"]
        assert conn.closed()


def test_an_absolute_url_as_the_request_target(servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    with wire(iris) as conn:
        conn.send(post_bytes(f"http://test{INFER}?verbose=1", infer_body(IRIS_ROWS)))
        answer = conn.read()
        assert answer.status == 200
        assert answer.json()["outputs"][0]["data"] == predicted(trained, IRIS_ROWS)
