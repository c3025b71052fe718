"""A model server's life, on real ``labdeck serve`` processes: readiness while a slow model
loads, models that cannot load, a SIGTERM during a prediction, ``--workers``, ``/metrics``
and ``--access-log``.

The models come from serve_kit: ``GATED_MODEL`` loads only once the test creates its gate
file, so the test looks at the server *while* it loads without guessing at durations;
``HOLD_MODEL`` answers the pid of the process that predicted, logs each load, and holds a
prediction until released, so a test knows which worker is busy and can act while a
request is in flight.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml

from labdeck.serving.proto import inference_pb2 as pb
from labdeck.serving.proto import inference_pb2_grpc as pb_grpc
from tests.serving.serve_kit import (
    A_EXAMPLE,
    BROKEN_MODEL,
    COLUMNS_EXAMPLE,
    COLUMNS_MODEL,
    GATED_MODEL,
    HOLD_MODEL,
    Hold,
    Served,
    children,
    metric,
    save_pyfunc,
    serve_command,
    serve_env,
    start_serve,
    wait_ready,
)

A = [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]}]


def held(token: int) -> list[dict[str, Any]]:
    return [{"name": "a", "shape": [1], "datatype": "FP64", "data": [float(-token)]}]


def pid_of(answer: httpx.Response) -> int:
    assert answer.status_code == 200, answer.text
    return int(answer.json()["outputs"][0]["data"][0])


def grpc_pid(served: Served, model: str = "hold") -> int:
    assert served.grpc_target is not None
    with grpc.insecure_channel(served.grpc_target) as channel:
        request = pb.ModelInferRequest(model_name=model)
        request.inputs.add(name="a", datatype="FP64", shape=[1]).contents.fp64_contents.append(1.0)
        reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    return int(reply.outputs[0].contents.fp64_contents[0])


def hold_model(root: Path, name: str = "hold") -> tuple[Path, Hold]:
    """A HOLD_MODEL saved at root/name, and its test side."""
    hold = Hold(root / f"{name}-files")
    return save_pyfunc(root / name, HOLD_MODEL, A_EXAMPLE, {"dir": str(hold.dir)}), hold


def in_background(call: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    return thread, result


def wait_for_log(served: Served, pattern: str) -> str:
    """The first log line matching ``pattern`` (a line is written just after its response)."""
    deadline = time.monotonic() + 30
    while True:
        for line in served.log().splitlines():
            if re.search(pattern, line):
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line matches {pattern!r}:\n{served.log()}")
        time.sleep(0.02)


# ---------------------------------------------------------------------------- readiness


def test_live_but_not_ready_while_the_model_loads(tmp_path):
    gate = tmp_path / "gate"
    model = save_pyfunc(tmp_path / "gated", GATED_MODEL, A_EXAMPLE, {"gate": str(gate)})
    served = start_serve(str(model), tmp_path / "serve", ready=False)
    try:
        # the loader is blocked on the gate: liveness answers, readiness and predictions refuse
        with served.http(timeout=30) as http:
            assert http.get("/v2/health/live").json() == {"live": True}
            assert http.get("/v2/health/ready").status_code == 503
            assert http.get("/v2/models/gated/ready").status_code == 503
            refused = http.post("/v2/models/gated/infer", json={"inputs": A})
            assert (refused.status_code, refused.json()) == (503, {"error": "The model is still loading."})
            assert http.post("/invocations", json={"inputs": {"a": [1.0]}}).status_code == 503
            assert http.get("/metrics").status_code == 200
        assert served.grpc_target is not None
        with grpc.insecure_channel(served.grpc_target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ServerLive(pb.ServerLiveRequest(), timeout=30).live
            assert not stub.ServerReady(pb.ServerReadyRequest(), timeout=30).ready
            request = pb.ModelInferRequest(model_name="gated")
            request.inputs.add(name="a", datatype="FP64", shape=[1]).contents.fp64_contents.append(1.0)
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelInfer(request, timeout=30)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

        Path(f"{gate}-0").touch()
        wait_ready(served)
        assert served.get("/v2/models/gated/ready").json() == {"name": "gated", "ready": True}
        answer = served.post("/v2/models/gated/infer", json={"inputs": A})
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == [2.0]
        text = served.get("/metrics").text
        assert metric(text, "labdeck_serving_model_load_seconds", model="gated") > 0
        # the refusals while loading were counted as what they were
        assert metric(text, "labdeck_serving_requests_total", protocol="v2", model="gated", code="503") == 1
        assert metric(text, "labdeck_serving_requests_total", protocol="grpc", model="gated", code="503") == 1
    finally:
        code = served.stop()
    assert code == 0, served.log()


def test_workers_are_ready_only_when_every_worker_has_loaded(tmp_path):
    gate = tmp_path / "gate"
    model = save_pyfunc(tmp_path / "gated", GATED_MODEL, A_EXAMPLE, {"gate": str(gate)})
    served = start_serve(str(model), tmp_path / "serve", "--workers", "2", ready=False)
    try:
        Path(f"{gate}-0").touch()  # one worker loads, the other still waits
        wait_for_log(served, r"model ready")
        for _ in range(12):  # on connections of their own, so that both workers answer some
            assert served.get("/v2/health/ready").status_code == 503
            assert served.post("/v2/models/gated/infer", json={"inputs": A}).status_code == 503
        Path(f"{gate}-1").touch()
        wait_ready(served)
        for _ in range(12):
            assert served.get("/v2/health/ready").status_code == 200
            assert served.post("/v2/models/gated/infer", json={"inputs": A}).status_code == 200
    finally:
        code = served.stop()
    assert code == 0, served.log()


def test_sigterm_while_the_model_loads_stops_the_server(tmp_path):
    model = save_pyfunc(tmp_path / "gated", GATED_MODEL, A_EXAMPLE, {"gate": str(tmp_path / "never")})
    served = start_serve(str(model), tmp_path / "serve", ready=False)
    assert served.get("/v2/health/live").status_code == 200
    assert served.get("/v2/health/ready").status_code == 503
    assert served.stop() == 0, served.log()  # without waiting for the load that never ends
    assert "Traceback" not in served.log()


# ---------------------------------------------------------------------------- models that cannot load


def test_a_model_that_cannot_be_loaded_ends_the_server_with_the_reason(tmp_path):
    broken = save_pyfunc(tmp_path / "broken", BROKEN_MODEL, A_EXAMPLE)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.txt").write_text("no model here")
    missing_file = save_pyfunc(tmp_path / "gone", COLUMNS_MODEL, COLUMNS_EXAMPLE)
    mlmodel = yaml.safe_load((missing_file / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"] = {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"}
    (missing_file / "MLmodel").write_text(yaml.safe_dump(mlmodel))  # a flavor whose file is not there
    cases = {
        "broken": ([str(broken)], ["cannot load the model", "RuntimeError: the weights file is corrupt"]),
        "broken, 2 workers": ([str(broken), "--workers", "2"], ["RuntimeError: the weights file is corrupt"]),
        "empty folder": ([str(empty)], ["No runtime recognises the model at"]),
        "no such folder": ([str(tmp_path / "nowhere")], ["cannot fetch the model", "There is no model at"]),
        "missing file": ([str(missing_file)], ["cannot load the model", "model.pkl"]),
        "unknown runtime": ([str(broken), "--runtime", "tensorflow"], ["Unknown runtime 'tensorflow'"]),
    }
    processes = {
        name: subprocess.Popen(
            serve_command(args[0], tmp_path / "cache", "--port", "0", "--grpc-port", "-1", *args[1:]),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=serve_env(),
        )
        for name, (args, _) in cases.items()
    }
    for name, process in processes.items():
        try:
            out, err = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"{name}: the server did not exit") from None
        assert process.returncode == 1, (name, err)
        assert "Traceback" not in out + err, (name, err)
        for phrase in cases[name][1]:
            assert phrase in err, (name, phrase, err)


# ---------------------------------------------------------------------------- graceful shutdown


def test_sigterm_lets_the_prediction_in_flight_finish(tmp_path):
    model, hold = hold_model(tmp_path)
    served = start_serve(str(model), tmp_path / "serve")
    thread, result = in_background(lambda: served.post("/v2/models/hold/infer", json={"inputs": held(1)}))
    pid = hold.wait_started(1, served)
    assert pid == served.process.pid
    served.process.send_signal(signal.SIGTERM)
    hold.release(1)
    thread.join(60)
    assert pid_of(result[0]) == pid
    assert served.process.wait(60) == 0, served.log()
    assert "Traceback" not in served.log()


def test_sigterm_lets_a_grpc_call_in_flight_finish(tmp_path):
    model, hold = hold_model(tmp_path)
    served = start_serve(str(model), tmp_path / "serve")
    assert served.grpc_target is not None
    with grpc.insecure_channel(served.grpc_target) as channel:
        request = pb.ModelInferRequest(model_name="hold")
        request.inputs.add(name="a", datatype="FP64", shape=[1]).contents.fp64_contents.append(-1.0)
        call = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer.future(request, timeout=60)
        pid = hold.wait_started(1, served)
        served.process.send_signal(signal.SIGTERM)
        hold.release(1)
        assert int(call.result().outputs[0].contents.fp64_contents[0]) == pid
    assert served.process.wait(60) == 0, served.log()
    assert "Traceback" not in served.log()


# ---------------------------------------------------------------------------- workers


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Hold]]:
    root = tmp_path_factory.mktemp("workers")
    model, hold = hold_model(root)
    served = start_serve(str(model), root / "serve", "--workers", "2")
    try:
        yield served, hold
    finally:
        served.stop()


def test_each_worker_loads_the_model_once_and_answers(workers):
    served, hold = workers
    pids = children(served.process.pid)
    assert len(pids) == 2
    assert sorted(hold.loads()) == sorted(pids)

    # while one worker holds a prediction, the other answers everything else
    before = served.get("/metrics").text
    thread, result = in_background(lambda: served.post("/v2/models/hold/infer", json={"inputs": held(1)}))
    busy = hold.wait_started(1, served)
    (idle,) = pids - {busy}
    assert pid_of(served.post("/v2/models/hold/infer", json={"inputs": A})) == idle
    during = served.get("/metrics").text  # from the idle worker, counting for both
    assert metric(during, "labdeck_serving_in_flight", model="hold") == 1
    assert metric(during, "labdeck_serving_requests_total", protocol="v2", code="200") == (
        metric(before, "labdeck_serving_requests_total", protocol="v2", code="200") + 1
    )
    hold.release(1)
    thread.join(60)
    assert pid_of(result[0]) == busy

    # connections from many clients at once: the answers come from the two workers only
    with ThreadPoolExecutor(8) as pool:
        answered = set(pool.map(lambda _: pid_of(served.post("/v2/models/hold/infer", json={"inputs": A})), range(40)))
        answered |= set(pool.map(lambda _: grpc_pid(served), range(8)))
    assert answered <= pids
    after = served.get("/metrics").text
    assert metric(after, "labdeck_serving_requests_total", protocol="v2", code="200") == (
        metric(before, "labdeck_serving_requests_total", protocol="v2", code="200") + 42
    )
    assert metric(after, "labdeck_serving_requests_total", protocol="grpc", code="200") == (
        metric(before, "labdeck_serving_requests_total", protocol="grpc", code="200") + 8
    )
    assert metric(after, "labdeck_serving_in_flight", model="hold") == 0
    assert metric(after, "labdeck_serving_model_load_seconds", model="hold") > 0
    assert sorted(hold.loads()) == sorted(pids)  # loaded once per worker, not per request


def test_workers_log_nothing_per_request_without_access_log(workers):
    served, _ = workers
    for _ in range(3):
        assert served.post("/v2/models/hold/infer", json={"inputs": A}, headers={"x-request-id": "quiet-1"}).status_code == 200
    assert served.get("/v2/health/ready").status_code == 200
    log = served.log()
    assert "labdeck.serving.access" not in log and "quiet-1" not in log and "/v2/" not in log, log


def test_sigterm_to_the_workers_drains_and_exits_0(tmp_path):
    model, hold = hold_model(tmp_path)
    served = start_serve(str(model), tmp_path / "serve", "--workers", "2")
    thread, result = in_background(lambda: served.post("/v2/models/hold/infer", json={"inputs": held(7)}))
    busy = hold.wait_started(7, served)
    assert busy in children(served.process.pid)
    served.process.send_signal(signal.SIGTERM)
    hold.release(7)
    thread.join(60)
    assert pid_of(result[0]) == busy
    assert served.process.wait(60) == 0, served.log()
    assert "Traceback" not in served.log()


# ---------------------------------------------------------------------------- metrics and the access log


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("logged")
    model, _ = hold_model(root)
    served = start_serve(str(model), root / "serve", "--access-log")
    try:
        yield served
    finally:
        served.stop()


def test_metrics_count_predictions_by_protocol_and_code(logged):
    served = logged
    before = served.get("/metrics").text

    def moved(text: str, name: str, **labels: str) -> float:
        return metric(text, name, **labels) - metric(before, name, **labels)

    rows = [{"name": "a", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]
    for _ in range(3):
        assert served.post("/v2/models/hold/infer", json={"inputs": rows}).status_code == 200
    for _ in range(2):
        assert served.post("/invocations", json={"dataframe_records": [{"a": 1.0}] * 4}).status_code == 200
    assert served.post("/api/v1.0/predictions", json={"data": {"names": ["a"], "ndarray": [[1.0]]}}).status_code == 200
    assert grpc_pid(served) == served.process.pid
    for path in ("/v2/health/ready", "/v2/health/live", "/v2/models/hold", "/v2"):
        assert served.get(path).status_code == 200  # probes and metadata are not predictions

    text = served.get("/metrics").text
    assert moved(text, "labdeck_serving_requests_total", protocol="v2", model="hold", code="200") == 3
    assert moved(text, "labdeck_serving_requests_total", protocol="mlflow", model="hold", code="200") == 2
    assert moved(text, "labdeck_serving_requests_total", protocol="seldon", model="hold", code="200") == 1
    assert moved(text, "labdeck_serving_requests_total", protocol="grpc", model="hold", code="200") == 1
    assert moved(text, "labdeck_serving_requests_total") == 7
    assert moved(text, "labdeck_serving_request_seconds_count", protocol="v2", model="hold") == 3
    assert moved(text, "labdeck_serving_request_seconds_count") == 7
    assert moved(text, "labdeck_serving_request_seconds_sum") > 0
    # rows per prediction call: 3 x 2, 2 x 4, 1, 1
    assert moved(text, "labdeck_serving_batch_rows_count", model="hold") == 7
    assert moved(text, "labdeck_serving_batch_rows_sum", model="hold") == 16
    assert moved(text, "labdeck_serving_batch_rows_bucket", model="hold", le="2.0") == 5
    assert metric(text, "labdeck_serving_in_flight", model="hold") == 0
    assert metric(text, "labdeck_serving_model_load_seconds", model="hold") > 0

    refused = served.post("/v2/models/hold/infer", json={"inputs": [{**rows[0], "name": "z"}]})
    assert refused.status_code == 400
    assert served.post("/v2/models/other/infer", json={"inputs": rows}).status_code == 404
    assert served.post("/invocations", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    text = served.get("/metrics").text
    assert moved(text, "labdeck_serving_requests_total", protocol="v2", code="400") == 1
    assert moved(text, "labdeck_serving_requests_total", protocol="v2", code="404") == 1
    assert moved(text, "labdeck_serving_requests_total", protocol="mlflow", code="400") == 1


def test_access_log_has_a_line_per_request_with_its_id(logged):
    served = logged
    answer = served.post("/v2/models/hold/infer", json={"inputs": A}, headers={"x-request-id": "trace-4711"})
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "trace-4711"
    line = wait_for_log(served, r"request_id=trace-4711\b")
    assert re.search(r"labdeck\.serving\.access: POST /v2/models/hold/infer 200\s+ms=[\d.]+ request_id=trace-4711$", line), line

    # a request that came without an id is given one, answered and logged
    answer = served.post("/invocations", json={"inputs": {"a": [1.0]}})
    given = answer.headers.get("x-request-id")
    assert answer.status_code == 200 and given and re.fullmatch(r"[0-9a-f]{16}-[0-9]+", given)
    assert "POST /invocations 200" in wait_for_log(served, rf"request_id={given}\b")
    assert served.get("/v2/health/ready", headers={"x-request-id": "probe-1"}).status_code == 200
    assert "GET /v2/health/ready 200" in wait_for_log(served, r"request_id=probe-1\b")
    refused = served.post("/v2/models/hold/infer", json={"inputs": []}, headers={"x-request-id": "bad-1"})
    assert refused.status_code == 400
    assert "POST /v2/models/hold/infer 400" in wait_for_log(served, r"request_id=bad-1\b")
    assert len([line for line in served.log().splitlines() if "trace-4711" in line]) == 1
