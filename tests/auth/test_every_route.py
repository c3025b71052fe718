"""Every route of the app, taken from the router objects themselves (so a route added later
is walked too), with sign-in on (``auth.mode = password``):

- every route declares what it needs; only /health, /version and the /auth/* pages are
  ``Public()`` (and FastAPI's own docs, which are not labdeck routes);
- without credentials, with a wrong or malformed token, or malformed Basic credentials,
  every non-public route answers 401 with a ``WWW-Authenticate`` challenge and exactly the
  error shape of its family (MLflow: ``error_code`` and ``message``; ``/api/v1``:
  ``error_code``, ``message`` and ``details``); so do wrong Basic passwords (of a real
  user and of nobody) on one route of every family and kind;
- a read-only token, even an admin's, is refused (403, family shape) on every route that
  writes, and let through on every route that only reads;
- a route that declares nothing cannot be added, or is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from labdeck.auth.needs import Admin, On, Public, SignedIn, declared
from labdeck.web.pages import PAGES
from labdeck.wire.mlflow_rpc import RpcRouter, rpc
from tests.auth.access_kit import ROOT, ROOT_PASSWORD, Identity, auth_server, basic
from tests.conftest import RunningServer

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
EXPECTED_PUBLIC = {
    ("GET", "/health"),
    ("GET", "/version"),
    ("GET", "/auth/login"),
    ("POST", "/auth/login"),
    ("POST", "/auth/logout"),
    ("GET", "/auth/oidc/login"),
    ("GET", "/auth/oidc/callback"),
}
MLFLOW_SHAPE = {"error_code", "message"}
V1_SHAPE = {"error_code", "message", "details"}

# Plausible values for path parameters and request fields; nothing they name exists, so
# a request that got through by mistake changes nothing.
PATH_VALUES = {
    "model_id": "m-0123456789abcdef0123456789abcdef",
    "tag_key": "some.tag",
    "path": "1/0123456789abcdef0123456789abcdef/artifacts/file.txt",
    "username": "nobody-here",
    "name": "no-such-thing",
    "token_id": "987654",
    "resource_type": "experiment",
    "resource_id": "987654",
    "experiment_id": "987654",
    "run_id": "0123456789abcdef0123456789abcdef",
    "fingerprint": "000000000000",
}
FIELDS: dict[str, Any] = {
    "experiment_id": "987654",
    "experiment_ids": ["987654"],
    "experiment_name": "no-such-experiment",
    "run_id": "0123456789abcdef0123456789abcdef",
    "run_ids": ["0123456789abcdef0123456789abcdef"],
    "name": "no-such-model",
    "new_name": "no-such-model-2",
    "version": "1",
    "alias": "champion",
    "stage": "Staging",
    "key": "k",
    "value": "v",
    "metric_key": "m",
    "path": "1/0123456789abcdef0123456789abcdef/artifacts/file.txt",
    "source": "mlflow-artifacts:/1/x/artifacts/model",
    "status": "FINISHED",
    "timestamp": 1,
    "upload_id": "u",
    "num_parts": 1,
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # concrete, parameters filled
    need: Any
    family: str  # "mlflow" | "v1"

    @property
    def shape(self) -> set[str]:
        return V1_SHAPE if self.family == "v1" else MLFLOW_SHAPE

    def writes(self) -> bool:
        if isinstance(self.need, On):
            return self.need.level > self.need.level.READ
        if isinstance(self.need, SignedIn):
            return self.need.write
        if isinstance(self.need, Admin):
            return self.method not in SAFE_METHODS  # every admin route that changes anything
        return False


def _fill_pattern(pattern: str) -> str:
    """A concrete path for an RpcRouter pattern (a regex with named groups)."""
    filled = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: "\0" + m.group(1) + "\0", pattern)
    filled = re.sub(r"\\(.)", r"\1", filled)
    concrete = re.sub("\0(\\w+)\0", lambda m: PATH_VALUES[m.group(1)], filled)
    assert re.fullmatch(pattern, concrete), (pattern, concrete)
    return concrete


def _fill_template(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PATH_VALUES[m.group(1)], path)


def ui_public() -> set[tuple[str, str]]:
    """The UI's page shells (they send a browser without a session to sign in and hold no
    data) and its static assets."""
    shells = {("GET", _fill_template(page.path)) for page in PAGES}
    return shells | {("GET", "/"), ("GET", "/ui"), ("GET", _fill_template("/ui/static/{fingerprint}/{name:path}"))}


def _web_routes(routes: list[Any]) -> Iterator[Any]:
    """Every route of a Starlette/FastAPI route list, descending into included routers."""
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:  # FastAPI's included router
            yield from _web_routes(candidates())
        elif hasattr(route, "original_router"):
            yield from _web_routes(route.original_router.routes)
        else:
            yield route


def docs_paths(web: Any) -> set[str]:
    return {
        p
        for p in (web.openapi_url, web.docs_url, web.redoc_url, web.swagger_ui_oauth2_redirect_url)
        if p
    }


def all_routes(app: Any) -> list[Route]:
    out = []
    for method, pattern, need in app.rpc.routes():
        is_pattern = "(?P<" in pattern
        path = _fill_pattern(pattern) if is_pattern else pattern
        out.append(Route(method, path, need, "mlflow"))
    docs = docs_paths(app.web)
    for route in _web_routes(app.web.routes):
        if route.path in docs:
            continue
        need = declared(route.endpoint)
        assert need is not None, f"{route.path} declares no access rule"
        family = "v1" if route.path.startswith("/api/v1/") else "mlflow"
        for method in sorted(route.methods - {"HEAD"}):
            out.append(Route(method, _fill_template(route.path), need, family))
    return out


def send(http: httpx.Client, route: Route, headers: dict[str, str] | None = None) -> httpx.Response:
    """The route's request with plausible fields: in the query string, and for the methods
    that carry one, also as a JSON body (streamed uploads take theirs from the query)."""
    if route.method in SAFE_METHODS:
        return http.request(route.method, route.path, params=FIELDS, headers=headers)
    return http.request(route.method, route.path, params=FIELDS, json=FIELDS, headers=headers)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # many wrong passwords come from this one address: keep the failed-login limit out of the way
    with auth_server(
        tmp_path_factory.mktemp("every-route"), "sqlite", login_attempts=1000
    ) as running:
        yield running


@pytest.fixture(scope="module")
def ident(server: RunningServer) -> Identity:
    return Identity.bootstrap(server)


@pytest.fixture(scope="module")
def routes(server: RunningServer) -> list[Route]:
    return all_routes(server.app)


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60, follow_redirects=False) as client:
        yield client


# ---------------------------------------------------------------------- declarations


def test_the_walk_sees_every_family(routes: list[Route]) -> None:
    """The walk is not vacuous: it reaches each area's routes under every prefix."""
    paths = {r.path for r in routes}
    for expected in (
        "/api/2.0/mlflow/runs/log-metric",
        "/ajax-api/2.0/mlflow/runs/log-metric",
        "/api/3.0/mlflow/server-info",
        "/api/2.0/mlflow/registered-models/alias",
        "/api/2.0/mlflow-artifacts/artifacts",
        "/api/v1/me",
        "/api/v1/permissions/experiment/987654/team",
        "/api/v1/models/no-such-thing/history",
        "/get-artifact",
        "/model-versions/get-artifact",
        "/health",
        "/auth/login",
    ):
        assert expected in paths, expected
    assert len([r for r in routes if r.family == "mlflow" and r.path.startswith("/api/2.0/")]) > 60
    assert len([r for r in routes if r.family == "v1"]) > 20


