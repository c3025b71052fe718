"""OpenID Connect single sign-on: the authorization-code flow with PKCE, state and nonce.

``OidcClient.begin()`` makes the provider URL to send the browser to and the values to
remember (in a short-lived signed cookie); ``finish()`` exchanges the code, verifies the
ID token's signature against the provider's keys and its issuer, audience, expiry and
nonce, and checks the login against the allowed domains, users and groups. A Google
preset fills in the issuer and checks the Workspace domain (the ``hd`` claim).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from labdeck.config import OidcSettings
from labdeck.errors import InvalidParameter, PermissionDenied, Unavailable

GOOGLE_ISSUER = "https://accounts.google.com"
METADATA_TTL_S = 3600.0
CLOCK_LEEWAY_S = 120  # the provider's clock may be ahead of ours (iat, nbf) or behind (exp)
# ID tokens must be signed with the provider's published keys: never "none", never an HMAC
# (that would be keyed with the client secret, which is not how labdeck checks them).
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "Ed25519", "EdDSA")


@dataclass(frozen=True, slots=True)
class Pending:
    """What the login started with, kept in a signed cookie until the provider calls back."""

    state: str
    nonce: str
    verifier: str
    next_url: str


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    username: str
    email: str | None
    name: str | None
    groups: list[str]


class OidcClient:
    def __init__(self, settings: OidcSettings):
        self.settings = settings
        self.issuer = (settings.issuer or (GOOGLE_ISSUER if settings.provider == "google" else "")).rstrip("/")
        if not self.issuer or not settings.client_id or not settings.client_secret:
            raise InvalidParameter(
                "auth.mode = oidc needs auth.oidc.issuer (or provider = google), client_id and client_secret."
            )
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: KeySet | None = None

    async def _discover(self, http: httpx.AsyncClient) -> dict[str, Any]:
        if self._metadata and self._metadata[0] > time.monotonic():
            return self._metadata[1]
        try:
            response = await http.get(f"{self.issuer}/.well-known/openid-configuration")
            response.raise_for_status()
            metadata = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable(f"The sign-on provider at {self.issuer} cannot be reached: {exc}") from None
        missing = [
            key for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
            if not isinstance(metadata, dict) or not isinstance(metadata.get(key), str)
        ]
        if missing:
            raise Unavailable(
                f"The sign-on provider at {self.issuer} sent no usable discovery document (missing {', '.join(missing)})."
            )
        # OpenID Connect Discovery 1.0, section 4.3: the document must name the issuer it was
        # fetched from, else its tokens would be checked against an issuer nobody configured.
        if metadata["issuer"].rstrip("/") != self.issuer:
            raise Unavailable(
                f"The sign-on provider at {self.issuer} calls itself {metadata['issuer']}: "
                "set auth.oidc.issuer to exactly that."
            )
        self._metadata = (time.monotonic() + METADATA_TTL_S, metadata)
        return metadata

    async def begin(self, http: httpx.AsyncClient, redirect_uri: str, next_url: str) -> tuple[str, Pending]:
        metadata = await self._discover(http)
        pending = Pending(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48), next_url)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(pending.verifier.encode()).digest()).rstrip(b"=").decode()
        params = {
            "client_id": self.settings.client_id,
            "response_type": "code",
            "scope": " ".join(self.settings.scopes),
            "redirect_uri": redirect_uri,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if self.settings.provider == "google" and self.settings.hosted_domain:
            params["hd"] = self.settings.hosted_domain
        return f"{metadata['authorization_endpoint']}?{urlencode(params)}", pending

    async def finish(self, http: httpx.AsyncClient, pending: Pending, query: dict[str, str], redirect_uri: str) -> Identity:
        if "error" in query:
            raise PermissionDenied(f"The sign-on provider refused the login: {query.get('error_description') or query['error']}")
        if not secrets.compare_digest(query.get("state", "").encode(), pending.state.encode()):
            raise PermissionDenied("Sign-on failed: the state does not match this login (start again).")
        code = query.get("code")
        if not code:
            raise InvalidParameter("Sign-on failed: the provider sent no code.")
        metadata = await self._discover(http)
        # RFC 9207: a provider that names itself in the response must be the one we sent the
        # browser to (a mix-up defence when several providers are in play).
        if "iss" in query and query["iss"] != metadata["issuer"]:
            raise PermissionDenied("Sign-on failed: the response comes from another provider than this login's.")
        try:
            response = await http.post(
                metadata["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": pending.verifier,
                },
                auth=(self.settings.client_id or "", self.settings.client_secret or ""),
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"The sign-on provider cannot be reached: {exc}") from None
        if response.status_code != 200:
            raise PermissionDenied(f"Sign-on failed: the provider refused the code ({response.text[:200]}).")
        try:
            tokens = response.json()
        except ValueError:
            tokens = None
        id_token = tokens.get("id_token") if isinstance(tokens, dict) else None
        if not isinstance(id_token, str) or not id_token:
            raise PermissionDenied("Sign-on failed: the provider returned no ID token.")
        claims = await self._verified_claims(http, metadata, id_token, pending.nonce)
        return self._allowed(claims)

    async def _verified_claims(self, http: httpx.AsyncClient, metadata: dict[str, Any], id_token: str, nonce: str) -> dict[str, Any]:
        for refresh in (False, True):
            if self._keys is None or refresh:
                try:
                    response = await http.get(metadata["jwks_uri"])
                    response.raise_for_status()
                    self._keys = KeySet.import_key_set(response.json())
                except (httpx.HTTPError, ValueError, KeyError, TypeError, JoseError) as exc:
                    raise Unavailable(f"The sign-on provider's keys cannot be read: {exc}") from None
            try:
                token = jwt.decode(id_token, self._keys, algorithms=SIGNING_ALGORITHMS)
                break
            except JoseError:
                if refresh:
                    raise PermissionDenied("Sign-on failed: the ID token's signature does not verify.") from None
        try:
            jwt.JWTClaimsRegistry(
                leeway=CLOCK_LEEWAY_S,
                iss={"essential": True, "value": metadata["issuer"]},
                aud={"essential": True, "value": self.settings.client_id},
                nonce={"essential": True, "value": nonce},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(token.claims)
        except JoseError as exc:
            raise PermissionDenied(
                f"Sign-on failed: the ID token is not valid for this login ({exc.description or exc.error})."
            ) from None
        return dict(token.claims)

    def _allowed(self, claims: dict[str, Any]) -> Identity:
        s = self.settings
        email = claims.get("email")
        username = claims.get(s.username_claim) or email or claims["sub"]
        # An address the provider has not verified proves nothing (anyone may type one in at
        # providers with open sign-up): it must not become a username, which would match an
        # existing account or an admin_users entry.
        unverified = claims.get("email_verified") in (False, "false")
        if unverified and email and username == email:
            raise PermissionDenied(f"Sign-in refused: the provider has not verified the e-mail address {email}.")
        groups = claims.get(s.groups_claim) or []
        groups = [groups] if isinstance(groups, str) else [str(g) for g in groups]
        if s.provider == "google" and s.hosted_domain and claims.get("hd") != s.hosted_domain:
            raise PermissionDenied(f"Only accounts of {s.hosted_domain} may sign in.")
        if s.allowed_domains:
            domain = str(email or "").rpartition("@")[2].lower()
            if not email or unverified or domain not in [d.lower() for d in s.allowed_domains]:
                raise PermissionDenied(f"Sign-in is limited to e-mail addresses of {', '.join(s.allowed_domains)}.")
        if s.allowed_users and username not in s.allowed_users:
            raise PermissionDenied(f"User '{username}' is not allowed to sign in.")
        if s.allowed_groups and not set(groups) & set(s.allowed_groups):
            raise PermissionDenied(f"Sign-in is limited to members of {', '.join(s.allowed_groups)}.")
        return Identity(str(claims["sub"]), str(username), email, claims.get("name"), groups)
