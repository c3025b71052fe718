"""The notebook proxy (``/user/<name>/[<server>/]...``) in a real labdeck server with sign-in
on, in front of real JupyterLab servers started by the hub (``POST /api/v1/workspaces``):
REST and kernel WebSockets with a token, ``mlflow`` from inside a kernel, who may and who
may not, a browser's session cookie against Jupyter's own XSRF and Origin checks (and
single-user mode's), a 100 MB download that streams through (the server's memory does not
grow by it), a 20 MB upload, default and named servers, and servers that are starting or
not running.

What exactly goes upstream (headers added, dropped and kept; paths; WebSocket frames and
close codes) is looked at with a small real ASGI server (uvicorn) standing where JupyterLab
or a Spark UI would, under a route of user ``carol``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from labdeck.cli import cli
from labdeck.config import Settings
from labdeck.workspaces.routes import AUTH_HEADER, SECRET_HEADER, USER_HEADER, WorkspaceRoute
from tests.auth.access_kit import PASSWORD, ROOT, ROOT_PASSWORD, Identity
from tests.conftest import RunningServer, start_labdeck
from tests.workspaces.conftest import BASE_ENV, workspace_settings
from tests.workspaces.kernels import Kernel

WAIT_S = 120.0  # how long a workspace may take to start or stop before the test says what it saw
MB = 1024 * 1024
ECHO_SECRET = "echo-route-secret"


@dataclass
class Deck:
    server: RunningServer
    ident: Identity
    data_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def bearer(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.ident.tokens[user]}"}

    def http(self, user: str | None = None, **options: Any) -> httpx.Client:
        headers = self.bearer(user) if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, follow_redirects=False, **options)

    def home(self, user: str) -> Path:
        return self.data_dir / "homes" / user

    def workspace(self, user: str, server: str = "") -> str:
        return f"/api/v1/workspaces/{user}" + (f"/{server}" if server else "")

    def start(self, user: str, server: str = "") -> dict[str, Any]:
        with self.http(user) as http:
            started = http.post(self.workspace(user, server), json={"environment": BASE_ENV.name})
        assert started.status_code in (200, 202), started.text
        return self.wait(user, server, "RUNNING")

    def stop(self, user: str, server: str = "") -> None:
        with self.http(user) as http:
            stopped = http.delete(self.workspace(user, server))
        assert stopped.status_code in (200, 202, 404), stopped.text
        if stopped.status_code != 404:
            self.wait(user, server, "STOPPED")

    def wait(self, user: str, server: str, state: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        seen: dict[str, Any] = {}
        with self.http(user) as http:
            while time.monotonic() < deadline:
                seen = http.get(self.workspace(user, server)).json()
                if seen.get("state") == state:
                    return seen
                assert seen.get("state") != "FAILED", seen
                time.sleep(0.2)
        pytest.fail(f"{user}/{server} did not reach {state} within {WAIT_S} s: {seen}")


@pytest.fixture(scope="module")
def deck(tmp_path_factory: pytest.TempPathFactory, built_env: Any) -> Iterator[Deck]:
    """One labdeck with sign-in on for the module: admin root (bootstrapped as an operator
    does), users alice, bob, carol and the admin ada, each with a token; alice's default
    server running."""
    data_dir = tmp_path_factory.mktemp("proxy")
    made = CliRunner().invoke(
        cli,
        ["users", "create", ROOT, "--admin", "--password-stdin", "--direct", "--data-dir", str(data_dir)],
        input=ROOT_PASSWORD + "\n",
    )
    assert made.exit_code == 0, made.output
    settings = Settings.load(
        None,
        data_dir=data_dir,
        auth={"mode": "password", "session_secret": "proxy-tests-secret-0123456789"},
        workspaces=workspace_settings(BASE_ENV),
    )
    server = start_labdeck(settings)
    deck = Deck(server, Identity.bootstrap(server), data_dir)
    try:
        for user in ("alice", "bob", "carol"):
            deck.ident.user(user)
        deck.ident.user("ada", admin=True)
        deck.start("alice")
        yield deck
    finally:
        for user, name in (("alice", "big"), ("alice", "soon"), ("alice", "")):
            deck.stop(user, name)
        server.stop()


# ---------------------------------------------------------------------- a stand-in upstream


def _echo_app(name: str) -> Any:
    """What it was asked, as JSON; WebSocket frames echoed back as they came (``close <code>``
    closes with that code). It speaks for JupyterLab or a Spark UI in header and path checks."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["type"] == "http":
            digest, length = hashlib.sha256(), 0
            while True:
                message = await receive()
                digest.update(message.get("body", b""))
                length += len(message.get("body", b""))
                if not message.get("more_body"):
                    break
            answer = {
                "upstream": name,
                "method": scope["method"],
                "raw_path": scope["raw_path"].decode(),
                "query": scope["query_string"].decode(),
                "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
                "body_length": length,
                "body_sha256": digest.hexdigest(),
            }
            headers = [(b"content-type", b"application/json"), (b"set-cookie", b"echo=1; Path=/")]
            status = 200
            if scope["path"].endswith("/go-elsewhere"):
                status, headers = 302, [*headers, (b"location", b"/user/carol/elsewhere")]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": json.dumps(answer).encode()})
        else:
            await receive()
            offered = scope.get("subprotocols") or [None]
            await send({"type": "websocket.accept", "subprotocol": offered[-1]})
            while (message := await receive())["type"] == "websocket.receive":
                text = message.get("text")
                if text and text.startswith("close "):
                    await send({"type": "websocket.close", "code": int(text.split()[1]), "reason": "asked to"})
                    return
                await send(
                    {
                        "type": "websocket.send",
                        **{k: v for k, v in message.items() if k in ("text", "bytes") and v is not None},
                    }
                )

    return app