def test_every_route_declares_what_it_needs(server: RunningServer, routes: list[Route]) -> None:
    needs_types = (Public, SignedIn, Admin, On)
    for route in routes:
        assert isinstance(route.need, needs_types), f"{route.method} {route.path}: {route.need!r}"
        if isinstance(route.need, On):
            assert route.need.kind in (
                "experiment",
                "run",
                "runs",
                "logged_model",
                "artifact",
                "model",
                "deployment",
            )
    # the plain routes are wrapped by the guard; the wrapper still says what it enforces
    for route in _web_routes(server.app.web.routes):
        if route.path not in docs_paths(server.app.web):
            assert declared(route.endpoint) is not None, route.path


def test_only_the_expected_routes_are_public(routes: list[Route]) -> None:
    public = {(r.method, r.path) for r in routes if isinstance(r.need, Public)}
    assert public == EXPECTED_PUBLIC | ui_public()


def test_public_routes_answer_without_credentials(
    http: httpx.Client, server: RunningServer, routes: list[Route]
) -> None:
    for route in routes:
        if isinstance(route.need, Public):
            response = http.request(route.method, route.path)
            assert response.status_code != 401, f"{route.method} {route.path}: {response.text}"
            assert response.status_code < 500, f"{route.method} {route.path}: {response.text}"
            if route.path.startswith("/ui/") and "/static/" not in route.path:
                assert response.status_code == 303, route.path
                assert response.headers["location"].startswith("/auth/login?next=/ui/"), route.path
    assert http.get("/health").text == "OK"
    assert (
        http.get(
            "/health", headers={"Authorization": "Bearer ldk_wrong-wrong-wrong-wrong"}
        ).status_code
        == 200
    )
    # FastAPI's own pages are public too
    for path in docs_paths(server.app.web):
        assert http.get(path).status_code == 200, path


