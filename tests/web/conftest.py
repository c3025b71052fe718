"""Fixtures for the browser tests: Playwright driving Debian's Chromium against a live labdeck.

``ui_server`` is a real labdeck with password sign-in whose admin ``root`` exists (made the
way an operator does, see tests/auth/access_kit.py). ``page`` is a fresh browser context at
1280x800 that records every JavaScript console error and uncaught exception; a test fails if
any page it visited logged one. ``shot(page, name)`` saves a screenshot under
``test-artifacts/screenshots/``. Chromium is installed by scripts/test (``apt-get install
chromium``); Playwright's Python package brings its own driver and needs no download.
"""

from __future__ import annotations

import re
import shutil
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.access_kit import ROOT, ROOT_PASSWORD, auth_server
from tests.conftest import RunningServer

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root here
    "--disable-gpu",
    "--disable-background-networking",  # the network is closed: no phoning home
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is needed for tests/web: scripts/test installs it (apt-get install chromium)")
    return found


# package scope: the browser (and the asyncio loop Playwright keeps on the main thread) is gone
# before the tests of other folders run
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def off_main_thread(call: Callable[[], Any]) -> Any:
    """Run ``call`` in a thread of its own. Playwright's sync API keeps an asyncio loop
    running on the main thread, so code that calls ``asyncio.run`` (the CLI, for one) must
    run elsewhere while the browser is up."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = auth_server(tmp_path_factory.mktemp("labdeck-ui"), "sqlite")
    server = off_main_thread(running.__enter__)
    yield server
    off_main_thread(lambda: running.__exit__(None, None, None))


@pytest.fixture(scope="module")
def root_api(ui_server: RunningServer) -> Iterator[httpx.Client]:
    """httpx as the admin, with an API token (for setting up what the browser then sees)."""
    with httpx.Client(base_url=ui_server.url, timeout=60, auth=(ROOT, ROOT_PASSWORD)) as client:
        token = client.post("/api/v1/tokens", json={"name": f"ui-tests-{id(client)}"}).json()["token"]
    with httpx.Client(base_url=ui_server.url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


class ConsoleErrors:
    """Every console error and uncaught exception of the pages of one browser context."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def watch(self, page: Any) -> None:
        page.on("console", lambda msg: msg.type == "error" and self._add(f"{page.url}: console: {msg.text}"))
        page.on("pageerror", lambda exc: self._add(f"{page.url}: uncaught: {exc}"))

    def allow(self, pattern: str) -> None:
        """An error a test provokes on purpose (a 4xx it asks for shows in the console)."""
        self.allowed.append(re.compile(pattern))

    def _add(self, text: str) -> None:
        if not any(p.search(text) for p in self.allowed):
            self.errors.append(text)


@pytest.fixture
def console() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def page(browser: Any, console: ConsoleErrors) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    context.on("page", console.watch)
    opened = context.new_page()
    yield opened
    context.close()
    assert console.errors == [], "JavaScript errors on the pages visited:\n" + "\n".join(console.errors)


@pytest.fixture
def shot() -> Callable[[Any, str], Path]:
    def save(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000, f"screenshot {path} is empty"
        return path

    return save


def sign_in(page: Any, server: RunningServer, username: str = ROOT, password: str = ROOT_PASSWORD, next_url: str = "/ui/") -> None:
    """Sign in through the login form, as a person would, and land on ``next_url``."""
    page.goto(f"{server.url}{next_url}")
    page.wait_for_url(re.compile(r"/auth/login"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(next_url.split("?")[0]) + r"($|\?)"))


@pytest.fixture
def signed_in(page: Any, ui_server: RunningServer) -> Any:
    """``page``, signed in as the admin on the home page."""
    sign_in(page, ui_server)
    return page


@contextmanager
def mlflow_pointed_at(url: str, token: str) -> Iterator[None]:
    """The ``mlflow`` client (its environment and its global tracking URI) aimed at ``url``
    with an API token, then put back as it was."""
    import mlflow

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", url)
        patch.setenv("MLFLOW_TRACKING_TOKEN", token)
        mlflow.set_tracking_uri(url)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(None)
