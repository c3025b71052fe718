"""The model server's HTTP side, as plain ASGI with dictionary dispatch (the hot path of
every prediction): V2 REST, Seldon v1, MLflow scoring, health and ``/metrics``.

Every protocol answers bad input with a 4xx in its own error shape (V2 ``{"error"}``,
Seldon's ``status`` object, MLflow's ``{"error_code","message"}``), never a 5xx; a request
id sent in ``X-Request-Id`` is echoed back (with ``--access-log``, a request without one is
given one, logged and returned). The request metrics count predictions, not probes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from labdeck import __version__
from labdeck.errors import InvalidParameter, LabdeckError
from labdeck.serving import seldon_codec, v2_codec
from labdeck.serving.dataplane import DataPlane
from labdeck.serving.request_ids import new_request_id
from labdeck.wire.errors import http_status, seldon_body, v2_body
from labdeck.wire.types import Receive, Scope, Send

log = logging.getLogger("labdeck.serving")
access_log = logging.getLogger("labdeck.serving.access")

JSON = [(b"content-type", b"application/json")]
Handler = Callable[["Call"], Awaitable[None]]


class Call:
    """One HTTP request as the handlers see it, whichever server carries it: ``read`` the
    body (at most ``limit`` bytes) and ``answer`` once. ``AsgiCall`` carries it over ASGI,
    ``labdeck.serving.http`` over the model server's own HTTP/1.1 connections."""

    __slots__ = ("body", "headers", "method", "path", "request_id", "status")

    def __init__(self, method: str, path: str, headers: list[tuple[bytes, bytes]]):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = b""
        self.request_id: bytes | None = None
        self.status = 200
        for name, value in headers:
            if name == b"x-request-id":
                self.request_id = value

    def header(self, wanted: bytes) -> bytes | None:
        for name, value in self.headers:
            if name == wanted:
                return value
        return None

    async def read(self, limit: int) -> bytes:
        raise NotImplementedError

    async def answer(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = JSON) -> None:
        raise NotImplementedError

    async def json(self, status: int, payload: Any) -> None:
        await self.answer(status, orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY))


