"""MLflow's tracking REST endpoints (``mlflow.MlflowService``), as thin adapters: read the
fields, call ``TrackingService``, shape the response with ``tracking/wire.py``."""

from __future__ import annotations

from typing import Any

from labdeck.artifacts.paths import safe_path
from labdeck.artifacts.store import ArtifactStore
from labdeck.artifacts.uri import run_relative_root
from labdeck.errors import InvalidParameter
from labdeck.tracking import validation as v
from labdeck.tracking import wire
from labdeck.tracking.entities import LoggedModelStatus
from labdeck.tracking.service import TrackingService
from labdeck.auth.guard import Guard, principal_of
from labdeck.auth.needs import EDIT, MANAGE, READ, On, SignedIn
from labdeck.wire.mlflow_rpc import RpcRequest, rpc

VIEW_TYPES = ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
LOGGED_MODEL_STATUSES = tuple(s.value for s in LoggedModelStatus)
DEFAULT_RUN_SEARCH_RESULTS = 1000
DEFAULT_LOGGED_MODEL_SEARCH_RESULTS = 50
PRESIGNED_EXPIRY_SECONDS = 900
MAX_PRESIGNED_EXPIRY_SECONDS = 7 * 24 * 3600  # what S3 and the other clouds accept


def _page(items_key: str, items: list[Any], token: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if items:
        out[items_key] = items
    if token:
        out["next_page_token"] = token
    return out


def _pairs(raw: list[dict[str, Any]], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for i, item in enumerate(raw):
        key, value = item.get("key"), item.get("value")
        pairs[v.key_name(key, f"{what}[{i}].key")] = v.limited("" if value is None else value, f"{what}[{i}].value", 100_000, truncate=False)
    return pairs


class TrackingApi:
    def __init__(self, service: TrackingService, artifacts: ArtifactStore, guard: Guard):
        self.service = service
        self.artifacts = artifacts
        self.guard = guard

    async def _readable(self, req: RpcRequest, experiment_ids: list[str]) -> list[str]:
        """The experiments of ``experiment_ids`` the caller may read (searches skip the rest)."""
        visible = await self.guard.auth.visibility(principal_of(req.scope), "experiment")
        return [e for e in experiment_ids if visible.allows(str(v.experiment_id(e)))]

    # ------------------------------------------------------------------ experiments

    @rpc("POST", "/mlflow/experiments/create", needs=SignedIn(write=True))
    async def create_experiment(self, req: RpcRequest) -> dict[str, Any]:
        experiment_id = await self.service.create_experiment(
            req.str("name", required=True), req.str("artifact_location"), req.obj_list("tags")
        )
        await self.guard.auth.record_owner(principal_of(req.scope), "experiment", experiment_id)
        return {"experiment_id": experiment_id}

    @rpc("GET", "/mlflow/experiments/get", needs=On("experiment", READ, "experiment_id"))
    async def get_experiment(self, req: RpcRequest) -> dict[str, Any]:
        experiment = await self.service.get_experiment(req.str("experiment_id", required=True))
        return {"experiment": wire.experiment(experiment)}

    @rpc("GET", "/mlflow/experiments/get-by-name", needs=SignedIn())
    async def get_experiment_by_name(self, req: RpcRequest) -> dict[str, Any]:
        experiment = await self.service.get_experiment_by_name(req.str("experiment_name", required=True))
        await self.guard.check(On("experiment", READ, "id"), req.scope, lambda _: experiment.experiment_id)
        return {"experiment": wire.experiment(experiment)}

    @rpc("POST", "/mlflow/experiments/search", needs=SignedIn())
    @rpc("GET", "/mlflow/experiments/search", needs=SignedIn())
    async def search_experiments(self, req: RpcRequest) -> dict[str, Any]:
        visible = await self.guard.auth.visibility(principal_of(req.scope), "experiment")
        page = await self.service.search_experiments(
            req.enum("view_type", VIEW_TYPES, default="ACTIVE_ONLY"),
            req.int("max_results"),
            req.str("filter"),
            req.str_list("order_by"),
            req.str("page_token"),
            only=_ints(visible.only),
            hidden=_ints(visible.hidden),
        )
        return _page("experiments", [wire.experiment(e) for e in page.items], page.next_page_token)

    @rpc("POST", "/mlflow/experiments/update", needs=On("experiment", MANAGE, "experiment_id"))  # a rename
    async def update_experiment(self, req: RpcRequest) -> dict[str, Any]:
        experiment_id = req.str("experiment_id", required=True)
        if req.has("new_name"):
            await self.service.rename_experiment(experiment_id, req.str("new_name"))
        else:
            await self.service.get_experiment(experiment_id)
        return {}

    @rpc("POST", "/mlflow/experiments/delete", needs=On("experiment", MANAGE, "experiment_id"))
    async def delete_experiment(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.delete_experiment(req.str("experiment_id", required=True))
        return {}

    @rpc("POST", "/mlflow/experiments/restore", needs=On("experiment", MANAGE, "experiment_id"))
    async def restore_experiment(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.restore_experiment(req.str("experiment_id", required=True))
        return {}

    @rpc("POST", "/mlflow/experiments/set-experiment-tag", needs=On("experiment", EDIT, "experiment_id"))
    async def set_experiment_tag(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.set_experiment_tag(
            req.str("experiment_id", required=True), req.str("key", required=True), req.str("value", default="")
        )
        return {}

    @rpc("POST", "/mlflow/experiments/delete-experiment-tag", needs=On("experiment", EDIT, "experiment_id"))
    async def delete_experiment_tag(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.delete_experiment_tag(req.str("experiment_id", required=True), req.str("key", required=True))
        return {}

    # ------------------------------------------------------------------ runs

    @rpc("POST", "/mlflow/runs/create", needs=On("experiment", EDIT, "experiment_id"))
    async def create_run(self, req: RpcRequest) -> dict[str, Any]:
        principal = principal_of(req.scope)
        # With sign-in on, a run belongs to whoever is signed in, whatever the client claims.
        user_id = principal.username if principal.user_id is not None else req.str("user_id")
        run = await self.service.create_run(
            req.str("experiment_id"), user_id, req.str("run_name"), req.int("start_time"), req.obj_list("tags")
        )
        return {"run": wire.run(run)}

    @rpc("GET", "/mlflow/runs/get", needs=On("run", READ))
    async def get_run(self, req: RpcRequest) -> dict[str, Any]:
        return {"run": wire.run(await self.service.get_run(req.run_id()))}

    @rpc("POST", "/mlflow/runs/update", needs=On("run", EDIT))
    async def update_run(self, req: RpcRequest) -> dict[str, Any]:
        info = await self.service.update_run(
            req.run_id(), req.enum("status", RUN_STATUSES), req.int("end_time"), req.str("run_name")
        )
        return {"run_info": wire.run_info(info)}

    @rpc("POST", "/mlflow/runs/delete", needs=On("run", MANAGE))
    async def delete_run(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.delete_run(req.run_id())
        return {}

    @rpc("POST", "/mlflow/runs/restore", needs=On("run", MANAGE))
    async def restore_run(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.restore_run(req.run_id())
        return {}

    @rpc("POST", "/mlflow/runs/log-metric", needs=On("run", EDIT))
    async def log_metric(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.log_metric(req.run_id(), req.fields)
        return {}

    @rpc("POST", "/mlflow/runs/log-parameter", needs=On("run", EDIT))
    async def log_parameter(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.log_param(req.run_id(), req.str("key", required=True), req.str("value", default=""))
        return {}

    @rpc("POST", "/mlflow/runs/log-batch", needs=On("run", EDIT))
    async def log_batch(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.log_batch(req.run_id(), req.obj_list("metrics"), req.obj_list("params"), req.obj_list("tags"))
        return {}

    @rpc("POST", "/mlflow/runs/log-model", needs=On("run", EDIT))
    async def log_model(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.log_model(req.run_id(), req.str("model_json", required=True))
        return {}

    @rpc("POST", "/mlflow/runs/log-inputs", needs=On("run", EDIT))
    async def log_inputs(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.log_inputs(req.run_id(), req.obj_list("datasets"), req.obj_list("models"))
        return {}

    @rpc("POST", "/mlflow/runs/outputs", version=3, needs=On("run", EDIT))
    @rpc("POST", "/mlflow/runs/outputs", needs=On("run", EDIT))
    async def log_outputs(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.log_outputs(req.run_id(), req.obj_list("models"))
        return {}

    @rpc("POST", "/mlflow/runs/set-tag", needs=On("run", EDIT))
    async def set_tag(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.set_tag(req.run_id(), req.str("key", required=True), req.str("value", default=""))
        return {}

    @rpc("POST", "/mlflow/runs/delete-tag", needs=On("run", EDIT))
    async def delete_tag(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.delete_tag(req.run_id(), req.str("key", required=True))
        return {}

    @rpc("POST", "/mlflow/runs/search", needs=SignedIn())
    async def search_runs(self, req: RpcRequest) -> dict[str, Any]:
        page = await self.service.search_runs(
            await self._readable(req, req.str_list("experiment_ids")),
            req.str("filter"),
            req.enum("run_view_type", VIEW_TYPES, default="ACTIVE_ONLY"),
            req.int("max_results", default=DEFAULT_RUN_SEARCH_RESULTS),
            req.str_list("order_by"),
            req.str("page_token"),
        )
        return _page("runs", [wire.run(r) for r in page.items], page.next_page_token)

    @rpc("POST", "/mlflow/experiments/search-datasets", needs=SignedIn())
    async def search_datasets(self, req: RpcRequest) -> dict[str, Any]:
        requested = req.str_list("experiment_ids")
        readable = await self._readable(req, requested)
        summaries = await self.service.search_datasets(readable) if readable or not requested else []
        return _page(
            "dataset_summaries",
            [
                {"experiment_id": e, "name": n, "digest": d, **({"context": c} if c else {})}
                for e, n, d, c in summaries
            ],
            None,
        )

    # ------------------------------------------------------------------ metrics

    @rpc("GET", "/mlflow/metrics/get-history", needs=On("run", READ))
    async def get_metric_history(self, req: RpcRequest) -> dict[str, Any]:
        page = await self.service.get_metric_history(
            req.run_id(), req.str("metric_key", required=True), req.int("max_results"), req.str("page_token")
        )
        return _page("metrics", wire.history(page.items), page.next_page_token)

    @rpc("GET", "/mlflow/metrics/get-history-bulk-interval", needs=On("runs", READ, "run_ids"))
    async def get_metric_history_bulk_interval(self, req: RpcRequest) -> dict[str, Any]:
        points = await self.service.get_metric_history_bulk_interval(
            req.str_list("run_ids"),
            req.str("metric_key", required=True),
            req.int("start_step"),
            req.int("end_step"),
            req.int("max_results"),
        )
        return _page("metrics", [wire.metric(m, with_run_id=True) for m in points], None)

    @rpc("GET", "/mlflow/metrics/get-history-bulk", needs=On("runs", READ, "run_id"))
    async def get_metric_history_bulk(self, req: RpcRequest) -> dict[str, Any]:
        """The UI's older bulk call: whole histories of up to 100 runs, 25,000 points in all."""
        run_ids = req.str_list("run_id")
        if not run_ids:
            raise InvalidParameter("GetMetricHistoryBulk request must specify at least one run_id.")
        if len(run_ids) > 100:
            raise InvalidParameter(f"GetMetricHistoryBulk request cannot specify more than 100 run_ids. Received {len(run_ids)} run_ids.")
        key = req.str("metric_key", required=True)
        limit = v.max_results(req.int("max_results", default=25000), None)
        points: list[dict[str, Any]] = []
        for run_id in run_ids:
            page = await self.service.get_metric_history(run_id, key, None, None)
            points.extend(wire.history(page.items))
        points.sort(key=lambda m: (m["run_id"], m["timestamp"], m["step"]))
        return _page("metrics", points[:limit], None)

    # ------------------------------------------------------------------ artifacts of runs

    @rpc("GET", "/mlflow/artifacts/list", needs=On("run", READ))
    async def list_artifacts(self, req: RpcRequest) -> dict[str, Any]:
        run = await self.service.get_run(req.run_id())
        path = req.str("path", default="") or ""
        root = run_relative_root(run.info.artifact_uri, self.artifacts)
        files = await self.artifacts.list(_join(root, path))
        prefix = len(root) + 1 if root else 0
        out: dict[str, Any] = {"root_uri": run.info.artifact_uri}
        if files:
            out["files"] = [_file_info(f.path[prefix:], f.is_dir, f.file_size) for f in files]
        return out

    @rpc("POST", "/mlflow/artifacts/presigned-upload-url", needs=SignedIn(write=True))
    async def presigned_upload_url(self, req: RpcRequest) -> dict[str, Any]:
        run_id, model_id = req.str("run_id"), req.str("model_id")
        if bool(run_id) == bool(model_id):
            raise InvalidParameter("Exactly one of run_id and model_id must be provided.")
        need = On("run", EDIT) if run_id else On("logged_model", EDIT, "model_id")
        await self.guard.check(need, req.scope, req.field)
        if run_id:
            root_uri = (await self.service.get_run(run_id)).info.artifact_uri
        else:
            root_uri = (await self.service.models.get(model_id)).artifact_location
        path = _join(run_relative_root(root_uri, self.artifacts), safe_path(req.str("path", required=True), allow_root=False))
        url, headers = await self.artifacts.presigned_upload(path, _expiration(req))
        return {"presigned_url": url, **({"headers": _pairs_out(headers)} if headers else {})}

    @rpc("POST", "/mlflow/artifacts/presigned-download-url", needs=On("run", READ))
    async def presigned_download_url(self, req: RpcRequest) -> dict[str, Any]:
        run = await self.service.get_run(req.run_id())
        path = _join(run_relative_root(run.info.artifact_uri, self.artifacts), safe_path(req.str("path", required=True), allow_root=False))
        url, headers, size = await self.artifacts.presigned_download(path, _expiration(req))
        return {"presigned_url": url, "file_size": size, **({"headers": _pairs_out(headers)} if headers else {})}

    # ------------------------------------------------------------------ logged models

    @rpc("POST", "/mlflow/logged-models", needs=On("experiment", EDIT, "experiment_id"))
    async def create_logged_model(self, req: RpcRequest) -> dict[str, Any]:
        model = await self.service.models.create(
            v.experiment_id(req.str("experiment_id", required=True)),
            v.logged_model_name(req.str("name")),
            v.optional_limited(req.str("model_type"), "model_type", v.MAX_LOGGED_MODEL_TYPE_LENGTH),
            req.str("source_run_id"),
            _pairs(req.obj_list("params"), "params"),
            _pairs(req.obj_list("tags"), "tags"),
            None,  # MLflow's creator_id is a numeric id its own auth plugin assigns; labdeck keeps owners elsewhere
        )
        return {"model": wire.logged_model(model)}

    @rpc("POST", "/mlflow/logged-models/search", needs=SignedIn())
    async def search_logged_models(self, req: RpcRequest) -> dict[str, Any]:
        requested = req.str_list("experiment_ids")
        if not requested:
            raise InvalidParameter("Missing value for required parameter 'experiment_ids'.")
        experiment_ids = [v.experiment_id(e) for e in requested]
        experiment_ids = [int(e) for e in await self._readable(req, [str(e) for e in experiment_ids])]
        datasets = []
        for i, d in enumerate(req.obj_list("datasets")):
            name = d.get("dataset_name")
            if not isinstance(name, str) or not name:
                raise v.missing(f"datasets[{i}].dataset_name")
            digest = d.get("dataset_digest")
            if digest is not None and not isinstance(digest, str):
                raise v.invalid_value(f"datasets[{i}].dataset_digest", digest, "expected a string")
            datasets.append((name, digest))
        order_by = []
        for i, o in enumerate(req.obj_list("order_by")):
            field = o.get("field_name")
            if not isinstance(field, str) or not field:
                raise v.missing(f"order_by[{i}].field_name")
            ascending = o.get("ascending", True)
            if not isinstance(ascending, bool):
                raise v.invalid_value(f"order_by[{i}].ascending", ascending, "expected true or false")
            on_dataset = [o.get("dataset_name"), o.get("dataset_digest")]
            for what, value in zip(("dataset_name", "dataset_digest"), on_dataset, strict=True):
                if value is not None and not isinstance(value, str):
                    raise v.invalid_value(f"order_by[{i}].{what}", value, "expected a string")
            order_by.append((field, ascending, on_dataset[0] or None, on_dataset[1] or None))
        max_results = req.int("max_results", default=DEFAULT_LOGGED_MODEL_SEARCH_RESULTS)
        page = await self.service.models.search(
            experiment_ids,
            req.str("filter"),
            datasets,
            v.max_results(max_results, v.MAX_SEARCH_RESULTS),
            order_by,
            req.str("page_token"),
        )
        return _page("models", [wire.logged_model(m) for m in page.items], page.next_page_token)

    @rpc("GET", "/mlflow/logged-models/{model_id}", needs=On("logged_model", READ, "model_id"))
    async def get_logged_model(self, req: RpcRequest) -> dict[str, Any]:
        return {"model": wire.logged_model(await self.service.models.get(req.path_params["model_id"]))}

    @rpc("PATCH", "/mlflow/logged-models/{model_id}", needs=On("logged_model", EDIT, "model_id"))
    async def finalize_logged_model(self, req: RpcRequest) -> dict[str, Any]:
        status = req.enum("status", LOGGED_MODEL_STATUSES, required=True)
        if status == LoggedModelStatus.PENDING:
            raise InvalidParameter("A logged model can only be finalized as LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED.")
        model = await self.service.models.finalize(req.path_params["model_id"], status)
        return {"model": wire.logged_model(model)}

    @rpc("DELETE", "/mlflow/logged-models/{model_id}", needs=On("logged_model", MANAGE, "model_id"))
    async def delete_logged_model(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.models.delete(req.path_params["model_id"])
        return {}

    @rpc("PATCH", "/mlflow/logged-models/{model_id}/tags", needs=On("logged_model", EDIT, "model_id"))
    async def set_logged_model_tags(self, req: RpcRequest) -> dict[str, Any]:
        model = await self.service.models.set_tags(req.path_params["model_id"], _pairs(req.obj_list("tags"), "tags"))
        return {"model": wire.logged_model(model)}

    @rpc("DELETE", "/mlflow/logged-models/{model_id}/tags/{tag_key}", needs=On("logged_model", EDIT, "model_id"))
    async def delete_logged_model_tag(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.models.delete_tag(req.path_params["model_id"], req.path_params["tag_key"])
        return {}

    @rpc("POST", "/mlflow/logged-models/{model_id}/params", needs=On("logged_model", EDIT, "model_id"))
    async def log_logged_model_params(self, req: RpcRequest) -> dict[str, Any]:
        await self.service.models.log_params(req.path_params["model_id"], _pairs(req.obj_list("params"), "params"))
        return {}

    @rpc("GET", "/mlflow/logged-models/{model_id}/artifacts/directories", needs=On("logged_model", READ, "model_id"))
    async def list_logged_model_artifacts(self, req: RpcRequest) -> dict[str, Any]:
        model = await self.service.models.get(req.path_params["model_id"])
        root = run_relative_root(model.artifact_location, self.artifacts)
        path = req.str("artifact_directory_path", default="") or ""
        files = await self.artifacts.list(_join(root, path))
        prefix = len(root) + 1 if root else 0
        out: dict[str, Any] = {"root_uri": model.artifact_location}
        if files:
            out["files"] = [_file_info(f.path[prefix:], f.is_dir, f.file_size) for f in files]
        return out

    # ------------------------------------------------------------------ server info

    @rpc("GET", "/mlflow/server-info", version=3, needs=SignedIn())
    async def server_info(self, req: RpcRequest) -> dict[str, Any]:
        return {
            "store_type": "SqlStore",
            "workspaces_enabled": False,
            "trace_archival_enabled": False,
            "multipart_uploads_enabled": self.artifacts.supports_multipart,
            "multipart_downloads_enabled": False,
            "presigned_upload_run_id_supported": False,
            "presigned_upload_model_id_supported": False,
            "features_enabled": {},
        }


def _expiration(req: RpcRequest) -> int:
    seconds = req.int("expiration", default=PRESIGNED_EXPIRY_SECONDS)
    if not 1 <= seconds <= MAX_PRESIGNED_EXPIRY_SECONDS:
        raise InvalidParameter(f"expiration must be between 1 and {MAX_PRESIGNED_EXPIRY_SECONDS} seconds (got {seconds}).")
    return seconds


def _pairs_out(items: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in items.items()]


def _ints(ids: frozenset[str] | None) -> frozenset[int] | None:
    return None if ids is None else frozenset(int(i) for i in ids)


def _join(root: str, path: str) -> str:
    path = path.strip("/")
    if not root:
        return path
    return f"{root}/{path}" if path else root


def _file_info(path: str, is_dir: bool, size: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"path": path, "is_dir": is_dir}
    if not is_dir and size is not None:
        out["file_size"] = size
    return out
