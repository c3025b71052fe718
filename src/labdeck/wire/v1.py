"""labdeck's own API family (``/api/v1``): FastAPI routers from each area, errors as
``{"error_code", "message", "details"}`` with the status of their code, and request
validation failures as 400 INVALID_PARAMETER_VALUE naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from labdeck.errors import InvalidParameter, LabdeckError
from labdeck.wire.errors import error_headers, http_status, labdeck_body

PREFIX = "/api/v1"


def error_response(body: dict[str, Any], status: int, headers: Mapping[str, str] | None = None) -> Response:
    """An error body as JSON (``fastapi.responses.ORJSONResponse`` is deprecated and warns)."""
    return Response(orjson.dumps(body, default=str), status_code=status, headers=headers, media_type="application/json")


def install_error_handlers(app: FastAPI) -> None:
    async def labdeck_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, LabdeckError)
        headers = {k.decode(): v.decode() for k, v in error_headers(error)}
        return error_response(labdeck_body(error), http_status(error), headers)

    async def invalid_request(_request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        problems = [{"field": _field(e), "problem": e["msg"]} for e in error.errors()]
        described = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return error_response(labdeck_body(InvalidParameter(f"Invalid request: {described}", details=problems)), 400)

    async def http_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        code = {404: "ENDPOINT_NOT_FOUND", 405: "BAD_REQUEST"}.get(error.status_code, "BAD_REQUEST")
        body = {"error_code": code, "message": str(error.detail), "details": None}
        return error_response(body, error.status_code, error.headers)

    def _field(problem: dict[str, Any]) -> str:
        """The dotted field a problem is about; "body" for the body as a whole (missing,
        or not JSON, whose location is a character offset)."""
        if problem.get("type") == "json_invalid":
            return "body"
        loc = [str(p) for p in problem["loc"]]
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:]
        return ".".join(loc) or "body"

    app.add_exception_handler(LabdeckError, labdeck_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
