"""Adaptive batching, driven by a clock the test advances by hand.

The runtimes here are real ``Runtime`` subclasses (a row-summing one that records every
batch it is given, one that refuses negative values, one whose outputs are not row-aligned)
and the real scikit-learn runtime on a real model. Time never passes on its own: a batch
that waits for its timer waits until the test moves ``FakeClock`` forward.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labdeck.errors import InvalidParameter
from labdeck.serving.batching import AdaptiveBatcher, DirectPredictor, LoopClock
from labdeck.serving.dataplane import DataPlane
from labdeck.serving.metrics import ServingMetrics
from labdeck.serving.runtime import Runtime, RuntimeSettings
from labdeck.serving.runtimes.sklearn import SklearnRuntime
from labdeck.serving.types import InferenceRequest, ModelMetadata, RequestedOutput, Tensor, TensorSpec

WAIT = 0.25  # max_batch_time in these tests (a binary fraction, so sums of steps are exact)


# ---------------------------------------------------------------- the fake clock


class Timer:
    def __init__(self, when: float, callback: Callable[[], None]):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A ``Clock`` whose time moves only when the test calls ``advance``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[Timer] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    @property
    def pending(self) -> list[Timer]:
        return [t for t in self.timers if not t.cancelled]

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for timer in sorted(self.timers, key=lambda t: t.when):
            if not timer.cancelled and timer.when <= self.now:
                timer.cancelled = True  # fired: a timer fires once
                timer.callback()


# ---------------------------------------------------------------- runtimes


class RowSums(Runtime):
    """Answers ``sum`` (each row's sum), ``first`` (each row's first value) or ``scaled``
    (the sum times the ``scale`` parameter), and records every call's inputs."""

    name = "rowsums"

    def __init__(self, model_dir: Path):
        super().__init__(model_dir, RuntimeSettings("rowsums"))
        self.calls: list[list[Tensor]] = []

    async def load(self) -> None:
        return None

    def rows_per_call(self) -> list[int]:
        return [call[0].data.shape[0] for call in self.calls]

    def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]:
        self.calls.append([Tensor(t.name, t.data.copy(), t.datatype, t.parameters) for t in inputs])
        X = inputs[0].data if len(inputs) == 1 else np.column_stack([t.data for t in inputs])
        X = X.reshape(len(X), -1)
        answers = {
            "sum": lambda: X.sum(axis=1),
            "first": lambda: X[:, 0],
            "scaled": lambda: X.sum(axis=1) * float(parameters.get("scale", 1)),
        }
        return [Tensor(name, np.asarray(answers[name]())) for name in outputs or ["sum"]]


class RefusesNegatives(RowSums):
    """A model that raises on any batch holding a negative value."""

    def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]:
        if any((t.data < 0).any() for t in inputs):
            self.calls.append(inputs)
            raise InvalidParameter("negative values are not allowed")
        return super().predict(inputs, outputs, parameters)


class Totals(RowSums):
    """Answers one number for the whole request (not one per row)."""

    def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]:
        self.calls.append(inputs)
        return [Tensor("total", np.asarray([inputs[0].data.sum()]))]


class DeclaresTwoInputs(RowSums):
    """Declares two 2-D inputs ``a`` and ``b``: a 1-D tensor for either is one row."""

    def metadata(self) -> ModelMetadata:
        return ModelMetadata("rowsums", "test", (), (TensorSpec("a", "FP64", (-1, 2)), TensorSpec("b", "FP64", (-1, 2))))

    def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]:
        self.calls.append(inputs)
        a, b = (t.data.reshape(-1, 2) for t in inputs)
        return [Tensor("sum", a.sum(axis=1) + b.sum(axis=1))]


# ---------------------------------------------------------------- helpers


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def settle() -> None:
    """Let every task that can run reach its next wait (here: its place in the queue)."""
    for _ in range(5):
        await asyncio.sleep(0)


