"""Signing in to the UI through single sign-on, in the browser: labdeck sends the browser
to the OpenID provider (the tests' real oidc-provider), the person signs in and consents
there, and lands back on the page they asked for, signed in; signing out offers both ways
back in."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.auth.conftest import oidc_auth, oidc_issuer  # noqa: F401  (fixtures)
from tests.conftest import RunningServer


def test_single_sign_on_from_a_page_and_back(
    page: Any,
    console: Any,
    start_server: Callable[..., RunningServer],
    oidc_auth: Any,  # noqa: F811
    oidc_issuer: str,  # noqa: F811
    shot: Any,
) -> None:
    console.allow(re.escape(oidc_issuer))  # the provider's own pages are not ours to judge
    server = start_server(auth=oidc_auth())
    page.goto(f"{server.url}/ui/models")
    page.wait_for_url(re.compile("^" + re.escape(oidc_issuer)))
    page.locator("input[name=login]").fill("alice")
    page.locator("input[name=password]").fill("any")
    page.locator("button[type=submit]").click()
    page.locator("button[type=submit]", has_text="Continue").click()  # consent
    page.wait_for_url(f"{server.url}/ui/models")
    page.get_by_role("heading", level=1, name="Models").wait_for()
    assert page.locator(".who").inner_text().startswith("alice@example.test")
    shot(page, "sso-signed-in")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{server.url}/auth/login?local=1")
    page.get_by_role("link", name="Sign in with single sign-on").wait_for()
    page.goto(f"{server.url}/ui/")
    page.wait_for_url(re.compile("^" + re.escape(oidc_issuer)))  # signed out here, so off to the provider
