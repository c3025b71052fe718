"""``InProcessModelLocator``: model URIs resolved by the server's own services, the
in-process twin of ``model_uri.RestModelLocator``."""

from __future__ import annotations

from labdeck.model_uri import ModelUri, join_uri
from labdeck.registry.service import RegistryService


class InProcessModelLocator:
    def __init__(self, registry: RegistryService):
        self.registry = registry

    async def locate(self, uri: ModelUri) -> str:
        if uri.kind == "location":
            return uri.raw
        tracking = self.registry.tracking
        if uri.kind == "run":
            run = await tracking.get_run(uri.run_id)  # type: ignore[arg-type]
            logged = await self._run_logged_model(run.info.experiment_id, run.info.run_id, uri.path)
            return logged or join_uri(run.info.artifact_uri, uri.path)
        if uri.kind == "logged_model":
            return (await tracking.models.get(uri.model_id)).artifact_location  # type: ignore[arg-type]
        version = await self.registry.resolve_version(uri.name, uri.kind, uri.version, uri.stage, uri.alias)  # type: ignore[arg-type]
        return version.storage_location or version.source

    async def _run_logged_model(self, experiment_id: str, run_id: str, path: str) -> str | None:
        """``runs:/<run>/<name>/rest`` in the files of the run's logged model ``name``, as
        ``RestModelLocator`` finds it (MLflow 3 logs a run's model there)."""
        name, _, rest = path.partition("/")
        if not name:
            return None
        token = None
        while True:
            page = await self.registry.tracking.models.search([int(experiment_id)], f"name = '{name}'", [], 100, [], token)
            for model in page.items:
                if model.source_run_id == run_id:
                    return join_uri(model.artifact_location, rest)
            if not page.next_page_token:
                return None
            token = page.next_page_token