def test_a_route_without_a_declaration_cannot_exist(
    start_server: Callable[..., RunningServer],
) -> None:
    class Undeclared:
        @rpc("GET", "/mlflow/undeclared", needs=None)
        async def handler(self, _req: Any) -> dict[str, Any]:
            return {}

    async def no_guard(_need: Any, _req: Any) -> None:
        return None

    with pytest.raises(ValueError, match="declares no access rule"):
        RpcRouter(no_guard).include(Undeclared())

    from labdeck.app import guarded

    async def plain(_request: Any) -> Any:
        return None

    with pytest.raises(ValueError, match="declares no access rule"):
        guarded(plain, None)  # type: ignore[arg-type]

    # an /api/v1 route added without @needs is refused at request time, even in single-user mode
    server = start_server()

    async def undeclared_v1() -> dict[str, Any]:
        return {"leaked": True}

    server.app.web.add_api_route("/api/v1/undeclared-probe", undeclared_v1, methods=["GET"])
    with server.http() as client:
        response = client.get("/api/v1/undeclared-probe")
    assert response.status_code == 403, response.text
    assert set(response.json()) == V1_SHAPE
    assert response.json()["error_code"] == "PERMISSION_DENIED"


# ---------------------------------------------------------------------- no or wrong credentials


def _assert_unauthenticated(response: httpx.Response, route: Route) -> None:
    where = f"{route.method} {route.path}"
    assert response.status_code == 401, f"{where}: {response.status_code} {response.text}"
    challenge = response.headers.get("www-authenticate", "")
    assert "Bearer" in challenge and "Basic" in challenge, (
        f"{where}: no WWW-Authenticate ({dict(response.headers)})"
    )
    body = response.json()
    assert set(body) == route.shape, f"{where}: {body}"
    assert body["error_code"] == "UNAUTHENTICATED", f"{where}: {body}"
    assert isinstance(body["message"], str) and body["message"], f"{where}: {body}"


CREDENTIALS = {
    "none": None,
    "wrong token": "Bearer ldk_this-token-was-never-issued-by-anyone",
    "garbage bearer": "Bearer not-even-a-token",
    "basic with a token nobody was issued": basic(
        ROOT, "ldk_this-token-was-never-issued-by-anyone"
    ),
    "malformed basic": "Basic !!!not-base64!!!",
    "unknown scheme": "Negotiate abcdef",
}


@pytest.mark.parametrize("credential", list(CREDENTIALS))
def test_every_route_refuses_missing_or_wrong_credentials(
    http: httpx.Client, routes: list[Route], credential: str
) -> None:
    value = CREDENTIALS[credential]
    headers = {"Authorization": value} if value else None
    checked = 0
    for route in routes:
        if isinstance(route.need, Public):
            continue
        _assert_unauthenticated(send(http, route, headers), route)
        checked += 1
    assert checked > 150


