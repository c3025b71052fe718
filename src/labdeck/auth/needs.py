"""What a route needs from the caller, declared next to the route.

Every MLflow endpoint passes one of these to ``@rpc(..., needs=...)`` and every FastAPI
endpoint is decorated with ``@needs(...)``; a route without a declaration is refused.
``auth.guard.Guard`` evaluates them. The resource kinds name where the id comes from:

    Public()                      anyone, even without credentials (health, login)
    SignedIn(write=False)         any signed-in principal; write=True refuses read-only tokens
    Admin()                       admins only
    On("experiment", EDIT, "experiment_id")    a level on the experiment named by a field
    On("run", READ)               ... on the experiment of the run in run_id / run_uuid
    On("runs", READ, "run_ids")   ... on the experiments of every run listed
    On("logged_model", EDIT, "model_id")       ... of the logged model in the path
    On("artifact", READ, "path")  ... of the experiment an artifact path starts with
    On("model", EDIT, "name")     a level on the registered model named by a field
    On("deployment", READ, "name")            a level on a deployment
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from labdeck.auth.entities import Level

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Public:
    pass


@dataclass(frozen=True, slots=True)
class SignedIn:
    write: bool = False


@dataclass(frozen=True, slots=True)
class Admin:
    pass


@dataclass(frozen=True, slots=True)
class On:
    kind: str
    level: Level
    field: str = ""

    @property
    def write(self) -> bool:
        return self.level > Level.READ


Need = Public | SignedIn | Admin | On

READ, EDIT, MANAGE = Level.READ, Level.EDIT, Level.MANAGE


def needs(need: Need) -> Callable[[F], F]:
    """Declare what a FastAPI or Starlette endpoint needs."""

    def mark(fn: F) -> F:
        fn.__needs__ = need  # type: ignore[attr-defined]
        return fn

    return mark


def declared(endpoint: Any) -> Need | None:
    return getattr(endpoint, "__needs__", None)