def rows(n: int, start: float = 0.0, width: int = 3) -> list[Tensor]:
    data = np.arange(start, start + n * width, dtype=np.float64).reshape(n, width)
    return [Tensor("x", data)]


def sums(tensors: list[Tensor]) -> np.ndarray:
    return tensors[0].data.sum(axis=1)


def submit(batcher: Any, inputs: list[Tensor], outputs: list[str] | None = None, parameters: dict[str, Any] | None = None) -> asyncio.Task[list[Tensor]]:
    return asyncio.ensure_future(batcher.predict(inputs, outputs or [], parameters or {}))


# ---------------------------------------------------------------- joining and timing


def test_requests_that_arrive_together_are_predicted_in_one_call(tmp_path: Path) -> None:
    runtime, clock, observed = RowSums(tmp_path), FakeClock(), []
    batcher = AdaptiveBatcher(runtime, max_batch_size=16, max_batch_time=WAIT, clock=clock, observe_batch=observed.append)

    async def scenario() -> None:
        requests = [rows(1, 0), rows(3, 100), rows(2, 200), rows(1, 300)]
        tasks = [submit(batcher, r) for r in requests]
        await settle()
        assert runtime.calls == [] and not any(t.done() for t in tasks)
        assert len(clock.pending) == 1  # one timer for the whole batch, started by the first request
        clock.advance(WAIT)
        results = await asyncio.gather(*tasks)
        assert runtime.rows_per_call() == [7]
        np.testing.assert_array_equal(runtime.calls[0][0].data, np.concatenate([r[0].data for r in requests]))
        for request, result in zip(requests, results, strict=True):
            assert [t.name for t in result] == ["sum"]
            np.testing.assert_array_equal(result[0].data, sums(request))  # its own rows, in order
        assert observed == [7]

    run(scenario)


def test_a_full_batch_goes_at_once_without_waiting_for_the_timer(tmp_path: Path) -> None:
    runtime, clock, observed = RowSums(tmp_path), FakeClock(), []
    batcher = AdaptiveBatcher(runtime, max_batch_size=4, max_batch_time=WAIT, clock=clock, observe_batch=observed.append)

    async def scenario() -> None:
        requests = [rows(1, 0), rows(1, 10), rows(2, 20)]
        tasks = [submit(batcher, r) for r in requests]
        await settle()
        assert all(t.done() for t in tasks)  # the clock never moved
        assert runtime.rows_per_call() == [4]
        assert clock.pending == []  # the batch's timer was cancelled when it filled
        for request, task in zip(requests, tasks, strict=True):
            np.testing.assert_array_equal(task.result()[0].data, sums(request))
        # the next request starts a new batch and a new timer
        late = submit(batcher, rows(1, 50))
        await settle()
        assert not late.done() and len(clock.pending) == 1
        clock.advance(WAIT)
        np.testing.assert_array_equal((await late)[0].data, sums(rows(1, 50)))
        assert observed == [4, 1]

    run(scenario)


def test_a_lone_request_goes_when_max_batch_time_elapses_and_not_before(tmp_path: Path) -> None:
    runtime, clock = RowSums(tmp_path), FakeClock()
    batcher = AdaptiveBatcher(runtime, max_batch_size=8, max_batch_time=WAIT, clock=clock)

    async def scenario() -> None:
        task = submit(batcher, rows(2))
        await settle()
        clock.advance(WAIT / 2)
        await settle()
        assert not task.done() and runtime.calls == []
        clock.advance(WAIT / 4)
        await settle()
        assert not task.done() and runtime.calls == []
        clock.advance(WAIT / 4)  # exactly max_batch_time after the request
        result = await task
        np.testing.assert_array_equal(result[0].data, sums(rows(2)))
        assert runtime.rows_per_call() == [2]

    run(scenario)


