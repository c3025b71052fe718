"""The MLflow-compatible RPC surface: routing, request fields, and error bodies.

An area declares its endpoints as methods decorated with ``@rpc(method, path)`` on a
class, and ``RpcRouter.include(instance)`` registers them. Each endpoint is served at
``/api/<v>.0<path>`` and ``/ajax-api/<v>.0<path>`` exactly as MLflow's server does.

Request fields follow MLflow's JSON conventions: POST/PATCH/DELETE carry a JSON object
(empty body = ``{}``, a double-encoded JSON string is accepted, unknown fields are
ignored); GET carries the query string, where a repeated key is a list and booleans are
``true``/``false``. ``RpcRequest``'s typed getters check each field and raise
``InvalidParameter`` naming the field, so a handler never sees a wrongly typed value.
No string of a request (body, query or path) may contain a NUL character: PostgreSQL
cannot store one, so it is refused up front, on every backend alike.

The router is plain ASGI with dictionary dispatch: this is the hot path of every metric
a client logs, so it avoids per-request framework work.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson

from labdeck.errors import InvalidParameter, LabdeckError, MalformedRequest
from labdeck.wire.errors import error_headers, http_status, mlflow_body
from labdeck.wire.responses import read_body, send_json
from labdeck.wire.types import Receive, Scope, Send

log = logging.getLogger(__name__)

JSON_BODY_LIMIT = 16 * 1024 * 1024
_MISSING = object()


def rpc(method: str, path: str, *, needs: Any, version: int = 2, stream: bool = False) -> Callable:
    """Mark a method as the handler of ``method path``. ``needs`` is what the caller must
    be allowed (an ``auth.needs`` value, checked by the router's guard before the handler
    runs); ``stream`` leaves the body unread."""

    def mark(fn: Callable) -> Callable:
        fn.__dict__.setdefault("__rpc__", []).append(_Endpoint(method, path, version, stream, needs))
        return fn

    return mark


@dataclass(frozen=True, slots=True)
class _Endpoint:
    method: str
    path: str
    version: int
    stream: bool
    needs: Any


@dataclass(frozen=True, slots=True)
class _Route:
    handler: Handler
    stream: bool
    needs: Any


class Raw:
    """A handler result that writes its own response (files, streams, non-JSON bodies)."""

    async def send(self, send: Send) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class RpcRequest:
    """One request's fields, with typed getters that validate as MLflow's protos do."""

    __slots__ = ("_data", "_is_query", "path_params", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive, data: dict[str, Any], is_query: bool, path_params: dict[str, str]):
        self.scope = scope
        self.receive = receive
        self._data = data
        self._is_query = is_query
        self.path_params = path_params

    @property
    def fields(self) -> dict[str, Any]:
        return self._data

    def has(self, name: str) -> bool:
        return self._data.get(name) is not None

    def _raw(self, name: str, required: bool) -> Any:
        value = self._data.get(name, _MISSING)
        if self._is_query and value is not _MISSING:
            value = value[0]
        if value is _MISSING or value is None:
            if required:
                raise InvalidParameter(f"Missing value for required parameter '{name}'.")
            return _MISSING
        return value

    def str(self, name: str, *, required: bool = False, default: Any = None) -> Any:
        value = self._raw(name, required)
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            raise _invalid(name, value, "expected a string")
        if required and value == "":
            raise InvalidParameter(f"Missing value for required parameter '{name}'.")
        return value

    def int(self, name: str, *, required: bool = False, default: Any = None) -> Any:
        value = self._raw(name, required)
        if value is _MISSING:
            return default
        return as_int64(name, value)

    def float(self, name: str, *, required: bool = False, default: Any = None) -> Any:
        value = self._raw(name, required)
        if value is _MISSING:
            return default
        return as_double(name, value)

    def bool(self, name: str, *, required: bool = False, default: Any = None) -> Any:
        value = self._raw(name, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise InvalidParameter(f"Invalid boolean value: {value}, must be 'true' or 'false'.")

    def enum(self, name: str, allowed: tuple[str, ...], *, default: Any = None, required: bool = False) -> Any:
        value = self._raw(name, required)
        if value is _MISSING:
            return default
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(allowed):
            return allowed[value - 1]
        if not isinstance(value, str) or value not in allowed:
            raise _invalid(name, value, f"expected one of {', '.join(allowed)}")
        return value

    def str_list(self, name: str) -> list[str]:
        value = self._data.get(name)
        if value is None:
            return []
        if not self._is_query:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _invalid(name, value, "expected a list of strings")
        return value

    def obj_list(self, name: str) -> list[dict[str, Any]]:
        value = self._data.get(name)
        if value is None:
            return []
        if self._is_query:
            raise InvalidParameter(f"Parameter '{name}' cannot be given in a query string.")
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise _invalid(name, value, "expected a list of objects")
        return value

    def field(self, name: str) -> Any:
        """A field by name for access checks: a path parameter, ``run_id`` with its alias,
        a query value (a list when repeated) or a body value; None when absent."""
        if name in self.path_params:
            return self.path_params[name]
        if name == "run_id":
            repeated = self._data.get("run_id") if self._is_query else None
            if isinstance(repeated, list) and len(repeated) > 1:
                return repeated  # ?run_id=a&run_id=b (GetMetricHistoryBulk): every one is checked
            return self.run_id()
        value = self._data.get(name)
        if self._is_query and isinstance(value, list):
            return value[0] if len(value) == 1 else value
        return value

    def run_id(self, *, required: bool = True) -> Any:
        """``run_id``, or the deprecated ``run_uuid`` that older clients send alongside it."""
        run_id = self.str("run_id")
        run_uuid = self.str("run_uuid")
        if run_id and run_uuid and run_id != run_uuid:
            raise InvalidParameter(
                "Request specifies both 'run_id' and 'run_uuid' with different values; provide only one of them."
            )
        value = run_id or run_uuid
        if not value and required:
            raise InvalidParameter("Missing value for required parameter 'run_id'.")
        return value


def as_int64(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise _invalid(name, value, "expected an integer")
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        result = int(value)
    else:
        raise _invalid(name, value, "expected an integer")
    if not -(2**63) <= result < 2**63:
        raise _invalid(name, value, "must fit in a 64-bit integer")
    return result


_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def as_double(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise _invalid(name, value, "expected a number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        special = _SPECIAL_DOUBLES.get(value)
        if special is not None:
            return special
        try:
            return float(value)
        except ValueError:
            pass
    raise _invalid(name, value, "expected a number")


def _invalid(name: str, value: Any, why: str) -> InvalidParameter:
    try:
        shown = orjson.dumps(value, default=str).decode()
    except TypeError:  # nested deeper than orjson writes; the request parser reads deeper
        shown = f"<{type(value).__name__} nested too deeply to show>"
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return InvalidParameter(f"Invalid value {shown} for parameter '{name}' supplied: {why}.")


def reject_nul(value: Any, path: str) -> None:
    """Refuse a NUL character in any string of ``value`` (keys included), naming where.

    Iterative, so a deeply nested document cannot exhaust the interpreter's stack.
    """
    pending: list[tuple[Any, str]] = [(value, path)]
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise _invalid(where, item, "it contains a NUL character")
        elif isinstance(item, dict):
            for key, child in item.items():
                pending.append((key, where))
                pending.append((child, f"{where}.{key}" if where else key))
        elif isinstance(item, list):
            pending.extend((child, f"{where}[{i}]") for i, child in enumerate(item))


Handler = Callable[[RpcRequest], Awaitable[Any]]
Guard = Callable[[Any, RpcRequest], Awaitable[Any]]

_MLFLOW_PATH = re.compile(r"/(api|ajax-api)/\d+\.0/")


class RpcRouter:
    """Dispatches MLflow API requests to handlers; one instance serves every area."""

    PREFIXES = ("/api/", "/ajax-api/")

    def __init__(self, guard: Guard):
        self._guard = guard
        self._exact: dict[tuple[str, str], _Route] = {}
        self._patterns: list[tuple[str, re.Pattern[str], _Route]] = []

    def include(self, api: object) -> None:
        for attr in dir(type(api)):
            fn = getattr(type(api), attr, None)
            for endpoint in getattr(fn, "__rpc__", ()):
                self.add(endpoint, getattr(api, attr))

    def add(self, endpoint: _Endpoint, handler: Handler) -> None:
        if endpoint.needs is None:
            raise ValueError(f"{endpoint.method} {endpoint.path} declares no access rule")
        route = _Route(handler, endpoint.stream, endpoint.needs)
        for prefix in self.PREFIXES:
            full = f"{prefix}{endpoint.version}.0{endpoint.path}"
            if "{" in full:
                self._patterns.append((endpoint.method, _compile(full), route))
            else:
                key = (endpoint.method, full)
                if key in self._exact:
                    raise ValueError(f"two handlers for {endpoint.method} {full}")
                self._exact[key] = route

    def routes(self) -> list[tuple[str, str, Any]]:
        """Every (method, path pattern, needs) served, for tests that walk them all."""
        out = [(m, p, r.needs) for (m, p), r in self._exact.items()]
        out += [(m, pattern.pattern, r.needs) for m, pattern, r in self._patterns]
        return out

    def owns(self, path: str) -> bool:
        """Whether ``path`` is in MLflow's API family (``/api/<n>.0/``, ``/ajax-api/<n>.0/``),
        so that even an unknown endpoint there is answered in MLflow's error shape."""
        return _MLFLOW_PATH.match(path) is not None

    def _match(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        found = self._exact.get((method, path))
        if found is not None:
            return found, {}
        for pattern_method, pattern, route in self._patterns:
            if pattern_method == method:
                m = pattern.fullmatch(path)
                if m:
                    # the ASGI server has percent-decoded the path once already
                    params = m.groupdict()
                    reject_nul(params, "")
                    return route, params
        return None

    def _allowed_methods(self, path: str) -> list[str]:
        methods = {m for (m, p) in self._exact if p == path}
        methods |= {m for (m, pattern, _r) in self._patterns if pattern.fullmatch(path)}
        return sorted(methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        path = scope["path"]
        if method == "HEAD":
            method = "GET"
        try:
            matched = self._match(method, path)
            if matched is None:
                allowed = self._allowed_methods(path)
                if allowed:
                    await send_json(
                        send,
                        405,
                        {"error_code": "BAD_REQUEST", "message": f"Method {method} is not allowed for {path}; use {', '.join(allowed)}."},
                        [(b"allow", ", ".join(allowed).encode())],
                    )
                else:
                    await send_json(
                        send, 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No API endpoint {method} {path}."}
                    )
                return
            route, path_params = matched
            request = await _build_request(scope, receive, method, route.stream, path_params)
            await self._guard(route.needs, request)
            result = await route.handler(request)
            if isinstance(result, Raw):
                await result.send(send)
            else:
                await send_json(send, 200, result)
        except LabdeckError as error:
            await send_json(send, http_status(error), mlflow_body(error), error_headers(error))
        except Exception:
            log.exception("unhandled error in %s %s", method, path)
            await send_json(send, 500, {"error_code": "INTERNAL_ERROR", "message": "Internal error; the server log has the details."})


async def _build_request(scope: Scope, receive: Receive, method: str, stream: bool, path_params: dict[str, str]) -> RpcRequest:
    if method == "GET" or stream:
        query = scope.get("query_string", b"")
        data = parse_qs(query.decode("latin-1"), keep_blank_values=True) if query else {}
        for name, values in data.items():
            for value in (name, *values):
                if "\x00" in value:
                    raise _invalid(name, value, "it contains a NUL character")
        return RpcRequest(scope, receive, data, True, path_params)
    body = await read_body(receive, JSON_BODY_LIMIT)
    return RpcRequest(scope, receive, parse_json_object(body), False, path_params)


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = orjson.loads(body)
        if isinstance(data, str):
            data = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"Malformed JSON in request body: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedRequest("Request body must be a JSON object.")
    if b"\\u0000" in body:  # the only way JSON can spell NUL; skips the walk otherwise
        reject_nul(data, "")
    return data


def _compile(path: str) -> re.Pattern[str]:
    out = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{"):
            name, _, kind = part[1:-1].partition(":")
            out += f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)"
        else:
            out += re.escape(part)
    return re.compile(out)
