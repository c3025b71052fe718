"""Single sign-on end to end: a live labdeck (SQLite and PostgreSQL) and a real OpenID
Connect provider (panva's oidc-provider, see conftest.py), a headless browser going
through labdeck's redirect, the provider's login and consent pages and labdeck's callback.

The provider's accounts (tests/auth/oidc_provider/provider.mjs):
alice@example.test (groups ml-team, everyone), bob@example.test (everyone),
carol@corp.example (admins; Google Workspace domain ``hd`` corp.example),
dave@corp.example (no ``hd``: a personal account), erin@example.test (e-mail NOT verified),
mallory (another subject claiming bob@example.test).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from labdeck.auth import credentials
from tests.auth.sso import (
    CSRF_COOKIE,
    PENDING_COOKIE,
    SESSION_COOKIE,
    Browser,
    query_of,
    with_query,
)
from tests.conftest import RunningServer, free_port

CSRF_MESSAGE = "Missing or wrong CSRF token (send the X-CSRF-Token header)."
CREATE_EXPERIMENT = "/api/2.0/mlflow/experiments/create"

Start = Callable[..., RunningServer]


@pytest.fixture
def labdeck(
    backend: str, start_server: Start, oidc_auth: Any, request: pytest.FixtureRequest
) -> Start:
    """Start a labdeck signing on with the test provider, on this test's backend; keyword
    arguments go to ``oidc_auth`` (oidc settings, ``admin_users``)."""

    def start(**oidc: Any) -> RunningServer:
        overrides: dict[str, Any] = {"auth": oidc_auth(**oidc)}
        if backend == "postgres":
            overrides["database"] = {"url": request.getfixturevalue("fresh_postgres_url")}
        return start_server(**overrides)

    return start


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """The Set-Cookie headers of a response, by cookie name."""
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


def attributes(set_cookie: str) -> dict[str, str]:
    """The attributes of one Set-Cookie header, lower-cased names (flags map to "")."""
    out = {}
    for part in set_cookie.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        out[name.lower()] = value
    return out


def refused(response: httpx.Response, message_part: str) -> str:
    """A 403 of labdeck's sign-on that says ``message_part`` and starts no session."""
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error_code"] == "PERMISSION_DENIED", body
    assert message_part in body["message"], body
    assert SESSION_COOKIE not in set_cookies(response)
    return body["message"]


def signed_in_as(browser: Browser, username: str) -> dict[str, Any]:
    me = browser.me()
    assert me.status_code == 200, me.text
    assert me.json()["username"] == username
    return me.json()


# ---------------------------------------------------------------------- the happy path


def test_sign_on_creates_the_user_once_and_sets_the_cookies(labdeck: Start) -> None:
    server = labdeck()
    with Browser(server.url) as browser:
        response = browser.login("alice", next_url="/somewhere")
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/somewhere"

        cookies = set_cookies(response)
        session, csrf = attributes(cookies[SESSION_COOKIE]), attributes(cookies[CSRF_COOKIE])
        assert "httponly" in session and "httponly" not in csrf  # pages read the CSRF token
        for attrs in (session, csrf):
            assert attrs["samesite"].lower() == "lax"
            assert attrs["path"] == "/"
            assert "secure" not in attrs  # plain http
            assert int(attrs["max-age"]) == 12 * 3600
        pending = attributes(cookies[PENDING_COOKIE])  # the login's pending cookie is removed
        assert pending["path"] == "/auth/oidc" and int(pending.get("max-age", "0")) <= 0

        me = signed_in_as(browser, "alice@example.test")
        assert me["via"] == "session" and me["auth_mode"] == "oidc" and me["admin"] is False
        assert me["csrf_token"] == browser.cookie(CSRF_COOKIE)
        first_session = browser.cookie(SESSION_COOKIE)
        user = browser.client.get(f"{server.url}/api/v1/users/alice@example.test").json()
        assert user["single_sign_on"] is True and user["has_password"] is False
        assert user["email"] == "alice@example.test" and user["display_name"] == "Alice Example"

    with Browser(server.url) as again:  # a second sign-on: the same user, a new session
        assert again.login("alice").status_code == 303
        assert again.cookie(SESSION_COOKIE) not in (None, first_session)
        signed_in_as(again, "alice@example.test")
        same = again.client.get(f"{server.url}/api/v1/users/alice@example.test").json()
        assert same["created_at"] == user["created_at"]
        with Browser(server.url) as other:
            other.login("bob")
            signed_in_as(other, "bob@example.test")