def test_the_timer_counts_from_the_first_request_of_the_batch(tmp_path: Path) -> None:
    runtime, clock = RowSums(tmp_path), FakeClock()
    batcher = AdaptiveBatcher(runtime, max_batch_size=8, max_batch_time=WAIT, clock=clock)

    async def scenario() -> None:
        first = submit(batcher, rows(1, 0))
        await settle()
        clock.advance(WAIT / 2)
        second = submit(batcher, rows(1, 10))
        await settle()
        clock.advance(WAIT / 2)
        await asyncio.gather(first, second)
        assert runtime.rows_per_call() == [2]  # the second did not restart the wait

    run(scenario)


def test_a_request_that_would_overflow_the_batch_sends_the_queue_first(tmp_path: Path) -> None:
    runtime, clock = RowSums(tmp_path), FakeClock()
    batcher = AdaptiveBatcher(runtime, max_batch_size=4, max_batch_time=WAIT, clock=clock)

    async def scenario() -> None:
        a = submit(batcher, rows(3, 0))
        await settle()
        b = submit(batcher, rows(2, 100))
        await settle()
        assert a.done() and not b.done()
        assert runtime.rows_per_call() == [3]  # never more than max_batch_size rows in one call
        clock.advance(WAIT)
        np.testing.assert_array_equal((await b)[0].data, sums(rows(2, 100)))
        np.testing.assert_array_equal(a.result()[0].data, sums(rows(3, 0)))
        assert runtime.rows_per_call() == [3, 2]

    run(scenario)


def test_a_request_larger_than_the_batch_goes_alone_at_once(tmp_path: Path) -> None:
    runtime, clock, observed = RowSums(tmp_path), FakeClock(), []
    batcher = AdaptiveBatcher(runtime, max_batch_size=4, max_batch_time=WAIT, clock=clock, observe_batch=observed.append)

    async def scenario() -> None:
        small = submit(batcher, rows(1, 0))
        await settle()
        big = submit(batcher, rows(9, 100))
        await settle()
        assert big.done() and not small.done()
        np.testing.assert_array_equal(big.result()[0].data, sums(rows(9, 100)))
        assert runtime.rows_per_call() == [9]
        clock.advance(WAIT)
        np.testing.assert_array_equal((await small)[0].data, sums(rows(1, 0)))
        assert runtime.rows_per_call() == [9, 1]
        assert observed == [9, 1]

    run(scenario)


def test_each_caller_gets_its_own_rows_for_every_requested_output(tmp_path: Path) -> None:
    runtime, clock = RowSums(tmp_path), FakeClock()
    batcher = AdaptiveBatcher(runtime, max_batch_size=64, max_batch_time=WAIT, clock=clock)

    async def scenario() -> None:
        requests = [rows(n, 1000 * i) for i, n in enumerate([2, 5, 1, 3])]
        tasks = [submit(batcher, r, ["first", "sum"]) for r in requests]
        await settle()
        clock.advance(WAIT)
        for request, result in zip(requests, await asyncio.gather(*tasks), strict=True):
            assert [t.name for t in result] == ["first", "sum"]
            np.testing.assert_array_equal(result[0].data, request[0].data[:, 0])
            np.testing.assert_array_equal(result[1].data, sums(request))
            assert result[1].datatype == "FP64"
        assert runtime.rows_per_call() == [11]

    run(scenario)


def test_named_column_inputs_are_joined_column_by_column(tmp_path: Path) -> None:
    runtime, clock = RowSums(tmp_path), FakeClock()
    batcher = AdaptiveBatcher(runtime, max_batch_size=64, max_batch_time=WAIT, clock=clock)

    def columns(a: list[float], b: list[float]) -> list[Tensor]:
        return [Tensor("a", np.asarray(a)), Tensor("b", np.asarray(b))]

    async def scenario() -> None:
        one, two = columns([1.0, 2.0], [10.0, 20.0]), columns([3.0], [30.0])
        tasks = [submit(batcher, one), submit(batcher, two)]
        await settle()
        clock.advance(WAIT)
        first, second = await asyncio.gather(*tasks)
        np.testing.assert_array_equal(first[0].data, [11.0, 22.0])
        np.testing.assert_array_equal(second[0].data, [33.0])
        assert len(runtime.calls) == 1
        np.testing.assert_array_equal(runtime.calls[0][0].data, [1.0, 2.0, 3.0])

    run(scenario)


