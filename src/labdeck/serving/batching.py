"""Adaptive batching: requests that arrive close together are predicted as one batch.

``DirectPredictor`` and ``AdaptiveBatcher`` have the same interface (an async ``predict``
taking a request's inputs, requested outputs and parameters), so the data plane does not
know which one it holds. The batcher waits at most ``max_batch_time`` seconds after the
first request of a batch, or until ``max_batch_size`` rows are queued, then concatenates
compatible requests along their first dimension, calls the runtime once, and hands each
caller its own rows back. A batch never holds more than ``max_batch_size`` rows: a request
that would overflow the queue sends the queue first, and a request of ``max_batch_size``
rows or more goes alone at once. Requests that cannot be joined (other input names,
datatypes, trailing shapes or tensor parameters, other requested outputs or request
parameters) are predicted in their own group. A request whose rows are ambiguous (a lone
1-D input, which the runtimes read as one row of features unless it is named as one of the
model's columns; a 1-D input the model declares as 2-D; inputs of unequal first dimensions)
is never joined: it is predicted alone, at once.
When a runtime answers a joined batch with outputs that are not one row per input row, each
request of that batch is predicted again on its own, so that every caller gets its own answer.
An error from the runtime reaches every caller of the batch. Time comes from a ``Clock``, so
tests can drive it by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
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


def rows_of(inputs: list[Tensor], columns: Collection[str] = ()) -> int:
    """How many rows a request carries, as the batch-size metric counts them: the first
    dimension of its first input, except that a lone 1-D input (or a scalar) is one row,
    unless it is named as one of the model's ``columns`` (then it is that column's values,
    as the runtimes read it)."""
    lone = len(inputs) == 1 and inputs[0].data.ndim == 1 and inputs[0].name not in columns
    if not inputs or inputs[0].data.ndim == 0 or lone:
        return 1
    return int(inputs[0].data.shape[0])


class DirectPredictor:
    """No batching: each request goes straight to the runtime."""

    def __init__(self, runtime: Runtime, observe_batch: Callable[[int], None] = lambda n: None):
        self.runtime = runtime
        self.observe_batch = observe_batch
        self._columns: tuple[str, ...] | None = None  # read once the model has loaded

    async def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]:
        if self._columns is None:
            self._columns = self.runtime.metadata().columns
        self.observe_batch(rows_of(inputs, self._columns))
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
    shapes = tuple((t.name, t.datatype, str(t.data.dtype), tuple(t.data.shape[1:]), repr(t.parameters)) for t in inputs)
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
        self._declared: dict[str, int] | None = None  # read once the model has loaded
        self._columns: tuple[str, ...] = ()

    async def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]:
        rows = self._joinable_rows(inputs)
        if rows is None or rows >= self.max_batch_size:
            self.observe_batch(rows_of(inputs, self._columns))
            return self.runtime.predict(inputs, outputs, parameters)
        if self._rows + rows > self.max_batch_size:
            self.flush()  # this request would overflow the batch: send what is queued first
        future: asyncio.Future[list[Tensor]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(inputs, outputs, parameters, rows, future))
        self._rows += rows
        if self._rows >= self.max_batch_size:
            self.flush()
        elif self._timer is None:
            self._timer = self.clock.call_later(self.max_batch_time, self.flush)
        return await future

    def _joinable_rows(self, inputs: list[Tensor]) -> int | None:
        """The request's rows if it can be joined with others along the first dimension, else None."""
        if not inputs or any(t.data.ndim == 0 for t in inputs):
            return None
        rows = int(inputs[0].data.shape[0])
        if any(t.data.shape[0] != rows for t in inputs):
            return None
        flat = [t for t in inputs if t.data.ndim == 1]
        if flat:
            declared = self._declared_ndims()
            if len(inputs) == 1 and inputs[0].name not in self._columns:
                return None  # one 1-D input: the runtimes read it as a single row of features
            if any(declared.get(t.name, 1) > 1 for t in flat):
                return None  # the model declares this input 2-D: the 1-D tensor is one row
        return rows

    def _declared_ndims(self) -> dict[str, int]:
        if self._declared is None:
            try:
                meta = self.runtime.metadata()
            except Exception:  # a runtime without usable metadata declares nothing
                self._declared = {}
            else:
                self._declared = {s.name: len(s.shape) for s in meta.inputs if s.name not in meta.columns}
                self._columns = tuple(meta.columns)
        return self._declared

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
        total = sum(p.rows for p in group)
        try:
            self.observe_batch(total)
            if len(group) == 1:
                results = [self.runtime.predict(first.inputs, first.outputs, first.parameters)]
            else:
                joined = [
                    Tensor(t.name, np.concatenate([p.inputs[i].data for p in group]), t.datatype, t.parameters)
                    for i, t in enumerate(first.inputs)
                ]
                outputs = self.runtime.predict(joined, first.outputs, first.parameters)
                if not all(t.data.ndim >= 1 and t.data.shape[0] == total for t in outputs):
                    for item in group:  # not one output row per input row: answer each on its own
                        self._run([item])
                    return
                results = _split(outputs, [p.rows for p in group])
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
