"""Model URIs: parsing, and resolution to the place a model's files are.

Every part of labdeck that takes a model URI (the registry, the model server, deployments)
goes through this module. It imports no storage, so the model server can use it alone.

Forms understood (MLflow's, plus plain locations):

    models:/<name>/<version>      a version                 models:/churn/3
    models:/<name>/latest         the highest version       models:/churn/latest
    models:/<name>/<stage>        newest version in a stage models:/churn/Production
    models:/<name>@<alias>        the version an alias names models:/churn@champion
    models:/m-<id>                an MLflow 3 logged model  models:/m-4a4b...
    runs:/<run_id>/<path>         a run's artifact          runs:/0bde.../model
    mlflow-artifacts:/<path>      the tracking server's artifact proxy
    s3://bucket/key, file:///x, /abs/path, rel/path, http(s)://...   as they are

``parse_model_uri`` turns text into a ``ModelUri``. A ``ModelLocator`` turns a ``ModelUri``
into an artifact location (a URI of the last group): ``RestModelLocator`` asks an
MLflow-compatible tracking server over HTTP (what a model server or a notebook uses); the
server itself uses ``registry.locator.InProcessModelLocator``, which asks its services.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlparse

from labdeck.errors import InvalidParameter, LabdeckError, NotFound, PermissionDenied, Unauthenticated

_VERSION = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class ModelUri:
    """A parsed model URI; ``kind`` says which fields are set."""

    raw: str
    kind: str  # "version" | "latest" | "stage" | "alias" | "logged_model" | "run" | "location"
    name: str | None = None
    version: int | None = None
    stage: str | None = None
    alias: str | None = None
    model_id: str | None = None
    run_id: str | None = None
    path: str = ""

    @property
    def is_registry(self) -> bool:
        return self.kind in ("version", "latest", "stage", "alias")


def _improper(uri: str) -> InvalidParameter:
    return InvalidParameter(
        f"Not a proper models:/ URI: {uri}. Models URIs must be of the form 'models:/model_name/suffix' "
        "or 'models:/model_name@alias' where suffix is a model version, stage, or the string 'latest' "
        "and where alias is a registered model alias. Only one of suffix or alias can be defined at a time."
    )


def parse_model_uri(uri: str) -> ModelUri:
    """Parse any model URI labdeck accepts; InvalidParameter says what is wrong."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidParameter("A model URI is required.")
    scheme = urlparse(uri).scheme  # lower-cased, as MLflow compares it
    if scheme == "models":
        return _parse_models(uri)
    if scheme == "runs":
        return _parse_runs(uri)
    return ModelUri(uri, "location")


def _parse_runs(uri: str) -> ModelUri:
    parsed = urlparse(uri)
    parts = parsed.path[1:].split("/", 1)
    if parsed.netloc or not parsed.path.startswith("/") or not parts[0]:
        raise InvalidParameter(
            f"Not a proper runs:/ URI: {uri}. Runs URIs must be of the form 'runs:/<run_id>/run-relative/path/to/artifact'"
        )
    return ModelUri(uri, "run", run_id=parts[0], path=parts[1].strip("/") if len(parts) > 1 else "")


def _parse_models(uri: str) -> ModelUri:
    parsed = urlparse(uri, allow_fragments=False)
    path = parsed.path
    if parsed.netloc or not path.startswith("/") or len(path) <= 1:
        raise _improper(uri)
    parts = path.lstrip("/").split("/")
    if len(parts) > 2 or not parts[0].strip():
        raise _improper(uri)
    if len(parts) == 2:
        # a name may hold "@" (the registry allows it): with a suffix, it is all name
        name, suffix = parts
        if not suffix.strip():
            raise _improper(uri)
        if _VERSION.fullmatch(suffix):
            try:
                return ModelUri(uri, "version", name=name, version=int(suffix))
            except ValueError:  # more digits than Python converts
                raise _improper(uri) from None
        if suffix.lower() == "latest":
            return ModelUri(uri, "latest", name=name)
        return ModelUri(uri, "stage", name=name, stage=suffix)
    if "@" in parts[0]:
        name, _, alias = parts[0].rpartition("@")
        if not name.strip() or not alias.strip():
            raise _improper(uri)
        return ModelUri(uri, "alias", name=name, alias=alias)
    return ModelUri(uri, "logged_model", model_id=parts[0])