# ---------------------------------------------------------------- what cannot be joined


def test_requests_that_cannot_be_joined_are_predicted_in_separate_groups(tmp_path: Path) -> None:
    runtime, clock, observed = RowSums(tmp_path), FakeClock(), []
    batcher = AdaptiveBatcher(runtime, max_batch_size=1000, max_batch_time=WAIT, clock=clock, observe_batch=observed.append)
    base = np.arange(6, dtype=np.float64).reshape(2, 3)
    cases: dict[str, tuple[list[Tensor], list[str], dict[str, Any]]] = {
        "plain": ([Tensor("x", base)], [], {}),
        "plain again": ([Tensor("x", base + 100)], [], {}),
        "other input name": ([Tensor("y", base + 200)], [], {}),
        "other datatype": ([Tensor("x", (base + 300).astype(np.float32))], [], {}),
        "other trailing shape": ([Tensor("x", np.arange(8, dtype=np.float64).reshape(2, 4))], [], {}),
        "other outputs": ([Tensor("x", base + 400)], ["first"], {}),
        "other parameters": ([Tensor("x", base + 500)], ["scaled"], {"scale": 2}),
        "other parameter value": ([Tensor("x", base + 600)], ["scaled"], {"scale": 3}),
        "other tensor parameters": ([Tensor("x", base + 700, parameters={"content_type": "np"})], [], {}),
    }

    async def scenario() -> None:
        tasks = {name: submit(batcher, *case) for name, case in cases.items()}
        await settle()
        clock.advance(WAIT)
        results = {name: await task for name, task in tasks.items()}
        # "plain" and "plain again" share a call; every other case has its own
        assert len(runtime.calls) == len(cases) - 1
        assert sorted(observed) == sorted([4] + [2] * (len(cases) - 2))
        assert runtime.calls[0][0].data.shape == (4, 3)
        for name, (inputs, outputs, parameters) in cases.items():
            data = inputs[0].data.reshape(2, -1)
            expected = {
                "": data.sum(axis=1),
                "first": data[:, 0],
                "scaled": data.sum(axis=1) * parameters.get("scale", 1),
            }[outputs[0] if outputs else ""]
            np.testing.assert_array_equal(results[name][0].data, expected, err_msg=name)
        by_shape = {(c[0].name, c[0].datatype, c[0].data.shape[1:]) for c in runtime.calls}
        assert ("y", "FP64", (3,)) in by_shape and ("x", "FP32", (3,)) in by_shape and ("x", "FP64", (4,)) in by_shape

    run(scenario)


