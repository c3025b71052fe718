"""Adaptive batching: requests that arrive close together are predicted as one batch.

``DirectPredictor`` and ``AdaptiveBatcher`` have the same interface (an async ``predict``
taking a request's inputs, requested outputs and parameters), so the data plane does not
know which one it holds. The batcher waits at most ``max_batch_time`` seconds after the
first request of a batch, or until ``max_batch_size`` rows are queued, then concatenates
compatible requests along their first dimension, calls the runtime once, and hands each
caller its own rows back. Requests that cannot be joined (other inputs, outputs or
parameters) are predicted in their own group. Time comes from a ``Clock``, so tests can
drive it by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from labdeck.serving.runtime import Runtime
from labdeck.serving.types import Tensor


class Clock(Protocol):
    def call_later(self, delay: float, callback: Callable[[], None]) -> Any: ...


class LoopClock:
    """The event loop's own timer."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        return asyncio.get_running_loop().call_later(delay, callback)


class DirectPredictor:
    """No batching: each request goes straight to the runtime."""

    def __init__(self, runtime: Runtime, observe_batch: Callable[[int], None] = lambda n: None):
        self.runtime = runtime
        self.observe_batch = observe_batch

    async def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]:
        return self.runtime.predict(inputs, outputs, parameters)


@dataclass
class _Pending:
    inputs: list[Tensor]
    outputs: list[str]
    parameters: dict[str, Any]
    rows: int
    future: asyncio.Future[list[Tensor]]


def _key(inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> tuple[Any, ...]:
    """Requests with equal keys can be concatenated."""
    shapes = tuple((t.name, t.datatype, tuple(t.data.shape[1:])) for t in inputs)
    return shapes, tuple(outputs), tuple(sorted((k, repr(v)) for k, v in parameters.items()))


class AdaptiveBatcher:
    def __init__(
        self,
        runtime: Runtime,
        max_batch_size: int,
        max_batch_time: float,
        clock: Clock | None = None,
        observe_batch: Callable[[int], None] = lambda n: None,
    ):
        self.runtime = runtime
        self.max_batch_size = max_batch_size
        self.max_batch_time = max_batch_time
        self.clock = clock or LoopClock()
        self.observe_batch = observe_batch
        self._queue: list[_Pending] = []
        self._rows = 0
        self._timer: Any = None

    async def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]:
        rows = inputs[0].data.shape[0] if inputs and inputs[0].data.ndim else 1
        if rows >= self.max_batch_size:
            self.observe_batch(rows)
            return self.runtime.predict(inputs, outputs, parameters)
        future: asyncio.Future[list[Tensor]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(inputs, outputs, parameters, rows, future))
        self._rows += rows
        if self._rows >= self.max_batch_size:
            self.flush()
        elif self._timer is None:
            self._timer = self.clock.call_later(self.max_batch_time, self.flush)
        return await future

    def flush(self) -> None:
        """Predict everything queued now (the timer's callback; also called when full)."""
        if self._timer is not None and hasattr(self._timer, "cancel"):
            self._timer.cancel()
        self._timer = None
        queued, self._queue, self._rows = self._queue, [], 0
        groups: dict[tuple[Any, ...], list[_Pending]] = {}
        for item in queued:
            groups.setdefault(_key(item.inputs, item.outputs, item.parameters), []).append(item)
        for group in groups.values():
            self._run(group)

    def _run(self, group: list[_Pending]) -> None:
        first = group[0]
        try:
            if len(group) == 1:
                results = [self.runtime.predict(first.inputs, first.outputs, first.parameters)]
            else:
                joined = [
                    Tensor(t.name, np.concatenate([p.inputs[i].data for p in group]), t.datatype, t.parameters)
                    for i, t in enumerate(first.inputs)
                ]
                outputs = self.runtime.predict(joined, first.outputs, first.parameters)
                results = _split(outputs, [p.rows for p in group])
            self.observe_batch(sum(p.rows for p in group))
        except Exception as exc:  # every caller of the batch gets the runtime's error
            for item in group:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        for item, result in zip(group, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)


def _split(outputs: list[Tensor], rows: list[int]) -> list[list[Tensor]]:
    bounds = np.cumsum([0, *rows])
    return [
        [Tensor(t.name, t.data[bounds[i] : bounds[i + 1]], t.datatype, t.parameters) for t in outputs]
        for i in range(len(rows))
    ]