def _one_route_per_kind(routes: list[Route]) -> list[Route]:
    seen: dict[tuple[str, str, str], Route] = {}
    for route in routes:
        if not isinstance(route.need, Public):
            seen.setdefault(
                (route.family, type(route.need).__name__, route.path.split("/")[1]), route
            )
    return list(seen.values())


@pytest.mark.parametrize("who", ["wrong password", "unknown user"])
def test_a_wrong_password_is_refused_in_every_family(
    http: httpx.Client, ident: Identity, routes: list[Route], who: str
) -> None:
    """Wrong Basic passwords: one route of each family, kind of need and prefix (a password
    check costs ~100 ms and counts against the address's failed-login limit, and whether
    credentials are right is decided before routing, as the walks above show)."""
    wrong = {
        "Authorization": basic(
            ROOT if who == "wrong password" else "nobody-at-all", "not-the-root-password"
        )
    }
    sample = _one_route_per_kind(routes)
    assert {r.family for r in sample} == {"mlflow", "v1"} and len(sample) >= 6
    for route in sample:
        _assert_unauthenticated(send(http, route, wrong), route)
    # and the right password works, on both families
    right = {"Authorization": basic(ROOT, ROOT_PASSWORD)}
    assert http.get("/api/v1/me", headers=right).json()["username"] == ROOT
    assert (
        http.get(
            "/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}, headers=right
        ).status_code
        == 200
    )


# ---------------------------------------------------------------------- browser sessions


def test_a_session_without_its_csrf_token_never_changes_anything(
    http: httpx.Client, routes: list[Route]
) -> None:
    """Signed in with the session cookie: reads work, and every request with an unsafe
    method needs the session's CSRF token (403 without it); a forged cookie is nobody (401)."""
    login = http.post("/auth/login", json={"username": ROOT, "password": ROOT_PASSWORD})
    assert login.status_code == 200, login.text
    cookie = login.cookies["labdeck_session"]
    csrf = login.json()["csrf_token"]
    session = {"Cookie": f"labdeck_session={cookie}"}
    unsafe = 0
    for route in routes:
        if isinstance(route.need, Public):
            continue
        response = send(http, route, session)
        where = f"{route.method} {route.path}: {response.status_code} {response.text}"
        if route.method in SAFE_METHODS:
            assert response.status_code not in (401, 403), where
            continue
        unsafe += 1
        assert response.status_code == 403, where
        assert set(response.json()) == route.shape, where
        assert "CSRF" in response.json()["message"], where
    assert unsafe > 80
    made = http.post(
        "/api/2.0/mlflow/experiments/create",
        json={"name": "by-session"},
        headers={**session, "X-CSRF-Token": csrf},
    )
    assert made.status_code == 200, made.text
    forged = {"Cookie": f"labdeck_session={cookie[:-4]}abcd"}
    response = http.get(
        "/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}, headers=forged
    )
    assert response.status_code == 401 and response.headers.get("www-authenticate")


# ---------------------------------------------------------------------- read-only tokens


def test_a_read_only_token_never_writes_anywhere(
    http: httpx.Client, ident: Identity, routes: list[Route]
) -> None:
    """Even an admin's read-only token: 403 on every writing route, through on every reading one."""
    with ident.admin() as admin:
        made = admin.post("/api/v1/tokens", json={"name": "ro", "read_only": True})
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    writes = reads = 0
    for route in routes:
        if isinstance(route.need, Public):
            continue
        response = send(http, route, headers)
        where = f"{route.method} {route.path}: {response.status_code} {response.text}"
        assert response.status_code != 500, where  # 501 is fine: no presigned URLs on a local store
        if route.writes():
            writes += 1
            assert response.status_code == 403, where
            body = response.json()
            assert set(body) == route.shape, where
            assert body["error_code"] == "PERMISSION_DENIED", where
            assert "read-only" in body["message"], where
        else:
            reads += 1
            assert response.status_code not in (401, 403), where
    assert writes > 80 and reads > 40
    # the walk created nothing
    listed = http.get("/api/v1/users", headers=headers).json()["users"]
    assert [u["username"] for u in listed] == [ROOT]
    assert http.get("/api/v1/teams", headers=headers).json()["teams"] == []
