"""Tracking's rules: what may be logged, by MLflow's limits, before the store writes it.

The API layer hands over fields it has type-checked; this layer checks their content
(key names, lengths, batch limits, ids) and calls the store. It never imports the web
framework, so the registry, the CLI and tests can use it directly.
"""

from __future__ import annotations

from typing import Any

import orjson

from labdeck.clock import now_ms
from labdeck.errors import InvalidParameter, NotFound
from labdeck.tracking import validation as v
from labdeck.tracking.entities import Experiment, LoggedModel, Metric, Page, Run, RunInfo, RunStatus, ViewType
from labdeck.tracking.logged_models import SqlLoggedModelStore
from labdeck.tracking.store import RUN_NAME_TAG, SqlTrackingStore

LOG_MODEL_HISTORY_TAG = "mlflow.log-model.history"
MAX_HISTORY_BULK_RUNS = 100
MAX_HISTORY_BULK_RESULTS = 2500
MAX_DATASET_SEARCH_EXPERIMENTS = 20
# A history page larger than any history: bigger requests mean "everything" and are
# capped here, so that the page size plus one still fits in a SQL LIMIT.
MAX_HISTORY_PAGE = 2**31 - 1


class TrackingService:
    def __init__(self, store: SqlTrackingStore, models: SqlLoggedModelStore):
        self.store = store
        self.models = models

    # ------------------------------------------------------------------ experiments

    async def create_experiment(self, name: Any, artifact_location: Any, tags: list[dict[str, Any]]) -> str:
        name = v.experiment_name(name)
        location = v.artifact_location(artifact_location)
        checked = dict(v.experiment_tag(tag.get("key"), tag.get("value")) for tag in tags)
        return await self.store.create_experiment(name, location, checked)

    async def get_experiment(self, experiment_id: Any) -> Experiment:
        return await self.store.get_experiment(v.experiment_id(experiment_id))

    async def get_experiment_by_name(self, name: str) -> Experiment:
        experiment = await self.store.get_experiment_by_name(name)
        if experiment is None:
            raise NotFound(f"Could not find experiment with name '{name}'")
        return experiment

    async def search_experiments(
        self,
        view_type: str,
        max_results: Any,
        filter_string: str | None,
        order_by: list[str],
        page_token: str | None,
        *,
        only: frozenset[int] | None = None,
        hidden: frozenset[int] | None = None,
    ) -> Page[Experiment]:
        """``only`` / ``hidden`` restrict the result to what the caller may see."""
        limit = v.max_results(max_results, v.MAX_SEARCH_RESULTS)
        return await self.store.search_experiments(
            ViewType(view_type), limit, filter_string, order_by, page_token, only=only, hidden=hidden
        )

    async def rename_experiment(self, experiment_id: Any, new_name: Any) -> None:
        if new_name is None or new_name == "":
            raise InvalidParameter("Missing value for required parameter 'new_name'.")
        await self.store.rename_experiment(v.experiment_id(experiment_id), v.experiment_name(new_name))

    async def delete_experiment(self, experiment_id: Any) -> None:
        await self.store.delete_experiment(v.experiment_id(experiment_id))

    async def restore_experiment(self, experiment_id: Any) -> None:
        await self.store.restore_experiment(v.experiment_id(experiment_id))

    async def set_experiment_tag(self, experiment_id: Any, key: Any, value: Any) -> None:
        key, value = v.experiment_tag(key, value)
        await self.store.set_experiment_tag(v.experiment_id(experiment_id), key, value)

    async def delete_experiment_tag(self, experiment_id: Any, key: Any) -> None:
        await self.store.delete_experiment_tag(v.experiment_id(experiment_id), v.key_name(key, "key"))

    # ------------------------------------------------------------------ runs

    async def create_run(
        self, experiment_id: Any, user_id: str | None, run_name: str | None, start_time: int | None, tags: list[dict[str, Any]]
    ) -> Run:
        checked = dict(v.run_tag(tag.get("key"), tag.get("value"), f"tags[{i}]") for i, tag in enumerate(tags))
        if run_name is not None and len(run_name) > v.MAX_RUN_NAME_LENGTH:
            raise v.exceeds_length("run_name", v.MAX_RUN_NAME_LENGTH)
        if not run_name and len(checked.get(RUN_NAME_TAG, "")) > v.MAX_RUN_NAME_LENGTH:
            # the tag becomes the run's name when no run_name is given
            raise v.exceeds_length(RUN_NAME_TAG, v.MAX_RUN_NAME_LENGTH)
        user_id = v.optional_limited(user_id, "user_id", v.MAX_USER_ID_LENGTH)
        start = v.int64(start_time, "start_time", nonnegative=True) if start_time is not None else now_ms()
        return await self.store.create_run(
            v.experiment_id(experiment_id if experiment_id is not None else "0"), user_id or "", start, run_name, checked
        )

    async def get_run(self, run_id: str) -> Run:
        return await self.store.get_run(v.run_id(run_id))

    async def update_run(self, run_id: str, status: str | None, end_time: int | None, run_name: str | None) -> RunInfo:
        if status is not None and status not in RunStatus.__members__:
            raise v.invalid_value("status", status, f"expected one of {', '.join(RunStatus.__members__)}")
        if end_time is not None:
            end_time = v.int64(end_time, "end_time", nonnegative=True)
        if run_name is not None and len(run_name) > v.MAX_RUN_NAME_LENGTH:
            raise InvalidParameter(f"'run_name' exceeds the maximum length of {v.MAX_RUN_NAME_LENGTH} characters")
        return await self.store.update_run(v.run_id(run_id), status, end_time, run_name)

    async def delete_run(self, run_id: str) -> None:
        await self.store.delete_run(v.run_id(run_id))

    async def restore_run(self, run_id: str) -> None:
        await self.store.restore_run(v.run_id(run_id))

    async def log_metric(self, run_id: str, fields: dict[str, Any]) -> None:
        row = _metric_row(fields, "")
        await self.store.log_batch(v.run_id(run_id), [row], [], [])

    async def log_param(self, run_id: str, key: Any, value: Any) -> None:
        run_id = v.run_id(run_id)
        try:
            await self.store.log_batch(run_id, [], [v.param(key, value)], [])
        except InvalidParameter as error:
            if not error.details:
                raise
            (conflict,) = error.details  # log-parameter speaks of its one param, as MLflow does
            raise InvalidParameter(
                f"Changing param values is not allowed. Param with key='{conflict['key']}' was already logged "
                f"with value='{conflict['old_value']}' for run ID='{run_id}'. "
                f"Attempted logging new value '{conflict['new_value']}'."
            ) from None

    async def set_tag(self, run_id: str, key: Any, value: Any) -> None:
        await self.store.log_batch(v.run_id(run_id), [], [], [v.run_tag(key, value)])

    async def delete_tag(self, run_id: str, key: Any) -> None:
        await self.store.delete_tag(v.run_id(run_id), v.key_name(key, "key"))

    async def log_batch(
        self, run_id: str, metrics: list[dict[str, Any]], params: list[dict[str, Any]], tags: list[dict[str, Any]]
    ) -> None:
        v.batch_limits(len(metrics), len(params), len(tags))
        metric_rows = [_metric_row(m, f"metrics[{i}]") for i, m in enumerate(metrics)]
        param_pairs = [v.param(p.get("key"), p.get("value"), f"params[{i}]") for i, p in enumerate(params)]
        keys = [k for k, _ in param_pairs]
        if len(set(keys)) != len(keys):
            duplicates = sorted({k for k in keys if keys.count(k) > 1})
            raise InvalidParameter(
                f"Duplicate parameter keys have been submitted: {duplicates}. Please ensure the request "
                "contains only one param value per param key."
            )
        tag_pairs = [v.run_tag(t.get("key"), t.get("value"), f"tags[{i}]") for i, t in enumerate(tags)]
        await self.store.log_batch(v.run_id(run_id), metric_rows, param_pairs, tag_pairs)

    async def log_model(self, run_id: str, model_json: str) -> None:
        """Append the MLmodel description to the run's ``mlflow.log-model.history`` tag."""
        try:
            model = orjson.loads(model_json)
        except orjson.JSONDecodeError:
            raise InvalidParameter("Malformed model info: 'model_json' is not valid JSON.") from None
        if not isinstance(model, dict):
            raise InvalidParameter("Malformed model info: 'model_json' must be a JSON object.")
        missing = [k for k in ("artifact_path", "flavors", "utc_time_created", "run_id") if k not in model]
        if missing:
            raise InvalidParameter(f"Model json is missing mandatory fields: {missing}")
        await self.store.append_to_json_tag(v.run_id(run_id), LOG_MODEL_HISTORY_TAG, model)

    async def log_inputs(self, run_id: str, datasets: list[dict[str, Any]], models: list[dict[str, Any]]) -> None:
        checked = []
        for i, raw in enumerate(datasets):
            dataset = v.dataset(raw.get("dataset"), f"datasets[{i}].dataset")
            raw_tags = raw.get("tags")
            if raw_tags is not None and not isinstance(raw_tags, list):
                raise v.invalid_value(f"datasets[{i}].tags", raw_tags, "expected a list of objects")
            tags = [v.input_tag(tag, f"datasets[{i}].tags[{j}]") for j, tag in enumerate(raw_tags or [])]
            checked.append((dataset, tags))
        model_ids = [_model_id(raw, f"models[{i}]") for i, raw in enumerate(models)]
        await self.store.log_inputs(v.run_id(run_id), checked, model_ids)

    async def log_outputs(self, run_id: str, models: list[dict[str, Any]]) -> None:
        outputs = []
        for i, raw in enumerate(models):
            model_id = _model_id(raw, f"models[{i}]")
            if raw.get("step") is None:
                raise v.missing(f"models[{i}].step")
            outputs.append((model_id, v.int64(raw["step"], f"models[{i}].step")))
        await self.store.log_outputs(v.run_id(run_id), outputs)

    async def search_datasets(self, experiment_ids: list[str]) -> list[tuple[str, str, str, str | None]]:
        if not experiment_ids:
            raise InvalidParameter("SearchDatasets request must specify at least one experiment_id.")
        if len(experiment_ids) > MAX_DATASET_SEARCH_EXPERIMENTS:
            raise InvalidParameter(
                f"SearchDatasets request cannot specify more than {MAX_DATASET_SEARCH_EXPERIMENTS} experiment_ids. "
                f"Received {len(experiment_ids)} experiment_ids."
            )
        return await self.store.search_datasets([v.experiment_id(e) for e in experiment_ids])

    async def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str | None,
        view_type: str,
        max_results: int,
        order_by: list[str],
        page_token: str | None,
    ) -> Page[Run]:
        ids = [v.experiment_id(e) for e in experiment_ids]
        limit = v.max_results(max_results, v.MAX_SEARCH_RESULTS)
        return await self.store.search_runs(ids, filter_string, ViewType(view_type), limit, order_by, page_token)

    async def get_metric_history(
        self, run_id: str, key: str, max_results: int | None, page_token: str | None
    ) -> Page[Metric]:
        if max_results is not None:
            max_results = min(v.max_results(max_results, None), MAX_HISTORY_PAGE)
        return await self.store.get_metric_history(v.run_id(run_id), key, max_results, page_token)

    async def get_metric_history_bulk_interval(
        self, run_ids: list[str], key: str, start_step: int | None, end_step: int | None, max_results: int | None
    ) -> list[Metric]:
        if not run_ids:
            raise InvalidParameter("Missing value for required parameter 'run_ids'.")
        if len(run_ids) > MAX_HISTORY_BULK_RUNS:
            raise InvalidParameter(
                f"GetMetricHistoryBulkInterval request must specify at most {MAX_HISTORY_BULK_RUNS} run_ids. "
                f"Received {len(run_ids)} run_ids."
            )
        limit = MAX_HISTORY_BULK_RESULTS if max_results is None else max_results
        if not 1 <= limit <= MAX_HISTORY_BULK_RESULTS:
            raise InvalidParameter(f"max_results must be between 1 and {MAX_HISTORY_BULK_RESULTS}.")
        if (start_step is None) != (end_step is None):
            raise InvalidParameter("If either start step or end step are specified, both must be specified.")
        if start_step is not None and start_step > end_step:  # type: ignore[operator]
            raise InvalidParameter(
                f"end_step must be greater than start_step. Found start_step={start_step} and end_step={end_step}."
            )
        for run_id in run_ids:
            v.run_id(run_id, "run_ids")
        return await self.store.get_metric_history_bulk_interval(run_ids, key, start_step, end_step, limit)

    # ------------------------------------------------------------------ logged models

    async def logged_model(self, model_id: str) -> LoggedModel:
        return await self.models.get(model_id)