class AsgiCall(Call):
    """A request that came through an ASGI server."""

    __slots__ = ("receive", "send")

    def __init__(self, scope: Scope, receive: Receive, send: Send):
        super().__init__(scope["method"], scope["path"], scope["headers"])
        self.receive = receive
        self.send = send

    async def read(self, limit: int) -> bytes:
        chunks, size = [], 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise InvalidParameter("The client disconnected before sending the whole body.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"The request body is larger than the limit of {limit} bytes.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                self.body = b"".join(chunks)
                return self.body

    async def answer(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = JSON) -> None:
        self.status = status
        all_headers = [*headers, (b"content-length", str(len(body)).encode())]
        if self.request_id is not None:
            all_headers.append((b"x-request-id", self.request_id))
        await self.send({"type": "http.response.start", "status": status, "headers": all_headers})
        await self.send({"type": "http.response.body", "body": body})


# the handlers that predict (V2's infer is found by its path)
_PREDICTING = frozenset({"seldon_predict", "mlflow_invocations"})


class BodyTooLarge(InvalidParameter):
    """413: the body is over the configured limit."""


def _status(error: LabdeckError) -> int:
    return 413 if isinstance(error, BodyTooLarge) else http_status(error)


class ServingApp:
    """Routes requests to the protocol handlers of one data plane."""

    def __init__(self, plane: DataPlane, *, max_body_bytes: int, log_requests: bool = False):
        self.plane = plane
        self.max_body = max_body_bytes
        self.log_requests = log_requests
        self.metrics = plane.metrics
        self._exact: dict[tuple[str, str], tuple[str, Handler]] = {}
        for method, path, protocol, handler in (
            ("GET", "/v2/health/live", "v2", self.v2_live),
            ("GET", "/v2/health/ready", "v2", self.v2_ready),
            ("GET", "/v2", "v2", self.v2_server),
            ("POST", "/api/v1.0/predictions", "seldon", self.seldon_predict),
            ("POST", "/api/v0.1/predictions", "seldon", self.seldon_predict),
            ("POST", "/predict", "seldon", self.seldon_predict),
            ("POST", "/api/v1.0/feedback", "seldon", self.seldon_feedback),
            ("POST", "/send-feedback", "seldon", self.seldon_feedback),
            ("GET", "/api/v1.0/metadata", "seldon", self.seldon_metadata),
            ("GET", "/metadata", "seldon", self.seldon_metadata),
            ("GET", "/api/v1.0/health/status", "seldon", self.seldon_status),
            ("GET", "/health/status", "seldon", self.seldon_status),
            ("GET", "/health/ping", "seldon", self.ping_text),
            ("GET", "/ready", "seldon", self.seldon_status),
            ("GET", "/live", "seldon", self.ping_text),
            ("POST", "/invocations", "mlflow", self.mlflow_invocations),
            ("GET", "/ping", "mlflow", self.ping_text),
            ("GET", "/health", "mlflow", self.ping_text),
            ("GET", "/version", "mlflow", self.version),
            ("GET", "/metrics", "metrics", self.prometheus),
        ):
            self._exact[(method, path)] = (protocol, handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app under any ASGI server."""
        if scope["type"] == "http":
            await self.handle(AsgiCall(scope, receive, send))

    async def handle(self, call: Call) -> None:
        """Answer one request, whatever carried it; never raises."""
        started = time.perf_counter()
        found = self._exact.get((call.method, call.path))
        protocol = found[0] if found else ("v2" if call.path.startswith("/v2/") else "other")
        if self.log_requests and call.request_id is None:
            call.request_id = new_request_id().encode()  # so that every logged line can be found again
        # the request metrics count predictions only: probes, metadata and /metrics itself
        # would swamp the rate, the error ratio and the latency of what the model does
        counted = (
            found[1].__name__ in _PREDICTING
            if found is not None
            else call.method == "POST" and call.path.startswith("/v2/models/") and call.path.endswith("/infer")
        )
        if counted:
            self.metrics._in_flight.inc()
        try:
            if found is not None:
                await found[1](call)
            elif call.path.startswith("/v2/models/"):
                await self.v2_model(call)
            else:
                await call.json(404, {"error": f"No endpoint {call.method} {call.path}."})
        except LabdeckError as error:
            await self.refuse(call, protocol, error)
        except Exception:
            log.exception("unhandled error answering %s %s", call.method, call.path)
            await call.json(500, {"error": "Internal error; the server log has the details."})
        finally:
            if counted:
                self.metrics._in_flight.dec()
                self.metrics.observe(protocol, call.status, started)
            if self.log_requests:
                access_log.info(
                    "%s %s %d", call.method, call.path, call.status,
                    extra={"ms": round((time.perf_counter() - started) * 1000, 3), "request_id": (call.request_id or b"").decode("utf-8", "replace")},
                )

    async def refuse(self, call: Call, protocol: str, error: LabdeckError) -> None:
        status = _status(error)
        if protocol == "seldon":
            await call.json(status, seldon_body(error))
        elif protocol == "mlflow":
            code = "BAD_REQUEST" if status < 500 else error.code
            await call.json(status, {"error_code": code, "message": error.message})
        else:
            await call.json(status, v2_body(error))

    # ------------------------------------------------------------------ V2

    async def v2_live(self, call: Call) -> None:
        await call.json(200, {"live": True})

    async def v2_ready(self, call: Call) -> None:
        await call.json(200 if self.plane.ready else 503, {"ready": self.plane.ready})

    async def v2_server(self, call: Call) -> None:
        await call.json(200, {"name": "labdeck", "version": __version__, "extensions": ["binary_tensor_data"]})

    async def v2_model(self, call: Call) -> None:
        parts = call.path[len("/v2/models/") :].split("/")
        name, version, rest = parts[0], None, parts[1:]
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        self.plane.check_model(name, version)
        action = rest[0] if rest else ""
        if call.method == "GET" and action == "" and len(rest) <= 1:
            await call.json(200, self.v2_metadata())
        elif call.method == "GET" and action == "ready" and len(rest) == 1:
            await call.json(200 if self.plane.ready else 503, {"name": self.plane.name, "ready": self.plane.ready})
        elif call.method == "POST" and action == "infer" and len(rest) == 1:
            await self.v2_infer(call)
        else:
            await call.json(404, {"error": f"No endpoint {call.method} {call.path}."})

    def v2_metadata(self) -> dict[str, Any]:
        meta = self.plane.metadata
        if meta is None:
            return {"name": self.plane.name, "platform": "", "inputs": [], "outputs": []}

        def spec(s: Any) -> dict[str, Any]:
            return {"name": s.name, "datatype": s.datatype, "shape": list(s.shape), **({"parameters": s.parameters} if s.parameters else {})}

        out: dict[str, Any] = {"name": meta.name, "platform": meta.platform, "inputs": [spec(s) for s in meta.inputs], "outputs": [spec(s) for s in meta.outputs]}
        if meta.versions:
            out["versions"] = list(meta.versions)
        if meta.parameters:
            out["parameters"] = meta.parameters
        return out

    async def v2_infer(self, call: Call) -> None:
        self._require_ready()
        body = await call.read(self.max_body)
        header = call.header(b"inference-header-content-length")
        try:
            header_length = int(header) if header is not None else None
        except ValueError:
            raise InvalidParameter("Inference-Header-Content-Length must be an integer.") from None
        request = v2_codec.decode_request(body, header_length)
        response = await self.plane.infer(request)
        payload, json_length = v2_codec.encode_response(response, request)
        if json_length is None:
            await call.answer(200, payload)
        else:
            await call.answer(
                200,
                payload,
                [(b"content-type", b"application/octet-stream"), (b"inference-header-content-length", str(json_length).encode())],
            )

    def _require_ready(self) -> None:
        if not self.plane.ready:
            from labdeck.errors import Unavailable

            raise Unavailable("The model is still loading.")

    # ------------------------------------------------------------------ Seldon v1

    async def seldon_predict(self, call: Call) -> None:
        self._require_ready()
        body = _json_body(await call.read(self.max_body))
        inputs, kind, _names, meta = seldon_codec.seldon_request(body)
        outputs = await self.plane.predict(inputs, [], {})
        await call.json(200, seldon_codec.seldon_response(outputs, kind, meta, self.plane.name))

    async def seldon_feedback(self, call: Call) -> None:
        body = _json_body(await call.read(self.max_body))
        if not isinstance(body, dict):
            raise InvalidParameter("Feedback must be a JSON object (request, response, reward, truth).")
        reward = body.get("reward")
        if reward is not None and (isinstance(reward, bool) or not isinstance(reward, (int, float))):
            raise InvalidParameter("'reward' must be a number.")
        self.plane.feedback_count += 1
        self.metrics.feedback.labels(self.plane.name).inc()
        await call.json(200, {"meta": {"tags": {}, "metrics": []}, "data": {"names": [], "ndarray": []}})

    async def seldon_metadata(self, call: Call) -> None:
        meta = self.v2_metadata()
        await call.json(200, {"name": self.plane.name, "versions": meta.get("versions", []), "platform": meta["platform"], "inputs": meta["inputs"], "outputs": meta["outputs"]})

    async def seldon_status(self, call: Call) -> None:
        ready = self.plane.ready
        await call.json(200 if ready else 503, {"status": "ok" if ready else "loading", "model": self.plane.name})

    async def ping_text(self, call: Call) -> None:
        text = b"pong" if call.path == "/health/ping" else (b"\n" if call.path in ("/ping", "/health") else b"OK")
        await call.answer(200 if self.plane.ready or call.path == "/live" else 503, text, [(b"content-type", b"text/plain")])

    # ------------------------------------------------------------------ MLflow scoring

    async def mlflow_invocations(self, call: Call) -> None:
        self._require_ready()
        body = await call.read(self.max_body)
        content_type = (call.header(b"content-type") or b"application/json").split(b";")[0].strip()
        if content_type == b"text/csv":
            inputs, params = seldon_codec.csv_request(body), {}
        elif content_type == b"application/json":
            inputs, params = seldon_codec.mlflow_request(_json_body(body))
        else:
            raise InvalidParameter(f"Unsupported content type {content_type.decode()!r}: send application/json or text/csv.")
        outputs = await self.plane.predict(inputs, [], params)
        await call.json(200, seldon_codec.mlflow_response(outputs))

    async def version(self, call: Call) -> None:
        await call.answer(200, __version__.encode(), [(b"content-type", b"text/plain")])

    async def prometheus(self, call: Call) -> None:
        await call.answer(200, self.metrics.render(), [(b"content-type", b"text/plain; version=0.0.4")])


def _json_body(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter(f"Malformed JSON: {exc}") from None


