"""Identity's rules: who a credential belongs to, what a principal may do to a resource,
and the accounts, teams, tokens and grants behind both.

Permission of a user on a resource = the highest of: MANAGE for admins; the grants to the
user and to their teams; ``team_permission`` if they belong to the resource's owning team;
otherwise the default (``default_permission``, or NONE when the owning team is private).
Creators get MANAGE.

Credentials are checked on every request, so answers are cached for a second or two
(``TtlCache``); every change made through this service clears what it could affect at once,
so a revoked token or removed user stops working immediately on this server, and within
the cache's lifetime on other replicas.
"""

from __future__ import annotations

import asyncio
import getpass
import re
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from labdeck.auth import credentials
from labdeck.auth.entities import RESOURCE_TYPES, Access, Level, Principal, Team, TokenInfo, User
from labdeck.auth.store import SqlAuthStore
from labdeck.clock import now_ms
from labdeck.config import AuthSettings
from labdeck.errors import InvalidParameter, LabdeckError, NotFound, PermissionDenied, Unauthenticated

USERNAME = re.compile(r"^[\w.@+\-]{1,256}$")
TEAM_NAME = re.compile(r"^[\w.\-]{1,256}$")
MIN_PASSWORD = 8
MAX_EMAIL = 320  # the columns' sizes
MAX_DISPLAY_NAME = 256
CREDENTIAL_TTL_S = 2.0
PASSWORD_TTL_S = 60.0
TOKEN_TOUCH_EVERY_MS = 60_000
ADDRESS_ALLOWANCE = 10
DEFAULT_EXPERIMENT = "0"
# argon2 takes tens of milliseconds and 64 MiB per hash: never on the event loop, and only
# a few at once, however many wrong passwords arrive together.
_HASHING = ThreadPoolExecutor(2, thread_name_prefix="labdeck-argon2")


class TooManyAttempts(LabdeckError):
    code = "REQUEST_LIMIT_EXCEEDED"