def test_changes_with_the_session_cookie_need_the_csrf_token(labdeck: Start) -> None:
    server = labdeck()
    with Browser(server.url) as browser:
        browser.login("bob")
        url = server.url + CREATE_EXPERIMENT
        without = browser.client.post(url, json={"name": "sso-csrf"})
        assert without.status_code == 403, without.text
        assert without.json()["message"] == CSRF_MESSAGE
        wrong = browser.client.post(
            url, json={"name": "sso-csrf"}, headers={"X-CSRF-Token": "not-the-token"}
        )
        assert wrong.status_code == 403 and wrong.json()["message"] == CSRF_MESSAGE

        csrf = {"X-CSRF-Token": browser.cookie(CSRF_COOKIE)}
        made = browser.client.post(url, json={"name": "sso-csrf"}, headers=csrf)
        assert made.status_code == 200, made.text
        experiment_id = made.json()["experiment_id"]
        read = browser.client.get(
            f"{server.url}/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}"
        )
        assert read.status_code == 200, read.text
        assert read.json()["experiment"]["name"] == "sso-csrf"


def test_logout_ends_the_session(labdeck: Start) -> None:
    server = labdeck()
    with Browser(server.url) as browser:
        browser.login("alice")
        session = browser.cookie(SESSION_COOKIE)
        signed_in_as(browser, "alice@example.test")
        out = browser.client.post(f"{server.url}/auth/logout")
        assert out.status_code == 303
        assert browser.cookie(SESSION_COOKIE) is None  # the browser was told to forget it
        # where logout leads must not sign the browser straight back in through the
        # provider's own session (which is still open)
        landed = browser.follow(out)
        assert landed.status_code == 200 and landed.url.path == "/auth/login", landed.url
        assert "Sign in with single sign-on" in landed.text
        assert browser.cookie(SESSION_COOKIE) is None
        assert browser.me().status_code == 401
    with httpx.Client(base_url=server.url, cookies={SESSION_COOKIE: session}) as stolen:
        assert stolen.get("/api/v1/me").status_code == 401  # and the server forgot it too
    with httpx.Client(base_url=server.url) as forged:  # session cookies labdeck never made
        for value in (session[:-1] + ("0" if session[-1] != "0" else "1"), "\u00e9t\u00e9.0123"):
            response = forged.get(
                "/api/v1/me", headers={"Cookie": f"{SESSION_COOKIE}={value}".encode()}
            )
            assert response.status_code == 401, response.text
    with Browser(server.url) as browser:  # JSON callers get JSON
        browser.login("alice")
        out = browser.client.post(
            f"{server.url}/auth/logout", headers={"Accept": "application/json"}
        )
        assert out.status_code == 200 and out.json() == {"next": "/auth/login?local=1"}  # where a page goes next
        assert browser.me().status_code == 401


# ---------------------------------------------------------------------- tampering


def test_a_tampered_state_is_refused_before_the_code_is_used(labdeck: Start) -> None:
    server = labdeck()
    with Browser(server.url) as browser:
        callback = browser.authorize(browser.start(), "alice")
        assert query_of(callback)["iss"]  # the provider names itself (RFC 9207)
        refused(
            browser.callback(with_query(callback, state="forged-state")), "state does not match"
        )
        refused(browser.callback(with_query(callback, state=None)), "state does not match")
        refused(
            browser.callback(with_query(callback, state="\u00e9t\u00e9")), "state does not match"
        )
        refused(
            browser.callback(with_query(callback, iss="http://127.0.0.1:1")), "another provider"
        )
        assert browser.me().status_code == 401
        # the refusal was about the state alone: the genuine callback still works
        assert browser.callback(callback).status_code == 303
        signed_in_as(browser, "alice@example.test")


