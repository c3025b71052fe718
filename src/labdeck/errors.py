"""The one error type of labdeck and its subclasses.

Every rule broken anywhere in labdeck raises a ``LabdeckError`` carrying an error code
(MLflow's names, so that the MLflow-compatible API can send it unchanged) and a message
for a person. This module knows nothing about HTTP: the mapping from code to status and
body shape lives once per API family in ``labdeck.wire.errors``.

    LabdeckError                 INTERNAL_ERROR (a bug)
    ├── InvalidParameter         INVALID_PARAMETER_VALUE (bad input)
    │   └── MalformedRequest     MALFORMED_REQUEST (unparseable body)
    ├── NotFound                 RESOURCE_DOES_NOT_EXIST
    ├── AlreadyExists            RESOURCE_ALREADY_EXISTS
    ├── InvalidState             INVALID_STATE
    ├── Unauthenticated          UNAUTHENTICATED
    ├── PermissionDenied         PERMISSION_DENIED
    ├── NotImplementedByStore    NOT_IMPLEMENTED
    └── Unavailable              TEMPORARILY_UNAVAILABLE
"""

from __future__ import annotations

from typing import Any


class LabdeckError(Exception):
    """Base error: ``code`` is an MLflow ErrorCode name, ``message`` is for people."""

    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r})"


class InvalidParameter(LabdeckError):
    code = "INVALID_PARAMETER_VALUE"


class MalformedRequest(InvalidParameter):
    code = "MALFORMED_REQUEST"


class NotFound(LabdeckError):
    code = "RESOURCE_DOES_NOT_EXIST"


class AlreadyExists(LabdeckError):
    code = "RESOURCE_ALREADY_EXISTS"


class InvalidState(LabdeckError):
    code = "INVALID_STATE"


class Unauthenticated(LabdeckError):
    code = "UNAUTHENTICATED"


class PermissionDenied(LabdeckError):
    code = "PERMISSION_DENIED"


class NotImplementedByStore(LabdeckError):
    code = "NOT_IMPLEMENTED"


class Unavailable(LabdeckError):
    code = "TEMPORARILY_UNAVAILABLE"
