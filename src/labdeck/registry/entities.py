"""Registry entities: frozen values shared by the store, the service and the API.

They follow MLflow's ``RegisteredModel`` and ``ModelVersion`` field for field where the
wire needs them; ``HistoryEvent`` is labdeck's own (the audit trail of aliases and stages).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Stage(StrEnum):
    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"

    @classmethod
    def parse(cls, text: str) -> Stage | None:
        """The stage named ``text`` in any letter case, or None."""
        for stage in cls:
            if stage.value.lower() == text.lower():
                return stage
        return None


ACTIVE_STAGES = (Stage.STAGING, Stage.PRODUCTION)


class VersionStatus(StrEnum):
    PENDING_REGISTRATION = "PENDING_REGISTRATION"
    FAILED_REGISTRATION = "FAILED_REGISTRATION"
    READY = "READY"


class HistoryKind(StrEnum):
    VERSION_CREATED = "VERSION_CREATED"
    VERSION_DELETED = "VERSION_DELETED"
    ALIAS_SET = "ALIAS_SET"
    ALIAS_DELETED = "ALIAS_DELETED"
    STAGE_CHANGED = "STAGE_CHANGED"
    RENAMED = "RENAMED"
    DEPLOYED = "DEPLOYED"  # a deployment started serving a version


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    version: int
    creation_timestamp: int
    last_updated_timestamp: int
    current_stage: str
    source: str
    status: str
    description: str | None = None
    user_id: str | None = None
    run_id: str | None = None
    run_link: str | None = None
    model_id: str | None = None
    status_message: str | None = None
    storage_location: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: str | None = None
    user_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    latest_versions: list[ModelVersion] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One change to what a model's aliases or stages point at."""

    event_id: int
    model: str
    timestamp: int
    actor: str | None
    kind: str
    alias: str | None = None
    version: int | None = None
    from_version: int | None = None
    to_version: int | None = None
    from_stage: str | None = None
    to_stage: str | None = None
    from_name: str | None = None
    to_name: str | None = None
    deployment: str | None = None