def test_a_callback_without_this_browsers_login_is_refused(labdeck: Start) -> None:
    server = labdeck()
    with Browser(server.url) as victim, Browser(server.url) as attacker:
        callback = attacker.authorize(attacker.start(), "alice")
        # no pending login at all
        with httpx.Client(timeout=30) as bare:
            refused(bare.get(callback), "no login was started from this browser")
        # a pending cookie labdeck did not sign (forged with another key)
        with httpx.Client(timeout=30) as forger:
            state = query_of(callback)["state"]
            pending = credentials.sign(
                json.dumps([state, "nonce", "verifier", "/"]), b"another-servers-key"
            )
            forger.cookies.set(PENDING_COOKIE, pending)
            refused(forger.get(callback), "no login was started from this browser")
        # a pending cookie that is not even text labdeck could have written
        with httpx.Client(timeout=30) as garbage:
            for value in ("\u00e9t\u00e9.abc".encode(), b"x", b'["a"].' + b"0" * 32):
                response = garbage.get(callback, headers={"Cookie": b"labdeck_oidc=" + value})
                refused(response, "no login was started from this browser")
        # the victim's own pending login: the attacker's code does not belong to it
        victim.start()
        refused(victim.callback(callback), "state does not match")
        assert victim.me().status_code == 401


def test_an_id_token_for_another_nonce_is_refused(labdeck: Start) -> None:
    server = labdeck()
    with Browser(server.url) as browser:
        authorize = browser.start()
        assert query_of(authorize)["nonce"]
        # the nonce sent to the provider is swapped on the way: the ID token carries the other one
        callback = browser.authorize(with_query(authorize, nonce="someone-elses-nonce"), "alice")
        refused(browser.callback(callback), "nonce")
        assert browser.me().status_code == 401
    with Browser(server.url) as browser:
        callback = browser.authorize(with_query(browser.start(), nonce=None), "alice")
        refused(browser.callback(callback), "nonce")  # an ID token without a nonce


def test_a_redeemed_code_cannot_be_replayed(labdeck: Start) -> None:
    server = labdeck()
    with Browser(server.url) as browser:
        authorize = browser.start()
        pending = browser.cookie(PENDING_COOKIE)
        callback = browser.authorize(authorize, "alice")
        assert browser.callback(callback).status_code == 303
        signed_in_as(browser, "alice@example.test")
    with httpx.Client(timeout=30, cookies={PENDING_COOKIE: pending}) as replay:
        refused(replay.get(callback), "the provider refused the code")


def test_an_expired_code_is_refused(labdeck: Start, start_oidc_provider: Callable[..., Any]) -> None:
    # long enough for a fresh login on a loaded machine, short enough to wait out
    hasty = start_oidc_provider(None, "--code-ttl", "3")
    server = labdeck(issuer=hasty.issuer)
    with Browser(server.url) as browser:
        callback = browser.authorize(browser.start(), "alice")
        time.sleep(4.5)  # the provider's clock counts whole seconds
        refused(browser.callback(callback), "the provider refused the code")
        assert browser.me().status_code == 401
        assert browser.login("alice").status_code == 303  # a fresh login works
        signed_in_as(browser, "alice@example.test")


def test_a_login_cancelled_at_the_provider_is_refused(labdeck: Start) -> None:
    server = labdeck()
    with Browser(server.url) as browser:
        callback = browser.authorize(browser.start(), "alice", cancel=True)
        assert query_of(callback)["error"] == "access_denied"
        refused(
            browser.callback(callback),
            "The sign-on provider refused the login: End-User aborted interaction",
        )
        assert browser.me().status_code == 401


# ---------------------------------------------------------------------- the provider's keys, clock and name


