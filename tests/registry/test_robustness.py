"""Property tests: random input never breaks the model registry API or the data it holds.

Hypothesis throws random JSON bodies (the real field names, plausible values most of the
time, values of every JSON type otherwise: huge integers, NaN, nested lists and objects,
unicode, very long strings, NUL characters) at every registry write endpoint, and random
query strings at the registry's GET endpoints (MLflow's and ``/api/v1`` history), of one
server per backend. For every request:

- the status is never 5xx;
- every answer but a downloaded file is a JSON object, and every non-200 answer is exactly
  ``error_code`` and ``message`` (``/api/v1`` adds ``details``);
- the seeded model (versions in several stages, model and version tags, aliases, its
  history) reads back exactly as before, unless the request named it and was answered 200.
  Most requests aim at a decoy model, so a write that leaks to the wrong model, or a refused
  write that stored part of itself, shows.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from labdeck.config import Settings
from tests.conftest import RunningServer, _pg_admin, start_labdeck
from tests.tracking.test_robustness import (
    DEEP,
    HYPOTHESIS,
    INTERESTING_STRINGS,
    MAX_QUERY_LENGTH,
    RAW_BODIES,
    VALUES,
    _encode,
    _long_strings,
    _maybe,
    _rarely,
    _values,
)

EXAMPLES = {"sqlite": {"writes": 1500, "reads": 800}, "postgres": {"writes": 400, "reads": 400}}
SEEDED = "seeded-model"
DECOY = "decoy-model"


@dataclass
class Env:
    backend: str
    server: RunningServer
    api: httpx.Client  # MLflow's API
    root: httpx.Client  # the server's root, for /api/v1
    run_id: str
    logged_model: str
    snapshot: dict[str, Any] = field(default_factory=dict)

    def read_seeded(self) -> dict[str, Any]:
        model = self.api.get("/registered-models/get", params={"name": SEEDED})
        versions = self.api.get(
            "/model-versions/search", params={"filter": f"name = '{SEEDED}'", "order_by": ["version_number"]}
        )
        history = self.root.get(f"/api/v1/models/{SEEDED}/history", params={"limit": 1000})
        for response in (model, versions, history):
            assert response.status_code == 200, response.text
        return {"model": model.json(), "versions": versions.json(), "history": history.json()}

    def exists(self, name: str) -> bool:
        return self.api.get("/registered-models/get", params={"name": name}).status_code == 200


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _seed_model(env: Env, name: str) -> None:
    """Three versions (None, Staging, Production), tags on the model and on a version, two aliases."""
    api = env.api
    _ok(
        api.post(
            "/registered-models/create",
            json={"name": name, "description": f"{name} model", "tags": [{"key": "team", "value": name}]},
        )
    )
    sources = ["s3://bucket/a", f"runs:/{env.run_id}/model", f"models:/{env.logged_model}"]
    for source in sources:
        _ok(api.post("/model-versions/create", json={"name": name, "source": source, "tags": [{"key": "k", "value": "v"}]}))
    _ok(api.post("/model-versions/transition-stage", json={"name": name, "version": "2", "stage": "Staging"}))
    _ok(api.post("/model-versions/transition-stage", json={"name": name, "version": "3", "stage": "Production"}))
    _ok(api.post("/registered-models/alias", json={"name": name, "alias": "champion", "version": "3"}))
    _ok(api.post("/registered-models/alias", json={"name": name, "alias": "challenger", "version": "2"}))
    _ok(api.post("/model-versions/set-tag", json={"name": name, "version": "1", "key": "note", "value": "first"}))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    overrides: dict[str, Any] = {"data_dir": tmp_path_factory.mktemp("registry-fuzz")}
    database = None
    if request.param == "postgres":
        base = request.getfixturevalue("postgres_url").rsplit("/", 1)[0]
        database = f"labdeck_rfuzz_{uuid.uuid4().hex[:10]}"
        _pg_admin(f'CREATE DATABASE "{database}"')
        overrides["database"] = {"url": f"{base}/{database}"}
    server = start_labdeck(Settings.load(None, **overrides))
    api = httpx.Client(base_url=server.url + "/api/2.0/mlflow", timeout=60, trust_env=False)
    root = httpx.Client(base_url=server.url, timeout=60, trust_env=False)
    try:
        experiment_id = _ok(api.post("/experiments/create", json={"name": "fuzz"}))["experiment_id"]
        run_id = _ok(api.post("/runs/create", json={"experiment_id": experiment_id}))["run"]["info"]["run_id"]
        logged = _ok(api.post("/logged-models", json={"experiment_id": experiment_id, "source_run_id": run_id}))
        environment = Env(request.param, server, api, root, run_id, logged["model"]["info"]["model_id"])
        _seed_model(environment, SEEDED)
        _seed_model(environment, DECOY)
        environment.snapshot = environment.read_seeded()
        yield environment
    finally:
        api.close()
        root.close()
        server.stop()
        if database:
            _pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


# ---------------------------------------------------------------------- strategies

TEXT = _maybe(st.one_of(st.text(max_size=30), st.sampled_from(INTERESTING_STRINGS), _long_strings()))
KEYS = _maybe(st.sampled_from(["team", "k", "note", "a/b", "x y:z", "../k", "a!", "", "k" * 250, "k" * 251]))
VERSIONS = _maybe(
    st.one_of(
        st.sampled_from(["1", "2", "3", "4", "0", "-1", "007", "+2", " 3", "99", "2147483648", "9" * 25, "abc", "", "1.0"]),
        st.integers(min_value=-5, max_value=2**70).map(str),
    )
)
ALIASES = _maybe(
    st.sampled_from(
        ["champion", "challenger", "canary", "latest", "LATEST", "v1", "V2", "a b", "a/b", "", "é", "x" * 255, "x" * 256]
    )
)
STAGES = _maybe(st.sampled_from(["None", "Staging", "Production", "Archived", "production", "ARCHIVED", "Prod", ""]))
BOOLS = _maybe(st.sampled_from([True, False, "true", "false", "TRUE", "yes", 1]))


def _names(env: Env) -> st.SearchStrategy[Any]:
    """Model names to aim at: mostly the decoy, sometimes the seeded one, missing or malformed ones."""
    return _maybe(
        st.sampled_from(
            [DECOY] * 10 + [SEEDED, "missing-model", "a/b", "a:b", "..", "", " ", "x" * 257, "new-" + uuid.uuid4().hex[:6]]
        )
    )


def _sources(env: Env) -> st.SearchStrategy[Any]:
    return _maybe(
        st.sampled_from(
            [
                "s3://bucket/key",
                "/abs/path",
                f"runs:/{env.run_id}/model",
                f"runs:/{env.run_id}",
                "runs:/" + uuid.uuid4().hex + "/m",
                f"models:/{env.logged_model}",
                "models:/m-" + uuid.uuid4().hex,
                f"models:/{DECOY}/1",
                f"models:/{DECOY}/latest",
                f"models:/{DECOY}/production",
                f"models:/{DECOY}@champion",
                f"models:/{DECOY}@latest",
                f"models:/{SEEDED}/2",
                f"models:/{DECOY}/{'9' * 30}",
                "models:/",
                "models:/a/b/c",
                "models:/@x",
                "runs:/",
                "mlflow-artifacts:/0/x",
                "",
            ]
        )
    )


def _pairs() -> st.SearchStrategy[Any]:
    return _maybe(st.lists(_maybe(st.fixed_dictionaries({"key": KEYS, "value": TEXT})), max_size=4))


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    required: dict[str, st.SearchStrategy[Any]]
    optional: dict[str, st.SearchStrategy[Any]]


def _write_endpoints(env: Env) -> list[Endpoint]:
    name = {"name": _names(env)}
    version = {**name, "version": VERSIONS}
    return [
        Endpoint("POST", "/registered-models/create", name, {"tags": _pairs(), "description": TEXT}),
        Endpoint("POST", "/registered-models/rename", {**name, "new_name": _names(env)}, {}),
        Endpoint("PATCH", "/registered-models/update", name, {"description": TEXT}),
        Endpoint("DELETE", "/registered-models/delete", name, {}),
        Endpoint("POST", "/registered-models/set-tag", {**name, "key": KEYS, "value": TEXT}, {}),
        Endpoint("DELETE", "/registered-models/delete-tag", {**name, "key": KEYS}, {}),
        Endpoint("POST", "/registered-models/alias", {**version, "alias": ALIASES}, {}),
        Endpoint("DELETE", "/registered-models/alias", {**name, "alias": ALIASES}, {}),
        Endpoint(
            "POST",
            "/model-versions/create",
            {**name, "source": _sources(env)},
            {
                "run_id": _maybe(st.sampled_from([env.run_id, uuid.uuid4().hex, "r" * 33, ""])),
                "model_id": _maybe(st.sampled_from([env.logged_model, "m-404", "m" * 65])),
                "tags": _pairs(),
                "run_link": TEXT,
                "description": TEXT,
            },
        ),
        Endpoint("PATCH", "/model-versions/update", version, {"description": TEXT}),
        Endpoint(
            "POST",
            "/model-versions/transition-stage",
            {**version, "stage": STAGES},
            {"archive_existing_versions": BOOLS},
        ),
        Endpoint("DELETE", "/model-versions/delete", version, {}),
        Endpoint("POST", "/model-versions/set-tag", {**version, "key": KEYS, "value": TEXT}, {}),
        Endpoint("DELETE", "/model-versions/delete-tag", {**version, "key": KEYS}, {}),
    ]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes
    named: tuple[Any, ...]  # every value the request carries: what it may touch


def write_requests(env: Env) -> st.SearchStrategy[Request]:
    def build(endpoint: Endpoint, data: st.DataObject) -> Request:
        body: Any = data.draw(st.fixed_dictionaries(endpoint.required, optional=endpoint.optional), label="body")
        body = data.draw(_rarely(st.just(body), st.one_of(RAW_BODIES, VALUES, DEEP), 20), label="odd body")
        if isinstance(body, bytes):
            content = body
        elif data.draw(_rarely(st.just(False), st.just(True), 10), label="double encoded"):
            content = json.dumps(_encode(body, True).decode()).encode()
        else:
            content = _encode(body, data.draw(st.booleans(), label="ascii only"))
        return Request(endpoint.method, endpoint.path, content, tuple(_values(body)))

    return st.builds(build, st.sampled_from(_write_endpoints(env)), st.data())


def read_requests(env: Env) -> st.SearchStrategy[tuple[str, list[tuple[str, str]]]]:
    """A GET endpoint with its own parameters (plausible values, mostly), and odd extras."""
    words = st.one_of(
        st.text(max_size=30),
        st.sampled_from(INTERESTING_STRINGS + [SEEDED, DECOY, "champion", "latest", "v1", "Production", "1", "3"]),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        _long_strings(longest=8001),
    )
    filters = st.sampled_from(
        [
            f"name = '{SEEDED}'",
            "name LIKE '%model'",
            "name ILIKE 'D%'",
            "name IN ('a', 'b')",
            "tags.team = 'x'",
            "tags.`team` != 'x'",
            "run_id = 'x'",
            "version_number > 1",
            "version_number = '1'",
            "version_number >= 99999999999999999999",
            "source_path LIKE 's3%'",
            "name = 'a' OR name = 'b'",
            "name = 'a\u0000'",
        ]
    ) | words
    orders = st.sampled_from(
        ["name DESC", "version_number ASC", "timestamp", "last_updated_timestamp DESC", "creation_timestamp", "x"]
    ) | words
    numbers = st.sampled_from(["1", "0", "-1", "1000", "1001", "200001", "2147483648", "9" * 30, "x", ""]) | words
    names = st.sampled_from([SEEDED, DECOY, "missing", "a\u0000b", "\u0000", "..", "a/b", "a:b", "", "x" * 257]) | words
    one = {
        "name": names,
        "version": VERSIONS.filter(lambda v: isinstance(v, str)) | words,
        "alias": ALIASES.filter(lambda v: isinstance(v, str)) | words,
        "stages": STAGES.filter(lambda v: isinstance(v, str)) | words,
        "filter": filters,
        "max_results": numbers,
        "order_by": orders,
        "page_token": st.sampled_from(["", "eyJvZmZzZXQiOiAyfQ==", "garbage"]) | words,
        "limit": numbers,
        "before": numbers,
        "path": st.sampled_from(["MLmodel", "", "../x", "/abs", "a/../../b"]) | words,
    }
    endpoints = {
        "/api/2.0/mlflow/registered-models/get": ["name"],
        "/api/2.0/mlflow/registered-models/search": ["filter", "max_results", "order_by", "page_token"],
        "/api/2.0/mlflow/registered-models/get-latest-versions": ["name", "stages"],
        "/api/2.0/mlflow/registered-models/alias": ["name", "alias"],
        "/api/2.0/mlflow/model-versions/get": ["name", "version"],
        "/api/2.0/mlflow/model-versions/search": ["filter", "max_results", "order_by", "page_token"],
        "/api/2.0/mlflow/model-versions/get-download-uri": ["name", "version"],
        "/api/v1/models/{name}/history": ["limit", "before"],
        "/model-versions/get-artifact": ["name", "version", "path"],
    }

    @st.composite
    def build(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
        path = draw(st.sampled_from(sorted(endpoints)))
        params: list[tuple[str, str]] = []
        for name in endpoints[path]:
            params += [(name, value) for value in draw(st.lists(one[name], max_size=2), label=name)]
        extras = st.tuples(st.sampled_from(["unknown", "name", "version"]) | st.text(max_size=6), words)
        params += draw(_rarely(st.just([]), st.lists(extras, max_size=4), 4), label="extras")
        assume(len(urlencode(params)) <= MAX_QUERY_LENGTH)
        if "{name}" in path:
            path = path.replace("{name}", quote(draw(names.filter(bool), label="path name"), safe=""))
        # Over about 64 KiB the HTTP server itself refuses the request line (a plain-text
        # 400) before the application sees it; that limit is uvicorn's, not labdeck's.
        assume(len(path) + len(urlencode(params)) <= MAX_QUERY_LENGTH)
        return path, params

    return build()


# ---------------------------------------------------------------------- the properties


def _check_answer(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url}"
    assert response.status_code < 500, f"{where} -> {response.status_code} {response.text}"
    if response.status_code == 200 and "/get-artifact" in where:
        return  # a file
    assert response.headers["content-type"].startswith("application/json"), where
    body = response.json()
    assert isinstance(body, dict), f"{where} -> {response.text}"
    if response.status_code != 200:
        assert 400 <= response.status_code < 500, f"{where} -> {response.status_code}"
        shape = {"error_code", "message", "details"} if "/api/v1/" in where else {"error_code", "message"}
        assert set(body) == shape, f"{where} -> {body}"
        assert isinstance(body["error_code"], str) and re.fullmatch(r"[A-Z_]+", body["error_code"]), body
        assert isinstance(body["message"], str) and body["message"], body


def _names_seeded(request: Request) -> bool:
    return any(isinstance(value, str) and SEEDED in value for value in request.named)


def _heal(env: Env) -> None:
    """Bring back a seeded or decoy model that a request deleted or renamed away."""
    for name in (SEEDED, DECOY):
        if not env.exists(name):
            _seed_model(env, name)


def test_random_writes_never_fail_the_server_nor_leak(env: Env) -> None:
    counts = {"answered 200": 0, "refused": 0}

    @settings(max_examples=EXAMPLES[env.backend]["writes"], **HYPOTHESIS)
    @given(request=write_requests(env))
    def check(request: Request) -> None:
        response = env.api.request(
            request.method, request.path, content=request.body, headers={"content-type": "application/json"}
        )
        _check_answer(response)
        counts["answered 200" if response.status_code == 200 else "refused"] += 1
        if response.status_code == 200 and request.path.endswith(("/rename", "/registered-models/delete")):
            _heal(env)
        now = env.read_seeded()
        if response.status_code == 200 and _names_seeded(request):
            env.snapshot = now
        else:
            assert now == env.snapshot, f"{request.method} {request.path} {request.body[:500]!r} changed the seeded model"

    check()
    # the generators reach both outcomes, so the property is about real writes too
    assert counts["answered 200"] > 0 and counts["refused"] > 0, counts


def test_random_queries_never_fail_the_server(env: Env) -> None:
    @settings(max_examples=EXAMPLES[env.backend]["reads"], **HYPOTHESIS)
    @given(request=read_requests(env))
    def check(request: tuple[str, list[tuple[str, str]]]) -> None:
        path, params = request
        _check_answer(env.root.get(path, params=params))

    check()
    assert env.read_seeded() == env.snapshot
