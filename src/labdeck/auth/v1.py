"""Identity's part of labdeck's own API: ``/api/v1/me``, ``users``, ``tokens``, ``teams`` and
``permissions``. Every route declares what it needs; finer rules (only your own tokens
unless admin) are checked in the route."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from labdeck.auth.entities import Access, Level, Principal, Team, TokenInfo, User
from labdeck.auth.guard import Guard, principal_of
from labdeck.auth.middleware import SESSION_COOKIE
from labdeck.auth.needs import Admin, On, SignedIn, needs
from labdeck.auth.service import AuthService
from labdeck.errors import InvalidParameter, PermissionDenied

RESOURCE_KINDS = {"experiment": "experiment", "registered_model": "model", "deployment": "deployment"}


class NewUser(BaseModel):
    username: str = Field(description="Login name: letters, digits and . _ @ + -")
    password: str | None = Field(None, description="At least 8 characters; omit for sign-on-only users.")
    admin: bool = False
    email: str | None = None
    display_name: str | None = None


class UserChange(BaseModel):
    password: str | None = None
    admin: bool | None = None
    active: bool | None = None
    email: str | None = None
    display_name: str | None = None


class NewToken(BaseModel):
    name: str = Field(description="What the token is for, e.g. 'laptop' or 'ci'.")
    read_only: bool = Field(False, description="A read-only token can read but never change anything.")
    expires_in_days: float | None = Field(None, description="Omit for a token that does not expire.")


class NewTeam(BaseModel):
    name: str
    description: str | None = None
    private: bool = Field(False, description="Resources of a private team are hidden from everyone else.")


class TeamChange(BaseModel):
    description: str | None = None
    private: bool | None = None


class GrantChange(BaseModel):
    user: str | None = None
    team: str | None = None
    level: Literal["NONE", "READ", "EDIT", "MANAGE"]


class OwningTeam(BaseModel):
    team: str | None = Field(description="The team that owns the resource, or null for none.")


def user_json(u: User) -> dict[str, Any]:
    return {
        "username": u.username,
        "email": u.email,
        "display_name": u.display_name,
        "admin": u.is_admin,
        "active": u.is_active,
        "has_password": u.has_password,
        "single_sign_on": u.oidc_subject is not None,
        "created_at": u.created_at,
        "last_login_at": u.last_login_at,
    }


def token_json(t: TokenInfo, username: str | None) -> dict[str, Any]:
    return {
        "id": t.token_id,
        "user": username,
        "name": t.name,
        "prefix": t.prefix,
        "read_only": t.read_only,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "last_used_at": t.last_used_at,
    }


def team_json(t: Team) -> dict[str, Any]:
    return {"name": t.name, "description": t.description, "private": t.private, "members": t.members}


def access_json(a: Access, shown_id: str) -> dict[str, Any]:
    return {
        "resource_type": a.resource_type,
        "resource_id": shown_id,
        "owner": a.owner,
        "team": a.team,
        "team_private": a.team_private,
        "grants": [
            {a_.principal_type: a_.principal_name, "level": a_.level.name} for a_ in a.grants
        ],
    }


def router(auth: AuthService, guard: Guard) -> APIRouter:
    routes = APIRouter()

    def me(request: Request) -> Principal:
        return principal_of(request.scope)

    async def own_user(request: Request) -> User:
        principal = me(request)
        if principal.user_id is None:
            raise InvalidParameter("Single-user mode has no accounts; start the server with --auth password or oidc.")
        return await auth.user(principal.username)

    @routes.get("/me", tags=["identity"], summary="Who the request acts as")
    @needs(SignedIn())
    async def whoami(request: Request) -> dict[str, Any]:
        principal = me(request)
        teams = [t.name for t in await auth.teams() if t.team_id in principal.team_ids]
        return {
            "username": principal.username,
            "admin": principal.is_admin,
            "teams": teams,
            "via": principal.via,
            "read_only": principal.read_only,
            "auth_mode": auth.settings.mode,
            "csrf_token": principal.csrf_token,
        }

    # ------------------------------------------------------------------ users

    @routes.get("/users", tags=["identity"], summary="Every user (admins)")
    @needs(Admin())
    async def list_users() -> dict[str, Any]:
        return {"users": [user_json(u) for u in await auth.users()]}

    @routes.post("/users", tags=["identity"], status_code=201, summary="Create a user (admins)")
    @needs(Admin())
    async def create_user(body: NewUser) -> dict[str, Any]:
        user = await auth.create_user(
            body.username, body.password, is_admin=body.admin, email=body.email, display_name=body.display_name
        )
        return user_json(user)

    @routes.get("/users/{username}", tags=["identity"], summary="One user (admins, or yourself)")
    @needs(SignedIn())
    async def get_user(username: str, request: Request) -> dict[str, Any]:
        principal = me(request)
        if not principal.is_admin and principal.username != username:
            raise PermissionDenied("Permission denied: only admins may look at other users.")
        return user_json(await auth.user(username))

    @routes.patch("/users/{username}", tags=["identity"], summary="Change a user (admins; yourself: password only)")
    @needs(SignedIn(write=True))
    async def update_user(username: str, body: UserChange, request: Request) -> dict[str, Any]:
        principal = me(request)
        if not principal.is_admin:
            if principal.username != username:
                raise PermissionDenied("Permission denied: only admins may change other users.")
            if any(v is not None for v in (body.admin, body.active, body.email, body.display_name)):
                raise PermissionDenied("Permission denied: you may change only your own password.")
        elif principal.username == username and body.active is False:
            # as with removing yourself: your own session and tokens would stop at once
            raise InvalidParameter("You cannot deactivate yourself.")
        user = await auth.update_user(
            username,
            keep_session=request.cookies.get(SESSION_COOKIE) if principal.username == username else None,
            password=body.password,
            is_admin=body.admin,
            is_active=body.active,
            email=body.email,
            display_name=body.display_name,
        )
        return user_json(user)

    @routes.delete("/users/{username}", tags=["identity"], summary="Remove a user and their tokens (admins)")
    @needs(Admin())
    async def delete_user(username: str, request: Request) -> dict[str, Any]:
        if me(request).username == username:
            raise InvalidParameter("You cannot remove yourself.")
        await auth.delete_user(username)
        return {}

    # ------------------------------------------------------------------ tokens

    @routes.get("/tokens", tags=["identity"], summary="Your API tokens (admins: everyone's with all=true)")
    @needs(SignedIn())
    async def list_tokens(request: Request, all: bool = False) -> dict[str, Any]:  # noqa: A002 - query name
        if all and not me(request).is_admin:
            raise PermissionDenied("Permission denied: only admins may list everyone's tokens.")
        tokens = await auth.tokens(None if all else await own_user(request))
        names = {u.user_id: u.username for u in await auth.users()} if all else {}
        return {"tokens": [token_json(t, names.get(t.user_id, me(request).username)) for t in tokens]}

    @routes.post("/tokens", tags=["identity"], status_code=201, summary="Create an API token; the secret is shown once")
    @needs(SignedIn(write=True))
    async def create_token(body: NewToken, request: Request) -> dict[str, Any]:
        token, info = await auth.create_token(await own_user(request), body.name, body.read_only, body.expires_in_days)
        return {"token": token, **token_json(info, me(request).username)}

    @routes.delete("/tokens/{token_id}", tags=["identity"], summary="Revoke a token (yours; admins: any)")
    @needs(SignedIn(write=True))
    async def revoke_token(token_id: int, request: Request) -> dict[str, Any]:
        owner = None if me(request).is_admin else await own_user(request)
        await auth.revoke_token(token_id, owner)
        return {}

    # ------------------------------------------------------------------ teams

    @routes.get("/teams", tags=["identity"], summary="Every team")
    @needs(SignedIn())
    async def list_teams() -> dict[str, Any]:
        return {"teams": [team_json(t) for t in await auth.teams()]}

    @routes.post("/teams", tags=["identity"], status_code=201, summary="Create a team (admins)")
    @needs(Admin())
    async def create_team(body: NewTeam) -> dict[str, Any]:
        return team_json(await auth.create_team(body.name, body.description, body.private))

    @routes.get("/teams/{name}", tags=["identity"], summary="One team and its members")
    @needs(SignedIn())
    async def get_team(name: str) -> dict[str, Any]:
        return team_json(await auth.team(name))

    @routes.patch("/teams/{name}", tags=["identity"], summary="Change a team (admins)")
    @needs(Admin())
    async def update_team(name: str, body: TeamChange) -> dict[str, Any]:
        return team_json(await auth.update_team(name, body.description, body.private))

    @routes.delete("/teams/{name}", tags=["identity"], summary="Remove a team (admins)")
    @needs(Admin())
    async def delete_team(name: str) -> dict[str, Any]:
        await auth.delete_team(name)
        return {}

    @routes.put("/teams/{name}/members/{username}", tags=["identity"], summary="Add a member (admins)")
    @needs(Admin())
    async def add_member(name: str, username: str) -> dict[str, Any]:
        return team_json(await auth.set_member(name, username, True))

    @routes.delete("/teams/{name}/members/{username}", tags=["identity"], summary="Remove a member (admins)")
    @needs(Admin())
    async def remove_member(name: str, username: str) -> dict[str, Any]:
        return team_json(await auth.set_member(name, username, False))

    # ------------------------------------------------------------------ permissions

    async def resource(request: Request, resource_type: str, resource_id: str, level: Level) -> str:
        """Check ``level`` on the resource; the id permissions are stored under."""
        kind = RESOURCE_KINDS.get(resource_type)
        if kind is None:
            raise InvalidParameter(f"Unknown resource type {resource_type!r}: use one of {', '.join(RESOURCE_KINDS)}.")
        await guard.check(On(kind, level, "resource_id"), request.scope, lambda _: resource_id)
        if kind == "model":
            return await guard.model_key(resource_id)
        if kind == "experiment":
            # Admins skip the level check, which is what validated the id: validate it here,
            # and never keep grants for an experiment that does not exist.
            return str((await guard.tracking.get_experiment(resource_id)).experiment_id)
        return resource_id

    @routes.get(
        "/permissions/{resource_type}/{resource_id}", tags=["permissions"], summary="Owner, owning team and grants of a resource"
    )
    @needs(SignedIn())
    async def get_permissions(resource_type: str, resource_id: str, request: Request) -> dict[str, Any]:
        key = await resource(request, resource_type, resource_id, Level.READ)
        return access_json(await auth.access(resource_type, key), resource_id)

    @routes.put("/permissions/{resource_type}/{resource_id}", tags=["permissions"], summary="Grant a level (NONE revokes)")
    @needs(SignedIn(write=True))
    async def grant(resource_type: str, resource_id: str, body: GrantChange, request: Request) -> dict[str, Any]:
        key = await resource(request, resource_type, resource_id, Level.MANAGE)
        level = None if body.level == "NONE" else Level[body.level]
        return access_json(await auth.grant(resource_type, key, body.user, body.team, level), resource_id)

    @routes.delete("/permissions/{resource_type}/{resource_id}", tags=["permissions"], summary="Revoke a user's or team's grant")
    @needs(SignedIn(write=True))
    async def revoke(
        resource_type: str, resource_id: str, request: Request, user: str | None = None, team: str | None = None
    ) -> dict[str, Any]:
        key = await resource(request, resource_type, resource_id, Level.MANAGE)
        return access_json(await auth.grant(resource_type, key, user, team, None), resource_id)

    @routes.put(
        "/permissions/{resource_type}/{resource_id}/team", tags=["permissions"], summary="Set or clear the owning team"
    )
    @needs(SignedIn(write=True))
    async def owning_team(resource_type: str, resource_id: str, body: OwningTeam, request: Request) -> dict[str, Any]:
        key = await resource(request, resource_type, resource_id, Level.MANAGE)
        return access_json(await auth.set_owning_team(resource_type, key, body.team), resource_id)

    return routes