def test_a_provider_whose_clock_runs_ahead(
    labdeck: Start, start_oidc_provider: Callable[..., Any]
) -> None:
    ahead = start_oidc_provider(
        None, "--clock-skew", "60"
    )  # its ID tokens are issued "in the future"
    server = labdeck(issuer=ahead.issuer)
    with Browser(server.url) as browser:
        response = browser.login("alice")
        assert response.status_code == 303, response.text
        signed_in_as(browser, "alice@example.test")


def test_a_provider_that_rotates_its_key(
    labdeck: Start, start_oidc_provider: Callable[..., Any]
) -> None:
    first = start_oidc_provider(None, "--key-id", "signing-key")
    server = labdeck(issuer=first.issuer)
    with Browser(server.url) as browser:
        assert browser.login("alice").status_code == 303  # labdeck now holds the first key
    old_keys = httpx.get(f"{first.issuer}/jwks").json()
    first.stop()
    second = start_oidc_provider(first.port, "--key-id", "signing-key")  # a new key, same name
    assert httpx.get(f"{second.issuer}/jwks").json() != old_keys
    with Browser(server.url) as browser:
        response = browser.login("bob")
        assert response.status_code == 303, response.text
        signed_in_as(browser, "bob@example.test")


def test_an_issuer_that_is_not_the_providers_name(labdeck: Start, oidc_issuer: str) -> None:
    # the same provider reached under another name: its discovery document says 127.0.0.1
    other_name = oidc_issuer.replace("127.0.0.1", "localhost")
    server = labdeck(issuer=other_name)
    with httpx.Client(base_url=server.url) as client:
        response = client.get("/auth/oidc/login")
        assert response.status_code == 503, response.text
        assert response.json()["message"] == (
            f"The sign-on provider at {other_name} calls itself {oidc_issuer}: set auth.oidc.issuer to exactly that."
        )
    trailing = labdeck(issuer=oidc_issuer + "/")  # a trailing slash is the same name
    with Browser(trailing.url) as browser:
        assert browser.login("alice").status_code == 303
        signed_in_as(browser, "alice@example.test")


# ---------------------------------------------------------------------- who may sign in


def test_allowed_domains(labdeck: Start) -> None:
    server = labdeck(allowed_domains=["corp.example", "Partner.example"])
    with Browser(server.url) as browser:
        message = refused(browser.login("alice"), "corp.example, Partner.example")
        assert message == "Sign-in is limited to e-mail addresses of corp.example, Partner.example."
        assert browser.me().status_code == 401
    with Browser(server.url) as browser:
        assert browser.login("carol").status_code == 303
        signed_in_as(browser, "carol@corp.example")


def test_allowed_users_and_groups(labdeck: Start) -> None:
    server = labdeck(
        allowed_users=["alice@example.test", "carol@corp.example"],
        allowed_groups=["ml-team", "admins"],
    )
    with Browser(server.url) as browser:
        refused(browser.login("bob"), "User 'bob@example.test' is not allowed to sign in.")
    for account in ("alice", "carol"):
        with Browser(server.url) as browser:
            assert browser.login(account).status_code == 303
            assert browser.me().status_code == 200

    by_group = labdeck(allowed_groups=["ml-team"])
    with Browser(by_group.url) as browser:
        refused(browser.login("bob"), "Sign-in is limited to members of ml-team.")
    with Browser(by_group.url) as browser:
        refused(browser.login("carol"), "Sign-in is limited to members of ml-team.")
    with Browser(by_group.url) as browser:
        assert browser.login("alice").status_code == 303
        signed_in_as(browser, "alice@example.test")


def test_an_unverified_email_is_not_a_username(labdeck: Start) -> None:
    server = labdeck(admin_users=["erin@example.test"])
    with Browser(server.url) as browser:
        refused(browser.login("erin"), "not verified")
        assert browser.me().status_code == 401