@pytest.fixture(scope="module")
def echo(deck: Deck) -> Iterator[dict[str, str]]:
    """Two stand-in upstreams ("jupyter" and "spark") behind carol's default route."""
    servers, endpoints = [], {}
    for name, port_name in (("jupyter", "http"), ("spark", "spark-ui")):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        config = uvicorn.Config(_echo_app(name), log_config=None, access_log=False, lifespan="on")
        server = uvicorn.Server(config)
        threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        servers.append(server)
        endpoints[port_name] = f"127.0.0.1:{sock.getsockname()[1]}"
    routes = deck.server.app.platform.workspace_routes
    routes.set(
        WorkspaceRoute(user="carol", server="", base_url="/user/carol/", endpoints=endpoints, secret=ECHO_SECRET)
    )
    yield endpoints
    routes.remove("carol", "")
    for server in servers:
        server.should_exit = True


def _headers(answer: dict[str, Any]) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in answer["headers"]:
        seen.setdefault(name, []).append(value)
    return seen


# ---------------------------------------------------------------------- through to JupyterLab


def test_rest_through_the_proxy_with_a_token(deck: Deck) -> None:
    with deck.http("alice") as http:
        status = http.get("/user/alice/api/status")
        assert status.status_code == 200, status.text
        assert "kernels" in status.json()
        assert http.get("/user/alice/api/me").json()["identity"]["username"] == "alice"
        made = http.put(
            "/user/alice/api/contents/hello.txt",
            json={"type": "file", "format": "text", "content": "hi from the proxy"},
        )
        assert made.status_code == 201, made.text
        read = http.get("/user/alice/api/contents/hello.txt", params={"content": "1"})
        assert read.status_code == 200 and read.json()["content"] == "hi from the proxy"
        # redirects pass through untouched: JupyterLab's own, already under /user/alice/
        root = http.get("/user/alice/")
        assert root.status_code == 302 and root.headers["location"].startswith("/user/alice/lab")
        slashless = http.get("/user/alice", params={"a": "1"})
        assert (slashless.status_code, slashless.headers["location"]) == (302, "/user/alice/?a=1")
    assert (deck.home("alice") / "hello.txt").read_text() == "hi from the proxy"


def test_a_kernel_runs_code_over_its_websocket_through_the_proxy(deck: Deck) -> None:
    kernel = Kernel.create(f"{deck.url}/user/alice/", deck.bearer("alice"))
    try:
        with kernel.open() as ws:
            assert kernel.run("1+1", ws).result == "2"
            ran = kernel.run("import os; print(os.getcwd()); 6*7", ws)
    finally:
        kernel.delete()
    assert ran.status == "ok" and ran.result == "42"
    assert ran.stdout.strip() == str(deck.home("alice"))


