"""Model URIs: ``parse_model_uri`` for every form labdeck accepts and every malformed one,
then the two locators on real data, on SQLite and PostgreSQL:

- ``RestModelLocator`` against a live server, checked against the answers of the
  endpoints it stands for (``get-download-uri``, ``runs/get``, ``logged-models/<id>``);
- ``InProcessModelLocator`` on a platform built in this process, checked against
  ``RestModelLocator`` over the same app (an ASGI transport, so both run on one event loop
  and see the same data): they agree on every form, errors included (type and message).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from labdeck.app import create_app
from labdeck.config import Settings
from labdeck.errors import InvalidParameter, LabdeckError, NotFound
from labdeck.model_uri import ModelUri, RestModelLocator, join_uri, parse_model_uri
from labdeck.registry.locator import InProcessModelLocator

# ---------------------------------------------------------------------- parsing

ACCEPTED = [
    ("models:/churn/3", {"kind": "version", "name": "churn", "version": 3}),
    ("models:/churn/007", {"kind": "version", "name": "churn", "version": 7}),
    ("models:/churn/latest", {"kind": "latest", "name": "churn"}),
    ("models:/churn/LaTeSt", {"kind": "latest", "name": "churn"}),
    ("models:/churn/Production", {"kind": "stage", "name": "churn", "stage": "Production"}),
    ("models:/churn/staging", {"kind": "stage", "name": "churn", "stage": "staging"}),
    ("models:/churn/Prod", {"kind": "stage", "name": "churn", "stage": "Prod"}),  # resolving says it is no stage
    ("models:/churn/-1", {"kind": "stage", "name": "churn", "stage": "-1"}),
    ("models:/churn/1.0", {"kind": "stage", "name": "churn", "stage": "1.0"}),
    ("models:/churn@champion", {"kind": "alias", "name": "churn", "alias": "champion"}),
    ("models:/churn@latest", {"kind": "alias", "name": "churn", "alias": "latest"}),
    ("models:/a@b@c", {"kind": "alias", "name": "a@b", "alias": "c"}),  # a name may hold "@"
    ("models:/a@b/2", {"kind": "version", "name": "a@b", "version": 2}),
    ("models:/with space/1", {"kind": "version", "name": "with space", "version": 1}),
    ("models:/a#b/1", {"kind": "version", "name": "a#b", "version": 1}),  # no fragments in model URIs
    ("models:/m-4a4b0c", {"kind": "logged_model", "model_id": "m-4a4b0c"}),
    ("models:/anything", {"kind": "logged_model", "model_id": "anything"}),
    ("MODELS:/churn/2", {"kind": "version", "name": "churn", "version": 2}),  # the scheme in any case
    ("runs:/0bde/model", {"kind": "run", "run_id": "0bde", "path": "model"}),
    ("runs:/0bde", {"kind": "run", "run_id": "0bde", "path": ""}),
    ("runs:/0bde/", {"kind": "run", "run_id": "0bde", "path": ""}),
    ("runs:/0bde/a/b/", {"kind": "run", "run_id": "0bde", "path": "a/b"}),
    ("Runs:/0bde/m", {"kind": "run", "run_id": "0bde", "path": "m"}),
    ("mlflow-artifacts:/1/models/m-1/artifacts", {"kind": "location"}),
    ("s3://bucket/key/model", {"kind": "location"}),
    ("file:///tmp/model", {"kind": "location"}),
    ("/abs/path/model", {"kind": "location"}),
    ("relative/model", {"kind": "location"}),
    ("https://example.com/model.tar.gz", {"kind": "location"}),
]


@pytest.mark.parametrize(("uri", "fields"), ACCEPTED, ids=[u for u, _ in ACCEPTED])
def test_accepted_forms(uri, fields):
    parsed = parse_model_uri(uri)
    assert parsed.raw == uri
    expected = {"name": None, "version": None, "stage": None, "alias": None, "model_id": None, "run_id": None, "path": ""}
    expected.update(fields)
    assert {key: getattr(parsed, key) for key in ["kind", *expected]} == {"kind": fields["kind"], **expected}
    assert parsed.is_registry == (fields["kind"] in ("version", "latest", "stage", "alias"))


def improper_models(uri: str) -> str:
    return (
        f"Not a proper models:/ URI: {uri}. Models URIs must be of the form 'models:/model_name/suffix' "
        "or 'models:/model_name@alias' where suffix is a model version, stage, or the string 'latest' "
        "and where alias is a registered model alias. Only one of suffix or alias can be defined at a time."
    )


def improper_runs(uri: str) -> str:
    return f"Not a proper runs:/ URI: {uri}. Runs URIs must be of the form 'runs:/<run_id>/run-relative/path/to/artifact'"


MALFORMED = [
    ("models:/", improper_models("models:/")),
    ("models:", improper_models("models:")),
    ("models://x", improper_models("models://x")),
    ("models://x/1", improper_models("models://x/1")),  # a host is no name
    ("models:x/1", improper_models("models:x/1")),
    ("models:/a/b/c", improper_models("models:/a/b/c")),
    ("models:/a/1/", improper_models("models:/a/1/")),
    ("models:/a@", improper_models("models:/a@")),
    ("models:/a@ ", improper_models("models:/a@ ")),
    ("models:/@x", improper_models("models:/@x")),
    ("models:/a/", improper_models("models:/a/")),
    ("models:/a/ ", improper_models("models:/a/ ")),
    ("models:/ /1", improper_models("models:/ /1")),
    ("models://", improper_models("models://")),
    ("models:/a/" + "9" * 5000, improper_models("models:/a/" + "9" * 5000)),  # more digits than a number holds
    ("runs:/", improper_runs("runs:/")),
    ("runs:", improper_runs("runs:")),
    ("runs://host/x", improper_runs("runs://host/x")),
    ("runs:abc/model", improper_runs("runs:abc/model")),
    ("runs://", improper_runs("runs://")),
    ("runs:/ /", None),  # a blank run id parses; no run has it
    ("", "A model URI is required."),
    ("   ", "A model URI is required."),
]


@pytest.mark.parametrize(("uri", "message"), MALFORMED, ids=[u[:20] for u, _ in MALFORMED])
def test_malformed_forms(uri, message):
    if message is None:
        assert parse_model_uri(uri).kind == "run"
        return
    with pytest.raises(InvalidParameter) as raised:
        parse_model_uri(uri)
    assert raised.value.message == message
    assert raised.value.code == "INVALID_PARAMETER_VALUE"


def test_not_a_string():
    for value in [None, 5, b"models:/m/1"]:
        with pytest.raises(InvalidParameter, match="A model URI is required."):
            parse_model_uri(value)  # type: ignore[arg-type]


def test_join_uri():
    assert join_uri("s3://b/root", "") == "s3://b/root"
    assert join_uri("s3://b/root/", "/model/") == "s3://b/root/model"
    assert join_uri("mlflow-artifacts:/1/abc/artifacts", "a/b") == "mlflow-artifacts:/1/abc/artifacts/a/b"


# ---------------------------------------------------------------------- data to resolve


async def _seed(client: httpx.AsyncClient) -> dict[str, Any]:
    """A model ``m`` with four versions (one deleted): v1 Production from S3, v2 Staging from
    ``runs:/``, v3 from a logged model, alias champion -> v2; an empty model; a run; a
    logged model."""

    async def call(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await client.request(method, f"/api/2.0/mlflow{path}", **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    experiment_id = (await call("POST", "/experiments/create", json={"name": "uris"}))["experiment_id"]
    run = (await call("POST", "/runs/create", json={"experiment_id": experiment_id}))["run"]["info"]
    logged = (await call("POST", "/logged-models", json={"experiment_id": experiment_id, "source_run_id": run["run_id"]}))
    model_id = logged["model"]["info"]["model_id"]
    await call("POST", "/registered-models/create", json={"name": "m"})
    await call("POST", "/registered-models/create", json={"name": "empty"})
    for source in ["s3://bucket/m/1", f"runs:/{run['run_id']}/model", f"models:/{model_id}", "s3://bucket/m/4"]:
        await call("POST", "/model-versions/create", json={"name": "m", "source": source})
    await call("DELETE", "/model-versions/delete", json={"name": "m", "version": "4"})
    await call("POST", "/model-versions/transition-stage", json={"name": "m", "version": "1", "stage": "Production"})
    await call("POST", "/model-versions/transition-stage", json={"name": "m", "version": "2", "stage": "Staging"})
    await call("POST", "/registered-models/alias", json={"name": "m", "alias": "champion", "version": "2"})
    return {"run_id": run["run_id"], "artifact_uri": run["artifact_uri"], "model_id": model_id}


def _resolvable(ids: dict[str, Any]) -> list[str]:
    run_id, model_id = ids["run_id"], ids["model_id"]
    return [
        "models:/m/1",
        "models:/m/2",
        "models:/m/3",
        "models:/m/latest",
        "models:/m/LATEST",
        "models:/m/Production",
        "models:/m/production",
        "models:/m/STAGING",
        "models:/m/None",
        "models:/m@champion",
        "models:/m@latest",
        f"models:/{model_id}",
        f"runs:/{run_id}",
        f"runs:/{run_id}/model",
        f"runs:/{run_id}/a/b/",
        "mlflow-artifacts:/0/abc/artifacts/model",
        "s3://bucket/elsewhere",
        "/local/model",
        "relative/model",
    ]


def _unresolvable(ids: dict[str, Any]) -> list[tuple[str, type[LabdeckError], str]]:
    missing_run = uuid.uuid4().hex
    return [
        ("models:/nope/1", NotFound, "Registered Model with name=nope not found"),
        ("models:/nope/latest", NotFound, "Registered Model with name=nope not found"),
        ("models:/nope@champion", NotFound, "Registered Model with name=nope not found"),
        ("models:/m/9", NotFound, "Model Version (name=m, version=9) not found"),
        ("models:/m/4", NotFound, "Model Version (name=m, version=4) not found"),  # deleted
        ("models:/m/0", NotFound, "Model Version (name=m, version=0) not found"),
        ("models:/m/99999999999999999999", NotFound, "Model Version (name=m, version=99999999999999999999) not found"),
        ("models:/m@nope", InvalidParameter, "Registered model alias nope not found."),
        ("models:/m@v1", InvalidParameter, "Registered model alias v1 not found."),
        ("models:/m@bad alias", InvalidParameter, "Invalid alias name: 'bad alias'. Names may only contain alphanumerics, underscores (_), and dashes (-)."),
        ("models:/m/Prod", InvalidParameter, "Invalid Model Version stage: Prod. Value must be one of None, Staging, Production, Archived."),
        ("models:/m/Archived", NotFound, "No versions of registered model 'm' in stage 'Archived'."),
        ("models:/empty/latest", NotFound, "No versions of registered model 'empty' at all."),
        ("models:/empty@latest", NotFound, "Latest version not found for model empty."),
        ("models:/a:b/1", InvalidParameter, "Invalid model name 'a:b'. Names cannot contain '/' or ':'."),
        ("models:/m-00000000000000000000000000000000", NotFound, "Logged model with ID 'm-00000000000000000000000000000000' not found."),
        ("models:/m-1#2", NotFound, "Logged model with ID 'm-1#2' not found."),  # the id is sent whole
        (f"runs:/{missing_run}/model", NotFound, f"Run with id={missing_run} not found"),
    ]


async def _outcome(locate: Callable[[ModelUri], Awaitable[str]], uri: str) -> tuple[str, str]:
    try:
        return "ok", await locate(parse_model_uri(uri))
    except LabdeckError as error:
        return type(error).__name__, error.message


# ---------------------------------------------------------------------- RestModelLocator on a live server


def test_rest_locator_agrees_with_the_endpoints(server):
    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=60, trust_env=False) as client:
            ids = await _seed(client)
            locator = RestModelLocator(client)

            async def get(path: str, **params: Any) -> dict[str, Any]:
                response = await client.get(f"/api/2.0/mlflow/{path}", params=params)
                assert response.status_code == 200, response.text
                return response.json()

            async def download(version: int) -> str:
                return (await get("model-versions/get-download-uri", name="m", version=str(version)))["artifact_uri"]

            run_uri = (await get("runs/get", run_id=ids["run_id"]))["run"]["info"]["artifact_uri"]
            logged_uri = (await get(f"logged-models/{ids['model_id']}"))["model"]["info"]["artifact_uri"]
            expected = {
                "models:/m/1": await download(1),
                "models:/m/2": await download(2),
                "models:/m/3": await download(3),
                "models:/m/latest": await download(3),
                "models:/m/LATEST": await download(3),
                "models:/m/Production": await download(1),
                "models:/m/production": await download(1),
                "models:/m/STAGING": await download(2),
                "models:/m/None": await download(3),
                "models:/m@champion": await download(2),
                "models:/m@latest": await download(3),
                f"models:/{ids['model_id']}": logged_uri,
                f"runs:/{ids['run_id']}": run_uri,
                f"runs:/{ids['run_id']}/model": f"{run_uri}/model",
                f"runs:/{ids['run_id']}/a/b/": f"{run_uri}/a/b",
                "mlflow-artifacts:/0/abc/artifacts/model": "mlflow-artifacts:/0/abc/artifacts/model",
                "s3://bucket/elsewhere": "s3://bucket/elsewhere",
                "/local/model": "/local/model",
                "relative/model": "relative/model",
            }
            assert set(expected) == set(_resolvable(ids))
            # the download URIs are where the files are: the version from runs:/ and the one
            # from a logged model were resolved at registration
            assert expected["models:/m/1"] == "s3://bucket/m/1"
            assert expected["models:/m/2"] == f"{run_uri}/model"
            assert expected["models:/m/3"] == logged_uri
            for uri, location in expected.items():
                assert await locator.locate(parse_model_uri(uri)) == location, uri
            for uri, error, message in _unresolvable(ids):
                assert await _outcome(locator.locate, uri) == (error.__name__, message), uri

    asyncio.run(scenario())


def test_rest_locator_reports_an_unreachable_or_failing_server():
    async def scenario() -> None:
        def failing(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/runs/get"):
                return httpx.Response(503, json={"error_code": "TEMPORARILY_UNAVAILABLE", "message": "db down"})
            if request.url.path.endswith("/get-download-uri"):
                return httpx.Response(404, text="<html>Not Found</html>")
            return httpx.Response(400, text="plain words")

        async with httpx.AsyncClient(transport=httpx.MockTransport(failing), base_url="http://x") as client:
            locator = RestModelLocator(client)
            assert await _outcome(locator.locate, "runs:/abc/m") == (
                "LabdeckError",
                "the tracking server answered 503: db down",
            )
            assert await _outcome(locator.locate, "models:/m/1") == ("NotFound", "<html>Not Found</html>")
            assert await _outcome(locator.locate, "models:/m@a") == ("InvalidParameter", "plain words")

    asyncio.run(scenario())


# ---------------------------------------------------------------------- InProcessModelLocator


@pytest.fixture
def platform_settings(backend: str, tmp_path, request: pytest.FixtureRequest) -> Settings:
    if backend == "postgres":
        return Settings.load(None, data_dir=tmp_path, database={"url": request.getfixturevalue("fresh_postgres_url")})
    return Settings.load(None, data_dir=tmp_path)


def test_in_process_locator_agrees_with_rest(platform_settings):
    async def scenario() -> None:
        app = create_app(platform_settings)
        await app.platform.start()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://labdeck") as client:
                ids = await _seed(client)
                rest = RestModelLocator(client)
                in_process = InProcessModelLocator(app.platform.registry)
                resolved = {}
                for uri in _resolvable(ids):
                    theirs, ours = await _outcome(rest.locate, uri), await _outcome(in_process.locate, uri)
                    assert ours == theirs and ours[0] == "ok", (uri, ours, theirs)
                    resolved[uri] = ours[1]
                for uri, error, message in _unresolvable(ids):
                    theirs, ours = await _outcome(rest.locate, uri), await _outcome(in_process.locate, uri)
                    assert ours == theirs == (error.__name__, message), uri
            run_uri = resolved[f"runs:/{ids['run_id']}"]
            assert run_uri.startswith("mlflow-artifacts:/") or "://" in run_uri or run_uri.startswith("/")
            assert resolved["models:/m@champion"] == resolved["models:/m/STAGING"] == f"{run_uri}/model"
            assert resolved["models:/m/latest"] == resolved[f"models:/{ids['model_id']}"]
            assert resolved["models:/m/Production"] == "s3://bucket/m/1"
        finally:
            await app.platform.stop()

    asyncio.run(scenario())
