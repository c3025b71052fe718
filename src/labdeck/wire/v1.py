"""labdeck's own API family (``/api/v1``): FastAPI routers from each area, errors as
``{"error_code", "message", "details"}`` with the status of their code, and request
validation failures as 400 INVALID_PARAMETER_VALUE naming the field."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from labdeck.errors import InvalidParameter, LabdeckError
from labdeck.wire.errors import http_status, labdeck_body

PREFIX = "/api/v1"


def install_error_handlers(app: FastAPI) -> None:
    async def labdeck_error(_request: Request, error: Exception) -> ORJSONResponse:
        assert isinstance(error, LabdeckError)
        return ORJSONResponse(labdeck_body(error), status_code=http_status(error))

    async def invalid_request(_request: Request, error: Exception) -> ORJSONResponse:
        assert isinstance(error, RequestValidationError)
        problems = [
            {"field": ".".join(str(p) for p in e["loc"] if p not in ("body", "query", "path")), "problem": e["msg"]}
            for e in error.errors()
        ]
        described = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return ORJSONResponse(
            labdeck_body(InvalidParameter(f"Invalid request: {described}", details=problems)), status_code=400
        )

    async def http_error(_request: Request, error: Exception) -> ORJSONResponse:
        assert isinstance(error, StarletteHTTPException)
        code = {404: "ENDPOINT_NOT_FOUND", 405: "BAD_REQUEST"}.get(error.status_code, "BAD_REQUEST")
        body = {"error_code": code, "message": str(error.detail), "details": None}
        return ORJSONResponse(body, status_code=error.status_code, headers=error.headers)

    app.add_exception_handler(LabdeckError, labdeck_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