def test_mlflow_in_a_kernel_logs_to_labdeck_as_the_user(deck: Deck) -> None:
    kernel = Kernel.create(f"{deck.url}/user/alice/", deck.bearer("alice"))
    try:
        ran = kernel.run(
            "import mlflow\n"
            "mlflow.set_experiment('alice-notebook')\n"
            "with mlflow.start_run() as run:\n"
            "    mlflow.log_metric('accuracy', 0.93)\n"
            "print(run.info.run_id)\n"
        )
    finally:
        kernel.delete()
    assert ran.status == "ok", ran.error
    run_id = ran.stdout.strip().splitlines()[-1]
    with deck.http("alice") as http:
        found = http.get("/api/2.0/mlflow/runs/get", params={"run_id": run_id})
    assert found.status_code == 200, found.text
    run = found.json()["run"]
    assert run["info"]["user_id"] == "alice"
    assert {m["key"]: m["value"] for m in run["data"]["metrics"]} == {"accuracy": 0.93}
    tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
    assert (tags.get("labdeck.workspace"), tags.get("labdeck.environment")) == ("alice", BASE_ENV.name)


# ---------------------------------------------------------------------- who may


def test_others_are_refused_and_admins_let_in(deck: Deck) -> None:
    with deck.http("bob") as http:
        refused = http.get("/user/alice/api/status")
        assert refused.status_code == 403
        assert set(refused.json()) == {"error_code", "message", "details"}
        assert refused.json()["error_code"] == "PERMISSION_DENIED"
        # even for a server alice does not have: nothing is said about what exists
        assert http.get("/user/alice/nothing-here/api/status").status_code == 403
    with pytest.raises(InvalidStatus) as ws_refused:
        connect(
            f"{deck.url.replace('http', 'ws')}/user/alice/api/events/subscribe", additional_headers=deck.bearer("bob")
        )
    assert ws_refused.value.response.status_code == 403
    kernel = Kernel.create(f"{deck.url}/user/alice/", deck.bearer("alice"))
    try:
        with pytest.raises(InvalidStatus) as kernel_refused:
            Kernel(kernel.base, deck.bearer("bob"), kernel.kernel_id).open()
        assert kernel_refused.value.response.status_code == 403
        # an admin gets in, as themselves
        with deck.http("ada") as http:
            assert http.get("/user/alice/api/me").json()["identity"]["username"] == "ada"
        assert Kernel(kernel.base, deck.bearer("ada"), kernel.kernel_id).run("2+3").result == "5"
    finally:
        kernel.delete()


def test_without_credentials_a_401_or_the_login_page(deck: Deck) -> None:
    with deck.http() as http:
        for path in ("/user/alice/api/status", "/user/alice/lab", "/user/nobody/api/status", "/user/"):
            refused = http.get(path)
            assert refused.status_code == 401, path
            assert "Bearer" in refused.headers["www-authenticate"]
            assert set(refused.json()) == {"error_code", "message", "details"}
        page = http.get("/user/alice/lab", params={"reset": ""}, headers={"Accept": "text/html,application/xhtml+xml"})
        assert page.status_code == 302
        assert page.headers["location"] == "/auth/login?next=/user/alice/lab%3Freset%3D"
        wrong = http.get("/user/alice/api/status", headers={"Authorization": "Bearer ldk_never-issued-to-anyone"})
        assert wrong.status_code == 401
    with pytest.raises(InvalidStatus) as ws_refused:
        connect(f"{deck.url.replace('http', 'ws')}/user/alice/api/events/subscribe")
    assert ws_refused.value.response.status_code == 401


def test_a_read_only_token_may_look_but_not_run(deck: Deck) -> None:
    read_only = {"Authorization": f"Bearer {deck.ident.token('alice', read_only=True, name='ro')}"}
    with deck.http() as http:
        assert http.get("/user/alice/api/contents", headers=read_only).status_code == 200
        refused = http.post("/user/alice/api/kernels", json={"name": "python3"}, headers=read_only)
        assert refused.status_code == 403 and "read-only" in refused.json()["message"]
    with pytest.raises(InvalidStatus) as ws_refused:
        connect(f"{deck.url.replace('http', 'ws')}/user/alice/api/events/subscribe", additional_headers=read_only)
    assert ws_refused.value.response.status_code == 403


# ---------------------------------------------------------------------- a browser


