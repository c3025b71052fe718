"""The gateway: predictions through the labdeck server to a deployment's replicas.

``/deployments/<name>/<path>`` and ``/seldon/<namespace>/<name>/<path>`` (the path Seldon
Core's ingress uses) are forwarded as ``/<path>`` to a ready replica: a predictor chosen
by traffic weight, a replica by round-robin. Every shadow predictor gets a copy, sent
after the caller has its answer and never waited for (beyond ``MAX_SHADOWS_IN_FLIGHT``
copies are dropped rather than queued). A request whose replica fails before any answer
arrives (refused, reset, closed while idle) is sent to another replica; predictions have
no side effects, so this is safe. The caller needs READ on the deployment. Each request to
a deployment the caller may read is counted, with its latency, in ``TrafficStats`` (what
the UI's live charts draw).

Errors of the gateway itself use the protocol's own shape: Seldon's ``status`` object
under ``/api/v1.0`` and ``/api/v0.1``, ``{"error"}`` under ``/v2``, labdeck's otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from labdeck.auth.guard import Guard
from labdeck.auth.needs import READ, On
from labdeck.deployments.proxy import UpstreamError, UpstreamPool, forwardable
from labdeck.deployments.routes import DeploymentRoute, PredictorRoute, RoutingTable
from labdeck.deployments.traffic import TrafficStats
from labdeck.errors import InvalidParameter, LabdeckError, NotFound, Unavailable
from labdeck.wire.errors import error_headers, http_status, labdeck_body, seldon_body, v2_body
from labdeck.wire.types import Receive, Scope, Send

log = logging.getLogger(__name__)

PREFIXES = ("/deployments/", "/seldon/")
ATTEMPTS = 3
MAX_SHADOWS_IN_FLIGHT = 64


class Gateway:
    def __init__(
        self,
        routes: RoutingTable,
        guard: Guard,
        *,
        timeout_s: float = 60.0,
        max_body_bytes: int = 64 << 20,
        traffic: TrafficStats | None = None,
    ):
        self.routes = routes
        self.guard = guard
        self.traffic = traffic
        self.max_body = max_body_bytes
        self.pool = UpstreamPool(timeout_s)
        self._shadows: set[asyncio.Task[None]] = set()

    @staticmethod
    def owns(path: str) -> bool:
        return path.startswith(PREFIXES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        name, namespace, rest = _split(path)
        shape = _shape(rest)
        started = time.perf_counter()
        counted: str | None = None  # only requests to a deployment the caller may read are counted
        try:
            route = self._route(name, namespace)
            # checked before saying whether a name exists, and before the body is read
            await self.guard.check(On("deployment", READ, "name"), scope, lambda _field: route.name if route else name)
            if route is None:
                where = f"{namespace}/{name}" if namespace else name
                raise NotFound(f"No deployment '{where}'.")
            counted = route.name
            body = await _read(receive, self.max_body)
            target = rest.encode() + (b"?" + scope["query_string"] if scope.get("query_string") else b"")
            predictor, answer = await self._forward(route, scope["method"], target, scope["headers"], body)
        except LabdeckError as error:
            self._count(counted, http_status(error), started)
            await _refuse(send, error, shape)
            return
        self._count(counted, answer.status, started)
        headers = forwardable(answer.headers)
        headers.append((b"content-length", str(len(answer.body)).encode()))
        headers.append((b"x-labdeck-predictor", predictor.name.encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        for shadow in route.shadows():
            self._mirror(route, shadow, scope["method"], target, scope["headers"], body)

    def _count(self, deployment: str | None, status: int, started: float) -> None:
        if self.traffic is not None and deployment is not None:
            self.traffic.record(deployment, status, time.perf_counter() - started)

    def _route(self, name: str, namespace: str | None) -> DeploymentRoute | None:
        if namespace is None:
            return self.routes.get(name)
        return self.routes.by_namespace(namespace, name)

    async def _forward(
        self, route: DeploymentRoute, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[PredictorRoute, Any]:
        predictor = route.choose()
        last_problem = "no replica is ready"
        for _ in range(ATTEMPTS):
            if predictor is None or not predictor.endpoints:
                predictor = route.choose()  # the chosen predictor lost its last replica: another one
            endpoint = predictor.endpoint() if predictor is not None else None
            if predictor is None or endpoint is None:
                break
            try:
                return predictor, await self.pool.request(endpoint, method, target, headers, body)
            except UpstreamError as problem:
                last_problem = str(problem)
                if problem.answered:
                    raise Unavailable(f"Deployment '{route.name}': {problem}") from None
                if problem.fresh:
                    self.routes.mark_down(route.name, endpoint)
                    self.pool.forget(endpoint)
        raise Unavailable(f"Deployment '{route.name}' cannot answer now: {last_problem}.")

    def _mirror(
        self, route: DeploymentRoute, shadow: PredictorRoute, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        endpoint = shadow.endpoint()
        if endpoint is None or len(self._shadows) >= MAX_SHADOWS_IN_FLIGHT:
            return

        async def send_copy() -> None:
            try:
                await self.pool.request(endpoint, method, target, headers, body)
            except UpstreamError as problem:
                log.debug("shadow request failed", extra={"deployment": route.name, "predictor": shadow.name, "reason": str(problem)})

        task = asyncio.create_task(send_copy())
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    def close(self) -> None:
        for task in self._shadows:
            task.cancel()
        self.pool.close()


def _split(path: str) -> tuple[str, str | None, str]:
    """(deployment name, namespace or None, the path on the replica)."""
    if path.startswith("/seldon/"):
        namespace, _, remainder = path[len("/seldon/") :].partition("/")
        name, _, rest = remainder.partition("/")
        return name, namespace, "/" + rest
    name, _, rest = path[len("/deployments/") :].partition("/")
    return name, None, "/" + rest


def _shape(rest: str) -> str:
    if rest.startswith(("/api/v1.0/", "/api/v0.1/")):
        return "seldon"
    if rest.startswith("/v2"):
        return "v2"
    return "labdeck"


async def _read(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidParameter("The client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise InvalidParameter(f"The request body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _refuse(send: Send, error: LabdeckError, shape: str) -> None:
    body = seldon_body(error) if shape == "seldon" else v2_body(error) if shape == "v2" else labdeck_body(error)
    payload = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *error_headers(error)]
    await send({"type": "http.response.start", "status": http_status(error), "headers": headers})
    await send({"type": "http.response.body", "body": payload})
