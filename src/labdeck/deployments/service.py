"""The rules of deployments: which documents are accepted (a ``ModelDeployment`` or a
Seldon Core ``SeldonDeployment``), that every model they name exists, and what a change
does (stored as the desired state; the controller is told at once)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from labdeck.compute.backend import ComputeBackend
from labdeck.deployments import seldon
from labdeck.deployments.controller import DeploymentController, workload_name
from labdeck.deployments.entities import Deployment, Event
from labdeck.deployments.spec import KIND, ModelDeployment, parse_model_deployment
from labdeck.deployments.store import SqlDeploymentStore
from labdeck.errors import InvalidParameter, LabdeckError
from labdeck.model_uri import parse_model_uri
from labdeck.registry.locator import InProcessModelLocator
from labdeck.registry.service import RegistryService

MAX_EVENTS = 200
MAX_LOG_LINES = 5000


@dataclass(frozen=True)
class Submitted:
    """A parsed document: the deployment it asks for, which kind it was, and as sent."""

    spec: ModelDeployment
    kind: str
    source: dict[str, Any]


def parse_document(document: Any) -> Submitted:
    if not isinstance(document, dict):
        raise InvalidParameter("A deployment is a YAML or JSON object (kind: ModelDeployment or SeldonDeployment).")
    if seldon.is_seldon(document):
        return Submitted(seldon.from_seldon(document), seldon.KIND, document)
    kind = document.get("kind", KIND)
    if kind != KIND:
        raise InvalidParameter(f"Unknown kind {kind!r}: send a ModelDeployment (labdeck.dev/v1) or a SeldonDeployment (machinelearning.seldon.io/v1).")
    return Submitted(parse_model_deployment(document), KIND, document)


class DeploymentService:
    def __init__(self, store: SqlDeploymentStore, registry: RegistryService, controller: DeploymentController):
        self.store = store
        self.locator = InProcessModelLocator(registry)
        self.controller = controller

    @property
    def backend(self) -> ComputeBackend:
        return self.controller.backend

    async def create(self, submitted: Submitted, created_by: str | None) -> Deployment:
        await self._check_models(submitted)
        deployment = await self.store.create(submitted.spec, submitted.kind, submitted.source, created_by)
        self.controller.poke()
        return deployment

    async def replace(self, name: str, submitted: Submitted) -> Deployment:
        if submitted.spec.metadata.name != name:
            problem = f"the document names '{submitted.spec.metadata.name}', but it was sent to deployment '{name}'"
            raise InvalidParameter(f"Invalid deployment: metadata.name: {problem}.", details=[{"field": "metadata.name", "problem": problem}])
        await self._check_models(submitted)
        deployment = await self.store.replace(submitted.spec, submitted.kind, submitted.source)
        self.controller.poke()
        return deployment

    async def get(self, name: str) -> Deployment:
        return await self.store.get(name)

    async def all(self) -> list[Deployment]:
        return await self.store.all()

    async def delete(self, name: str) -> Deployment:
        deployment = await self.store.mark_deleting(name)
        self.controller.poke()
        return deployment

    async def events(self, name: str, limit: int) -> list[Event]:
        if not 1 <= limit <= MAX_EVENTS:
            raise InvalidParameter(f"limit must be between 1 and {MAX_EVENTS}, got {limit}.")
        await self.store.get(name)
        return await self.store.events(name, limit)

    async def logs(self, name: str, tail: int) -> dict[str, dict[str, list[str]]]:
        """The last ``tail`` lines of every replica, by predictor and replica."""
        if not 1 <= tail <= MAX_LOG_LINES:
            raise InvalidParameter(f"tail must be between 1 and {MAX_LOG_LINES}, got {tail}.")
        deployment = await self.store.get(name)
        return {
            p.name: await self.backend.logs(workload_name(name, p.name), tail) for p in deployment.spec.spec.predictors
        }

    async def _check_models(self, submitted: Submitted) -> None:
        """Every model must exist now: a typo is a 400 at submission, not a crash loop."""
        for i, predictor in enumerate(submitted.spec.spec.predictors):
            try:
                location = self.controller.reachable(await self.locator.locate(parse_model_uri(predictor.model)))
            except LabdeckError as error:
                raise model_problem(submitted, i, error.message) from None
            path = _local_path(location)
            if path is not None and not path.exists():
                raise model_problem(submitted, i, f"there is nothing at {path}")


def _local_path(location: str) -> Path | None:
    """The folder a location names on this machine (a path or a file: URI), as the model
    server reads it; None for a remote store."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and location[1:3] in (":\\", ":/")):  # C:\models
        return Path(location).expanduser()
    return None


def model_problem(submitted: Submitted, index: int, problem: str) -> InvalidParameter:
    """The model of predictor ``index`` cannot be used: a 400 naming the field as the
    document sent spells it (``graph.modelUri`` in a SeldonDeployment)."""
    field = f"spec.predictors[{index}].model"
    if submitted.kind == seldon.KIND:
        field = seldon.source_field(field)
    uri = submitted.spec.spec.predictors[index].model
    return InvalidParameter(f"Invalid deployment: {field}: cannot use {uri}: {problem}", details=[{"field": field, "problem": problem}])
