"""Identity's entities: users, teams, tokens, the principal a request acts as, and the
permission levels resources are guarded by."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Level(IntEnum):
    """What a principal may do to a resource; each level includes the ones below it."""

    NONE = 0
    READ = 1
    EDIT = 2
    MANAGE = 3

    @classmethod
    def parse(cls, text: str) -> Level:
        try:
            return cls[text.upper()]
        except KeyError:
            from labdeck.errors import InvalidParameter

            raise InvalidParameter(f"Invalid permission level {text!r}: use READ, EDIT or MANAGE (or NONE).") from None


RESOURCE_TYPES = ("experiment", "registered_model", "deployment")


@dataclass(frozen=True, slots=True)
class User:
    user_id: int
    username: str
    email: str | None
    display_name: str | None
    is_admin: bool
    is_active: bool
    created_at: int
    last_login_at: int | None = None
    has_password: bool = False
    oidc_subject: str | None = None


@dataclass(frozen=True, slots=True)
class Team:
    team_id: int
    name: str
    description: str | None
    private: bool
    created_at: int
    members: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A personal API token as listed: never the secret itself, only its first characters."""

    token_id: int
    user_id: int
    name: str
    prefix: str
    read_only: bool
    created_at: int
    expires_at: int | None
    last_used_at: int | None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as. ``via`` says how it proved it: "session", "token", "basic",
    or "local" (single-user mode, where nobody logs in)."""

    user_id: int | None
    username: str
    is_admin: bool
    team_ids: frozenset[int]
    via: str
    read_only: bool = False
    csrf_token: str | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    principal_type: str  # "user" | "team"
    principal_id: int
    principal_name: str
    level: Level


@dataclass(frozen=True, slots=True)
class Access:
    """Who may do what to one resource."""

    resource_type: str
    resource_id: str
    owner: str | None
    team: str | None
    team_private: bool
    grants: list[Grant]
