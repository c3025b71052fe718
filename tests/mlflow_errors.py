"""Assertions on MLflow-family error answers, shared by the validation suites."""

from __future__ import annotations

import httpx
import pytest


def check_error_shape(response: httpx.Response) -> None:
    """Never a 5xx; every error body is exactly MLflow's ``error_code`` + ``message``."""
    response.read()
    assert response.status_code < 500, f"{response.request.method} {response.request.url}: {response.text}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error_code", "message"}, body
        assert isinstance(body["error_code"], str) and isinstance(body["message"], str), body


@pytest.fixture(autouse=True)
def every_response_checked(request: pytest.FixtureRequest) -> None:
    """Modules that import this fixture check every answer their ``api`` client gets."""
    if "api" in request.fixturenames:
        request.getfixturevalue("api").event_hooks["response"].append(check_error_shape)


def expect_error(
    response: httpx.Response, status: int, code: str, message: str | None = None, *, starts: str | None = None
) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    if message is not None:
        assert body["message"] == message, body
    if starts is not None:
        assert body["message"].startswith(starts), body
    return body["message"]
