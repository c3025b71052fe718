"""The registry's rules: names, tags, aliases, stages and versions as MLflow checks them
(``mlflow/utils/validation.py``), then the store. Where a version's source is another
model URI (``models:/m-...`` from MLflow 3's ``log_model``, ``runs:/...``), the place its
files are is resolved once, at registration, and kept as the version's storage location.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from labdeck.errors import InvalidParameter, NotFound
from labdeck.model_uri import join_uri, parse_model_uri
from labdeck.registry.entities import ACTIVE_STAGES, HistoryEvent, ModelVersion, RegisteredModel, Stage
from labdeck.registry.store import SqlRegistryStore
from labdeck.tracking import validation as tv
from labdeck.tracking.entities import Page
from labdeck.tracking.service import TrackingService

MAX_TAG_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 100_000
MAX_ALIAS_LENGTH = 255
MAX_MODEL_NAME_LENGTH = 256
MAX_MODEL_SEARCH_RESULTS = 1000
MAX_VERSION_SEARCH_RESULTS = 200_000
MAX_HISTORY_EVENTS = 1000
# Version numbers and history event ids are 32-bit integer columns: a larger number names
# nothing, and PostgreSQL refuses to even compare a column with it.
MAX_VERSION = 2**31 - 1
MAX_EVENT_ID = 2**31 - 1
MAX_RUN_ID_LENGTH = 32
DEFAULT_VERSION_ORDER = ["last_updated_timestamp DESC", "name ASC", "version_number DESC"]

_ALIAS = re.compile(r"^[\w\-]*$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")


def model_name(name: Any, field: str = "name") -> str:
    if name is None or (isinstance(name, str) and not name.strip()):
        raise InvalidParameter(f"Missing value for required parameter '{field}'.")
    if not isinstance(name, str):
        raise tv.invalid_value(field, name, "expected a string")
    if "\x00" in name:  # the MLflow API refuses it up front; /api/v1 paths and plain routes reach here
        raise tv.invalid_value(field, name, "it contains a NUL character.")
    if "/" in name or ":" in name:
        raise InvalidParameter(f"Invalid model name '{name}'. Names cannot contain '/' or ':'.")
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith(".."):
        raise tv.invalid_value(
            field,
            name,
            "Names may be treated as files in certain cases, and must not resolve to other names "
            f"when treated as such. This name would resolve to {norm!r}",
        )
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise InvalidParameter(f"'{field}' exceeds the maximum length of {MAX_MODEL_NAME_LENGTH} characters")
    return name


def version_number(version: Any) -> int:
    if version is None:
        raise InvalidParameter("Missing value for required parameter 'version'.")
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    if isinstance(version, str) and re.fullmatch(r"\s*[-+]?\d+\s*", version):
        try:
            return int(version)
        except ValueError:  # more digits than Python converts
            pass
    raise InvalidParameter(f"Parameter 'version' must be an integer, got '{version}'.")


def tag(key: Any, value: Any) -> tuple[str, str]:
    if key is not None and not isinstance(key, str):
        raise tv.invalid_value("key", key, "expected a string")
    key = tv.key_name(key, "key")
    if len(key) > MAX_TAG_KEY_LENGTH:
        raise InvalidParameter(f"'key' exceeds the maximum length of {MAX_TAG_KEY_LENGTH} characters")
    if value is None:
        value = ""  # as MLflow: an absent string field is the empty string
    if not isinstance(value, str):
        raise tv.invalid_value("value", value, "expected a string")
    if len(value) > MAX_TAG_VALUE_LENGTH:
        raise InvalidParameter(f"'value' exceeds the maximum length of {MAX_TAG_VALUE_LENGTH} characters")
    return key, value


def alias_name(alias: Any, *, reserved_ok: bool = False) -> str:
    if alias is None or alias == "":
        raise InvalidParameter("Registered model alias name cannot be empty.")
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidParameter(
            f"Invalid alias name: '{alias}'. Names may only contain alphanumerics, underscores (_), and dashes (-)."
        )
    if len(alias) > MAX_ALIAS_LENGTH:
        raise InvalidParameter(f"'Registered model alias name' exceeds the maximum length of {MAX_ALIAS_LENGTH} characters")
    if not reserved_ok:
        if alias.lower() == "latest":
            raise InvalidParameter("'latest' alias name (case insensitive) is reserved.")
        if _VERSION_ALIAS.match(alias):
            raise InvalidParameter(f"Version alias name '{alias}' is reserved.")
    return alias


def stage(text: Any) -> Stage:
    parsed = Stage.parse(text) if isinstance(text, str) else None
    if parsed is None:
        raise InvalidParameter(
            f"Invalid Model Version stage: {text}. Value must be one of {', '.join(s.value for s in Stage)}."
        )
    return parsed


class RegistryService:
    def __init__(self, store: SqlRegistryStore, tracking: TrackingService):
        self.store = store
        self.tracking = tracking

    # ------------------------------------------------------------------ registered models

    async def create_model(
        self, name: Any, tags: list[dict[str, Any]], description: str | None, user_id: str | None
    ) -> RegisteredModel:
        checked = dict(tag(t.get("key"), t.get("value")) for t in tags)
        return await self.store.create_model(model_name(name), checked, description, user_id)

    async def get_model(self, name: Any) -> RegisteredModel:
        return await self.store.get_model(model_name(name))

    async def rename_model(self, name: Any, new_name: Any, actor: str | None) -> RegisteredModel:
        return await self.store.rename_model(model_name(name), model_name(new_name, "new_name"), actor)

    async def update_model(self, name: Any, description: str | None) -> RegisteredModel:
        return await self.store.update_model(model_name(name), description)

    async def delete_model(self, name: Any) -> None:
        await self.store.delete_model(model_name(name))

    async def search_models(
        self,
        filter_string: str | None,
        max_results: int,
        order_by: list[str],
        page_token: str | None,
        *,
        only: frozenset[int] | None = None,
        hidden: frozenset[int] | None = None,
    ) -> Page[RegisteredModel]:
        """``only`` / ``hidden`` (model keys) keep the result to what the caller may see."""
        _max_results(max_results, MAX_MODEL_SEARCH_RESULTS)
        return await self.store.search_models(filter_string, max_results, order_by, page_token, only=only, hidden=hidden)

    async def model_key(self, name: Any) -> int:
        return await self.store.model_key(model_name(name))

    async def latest_versions(self, name: Any, stages: list[str]) -> list[ModelVersion]:
        wanted = [stage(s) for s in stages] if stages else None
        return await self.store.latest_versions(model_name(name), wanted)

    async def set_model_tag(self, name: Any, key: Any, value: Any) -> None:
        name = model_name(name)
        key, value = tag(key, value)
        await self.store.set_model_tag(name, key, value)

    async def delete_model_tag(self, name: Any, key: Any) -> None:
        await self.store.delete_model_tag(model_name(name), tv.key_name(key, "key"))

    # ------------------------------------------------------------------ aliases

    async def set_alias(self, name: Any, alias: Any, version: Any, actor: str | None) -> None:
        name, alias = model_name(name), alias_name(alias)
        await self.store.set_alias(name, alias, await self._version(name, version), actor)

    async def delete_alias(self, name: Any, alias: Any, actor: str | None) -> None:
        await self.store.delete_alias(model_name(name), alias_name(alias, reserved_ok=True), actor)

    async def version_by_alias(self, name: Any, alias: Any) -> ModelVersion:
        name, alias = model_name(name), alias_name(alias, reserved_ok=True)
        if alias.lower() == "latest":
            versions = await self.store.latest_versions(name, None)
            if not versions:
                raise NotFound(f"Latest version not found for model {name}.")
            return max(versions, key=lambda mv: mv.version)
        return await self.store.version_by_alias(name, alias)

    # ------------------------------------------------------------------ versions

    async def create_version(
        self,
        name: Any,
        source: Any,
        run_id: str | None,
        tags: list[dict[str, Any]],
        run_link: str | None,
        description: str | None,
        model_id: str | None,
        user_id: str | None,
    ) -> ModelVersion:
        name = model_name(name)
        if not isinstance(source, str) or not source:
            raise InvalidParameter("Missing value for required parameter 'source'.")
        checked = dict(tag(t.get("key"), t.get("value")) for t in tags)
        run_id = tv.optional_limited(run_id, "run_id", MAX_RUN_ID_LENGTH) or None
        model_id = tv.optional_limited(model_id, "model_id", tv.MAX_MODEL_ID_LENGTH) or None
        storage_location, source_run_id = await self._storage_location(source)
        if model_id and not (run_id or source_run_id):
            source_run_id = (await self.tracking.models.get(model_id)).source_run_id
        return await self.store.create_version(
            name,
            source,
            storage_location,
            run_id or source_run_id,
            checked,
            run_link,
            description,
            model_id,
            user_id,
        )

    async def _storage_location(self, source: str) -> tuple[str | None, str | None]:
        """Where a version's files are when its source is a model URI, and its run."""
        uri = parse_model_uri(source)
        if uri.kind == "location":
            return None, None
        try:
            if uri.kind == "logged_model":
                model = await self.tracking.models.get(uri.model_id)  # type: ignore[arg-type]
                return model.artifact_location, model.source_run_id
            if uri.kind == "run":
                run = await self.tracking.get_run(uri.run_id)  # type: ignore[arg-type]
                return join_uri(run.info.artifact_uri, uri.path), run.info.run_id
            version = await self.resolve_version(uri.name, uri.kind, uri.version, uri.stage, uri.alias)  # type: ignore[arg-type]
            return version.storage_location or version.source, version.run_id
        except (NotFound, InvalidParameter) as error:  # MLflow wraps whatever resolving raised
            raise InvalidParameter(
                f"Unable to fetch model from model URI source artifact location '{source}'. Error: {error.message}"
            ) from None

    async def resolve_version(
        self, name: str, kind: str, version: int | None, stage_name: str | None, alias: str | None
    ) -> ModelVersion:
        """The version a registry URI names (``models:/name/3``, ``/latest``, ``/Staging``, ``@alias``)."""
        if kind == "version":
            name = model_name(name)
            return await self.store.get_version(name, await self._version(name, version))
        if kind == "alias":
            return await self.version_by_alias(name, alias)
        wanted = [stage(stage_name)] if kind == "stage" else None
        versions = await self.store.latest_versions(model_name(name), wanted)
        if not versions:
            where = f"in stage '{stage_name}'" if kind == "stage" else "at all"
            raise NotFound(f"No versions of registered model '{name}' {where}.")
        return max(versions, key=lambda mv: mv.version)

    async def _version(self, name: str, version: Any) -> int:
        """``version`` as a number, or NotFound when no version can have it (the model's own
        NotFound first, so that an unknown model is reported as such)."""
        number = version_number(version)
        if not 1 <= number <= MAX_VERSION:
            await self.store.get_model(name)
            raise NotFound(f"Model Version (name={name}, version={number}) not found")
        return number

    async def get_version(self, name: Any, version: Any) -> ModelVersion:
        name = model_name(name)
        return await self.store.get_version(name, await self._version(name, version))

    async def update_version(self, name: Any, version: Any, description: str | None) -> ModelVersion:
        name = model_name(name)
        return await self.store.update_version(name, await self._version(name, version), description)

    async def transition_stage(
        self, name: Any, version: Any, new_stage: Any, archive_existing: bool, actor: str | None
    ) -> ModelVersion:
        target = stage(new_stage)
        if archive_existing and target not in ACTIVE_STAGES:
            raise InvalidParameter(
                "Model version transition cannot archive existing model versions because "
                f"'{new_stage}' is not an Active stage. Valid stages are {[s.value for s in ACTIVE_STAGES]}"
            )
        name = model_name(name)
        number = await self._version(name, version)
        return await self.store.transition_stage(name, number, target, archive_existing, actor)

    async def delete_version(self, name: Any, version: Any, actor: str | None) -> None:
        name = model_name(name)
        await self.store.delete_version(name, await self._version(name, version), actor)

    async def download_uri(self, name: Any, version: Any) -> str:
        found = await self.get_version(name, version)
        return found.storage_location or found.source

    async def search_versions(
        self,
        filter_string: str | None,
        max_results: int,
        order_by: list[str],
        page_token: str | None,
        *,
        only: frozenset[int] | None = None,
        hidden: frozenset[int] | None = None,
    ) -> Page[ModelVersion]:
        _max_results(max_results, MAX_VERSION_SEARCH_RESULTS)
        return await self.store.search_versions(
            filter_string, max_results, order_by or DEFAULT_VERSION_ORDER, page_token, only=only, hidden=hidden
        )

    async def set_version_tag(self, name: Any, version: Any, key: Any, value: Any) -> None:
        name, number = model_name(name), version_number(version)
        key, value = tag(key, value)
        await self.store.set_version_tag(name, await self._version(name, number), key, value)

    async def delete_version_tag(self, name: Any, version: Any, key: Any) -> None:
        name, key = model_name(name), tv.key_name(key, "key")
        await self.store.delete_version_tag(name, await self._version(name, version), key)

    async def record_deployed(self, name: str, version: int, deployment: str) -> None:
        """Note in the model's history that ``deployment`` ("<name>/<predictor>") started
        serving ``version``."""
        await self.store.record_deployed(model_name(name), version, deployment)

    async def history(
        self, name: Any, limit: int, before: int | None
    ) -> tuple[list[HistoryEvent], int | None]:
        """Up to ``limit`` events older than event ``before`` (all if None), newest first, and
        the ``before`` of the next page (None on the last one)."""
        if not 1 <= limit <= MAX_HISTORY_EVENTS:
            raise InvalidParameter(f"limit must be between 1 and {MAX_HISTORY_EVENTS}, got {limit}.")
        if before is not None and before > MAX_EVENT_ID:
            before = None  # every event is older than that
        events = await self.store.history(model_name(name), limit + 1, before)
        if len(events) > limit:
            return events[:limit], events[limit - 1].event_id
        return events, None


def _max_results(value: int, limit: int) -> None:
    if value is None or value < 1:
        raise InvalidParameter(f"Invalid value for max_results. It must be a positive integer, but got {value}")
    if value > limit:
        raise InvalidParameter(
            f"Invalid value for request parameter max_results. It must be at most {limit}, but got value {value}"
        )