class ModelLocator(Protocol):
    """Resolves a model URI to the artifact location of the model's files."""

    async def locate(self, uri: ModelUri) -> str:
        """The artifact URI (``mlflow-artifacts:/...``, ``s3://...``, a path, ...) of ``uri``."""
        ...


def join_uri(base: str, path: str) -> str:
    path = path.strip("/")
    return f"{base.rstrip('/')}/{path}" if path else base


class RestModelLocator:
    """Resolves through an MLflow-compatible tracking server (labdeck or MLflow itself),
    with the same calls the ``mlflow`` client makes. ``client`` is an ``httpx.AsyncClient``
    whose base URL is the server's and whose auth the caller set up."""

    def __init__(self, client: Any):
        self.client = client

    async def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._answer(await self.client.get(f"/api/2.0/mlflow/{path}", params=params))

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._answer(await self.client.post(f"/api/2.0/mlflow/{path}", json=body))

    def _answer(self, response: Any) -> dict[str, Any]:
        if response.status_code == 200:
            return response.json()
        try:
            body = response.json()
            message, code = body.get("message", response.text), body.get("error_code")
        except ValueError:
            message, code = response.text, None
        if response.status_code == 404 or code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFound(message)
        if response.status_code == 401:
            raise Unauthenticated(message)
        if response.status_code == 403:
            raise PermissionDenied(message)
        if 400 <= response.status_code < 500:
            raise InvalidParameter(message)
        raise LabdeckError(f"the tracking server answered {response.status_code}: {message}")

    async def locate(self, uri: ModelUri) -> str:
        if uri.kind == "location":
            return uri.raw
        if uri.kind == "run":
            info = (await self._get("runs/get", {"run_id": uri.run_id}))["run"]["info"]
            logged = await self._run_logged_model(info, uri.path)
            return logged or join_uri(info["artifact_uri"], uri.path)
        if uri.kind == "logged_model":
            model = await self._get(f"logged-models/{quote(uri.model_id or '', safe='')}", {})
            return model["model"]["info"]["artifact_uri"]
        version = await self.version_of(uri)
        found = await self._get("model-versions/get-download-uri", {"name": uri.name, "version": version})
        return found["artifact_uri"]

    async def _run_logged_model(self, run: dict[str, Any], path: str) -> str | None:
        """MLflow 3's ``log_model`` puts a run's model in a logged model, not in the run's
        artifacts: ``runs:/<run>/<name>/rest`` is then ``rest`` in the files of the run's
        logged model called ``name``, as MLflow's own client resolves it."""
        name, _, rest = path.partition("/")
        if not name:
            return None
        body: dict[str, Any] = {"experiment_ids": [run["experiment_id"]], "filter": f"name = '{name}'"}
        while True:
            page = await self._post("logged-models/search", body)
            for model in page.get("models", []):
                if model["info"].get("source_run_id") == run["run_id"]:
                    return join_uri(model["info"]["artifact_uri"], rest)
            if not page.get("next_page_token"):
                return None
            body["page_token"] = page["next_page_token"]

    async def version_of(self, uri: ModelUri) -> str:
        """The version number a registry URI names (``/3``, ``/latest``, ``/Stage``, ``@alias``)."""
        if uri.kind == "version":
            return str(uri.version)
        if uri.kind == "alias":
            found = await self._get("registered-models/alias", {"name": uri.name, "alias": uri.alias})
            return found["model_version"]["version"]
        params: dict[str, Any] = {"name": uri.name}
        if uri.kind == "stage":
            params["stages"] = uri.stage
        versions = (await self._get("registered-models/get-latest-versions", params)).get("model_versions", [])
        if not versions:
            where = f"in stage '{uri.stage}'" if uri.kind == "stage" else "at all"
            raise NotFound(f"No versions of registered model '{uri.name}' {where}.")
        return str(max(int(v["version"]) for v in versions))
