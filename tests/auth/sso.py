"""A headless browser for single sign-on: one ``httpx.Client`` (one cookie jar) that follows
redirects by hand between labdeck and the test provider and fills in the provider's
development login and consent forms."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from tests.auth.conftest import CALLBACK_PATH

MAX_STEPS = 12
SESSION_COOKIE = "labdeck_session"
CSRF_COOKIE = "labdeck_csrf"
PENDING_COOKIE = "labdeck_oidc"


class Browser:
    def __init__(self, labdeck_url: str):
        self.labdeck = labdeck_url
        self.client = httpx.Client(timeout=30, follow_redirects=False)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.client.close()

    # ------------------------------------------------------------------ the steps

    def start(self, next_url: str | None = "/somewhere") -> str:
        """Open labdeck's sign-on link; the provider URL labdeck redirects to."""
        params = {} if next_url is None else {"next": next_url}
        response = self.client.get(f"{self.labdeck}/auth/oidc/login", params=params)
        assert response.status_code == 302, response.text
        assert PENDING_COOKIE in response.cookies, response.headers
        return response.headers["location"]

    def authorize(self, authorize_url: str, account: str, *, cancel: bool = False) -> str:
        """Go through the provider's login and consent pages as ``account`` (or press the
        login page's cancel link); the callback URL the provider sends the browser back to
        (not yet opened)."""
        url = authorize_url
        for _ in range(MAX_STEPS):
            if urlsplit(url).path == CALLBACK_PATH and url.startswith(self.labdeck):
                return url
            response = self.client.get(url)
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                continue
            assert response.status_code == 200, f"provider answered {response.status_code}: {response.text[:500]}"
            action = re.search(r'<form[^>]*action="([^"]+)"', response.text)
            prompt = re.search(r'name="prompt" value="([^"]+)"', response.text)
            assert action and prompt, f"no login or consent form at {url}: {response.text[:500]}"
            if cancel:
                abort = re.search(r'<a href="([^"]+/abort)"', response.text)
                assert abort, f"no cancel link at {url}: {response.text[:500]}"
                url = urljoin(url, abort.group(1))
                continue
            form = {"prompt": prompt.group(1)}
            if prompt.group(1) == "login":
                form |= {"login": account, "password": "any"}
            response = self.client.post(urljoin(url, action.group(1)), data=form)
            assert response.is_redirect, f"provider answered {response.status_code}: {response.text[:500]}"
            url = urljoin(url, response.headers["location"])
        raise AssertionError(f"the provider never sent the browser back to labdeck (last URL {url})")

    def callback(self, callback_url: str) -> httpx.Response:
        """Open labdeck's callback (with this browser's cookies)."""
        return self.client.get(callback_url)

    def login(self, account: str, next_url: str | None = "/somewhere") -> httpx.Response:
        """The whole sign-on; labdeck's answer to the callback."""
        return self.callback(self.authorize(self.start(next_url), account))

    def follow(self, response: httpx.Response) -> httpx.Response:
        """Follow redirects as a browser would (GET, bounded, no forms filled in)."""
        for _ in range(MAX_STEPS):
            if not response.is_redirect:
                return response
            response = self.client.get(urljoin(str(response.url), response.headers["location"]))
        raise AssertionError(f"too many redirects (last {response.url})")

    # ------------------------------------------------------------------ after signing in

    def cookie(self, name: str) -> str | None:
        return self.client.cookies.get(name)

    def me(self) -> httpx.Response:
        return self.client.get(f"{self.labdeck}/api/v1/me")


def with_query(url: str, **changes: str | None) -> str:
    """``url`` with query parameters replaced (None removes one)."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