class TtlCache:
    """A small time-bounded LRU: what was looked up a moment ago is answered from memory."""

    def __init__(self, ttl: float, size: int = 10_000):
        self.ttl = ttl
        self.size = size
        self.items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()

    def get(self, key: Any) -> Any:
        found = self.items.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, key: Any, value: Any) -> None:
        self.items[key] = (time.monotonic() + self.ttl, value)
        self.items.move_to_end(key)
        if len(self.items) > self.size:
            self.items.popitem(last=False)

    def clear(self) -> None:
        self.items.clear()


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which resources of a type a principal may read: ``only`` these, or all but ``hidden``
    (None and None: everything)."""

    only: frozenset[str] | None = None
    hidden: frozenset[str] | None = None

    def allows(self, resource_id: str) -> bool:
        if self.only is not None:
            return resource_id in self.only
        return self.hidden is None or resource_id not in self.hidden


EVERYTHING = Visibility()


class AuthService:
    def __init__(self, store: SqlAuthStore, settings: AuthSettings):
        self.store = store
        self.settings = settings
        self.enabled = settings.mode != "none"
        self._credentials = TtlCache(CREDENTIAL_TTL_S)
        self._passwords = TtlCache(PASSWORD_TTL_S)
        self._levels = TtlCache(CREDENTIAL_TTL_S, 100_000)
        self._token_touched = TtlCache(TOKEN_TOUCH_EVERY_MS / 1000, 100_000)
        self._local = Principal(None, _os_user(), True, frozenset(), "local")

    def _changed(self) -> None:
        """Something identity-related changed here: forget every cached answer."""
        self._credentials.clear()
        self._passwords.clear()
        self._levels.clear()

    # ------------------------------------------------------------------ who is asking

    def local_principal(self) -> Principal:
        return self._local

    async def _principal(self, user: User, via: str, *, read_only: bool = False, csrf: str | None = None) -> Principal:
        return Principal(
            user.user_id,
            user.username,
            user.is_admin or user.username in self.settings.admin_users,
            await self.store.team_ids(user.user_id),
            via,
            read_only,
            csrf,
        )

    async def from_token(self, token: str) -> Principal | None:
        token_hash = credentials.digest(token)
        cached = self._credentials.get(("token", token_hash))
        if cached is not None:
            principal, token_id, expires_at = cached
        else:
            found = await self.store.token_by_hash(token_hash)
            if found is None or not found[1].is_active:
                return None
            info, user = found
            principal = await self._principal(user, "token", read_only=info.read_only)
            token_id, expires_at = info.token_id, info.expires_at
            self._credentials.put(("token", token_hash), (principal, token_id, expires_at))
        now = now_ms()
        if expires_at is not None and expires_at <= now:
            return None
        if self._token_touched.get(token_id) is None:
            self._token_touched.put(token_id, True)
            await self.store.touch_token(token_id, now)
        return principal

    async def from_basic(self, username: str, password: str, address: str = "unknown") -> Principal | None:
        """Basic auth as the mlflow client sends it: the password may be a token. Wrong
        passwords count against the same limits as the login form's, so Basic auth is not
        a way around them."""
        if credentials.looks_like_token(password):
            principal = await self.from_token(password)
            return principal if principal is not None and principal.username == username else None
        key = ("basic", credentials.digest(f"{username}\0{password}"))
        cached = self._passwords.get(key)
        if cached is not None:
            return cached
        keys, window = _failure_keys(username, address), self.settings.login_window_minutes * 60_000
        if await self._locked(keys, window):
            return None
        found = await self.store.password_hash(username)
        if not await _password_matches(found, password):
            await self.store.count_failure(keys, window)
            return None
        principal = await self._principal(found[0], "basic")  # type: ignore[index]
        self._passwords.put(key, principal)
        return principal

    async def from_session(self, cookie: str) -> Principal | None:
        session_id = credentials.unsign(cookie, self.session_key)
        if session_id is None:
            return None
        session_hash = credentials.digest(session_id)
        cached = self._credentials.get(("session", session_hash))
        if cached is not None:
            return cached
        found = await self.store.session(session_hash)
        if found is None or not found[0].is_active:
            return None
        principal = await self._principal(found[0], "session", csrf=found[1])
        self._credentials.put(("session", session_hash), principal)
        return principal

    session_key: bytes = b""  # set by the platform at start-up (settings or <data_dir>/session.key)

    # ------------------------------------------------------------------ logging in

    async def login(self, username: str, password: str, address: str) -> tuple[str, User]:
        """A new session (the signed cookie value) for a correct password; failures are
        counted per user and per address, and refused beyond the configured rate."""
        keys = _failure_keys(username, address)
        window = self.settings.login_window_minutes * 60_000
        if await self._locked(keys, window):
            raise TooManyAttempts(
                f"Too many failed logins; try again in up to {self.settings.login_window_minutes} minutes."
            )
        found = await self.store.password_hash(username)
        if not await _password_matches(found, password):
            await self.store.count_failure(keys, window)
            raise Unauthenticated("Wrong username or password.")
        user = found[0]  # type: ignore[index]
        await self.store.clear_failures(keys[:1])
        return await self.start_session(user), user

    async def _locked(self, keys: list[str], window_ms: int) -> bool:
        """Whether a user (``keys[0]``) or an address (``keys[1]``) failed too often. An
        address may be a proxy in front of a whole team: it gets ADDRESS_ALLOWANCE times
        the attempts, so one person's typos do not lock out everyone behind it."""
        failures = await self.store.failures(keys, window_ms)
        limit = self.settings.login_attempts
        return failures.get(keys[0], 0) >= limit or failures.get(keys[1], 0) >= limit * ADDRESS_ALLOWANCE

    async def start_session(self, user: User) -> str:
        session_id = credentials.new_id()
        expires = now_ms() + int(self.settings.session_hours * 3_600_000)
        await self.store.create_session(credentials.digest(session_id), user.user_id, credentials.new_id(), expires)
        return credentials.sign(session_id, self.session_key)

    async def logout(self, cookie: str) -> None:
        session_id = credentials.unsign(cookie, self.session_key)
        if session_id is not None:
            await self.store.delete_session(credentials.digest(session_id))
            self._changed()

    async def oidc_user(self, subject: str, username: str, email: str | None, name: str | None) -> User:
        """The user a verified single sign-on login is, created on first login."""
        user = await self.store.user(oidc_subject=subject)
        if user is None:
            existing = await self.store.user(username=username)
            if existing is not None:
                if existing.oidc_subject is not None:
                    raise PermissionDenied(f"User '{username}' is bound to another sign-on identity.")
                user = await self.store.update_user(existing.user_id, oidc_subject=subject)
            else:
                user = await self.store.create_user(
                    username, email=email, display_name=name, oidc_subject=subject, is_admin=username in self.settings.admin_users
                )
        if not user.is_active:
            raise PermissionDenied(f"User '{user.username}' is deactivated.")
        return user

    # ------------------------------------------------------------------ users

    async def create_user(
        self, username: str, password: str | None, *, is_admin: bool = False, email: str | None = None, display_name: str | None = None
    ) -> User:
        if not USERNAME.match(username or ""):
            raise InvalidParameter(
                f"Invalid username {username!r}: use 1 to 256 letters, digits and . _ @ + -"
            )
        _checked_profile(email, display_name)
        return await self.store.create_user(
            username,
            email=email,
            display_name=display_name,
            password_hash=await _checked_password_hash(password) if password is not None else None,
            is_admin=is_admin or username in self.settings.admin_users,
        )

    async def user(self, username: str) -> User:
        user = await self.store.user(username=username)
        if user is None:
            raise NotFound(f"No user named '{username}'.")
        return user

    async def users(self) -> list[User]:
        return await self.store.users()

    async def update_user(self, username: str, *, keep_session: str | None = None, **changes: Any) -> User:
        """Change a user. A new password or a deactivation ends the user's sessions, all
        but ``keep_session`` (the cookie of whoever changes their own password)."""
        user = await self.user(username)
        _checked_profile(changes.get("email"), changes.get("display_name"))
        values: dict[str, Any] = {}
        if changes.get("password") is not None:
            values["password_hash"] = await _checked_password_hash(changes["password"])
        for key in ("is_admin", "is_active", "email", "display_name"):
            if changes.get(key) is not None:
                values[key] = changes[key]
        updated = await self.store.update_user(user.user_id, **values)
        if "password_hash" in values or values.get("is_active") is False:
            kept = credentials.unsign(keep_session, self.session_key) if keep_session else None
            await self.store.delete_sessions(user.user_id, credentials.digest(kept) if kept else None)
        self._changed()
        return updated

    async def delete_user(self, username: str) -> None:
        user = await self.user(username)
        await self.store.delete_user(user.user_id)
        self._changed()

    # ------------------------------------------------------------------ tokens

    async def create_token(self, user: User, name: str, read_only: bool, expires_in_days: float | None) -> tuple[str, TokenInfo]:
        if not name or len(name) > 256:
            raise InvalidParameter("A token needs a name of 1 to 256 characters.")
        if expires_in_days is not None and not 0 < expires_in_days <= 3650:
            raise InvalidParameter("expires_in_days must be between 0 and 3650 (omit it for no expiry).")
        token = credentials.new_token()
        expires = now_ms() + int(expires_in_days * 86_400_000) if expires_in_days else None
        info = await self.store.create_token(user.user_id, name, credentials.digest(token), token[:12], read_only, expires)
        return token, info

    async def tokens(self, user: User | None) -> list[TokenInfo]:
        return await self.store.tokens(user.user_id if user else None)

    async def revoke_token(self, token_id: int, user: User | None) -> None:
        if not await self.store.delete_token(token_id, user.user_id if user else None):
            raise NotFound(f"No token with id {token_id}.")
        self._changed()

    # ------------------------------------------------------------------ teams

    async def create_team(self, name: str, description: str | None, private: bool) -> Team:
        if not TEAM_NAME.match(name or ""):
            raise InvalidParameter(f"Invalid team name {name!r}: use 1 to 256 letters, digits and . _ -")
        return await self.store.create_team(name, description, private)

    async def team(self, name: str) -> Team:
        found = await self.store.teams([name])
        if not found:
            raise NotFound(f"No team named '{name}'.")
        return found[0]

    async def teams(self) -> list[Team]:
        return await self.store.teams()

    async def update_team(self, name: str, description: str | None, private: bool | None) -> Team:
        team = await self.team(name)
        values = {k: v for k, v in (("description", description), ("private", private)) if v is not None}
        updated = await self.store.update_team(team.team_id, **values) if values else team
        self._changed()
        return updated

    async def delete_team(self, name: str) -> None:
        await self.store.delete_team((await self.team(name)).team_id)
        self._changed()

    async def set_member(self, team_name: str, username: str, member: bool) -> Team:
        team, user = await self.team(team_name), await self.user(username)
        await self.store.set_membership(team.team_id, user.user_id, member)
        self._changed()
        return await self.team(team_name)

    # ------------------------------------------------------------------ resources and permissions

    async def record_owner(self, principal: Principal, resource_type: str, resource_id: str) -> None:
        """``principal`` created the resource: it owns it and holds MANAGE."""
        await self.store.record_resource(resource_type, resource_id, principal.user_id)
        self._levels.clear()

    async def forget(self, resource_type: str, resource_id: str) -> None:
        await self.store.forget_resource(resource_type, resource_id)
        self._levels.clear()

    async def level(self, principal: Principal, resource_type: str, resource_id: str) -> Level:
        if principal.is_admin:
            return Level.MANAGE
        key = (principal.user_id, principal.team_ids, resource_type, resource_id)
        cached = self._levels.get(key)
        if cached is not None:
            return cached
        granted, team_id, private = (
            await self.store.levels(resource_type, [resource_id], principal.user_id or 0, principal.team_ids)
        )[resource_id]
        level = max(granted or Level.NONE, self._baseline(principal, team_id, private))
        if resource_type == "experiment" and resource_id == DEFAULT_EXPERIMENT and Level[self.settings.default_permission] >= Level.READ:
            # Where mlflow logs when no experiment was set: on an open team server everyone
            # may log there, as they would on a server without sign-in (managing it stays
            # with admins, since nobody owns it).
            level = max(level, Level.EDIT)
        self._levels.put(key, level)
        return level

    def _baseline(self, principal: Principal, team_id: int | None, private: bool) -> Level:
        everyone = Level.NONE if private else Level[self.settings.default_permission]
        if team_id is not None and team_id in principal.team_ids:
            return max(everyone, Level[self.settings.team_permission])  # joining never lowers
        return everyone

    async def require(self, principal: Principal, resource_type: str, resource_id: str, needed: Level, what: str) -> None:
        if needed > Level.READ and principal.read_only:
            raise PermissionDenied("This token is read-only.")
        if await self.level(principal, resource_type, resource_id) < needed:
            raise PermissionDenied(f"Permission denied: {principal.username} needs {needed.name} on {what}.")

    async def visibility(self, principal: Principal, resource_type: str) -> Visibility:
        """What of ``resource_type`` the principal may read, for filtering searches."""
        if principal.is_admin:
            return EVERYTHING
        granted = await self.store.granted(resource_type, principal.user_id or 0, principal.team_ids, Level.READ)
        restricted = await self.store.restricted(resource_type)
        if Level[self.settings.default_permission] >= Level.READ:
            hidden = {
                rid
                for rid, team_id, private in restricted
                if self._baseline(principal, team_id, private) < Level.READ and rid not in granted
            }
            return Visibility(hidden=frozenset(hidden)) if hidden else EVERYTHING
        member_of = {rid for rid, team_id, _ in restricted if team_id in principal.team_ids}
        return Visibility(only=frozenset(granted) | frozenset(member_of))

    async def access(self, resource_type: str, resource_id: str) -> Access:
        return await self.store.access(resource_type, resource_id)

    async def grant(self, resource_type: str, resource_id: str, user: str | None, team: str | None, level: Level | None) -> Access:
        """Grant ``level`` to a user or a team on a resource (None revokes)."""
        if resource_type not in RESOURCE_TYPES:
            raise InvalidParameter(f"Unknown resource type {resource_type!r}: use one of {', '.join(RESOURCE_TYPES)}.")
        if (user is None) == (team is None):
            raise InvalidParameter("Name exactly one of 'user' and 'team'.")
        if user is not None:
            await self.store.set_grant(resource_type, resource_id, "user", (await self.user(user)).user_id, level)
        else:
            await self.store.set_grant(resource_type, resource_id, "team", (await self.team(team)).team_id, level)  # type: ignore[arg-type]
        self._levels.clear()
        return await self.access(resource_type, resource_id)

    async def set_owning_team(self, resource_type: str, resource_id: str, team: str | None) -> Access:
        team_id = (await self.team(team)).team_id if team else None
        await self.store.set_resource_team(resource_type, resource_id, team_id)
        self._levels.clear()
        return await self.access(resource_type, resource_id)


def _failure_keys(username: str, address: str) -> list[str]:
    """The failed-login counters of a user and of an address (bounded: the column holds 512)."""
    return [f"user:{username.lower()[:300]}", f"addr:{address[:200]}"]


async def _password_matches(found: tuple[User, str | None] | None, password: str) -> bool:
    """Whether an active user's password is ``password``. Always verifies a hash, also for
    unknown users, so that the answer's timing does not tell which usernames exist; in a
    worker thread (``_HASHING``)."""
    hashed = found[1] if found else None
    ok = await asyncio.wrap_future(_HASHING.submit(credentials.verify_password, hashed, password))
    return ok and found is not None and found[0].is_active


def _checked_profile(email: str | None, display_name: str | None) -> None:
    if email is not None and len(email) > MAX_EMAIL:
        raise InvalidParameter(f"An e-mail address has at most {MAX_EMAIL} characters.")
    if display_name is not None and len(display_name) > MAX_DISPLAY_NAME:
        raise InvalidParameter(f"A display name has at most {MAX_DISPLAY_NAME} characters.")


async def _checked_password_hash(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidParameter(f"A password needs at least {MIN_PASSWORD} characters.")
    return await asyncio.wrap_future(_HASHING.submit(credentials.hash_password, password))


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"