def test_a_browser_session_meets_jupyters_own_xsrf_and_origin_checks(deck: Deck) -> None:
    with deck.http() as browser:
        login = browser.post("/auth/login", data={"username": "alice", "password": PASSWORD, "next": "/user/alice/lab"})
        assert (login.status_code, login.headers["location"]) == (303, "/user/alice/lab")
        page = browser.get("/user/alice/lab", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "<html" in page.text.lower()
        xsrf = browser.cookies.get("_xsrf")
        assert xsrf, "JupyterLab's page sets its _xsrf cookie through the proxy"
        # no labdeck CSRF token needed under /user/, but Jupyter's own is
        refused = browser.post("/user/alice/api/contents", json={"type": "notebook"})
        assert refused.status_code == 403 and "_xsrf" in refused.text
        made = browser.post("/user/alice/api/contents", json={"type": "notebook"}, headers={"X-XSRFToken": xsrf})
        assert made.status_code == 201, made.text
        kernel = browser.post("/user/alice/api/kernels", json={"name": "python3"}, headers={"X-XSRFToken": xsrf})
        assert kernel.status_code == 201, kernel.text
        cookies = "; ".join(f"{c.name}={c.value}" for c in browser.cookies.jar)
        kernel_id = kernel.json()["id"]
        try:
            # the page's own origin: in; another site's page in the same browser: refused by JupyterLab
            same_site = Kernel(f"{deck.url}/user/alice/", {"Cookie": cookies, "Origin": deck.url}, kernel_id)
            assert same_site.run("10*10").result == "100"
            with pytest.raises(InvalidStatus) as cross_site:
                Kernel(same_site.base, {"Cookie": cookies, "Origin": "http://evil.example"}, kernel_id).open()
            assert cross_site.value.response.status_code in (403, 404)
        finally:
            browser.delete(f"/user/alice/api/kernels/{kernel_id}", headers={"X-XSRFToken": xsrf})


def test_a_public_host_name_reaches_jupyterlab(deck: Deck) -> None:
    """Behind an ingress the Host is the site's name, not a loopback address: JupyterLab
    must answer it (its Origin checks compare against that Host)."""
    with deck.http("alice") as http:
        status = http.get("/user/alice/api/status", headers={"Host": "labdeck.example.test"})
    assert status.status_code == 200, status.text


# ---------------------------------------------------------------------- big bodies


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def test_a_100_mb_download_streams_through(deck: Deck) -> None:
    expected = hashlib.sha256()
    with (deck.home("alice") / "big.bin").open("wb") as f:
        for _ in range(100):
            chunk = os.urandom(MB)
            expected.update(chunk)
            f.write(chunk)
    del chunk
    # The server runs in this process: its peak memory (reset here) must not grow by the file.
    Path("/proc/self/clear_refs").write_text("5")
    before = _rss_kb("VmRSS")
    got, size = hashlib.sha256(), 0
    with deck.http("alice") as http, http.stream("GET", "/user/alice/files/big.bin") as response:
        assert response.status_code == 200
        for piece in response.iter_raw():
            got.update(piece)
            size += len(piece)
    peak = _rss_kb("VmHWM")
    assert size == 100 * MB and got.hexdigest() == expected.hexdigest()
    assert peak - before < 40 * 1024, f"memory grew by {(peak - before) // 1024} MB during a 100 MB download"


def test_a_20_mb_upload_through_the_contents_api(deck: Deck) -> None:
    data = os.urandom(20 * MB)
    body = {"type": "file", "format": "base64", "content": base64.b64encode(data).decode()}
    with deck.http("alice") as http:
        made = http.put("/user/alice/api/contents/upload.bin", json=body)
    assert made.status_code == 201, made.text
    assert (deck.home("alice") / "upload.bin").read_bytes() == data


# ---------------------------------------------------------------------- which server


def test_default_and_named_servers_are_told_apart(deck: Deck) -> None:
    deck.start("alice", "big")
    try:
        named = Kernel.create(f"{deck.url}/user/alice/big/", deck.bearer("alice"))
        with deck.http("alice") as http:
            on_named = {k["id"] for k in http.get("/user/alice/big/api/kernels").json()}
            on_default = {k["id"] for k in http.get("/user/alice/api/kernels").json()}
            assert named.kernel_id in on_named and named.kernel_id not in on_default
            assert named.run("21*2").result == "42"
            # the same home: a file written through one is there for the other
            http.put("/user/alice/big/api/contents/shared.txt", json={"type": "file", "format": "text", "content": "x"})
            assert http.get("/user/alice/api/contents/shared.txt").status_code == 200
        named.delete()
    finally:
        deck.stop("alice", "big")
    with deck.http("alice") as http:
        gone = http.get("/user/alice/big/api/kernels")
        page = http.get("/user/alice/big/lab", headers={"Accept": "text/html"})
    assert gone.status_code == 404 and "big" in gone.json()["message"]
    assert page.status_code == 404 and "labdeck workspaces start big" in page.text


def test_a_starting_server_says_so(deck: Deck) -> None:
    with deck.http("alice") as http:
        asked = http.post(deck.workspace("alice", "soon"), json={"environment": BASE_ENV.name})
        assert asked.status_code == 202 and asked.json()["state"] == "STARTING", asked.text
        # JupyterLab takes seconds to answer; these come right after the start was asked for
        api = http.get("/user/alice/soon/api/status")
        page = http.get("/user/alice/soon/lab", headers={"Accept": "text/html"})
    try:
        assert api.status_code == 503 and api.headers["retry-after"] == "3", api.text
        assert api.json()["error_code"] == "TEMPORARILY_UNAVAILABLE" and "starting" in api.json()["message"]
        assert page.status_code == 503 and page.headers["retry-after"] == "3"
        assert "is starting" in page.text and 'http-equiv="refresh"' in page.text
        deck.wait("alice", "soon", "RUNNING")
        with deck.http("alice") as http:
            assert http.get("/user/alice/soon/api/status").status_code == 200
    finally:
        deck.stop("alice", "soon")


def test_a_server_that_is_not_running(deck: Deck) -> None:
    with deck.http("bob") as http:
        api = http.get("/user/bob/api/status")
        page = http.get("/user/bob/lab", headers={"Accept": "text/html"})
        socket_refused = None
        try:
            connect(
                f"{deck.url.replace('http', 'ws')}/user/bob/api/events/subscribe", additional_headers=deck.bearer("bob")
            )
        except InvalidStatus as refused:
            socket_refused = refused.response.status_code
    assert api.status_code == 404
    assert set(api.json()) == {"error_code", "message", "details"}
    assert api.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert "labdeck workspaces start" in api.json()["message"] and "/api/v1/workspaces/bob" in api.json()["message"]
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "labdeck workspaces start" in page.text and "POST /api/v1/workspaces/bob" in page.text
    assert socket_refused == 404


def test_single_user_mode_keeps_jupyters_xsrf_check_for_browsers(start_server: Any) -> None:
    """Without sign-in everyone is the local user, but a page on another site can still make
    a browser send requests: only those with an Authorization header (which such a page
    cannot add) skip JupyterLab's XSRF check."""
    server = start_server(workspaces=workspace_settings(BASE_ENV))
    with server.http() as http:
        me = http.get("/api/v1/me").json()["username"]
        assert http.post(f"/api/v1/workspaces/{me}", json={"environment": BASE_ENV.name}).status_code == 202
        try:
            deadline = time.monotonic() + WAIT_S
            while http.get(f"/api/v1/workspaces/{me}").json()["state"] != "RUNNING":
                assert time.monotonic() < deadline, http.get(f"/api/v1/workspaces/{me}").json()
                time.sleep(0.2)
            assert http.get(f"/user/{me}/api/status").status_code == 200
            refused = http.post(f"/user/{me}/api/contents", json={"type": "file"})
            assert refused.status_code == 403 and "_xsrf" in refused.text
            made = http.post(f"/user/{me}/api/contents", json={"type": "file"}, headers={"Authorization": "Bearer any"})
            assert made.status_code == 201, made.text
        finally:
            http.delete(f"/api/v1/workspaces/{me}")
            deadline = time.monotonic() + WAIT_S
            while http.get(f"/api/v1/workspaces/{me}").json()["state"] != "STOPPED" and time.monotonic() < deadline:
                time.sleep(0.2)


# ---------------------------------------------------------------------- what goes upstream


def test_what_jupyterlab_is_sent(deck: Deck, echo: dict[str, str]) -> None:
    with deck.http("carol") as http:
        answer = http.post(
            "/user/carol/api/x%2Fy/odd path",
            params={"q": "1 2", "r": "/"},
            content=b"payload",
            headers={
                "Cookie": "labdeck_session=stolen; _xsrf=abc; theme=dark; labdeck_csrf=zzz",
                "X-Labdeck-User": "root",
                "X-Labdeck-Workspace-Secret": "forged",
                "Connection": "keep-alive, X-Hop",
                "X-Hop": "only for this hop",
                "X-Kept": "yes",
            },
        )
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    headers = _headers(seen)
    assert seen["upstream"] == "jupyter" and seen["method"] == "POST"
    assert seen["raw_path"] == "/user/carol/api/x%2Fy/odd%20path" and seen["query"] == "q=1+2&r=%2F"
    assert seen["body_length"] == 7 and seen["body_sha256"] == hashlib.sha256(b"payload").hexdigest()
    assert headers[SECRET_HEADER.lower()] == [ECHO_SECRET]
    assert headers[USER_HEADER.lower()] == ["carol"]
    assert headers[AUTH_HEADER.lower()] == ["token"]
    assert headers["cookie"] == ["_xsrf=abc; theme=dark"]
    assert "authorization" not in headers and "x-hop" not in headers and "connection" not in headers
    assert headers["x-kept"] == ["yes"]
    assert headers["host"] == [deck.url.removeprefix("http://")]
    assert headers["x-forwarded-host"] == headers["host"]
    assert headers["x-forwarded-proto"] == ["http"]
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    # the answer comes back as given: Set-Cookie, redirects untouched
    assert answer.headers.get_list("set-cookie") == ["echo=1; Path=/"]
    with deck.http("carol") as http:
        moved = http.get("/user/carol/go-elsewhere")
    assert (moved.status_code, moved.headers["location"]) == (302, "/user/carol/elsewhere")


def test_a_session_cookie_is_sent_on_as_cookie_auth(deck: Deck, echo: dict[str, str]) -> None:
    with deck.http() as browser:
        assert browser.post("/auth/login", json={"username": "carol", "password": PASSWORD}).status_code == 200
        seen = browser.post("/user/carol/api/contents", json={}).json()  # no X-CSRF-Token: Jupyter checks its own
    headers = _headers(seen)
    assert headers[AUTH_HEADER.lower()] == ["cookie"] and headers[USER_HEADER.lower()] == ["carol"]
    assert "cookie" not in headers  # only labdeck's cookies came, and they stay here


def test_the_spark_ui_is_reached_under_its_prefix(deck: Deck, echo: dict[str, str]) -> None:
    with deck.http("carol") as http:
        seen = http.get("/user/carol/spark-ui/jobs/", params={"id": "3"}).json()
        bare = http.get("/user/carol/spark-ui").json()
    assert seen["upstream"] == "spark" and (seen["raw_path"], seen["query"]) == ("/jobs/", "id=3")
    assert bare["raw_path"] == "/"
    assert not {SECRET_HEADER.lower(), USER_HEADER.lower(), AUTH_HEADER.lower()} & set(_headers(seen))
    with deck.http("bob") as http:
        assert http.get("/user/carol/spark-ui/jobs/").status_code == 403
    with deck.http("alice") as http:  # alice's environment has no Spark
        missing = http.get("/user/alice/spark-ui/jobs/")
    assert missing.status_code == 404 and "Spark UI" in missing.json()["message"]


def test_websocket_frames_and_close_codes_pass_both_ways(deck: Deck, echo: dict[str, str]) -> None:
    url = f"{deck.url.replace('http', 'ws')}/user/carol/api/socket"
    with connect(url, additional_headers=deck.bearer("carol"), subprotocols=["v1.test"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "v1.test"
        ws.send("text frame")
        assert ws.recv(timeout=10) == "text frame"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=10) == b"\x00\x01binary"
        ws.send("close 4321")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    assert (ws.close_code, ws.close_reason) == (4321, "asked to")


def test_traffic_counts_as_activity(deck: Deck, echo: dict[str, str]) -> None:
    route = deck.server.app.platform.workspace_routes.get("carol", "")
    assert route is not None
    route.last_activity = 0.0
    with deck.http("carol") as http:
        http.get("/user/carol/api/status")
    assert time.time() - route.last_activity < 60
    route.last_activity = 0.0
    with connect(
        f"{deck.url.replace('http', 'ws')}/user/carol/api/socket", additional_headers=deck.bearer("carol")
    ) as ws:
        route.last_activity = 0.0  # the handshake counted; now a message alone must
        ws.send("still here")
        assert ws.recv(timeout=10) == "still here"
    assert time.time() - route.last_activity < 60
