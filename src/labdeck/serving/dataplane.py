"""The one data plane every protocol adapter calls: a loaded model, its metadata, its
predictor (direct or batching), readiness, and request accounting. Protocols convert
their wire format to ``InferenceRequest`` and back; everything between happens here."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from labdeck.errors import NotFound
from labdeck.serving.batching import AdaptiveBatcher, DirectPredictor
from labdeck.serving.compile import CompileOutcome, compile_runtime
from labdeck.serving.metrics import ServingMetrics
from labdeck.serving.request_ids import new_request_id
from labdeck.serving.runtime import Runtime
from labdeck.serving.types import InferenceRequest, InferenceResponse, ModelMetadata, Tensor


class DataPlane:
    def __init__(
        self,
        runtime: Runtime,
        metrics: ServingMetrics,
        *,
        max_batch_size: int = 0,
        max_batch_time: float = 0.0,
        compile: str | None = None,
    ):
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
        self.loaded = False
        # with --workers, whether every other worker has loaded too (server.py sets it)
        self.peers_ready: Callable[[], bool] = lambda: True
        self.metadata: ModelMetadata | None = None
        self.feedback_count = 0
        # --compile: the target asked for, and what came of it once loaded
        self.compile = compile
        self.compiled: CompileOutcome | None = None

    @property
    def ready(self) -> bool:
        """Ready to predict: this process has loaded the model, and so has every other worker.
        Workers share one port, so a worker that answered ready while another still loads
        would let a load balancer send predictions that the other one refuses."""
        return self.loaded and self.peers_ready()

    async def start(self) -> None:
        """Load the model and prove it answers (a warm-up prediction) before declaring ready.

        Both run on a thread of their own: loaders and first predictions block for as long
        as the model takes (seconds, for big ones), and the event loop must go on answering
        liveness and refusing predictions meanwhile. Nothing else touches the runtime until
        ``loaded`` is set. The thread is a daemon: a server told to stop while it loads
        stops, rather than wait for the load to end."""
        started = time.perf_counter()
        await _on_daemon_thread(self._load_and_warm_up)
        self.metrics.load_seconds.labels(self.name).set(time.perf_counter() - started)
        self.loaded = True

    def _load_and_warm_up(self) -> None:
        asyncio.run(self.runtime.load())
        if self.compile:  # before warm-up, so that warm-up runs what will answer
            self.compiled = compile_runtime(self.runtime, self.compile)
            self.metrics.compiled.labels(self.name, self.compile).set(1 if self.compiled.active else 0)
        self.metadata = self.runtime.metadata()
        if self.compiled is not None:
            self.metadata = dataclasses.replace(self.metadata, parameters={**(self.metadata.parameters or {}), **self.compiled.parameters()})
        example = self.runtime.example()
        if example:
            self.runtime.predict(example, [], {})

    async def stop(self) -> None:
        self.loaded = False
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
            id=request.id if request.id is not None else new_request_id(),
        )

    async def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]:
        return await self.predictor.predict(inputs, outputs, parameters)


async def _on_daemon_thread(work: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(None)

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the awaiting coroutine, which reports it
            outcome: BaseException | None = exc
        else:
            outcome = None
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:  # the loop has closed: the server stopped while this ran
            pass

    threading.Thread(target=run, name="labdeck-load", daemon=True).start()
    await done
