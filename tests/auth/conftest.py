"""Fixtures for the identity tests: a real OpenID Connect provider.

``oidc_issuer`` runs panva's ``oidc-provider`` (tests/auth/oidc_provider/provider.mjs) on a
free loopback port for the whole session and yields its issuer URL. Its one client,
``OIDC_CLIENT_ID``/``OIDC_CLIENT_SECRET``, may redirect to labdeck's callback
``http://127.0.0.1:<any port>/auth/oidc/callback`` (a native client's loopback redirect,
RFC 8252 section 7.3), so every labdeck test server can use it whatever port it got.
``start_oidc_provider`` starts more providers for one test (a given port, a clock that
runs ahead, a fixed signing-key id); they are stopped when the test ends. The npm packages
are installed with ``npm ci`` from the committed lock file when ``node_modules`` is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
OIDC_CLIENT_ID = "labdeck"
OIDC_CLIENT_SECRET = "labdeck-test-secret"
CALLBACK_PATH = "/auth/oidc/callback"
INSTALL_TIMEOUT_S = 300
START_TIMEOUT_S = 30


def _install_provider() -> None:
    if (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to install the test OpenID Connect provider (tests/auth/oidc_provider)")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=PROVIDER_DIR,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    if done.returncode != 0:
        pytest.fail(f"npm ci in {PROVIDER_DIR} failed:\n{done.stdout}\n{done.stderr}")


@dataclass
class OidcProvider:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        _stop(self.process)


def _start_provider(log_path: Path, port: int | None = None, *options: str) -> OidcProvider:
    """Start provider.mjs (on ``port``, else a free one); returned once its discovery
    document answers."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed to run the test OpenID Connect provider")
    for _attempt in range(1 if port else 3):  # a free port can be taken before node binds it: try another
        chosen = port or free_port()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    node, "provider.mjs",
                    "--port", str(chosen),
                    "--client-id", OIDC_CLIENT_ID,
                    "--client-secret", OIDC_CLIENT_SECRET,
                    "--redirect-uri", f"http://127.0.0.1{CALLBACK_PATH}",
                    *options,
                ],
                cwd=PROVIDER_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        provider = OidcProvider(process, chosen, log_path)
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    return provider
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        provider.stop()
    pytest.fail(f"the OpenID Connect provider did not start; its output:\n{log_path.read_text(errors='replace')}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def oidc_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The issuer URL of a real OpenID Connect provider running for this session."""
    _install_provider()
    provider = _start_provider(tmp_path_factory.mktemp("oidc-provider") / "provider.log")
    yield provider.issuer
    provider.stop()


@pytest.fixture
def start_oidc_provider(tmp_path: Path) -> Iterator[Callable[..., OidcProvider]]:
    """Start a provider of this test's own: ``start_oidc_provider(port=None, *options)``
    with provider.mjs options such as ``"--clock-skew", "60"``."""
    _install_provider()
    started: list[OidcProvider] = []

    def start(port: int | None = None, *options: str) -> OidcProvider:
        provider = _start_provider(tmp_path / f"provider-{len(started)}.log", port, *options)
        started.append(provider)
        return provider

    yield start
    for provider in started:
        provider.stop()


@pytest.fixture
def oidc_auth(oidc_issuer: str) -> Any:
    """``auth`` settings for a labdeck signing on with the test provider; keyword arguments
    are added to the ``oidc`` section (``admin_users`` goes to ``auth``)."""

    def settings(*, admin_users: list[str] | None = None, **oidc: Any) -> dict[str, Any]:
        return {
            "mode": "oidc",
            "session_secret": "test-session-secret-0123456789",
            "admin_users": admin_users or [],
            "oidc": {"issuer": oidc_issuer, "client_id": OIDC_CLIENT_ID, "client_secret": OIDC_CLIENT_SECRET} | oidc,
        }

    return settings