def test_a_lone_1d_input_is_one_row_and_is_never_concatenated(tmp_path: Path) -> None:
    """The runtimes read a single 1-D input as one row of features, so two of them must not
    become one long row: the real sklearn runtime proves it (8 features would be refused)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    joblib.dump(model, tmp_path / "model.joblib")
    runtime = SklearnRuntime(tmp_path, RuntimeSettings("iris"))
    clock, observed = FakeClock(), []
    batcher = AdaptiveBatcher(runtime, max_batch_size=8, max_batch_time=WAIT, clock=clock, observe_batch=observed.append)

    async def scenario() -> None:
        await runtime.load()
        tasks = [submit(batcher, [Tensor("input-0", X[i])]) for i in (0, 60, 120)]
        await settle()
        assert all(t.done() for t in tasks)  # predicted alone, at once: nothing to wait for
        assert [t.result()[0].data.tolist() for t in tasks] == [[y] for y in model.predict(X[[0, 60, 120]])]
        assert observed == [1, 1, 1]

    run(scenario)


def test_a_1d_input_the_model_declares_2d_is_not_joined(tmp_path: Path) -> None:
    runtime, clock = DeclaresTwoInputs(tmp_path), FakeClock()
    batcher = AdaptiveBatcher(runtime, max_batch_size=8, max_batch_time=WAIT, clock=clock)

    async def scenario() -> None:
        one = [Tensor("a", np.array([1.0, 2.0])), Tensor("b", np.array([3.0, 4.0]))]
        two = [Tensor("a", np.array([5.0, 6.0])), Tensor("b", np.array([7.0, 8.0]))]
        tasks = [submit(batcher, one), submit(batcher, two)]
        await settle()
        assert all(t.done() for t in tasks)
        assert [t.result()[0].data.tolist() for t in tasks] == [[10.0], [26.0]]
        assert len(runtime.calls) == 2

    run(scenario)


def test_a_lone_1d_input_named_as_the_models_one_column_is_its_rows(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("signature:\n  inputs: '[{\"type\": \"double\", \"name\": \"x\"}]'\n")
    runtime, clock, observed = RowSums(tmp_path), FakeClock(), []
    assert runtime.metadata().columns == ("x",)
    batcher = AdaptiveBatcher(runtime, max_batch_size=8, max_batch_time=WAIT, clock=clock, observe_batch=observed.append)

    async def scenario() -> None:
        tasks = [submit(batcher, [Tensor("x", np.array([1.0, 2.0]))]), submit(batcher, [Tensor("x", np.array([3.0]))])]
        alone = submit(batcher, [Tensor("y", np.array([4.0, 5.0]))])  # not a column: ambiguous, so alone, at once
        await settle()
        assert alone.done() and not any(t.done() for t in tasks)
        assert len(runtime.calls) == 1 and runtime.calls[0][0].name == "y"
        clock.advance(WAIT)
        first, second = await asyncio.gather(*tasks)
        assert first[0].data.tolist() == [1.0, 2.0] and second[0].data.tolist() == [3.0]
        assert observed == [1, 3]

    run(scenario)


def test_requests_with_inputs_of_unequal_rows_go_alone(tmp_path: Path) -> None:
    runtime, clock = Totals(tmp_path), FakeClock()
    batcher = AdaptiveBatcher(runtime, max_batch_size=8, max_batch_time=WAIT, clock=clock)

    async def scenario() -> None:
        ragged = [Tensor("x", np.ones((2, 2))), Tensor("mask", np.ones((3,)))]
        task = submit(batcher, ragged)
        await settle()
        assert task.done() and clock.timers == []  # predicted at once, no batch was started
        assert task.result()[0].data.tolist() == [4.0]

    run(scenario)


def test_outputs_that_are_not_one_row_per_input_row_are_answered_per_request(tmp_path: Path) -> None:
    runtime, clock = Totals(tmp_path), FakeClock()
    batcher = AdaptiveBatcher(runtime, max_batch_size=8, max_batch_time=WAIT, clock=clock)

    async def scenario() -> None:
        tasks = [submit(batcher, rows(2, 0)), submit(batcher, rows(1, 10))]
        await settle()
        clock.advance(WAIT)
        first, second = await asyncio.gather(*tasks)
        assert first[0].data.tolist() == [rows(2, 0)[0].data.sum()]
        assert second[0].data.tolist() == [rows(1, 10)[0].data.sum()]
        assert [c[0].data.shape[0] for c in runtime.calls] == [3, 2, 1]  # the joined call, then each alone

    run(scenario)


# ---------------------------------------------------------------- errors


def test_an_error_reaches_every_caller_of_the_batch_and_the_batcher_keeps_working(tmp_path: Path) -> None:
    runtime, clock, observed = RefusesNegatives(tmp_path), FakeClock(), []
    batcher = AdaptiveBatcher(runtime, max_batch_size=16, max_batch_time=WAIT, clock=clock, observe_batch=observed.append)

    async def scenario() -> None:
        bad = [Tensor("x", np.array([[1.0, -1.0, 0.0]]))]
        tasks = [submit(batcher, rows(2)), submit(batcher, bad), submit(batcher, rows(1, 5))]
        other_group = submit(batcher, rows(1), ["first"])  # same moment, other outputs: unaffected
        await settle()
        clock.advance(WAIT)
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(o, InvalidParameter) for o in outcomes)
        assert outcomes[0] is outcomes[1] is outcomes[2]
        assert outcomes[0].message == "negative values are not allowed"
        np.testing.assert_array_equal((await other_group)[0].data, rows(1)[0].data[:, 0])
        # the next batch is served as usual
        again = [submit(batcher, rows(1, 7)), submit(batcher, rows(2, 70))]
        await settle()
        clock.advance(WAIT)
        first, second = await asyncio.gather(*again)
        np.testing.assert_array_equal(first[0].data, sums(rows(1, 7)))
        np.testing.assert_array_equal(second[0].data, sums(rows(2, 70)))
        assert batcher._queue == [] and clock.pending == []

    run(scenario)


def test_an_error_in_a_lone_oversized_request_reaches_its_caller(tmp_path: Path) -> None:
    runtime, clock = RefusesNegatives(tmp_path), FakeClock()
    batcher = AdaptiveBatcher(runtime, max_batch_size=2, max_batch_time=WAIT, clock=clock)

    async def scenario() -> None:
        with pytest.raises(InvalidParameter, match="negative"):
            await batcher.predict([Tensor("x", -np.ones((5, 3)))], [], {})
        np.testing.assert_array_equal((await batcher.predict(rows(5), [], {}))[0].data, sums(rows(5)))

    run(scenario)


def test_a_caller_that_gives_up_does_not_disturb_the_others(tmp_path: Path) -> None:
    runtime, clock = RowSums(tmp_path), FakeClock()
    batcher = AdaptiveBatcher(runtime, max_batch_size=16, max_batch_time=WAIT, clock=clock)

    async def scenario() -> None:
        tasks = [submit(batcher, rows(1, 0)), submit(batcher, rows(2, 10)), submit(batcher, rows(1, 20))]
        await settle()
        tasks[1].cancel()  # e.g. the client disconnected
        await settle()
        clock.advance(WAIT)
        np.testing.assert_array_equal((await tasks[0])[0].data, sums(rows(1, 0)))
        np.testing.assert_array_equal((await tasks[2])[0].data, sums(rows(1, 20)))
        assert tasks[1].cancelled()

    run(scenario)


# ---------------------------------------------------------------- equal to no batching


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.integers(1, 7), min_size=1, max_size=12),
    max_batch_size=st.integers(2, 12),
    outputs=st.sampled_from([[], ["first"], ["sum", "first"]]),
)
def test_batched_results_equal_direct_predictions(tmp_path: Path, sizes: list[int], max_batch_size: int, outputs: list[str]) -> None:
    batched_runtime, direct_runtime, clock = RowSums(tmp_path), RowSums(tmp_path), FakeClock()
    observed: list[int] = []
    batcher = AdaptiveBatcher(batched_runtime, max_batch_size, WAIT, clock=clock, observe_batch=observed.append)
    direct = DirectPredictor(direct_runtime)
    rng = np.random.default_rng(len(sizes) * 100 + max_batch_size)
    requests = [[Tensor("x", rng.normal(size=(n, 3)))] for n in sizes]

    async def scenario() -> None:
        tasks = [submit(batcher, r, outputs) for r in requests]
        await settle()
        clock.advance(WAIT)
        batched = await asyncio.gather(*tasks)
        for request, got in zip(requests, batched, strict=True):
            want = await direct.predict(request, outputs, {})
            assert [t.name for t in got] == [t.name for t in want]
            for g, w in zip(got, want, strict=True):
                assert g.datatype == w.datatype
                np.testing.assert_array_equal(g.data, w.data)

    run(scenario)
    assert sum(observed) == sum(sizes)
    assert observed == batched_runtime.rows_per_call()
    for n in batched_runtime.rows_per_call():  # a call holds at most max_batch_size rows, unless one request is bigger
        assert n <= max_batch_size or n in sizes


def test_batching_the_real_sklearn_runtime_equals_direct_predictions(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_iris(return_X_y=True)
    joblib.dump(RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y), tmp_path / "model.joblib")
    runtime = SklearnRuntime(tmp_path, RuntimeSettings("iris"))
    clock, observed = FakeClock(), []
    batcher = AdaptiveBatcher(runtime, max_batch_size=32, max_batch_time=WAIT, clock=clock, observe_batch=observed.append)
    direct = DirectPredictor(runtime)
    chunks = [X[i : i + n] for i, n in zip(range(0, 150, 10), [1, 3, 5, 2, 7, 4, 6, 1, 2, 9, 3, 5, 8, 2, 1], strict=True)]

    async def scenario() -> None:
        await runtime.load()
        for outputs in ([], ["predict_proba"], ["predict", "predict_proba"]):
            observed.clear()
            tasks = [submit(batcher, [Tensor("input-0", c)], outputs) for c in chunks]
            await settle()
            clock.advance(WAIT)
            for chunk, got in zip(chunks, await asyncio.gather(*tasks), strict=True):
                want = await direct.predict([Tensor("input-0", chunk)], outputs, {})
                assert [(t.name, t.datatype, t.shape) for t in got] == [(t.name, t.datatype, t.shape) for t in want]
                for g, w in zip(got, want, strict=True):
                    np.testing.assert_array_equal(g.data, w.data)
            assert sum(observed) == sum(len(c) for c in chunks)
            assert all(n <= 32 for n in observed)

    run(scenario)


# ---------------------------------------------------------------- the real clock and the data plane


def test_the_event_loop_clock_sends_a_lone_request(tmp_path: Path) -> None:
    runtime = RowSums(tmp_path)
    batcher = AdaptiveBatcher(runtime, max_batch_size=8, max_batch_time=0.001, clock=LoopClock())

    async def scenario() -> None:
        result = await batcher.predict(rows(2), [], {})
        np.testing.assert_array_equal(result[0].data, sums(rows(2)))

    run(scenario)


def test_the_data_plane_batches_and_counts_rows_per_call(tmp_path: Path) -> None:
    runtime = RowSums(tmp_path)
    metrics = ServingMetrics("rowsums")
    plane = DataPlane(runtime, metrics, max_batch_size=6, max_batch_time=0.001)
    assert isinstance(plane.predictor, AdaptiveBatcher)

    async def scenario() -> None:
        await plane.start()
        runtime.calls.clear()
        requests = [InferenceRequest([Tensor("x", rows(n, 10 * i)[0].data)], id=str(i)) for i, n in enumerate([1, 2, 3])]
        responses = await asyncio.gather(*(plane.infer(r) for r in requests))
        for request, response in zip(requests, responses, strict=True):
            assert response.id == request.id
            np.testing.assert_array_equal(response.outputs[0].data, sums(request.inputs))
        assert runtime.rows_per_call() == [6]  # the three filled one batch
        only_first = await plane.infer(InferenceRequest(rows(2), outputs=[RequestedOutput("first")]))
        assert [t.name for t in only_first.outputs] == ["first"]

    run(scenario)
    rendered = metrics.render().decode()
    assert 'labdeck_serving_batch_rows_sum{model="rowsums"} 8.0' in rendered
    assert 'labdeck_serving_batch_rows_count{model="rowsums"} 2.0' in rendered


def test_without_batching_every_request_is_counted_as_its_own_call(tmp_path: Path) -> None:
    runtime = RowSums(tmp_path)
    observed: list[int] = []
    direct = DirectPredictor(runtime, observed.append)

    async def scenario() -> None:
        await direct.predict(rows(3), [], {})
        await direct.predict([Tensor("x", np.ones(3))], [], {})  # one 1-D input: one row

    run(scenario)
    assert observed == [3, 1]
