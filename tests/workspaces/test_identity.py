"""The identity provider of every workspace (envkit's ``LabdeckIdentityProvider``), against a
real JupyterLab started from the test environment with it, reached directly on its port
with the headers labdeck's proxy sends (or without them, as anything else on the machine
could): only the proxy, which knows the server's secret, gets in; the person it names is
who JupyterLab sees; ``token`` requests skip Jupyter's XSRF check, ``cookie`` ones do not.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from labdeck.workspaces.environments import BuiltEnvironment
from labdeck.workspaces.routes import AUTH_HEADER, SECRET_HEADER, USER_HEADER
from tests.conftest import free_port
from tests.workspaces.kernels import Kernel

SECRET = "s3cret-" + "x" * 40
START_TIMEOUT_S = 90.0


@dataclass
class Jupyter:
    base: str  # http://127.0.0.1:<port>/user/alice/
    process: subprocess.Popen[bytes]
    log: Path

    def http(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers=headers, timeout=60, follow_redirects=False)


def identity(user: str = "alice", auth: str = "token", secret: str = SECRET) -> dict[str, str]:
    return {SECRET_HEADER: secret, USER_HEADER: user, AUTH_HEADER: auth}


@pytest.fixture
def start_jupyterlab(built_env: BuiltEnvironment, tmp_path: Path) -> Iterator[Callable[..., Jupyter]]:
    """JupyterLab from the test environment with labdeck's identity provider, as the hub
    starts it (base URL /user/alice/, own runtime folders, offline); ``secret=None``
    starts it without LABDECK_WORKSPACE_SECRET."""
    started: list[Jupyter] = []

    def start(secret: str | None = SECRET) -> Jupyter:
        folder = tmp_path / f"jupyter-{len(started)}"
        home = folder / "home"
        home.mkdir(parents=True)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "LABDECK_"))}
        env.update(
            HOME=str(home),
            JUPYTER_RUNTIME_DIR=str(folder / "runtime"),
            JUPYTER_DATA_DIR=str(folder / "data"),
            JUPYTER_CONFIG_DIR=str(folder / "config"),
        )
        if secret is not None:
            env["LABDECK_WORKSPACE_SECRET"] = secret
        command = [
            str(built_env.python),
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.base_url=/user/alice/",
            f"--ServerApp.root_dir={home}",
            "--ServerApp.identity_provider_class=labdeck_workspace.identity.LabdeckIdentityProvider",
            "--LabApp.news_url=None",
            "--LabApp.extension_manager=readonly",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.trust_xheaders=True",
        ]
        if os.geteuid() == 0:
            command.append("--allow-root")
        log = folder / "jupyter.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        jupyter = Jupyter(f"http://127.0.0.1:{port}/user/alice/", process, log)
        started.append(jupyter)
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(jupyter.base + "api", timeout=2).status_code == 200:
                    return jupyter
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"JupyterLab did not start; its log:\n{log.read_text(errors='replace')}")

    yield start
    for jupyter in started:
        jupyter.process.terminate()
        try:
            jupyter.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            jupyter.process.kill()
            jupyter.process.wait(timeout=20)


@pytest.fixture
def jupyter(start_jupyterlab: Callable[..., Jupyter]) -> Jupyter:
    return start_jupyterlab()


def test_without_the_headers_nobody_gets_in(jupyter: Jupyter) -> None:
    with jupyter.http() as http:
        assert http.get("api").status_code == 200  # the version probe is public in Jupyter itself
        assert http.get("api/status").status_code == 403
        assert http.get("api/contents").status_code == 403
        assert http.post("api/kernels", json={"name": "python3"}).status_code == 403
        page = http.get("lab", headers={"Accept": "text/html"})
        assert page.status_code == 302, page.text  # no page: off to the login URL ...
        login = http.get(urljoin(jupyter.base, page.headers["location"]))
        assert login.status_code == 403  # ... where there is no form, only where to go instead
        assert "through labdeck" in login.text and "<form" not in login.text
        # nor does Jupyter's own token scheme open it: there is no token
        assert http.get("api/status", headers={"Authorization": "token anything"}).status_code == 403
    assert "?token=" not in jupyter.log.read_text(errors="replace")


def test_only_the_right_secret_opens_it(jupyter: Jupyter) -> None:
    with jupyter.http() as http:
        for wrong in ("", "s3cret", SECRET[:-1] + "y", SECRET + "x"):
            assert http.get("api/status", headers=identity(secret=wrong)).status_code == 403, wrong
        no_user = identity()
        del no_user[USER_HEADER]
        assert http.get("api/status", headers=no_user).status_code == 403
        assert http.get("api/status", headers=identity()).status_code == 200
        me = http.get("api/me", headers=identity("alice")).json()
        assert me["identity"]["username"] == "alice"
        # an admin opening alice's server is named as themselves
        assert http.get("api/me", headers=identity("root")).json()["identity"]["username"] == "root"
        page = http.get("lab", headers={**identity(auth="cookie"), "Accept": "text/html"})
        assert page.status_code == 200 and "<html" in page.text.lower()


def test_without_a_configured_secret_nobody_gets_in(start_jupyterlab: Callable[..., Jupyter]) -> None:
    jupyter = start_jupyterlab(secret=None)
    with jupyter.http() as http:
        for secret in ("", SECRET):
            assert http.get("api/status", headers=identity(secret=secret)).status_code == 403
    assert "LABDECK_WORKSPACE_SECRET is not set" in jupyter.log.read_text(errors="replace")


def test_cookie_requests_keep_the_xsrf_check_and_token_requests_skip_it(jupyter: Jupyter) -> None:
    with jupyter.http() as http:
        # as a browser: a change without the _xsrf token is refused
        refused = http.post("api/contents", json={"type": "notebook"}, headers=identity(auth="cookie"))
        assert refused.status_code == 403, refused.text
        assert "_xsrf" in refused.text
        # the page sets the _xsrf cookie; pages send it back in X-XSRFToken
        page = http.get("lab", headers={**identity(auth="cookie"), "Accept": "text/html"})
        assert page.status_code == 200
        xsrf = http.cookies.get("_xsrf")
        assert xsrf, page.headers.get_list("set-cookie")
        made = http.post(
            "api/contents", json={"type": "notebook"}, headers={**identity(auth="cookie"), "X-XSRFToken": xsrf}
        )
        assert made.status_code == 201, made.text
        # as an API client with a token: no XSRF token needed
        http.cookies.clear()
        made = http.post("api/contents", json={"type": "file"}, headers=identity(auth="token"))
        assert made.status_code == 201, made.text
        names = {item["name"] for item in http.get("api/contents", headers=identity()).json()["content"]}
    assert {"Untitled.ipynb", "untitled"} <= names


def test_kernels_do_not_inherit_the_secret(jupyter: Jupyter) -> None:
    kernel = Kernel.create(jupyter.base, identity())
    try:
        ran = kernel.run("import os; print(os.environ.get('LABDECK_WORKSPACE_SECRET'), os.environ['HOME'])")
    finally:
        kernel.delete()
    assert ran.status == "ok", ran.error
    secret, home = ran.stdout.split()
    assert secret == "None" and re.search(r"jupyter-0/home$", home)
