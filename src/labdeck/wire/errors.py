"""Where a ``LabdeckError`` becomes an HTTP status and a body, once per API family.

Statuses follow MLflow's table (``mlflow/exceptions.py``) so that its client retries
exactly what it should: bad input is always a 4xx, and the retried statuses (429, 5xx)
are only ever sent for real trouble on our side.
"""

from __future__ import annotations

from typing import Any

from labdeck.errors import LabdeckError

HTTP_STATUS = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "MALFORMED_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "INVALID_STATE": 400,
    "UNAUTHENTICATED": 401,
    "CUSTOMER_UNAUTHORIZED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "NOT_FOUND": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "ABORTED": 409,
    "RESOURCE_CONFLICT": 409,
    "ALREADY_EXISTS": 409,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL_ERROR": 500,
    "DATA_LOSS": 500,
    "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def http_status(error: LabdeckError) -> int:
    return HTTP_STATUS.get(error.code, 500)


def mlflow_body(error: LabdeckError) -> dict[str, Any]:
    return {"error_code": error.code, "message": error.message}


def labdeck_body(error: LabdeckError) -> dict[str, Any]:
    return {"error_code": error.code, "message": error.message, "details": error.details}


def v2_body(error: LabdeckError) -> dict[str, Any]:
    """The Open Inference Protocol's error: ``{"error": message}``."""
    return {"error": error.message}


def seldon_body(error: LabdeckError) -> dict[str, Any]:
    """Seldon Core v1's ``status`` object, as its prepackaged servers answer bad input."""
    return {"status": {"status": 1, "info": error.message, "code": -1, "reason": "MICROSERVICE_BAD_DATA"}}


CHALLENGE = (b"www-authenticate", b'Bearer realm="labdeck", Basic realm="labdeck"')


def error_headers(error: LabdeckError) -> list[tuple[bytes, bytes]]:
    """A 401 says how to authenticate."""
    return [CHALLENGE] if error.code == "UNAUTHENTICATED" else []
