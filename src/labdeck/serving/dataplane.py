"""The one data plane every protocol adapter calls: a loaded model, its metadata, its
predictor (direct or batching), readiness, and request accounting. Protocols convert
their wire format to ``InferenceRequest`` and back; everything between happens here."""

from __future__ import annotations

import time
import uuid
from typing import Any

from labdeck.errors import NotFound
from labdeck.serving.batching import AdaptiveBatcher, DirectPredictor
from labdeck.serving.metrics import ServingMetrics
from labdeck.serving.runtime import Runtime
from labdeck.serving.types import InferenceRequest, InferenceResponse, ModelMetadata, Tensor


class DataPlane:
    def __init__(self, runtime: Runtime, metrics: ServingMetrics, *, max_batch_size: int = 0, max_batch_time: float = 0.0):
        self.runtime = runtime
        self.metrics = metrics
        self.name = runtime.settings.name
        self.version = runtime.settings.version
        if max_batch_size > 1:
            self.predictor: DirectPredictor | AdaptiveBatcher = AdaptiveBatcher(
                runtime, max_batch_size, max_batch_time, observe_batch=metrics.observe_batch
            )
        else:
            self.predictor = DirectPredictor(runtime, metrics.observe_batch)
        self.ready = False
        self.metadata: ModelMetadata | None = None
        self.feedback_count = 0

    async def start(self) -> None:
        """Load the model and prove it answers (a warm-up prediction) before declaring ready."""
        started = time.perf_counter()
        await self.runtime.load()
        self.metadata = self.runtime.metadata()
        example = self.runtime.example()
        if example:
            self.runtime.predict(example, [], {})
        self.metrics.load_seconds.labels(self.name).set(time.perf_counter() - started)
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.runtime.unload()

    def check_model(self, name: str, version: str | None = None) -> None:
        if name != self.name or (version is not None and self.version is not None and version != self.version):
            shown = f"{name} version {version}" if version else name
            raise NotFound(f"Model {shown} not found (this server serves {self.name}).")

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        outputs = [o.name for o in request.outputs]
        tensors = await self.predictor.predict(request.inputs, outputs, request.parameters)
        return InferenceResponse(
            model_name=self.name,
            outputs=tensors,
            model_version=self.version,
            id=request.id if request.id is not None else str(uuid.uuid4()),
        )

    async def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]:
        return await self.predictor.predict(inputs, outputs, parameters)