def test_google_hosted_domain(labdeck: Start) -> None:
    server = labdeck(provider="google", hosted_domain="corp.example")
    with Browser(server.url) as browser:
        authorize = browser.start()
        assert query_of(authorize)["hd"] == "corp.example"  # the account chooser is limited too
        assert browser.callback(browser.authorize(authorize, "carol")).status_code == 303
        signed_in_as(browser, "carol@corp.example")
    with Browser(server.url) as browser:  # same e-mail domain, but not a Workspace account
        refused(browser.login("dave"), "Only accounts of corp.example may sign in.")
    with Browser(server.url) as browser:
        refused(browser.login("alice"), "Only accounts of corp.example may sign in.")


def test_admin_users(labdeck: Start) -> None:
    server = labdeck(admin_users=["carol@corp.example"])
    with Browser(server.url) as admin, Browser(server.url) as user:
        admin.login("carol")
        assert signed_in_as(admin, "carol@corp.example")["admin"] is True
        user.login("bob")
        assert signed_in_as(user, "bob@example.test")["admin"] is False
        assert user.client.get(f"{server.url}/api/v1/users").status_code == 403
        listed = admin.client.get(f"{server.url}/api/v1/users")
        assert listed.status_code == 200, listed.text
        users = {u["username"]: u for u in listed.json()["users"]}
        assert (
            users["carol@corp.example"]["admin"] is True
            and users["bob@example.test"]["admin"] is False
        )


def test_sign_on_accounts_are_managed_like_any_other(labdeck: Start) -> None:
    server = labdeck(admin_users=["carol@corp.example"])
    with Browser(server.url) as admin:
        admin.login("carol")
        csrf = {"X-CSRF-Token": admin.cookie(CSRF_COOKIE)}
        # an account made by an admin before its owner ever signed on is bound at first sign-on
        made = admin.client.post(
            f"{server.url}/api/v1/users", json={"username": "bob@example.test"}, headers=csrf
        )
        assert made.status_code == 201, made.text
        assert made.json()["single_sign_on"] is False
        with Browser(server.url) as bob:
            bob.login("bob")
            signed_in_as(bob, "bob@example.test")
            bound = admin.client.get(f"{server.url}/api/v1/users/bob@example.test").json()
            assert (
                bound["single_sign_on"] is True and bound["created_at"] == made.json()["created_at"]
            )
            # another identity at the provider with the same address does not get bob's account
            with Browser(server.url) as mallory:
                refused(
                    mallory.login("mallory"),
                    "User 'bob@example.test' is bound to another sign-on identity.",
                )
                assert mallory.me().status_code == 401
            # deactivated: the session stops working and signing on again is refused
            bob_url = f"{server.url}/api/v1/users/bob@example.test"
            off = admin.client.patch(bob_url, json={"active": False}, headers=csrf)
            assert off.status_code == 200, off.text
            assert bob.me().status_code == 401
        with Browser(server.url) as bob:
            refused(bob.login("bob"), "User 'bob@example.test' is deactivated.")


# ---------------------------------------------------------------------- redirects and outages


def test_next_never_leaves_the_site(labdeck: Start) -> None:
    server = labdeck()
    for next_url, lands in [
        ("https://evil.example", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        (None, "/"),
        ("/experiments/1?tab=runs", "/experiments/1?tab=runs"),
    ]:
        with Browser(server.url) as browser:
            response = browser.login("alice", next_url=next_url)
            assert response.status_code == 303, response.text
            assert response.headers["location"] == lands, next_url
    with httpx.Client(
        base_url=server.url
    ) as client:  # the login page sends browsers to sign-on, same rule
        page = client.get("/auth/login", params={"next": "//evil.example"})
        assert page.status_code == 302 and page.headers["location"] == "/auth/oidc/login?next=/"


def test_a_provider_that_is_down_is_a_clear_503(labdeck: Start) -> None:
    issuer = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    server = labdeck(issuer=issuer)
    with httpx.Client(base_url=server.url) as client:
        response = client.get("/auth/oidc/login", params={"next": "/somewhere"})
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert body["message"].startswith(f"The sign-on provider at {issuer} cannot be reached")
        assert PENDING_COOKIE not in response.cookies
