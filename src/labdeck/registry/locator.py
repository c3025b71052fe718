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
            return join_uri(run.info.artifact_uri, uri.path)
        if uri.kind == "logged_model":
            return (await tracking.models.get(uri.model_id)).artifact_location  # type: ignore[arg-type]
        version = await self.registry.resolve_version(uri.name, uri.kind, uri.version, uri.stage, uri.alias)  # type: ignore[arg-type]
        return version.storage_location or version.source