def _metric_row(raw: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A validated metrics-table row from a wire Metric (NaN stored as 0 with is_nan).

    Paths and messages are MLflow's: a missing key is 'key', a bad one is 'name'.
    """
    path = f"{prefix}." if prefix else ""
    key = raw.get("key")
    if key is None:
        raise v.missing(f"{path}key")
    key = v.key_name(key, f"{path}name", "metric name", length_name="Metric name")
    timestamp = raw.get("timestamp")
    value, is_nan = v.metric_value(raw.get("value"), f"{path}value", key, timestamp)
    if timestamp is None:
        raise v.missing(f"{path}timestamp")
    try:
        timestamp = v.int64(timestamp, f"{path}timestamp", nonnegative=True)
    except InvalidParameter:
        raise v.invalid_value(
            f"{path}timestamp",
            timestamp,
            f"{_described(key, value, is_nan)} Timestamp must be a nonnegative long (64-bit integer) ",
        ) from None
    step = raw.get("step")
    if step is not None:
        try:
            step = v.int64(step, f"{path}step")
        except InvalidParameter:
            raise v.invalid_value(
                f"{path}step", step, f"{_described(key, value, is_nan)} Step must be a valid long (64-bit integer)."
            ) from None
    return {
        "key": key,
        "value": value,
        "timestamp": timestamp,
        "step": step or 0,
        "is_nan": is_nan,
        "model_id": v.optional_limited(raw.get("model_id"), f"{path}model_id", v.MAX_MODEL_ID_LENGTH),
        "dataset_name": v.optional_limited(raw.get("dataset_name"), f"{path}dataset_name", v.MAX_DATASET_NAME_SIZE),
        "dataset_digest": v.optional_limited(
            raw.get("dataset_digest"), f"{path}dataset_digest", v.MAX_DATASET_DIGEST_SIZE
        ),
    }


def _described(key: str, value: float, is_nan: bool) -> str:
    return f"metric '{key}' (value={float('nan') if is_nan else value})."


def _model_id(raw: dict[str, Any], path: str) -> str:
    """The ``model_id`` of a wire ModelInput or ModelOutput: required, at most 64 characters."""
    model_id = raw.get("model_id")
    if not isinstance(model_id, str) or not model_id:
        raise v.missing(f"{path}.model_id")
    return v.limited(model_id, f"{path}.model_id", v.MAX_MODEL_ID_LENGTH, truncate=False)


