"""Evaluates a route's ``Need`` for the principal on the request, before the handler runs.

The principal comes from ``auth.middleware`` (``scope["labdeck.principal"]``). Runs,
logged models and artifact paths are guarded by their experiment, registry versions by
their model; the lookups that map runs and logged models to their experiment are cached,
since those never move. A model's key is looked up by name on every request: a name can
be renamed away, deleted and taken by another model at any moment.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from labdeck.artifacts.store import ArtifactStore
from labdeck.artifacts.uri import run_relative_root
from labdeck.auth.entities import Level, Principal
from labdeck.auth.needs import Admin, Need, On, Public, SignedIn
from labdeck.auth.service import AuthService, TtlCache
from labdeck.errors import InvalidParameter, PermissionDenied, Unauthenticated
from labdeck.model_uri import parse_model_uri
from labdeck.registry.service import RegistryService
from labdeck.tracking import validation as tv
from labdeck.tracking.service import TrackingService

PRINCIPAL = "labdeck.principal"
AUTH_PROBLEM = "labdeck.auth_problem"
_EXPERIMENT_SEGMENT = re.compile(r"^\d{1,18}$")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Field = Callable[[str], Any]


def principal_of(scope: Any) -> Principal:
    """The request's principal, or Unauthenticated / PermissionDenied saying why not."""
    principal = scope.get(PRINCIPAL)
    if principal is None:
        problem = scope.get(AUTH_PROBLEM)
        if problem:
            raise PermissionDenied(problem)
        raise Unauthenticated("Authentication required: send a Bearer token, Basic credentials or a session cookie.")
    return principal


class Guard:
    def __init__(self, auth: AuthService, tracking: TrackingService, registry: RegistryService):
        self.auth = auth
        self.tracking = tracking
        self.registry = registry
        self._run_experiments = TtlCache(24 * 3600.0, 200_000)
        self._logged_model_experiments = TtlCache(24 * 3600.0, 50_000)

    async def check(self, need: Need, scope: Any, field: Field) -> Principal | None:
        """Raise unless ``need`` is met; ``field(name)`` reads a request field. Returns the
        principal (None only for a Public route reached without credentials)."""
        if isinstance(need, Public):
            return scope.get(PRINCIPAL)
        principal = principal_of(scope)
        if principal.read_only and _writes(need, scope):
            raise PermissionDenied("This token is read-only.")
        if isinstance(need, Admin):
            if not principal.is_admin:
                raise PermissionDenied(f"Permission denied: only admins may do this ({principal.username} is not one).")
            return principal
        if isinstance(need, SignedIn) or principal.is_admin:
            return principal
        await self._on(need, principal, field)
        return principal

    async def _on(self, need: On, principal: Principal, field: Field) -> None:
        kind, level = need.kind, need.level
        if kind == "experiment":
            raw = field(need.field)
            experiment_id = str(tv.experiment_id(raw if raw not in (None, "") else "0"))
            await self.auth.require(principal, "experiment", experiment_id, level, f"experiment {experiment_id}")
        elif kind in ("run", "runs"):
            for run_id in _as_list(field(need.field or "run_id")):
                experiment_id = await self._experiment_of_run(run_id)
                await self.auth.require(principal, "experiment", experiment_id, level, f"the experiment of run {run_id}")
        elif kind == "logged_model":
            model_id = field(need.field or "model_id")
            experiment_id = await self._experiment_of_logged_model(model_id)
            await self.auth.require(principal, "experiment", experiment_id, level, f"the experiment of logged model {model_id}")
        elif kind == "artifact":
            await self._artifact(principal, level, field(need.field or "path") or "")
        elif kind == "model":
            name = field(need.field or "name")
            key = await self._model_key(name)
            await self.auth.require(principal, "registered_model", key, level, f"registered model '{name}'")
        elif kind == "deployment":
            name = field(need.field or "name")
            await self.auth.require(principal, "deployment", str(name), level, f"deployment '{name}'")
        else:
            raise ValueError(f"unknown resource kind {kind!r}")

    async def _artifact(self, principal: Principal, level: Level, path: str) -> None:
        first = str(path).strip("/").split("/", 1)[0]
        if not _EXPERIMENT_SEGMENT.match(first):
            raise PermissionDenied(
                "Permission denied: artifact paths outside an experiment's folder are for admins only."
            )
        experiment_id = str(int(first))
        await self.auth.require(principal, "experiment", experiment_id, level, f"experiment {experiment_id}")

    async def _experiment_of_run(self, run_id: Any) -> str:
        if not isinstance(run_id, str) or not run_id:
            raise InvalidParameter("Missing value for required parameter 'run_id'.")
        cached = self._run_experiments.get(run_id)
        if cached is None:
            cached = (await self.tracking.store.get_run_info(tv.run_id(run_id))).experiment_id
            self._run_experiments.put(run_id, cached)
        return cached

    async def _experiment_of_logged_model(self, model_id: str) -> str:
        cached = self._logged_model_experiments.get(model_id)
        if cached is None:
            cached = (await self.tracking.models.get(model_id)).experiment_id
            self._logged_model_experiments.put(model_id, cached)
        return cached

    async def check_source(self, scope: Any, source: str, artifacts: ArtifactStore | None) -> None:
        """Raise unless the caller may read the model ``source`` names (a model URI): the
        run, the logged model, the registered model, or the folder of labdeck's store.
        Whatever serves or copies a model (a version, a deployment) checks this first."""
        uri = parse_model_uri(source)
        if uri.kind == "run":
            need, value = On("run", Level.READ), uri.run_id
        elif uri.kind == "logged_model":
            need, value = On("logged_model", Level.READ), uri.model_id
        elif uri.is_registry:
            need, value = On("model", Level.READ), uri.name
        elif artifacts is not None:
            try:
                need, value = On("artifact", Level.READ), run_relative_root(source, artifacts)
            except InvalidParameter:
                return  # outside labdeck's store: nothing of labdeck's is read
        else:
            return
        await self.check(need, scope, lambda _field: value)

    async def model_key(self, name: str) -> str:
        """The stable id permissions of a registered model are kept under."""
        return await self._model_key(name)

    async def _model_key(self, name: Any) -> str:
        # Never cached: a stale name -> key answer checks (or records an owner on) the
        # wrong model once the name was renamed away or deleted and then taken again.
        return str(await self.registry.model_key(name))


def _writes(need: Need, scope: Any) -> bool:
    """Whether meeting ``need`` lets the request change something (read-only tokens never
    may). Admin routes declare no level: those that change anything are the unsafe methods."""
    if isinstance(need, Admin):
        return scope.get("method", "GET") not in SAFE_METHODS
    return need.write


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        if not value:
            raise InvalidParameter("Missing value for required parameter 'run_ids'.")
        return value
    return [value]
