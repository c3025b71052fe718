"""What the deployments area shares between its layers: a deployment (desired state and
what was observed), its predictors' status, revisions and events."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from labdeck.deployments.spec import ModelDeployment


class DeploymentState(StrEnum):
    PENDING = "PENDING"  # accepted; nothing ready yet
    AVAILABLE = "AVAILABLE"  # every predictor serves its desired revision with all replicas ready
    PROGRESSING = "PROGRESSING"  # a rollout or a scale change is under way; it serves meanwhile
    DEGRADED = "DEGRADED"  # it serves, but not as asked (a failed rollout, replicas missing)
    FAILED = "FAILED"  # a predictor has nothing ready and cannot start
    DELETING = "DELETING"  # its replicas are being stopped


@dataclass(frozen=True)
class Revision:
    """What one replica template serves: the model (as named, where its files are, which
    registry version) and how. ``revision_id`` is a digest of all of it."""

    revision_id: str
    model_uri: str
    location: str
    version: str | None
    runtime: str | None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Revision | None:
        return cls(**data) if data else None


@dataclass(frozen=True)
class PredictorStatus:
    name: str
    state: DeploymentState
    desired_replicas: int
    ready_replicas: int
    serving: Revision | None
    target: Revision | None
    failed_revision: str | None
    message: str | None
    replicas: list[dict[str, Any]]
    updated_at: int


@dataclass(frozen=True)
class Deployment:
    name: str
    namespace: str
    source_kind: str
    spec: ModelDeployment
    source: dict[str, Any]
    generation: int
    state: DeploymentState
    message: str | None
    created_by: str | None
    created_at: int
    updated_at: int
    predictors: tuple[PredictorStatus, ...] = ()

    def predictor(self, name: str) -> PredictorStatus | None:
        return next((p for p in self.predictors if p.name == name), None)


@dataclass(frozen=True)
class Event:
    event_id: int
    deployment: str
    predictor: str | None
    at: int
    kind: str
    message: str
