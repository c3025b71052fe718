"""Where a deployment's requests go, through the gateway of a real labdeck server to real
``labdeck serve`` replicas:

- the seed's SeldonDeployment, as written except for its ``modelUri``, answers on Seldon's
  own path exactly what sklearn's ``predict_proba`` says (SKLEARN_SERVER's default);
- an 80/20 canary split, measured over 1,000 requests with httpx and over 100 more with
  Triton's client (``tritonclient.http``, V2 through ``/deployments/<name>/``);
- a shadow gets a copy of every request while the caller only ever sees the main
  predictor's answers, even when the shadow is slow.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import tritonclient.http as triton

from tests.deployments.deploy_kit import (
    SETOSA,
    SLOW_S,
    Lab,
    Models,
    model_deployment,
    note,
    requests_served,
    seldon_body,
    v2_body,
    wait_until,
)
from tests.seed import SEED_MODEL_URI, SEED_SELDON_DEPLOYMENT
from tests.serving.serve_kit import triton_http


def within_4_sigma(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p))


def test_the_seeds_seldon_deployment_answers_predict_proba(clean_lab: Lab, models: Models) -> None:
    document = SEED_SELDON_DEPLOYMENT.replace(SEED_MODEL_URI, str(models["iris"]))
    assert document != SEED_SELDON_DEPLOYMENT
    d = clean_lab.deploy(document)
    assert (d["kind"], d["namespace"], d["name"]) == ("SeldonDeployment", "prod-data-science", "iris-model")
    assert [(p["name"], p["ready_replicas"]) for p in d["predictors"]] == [("default", 1)]

    answer = clean_lab.http.post(
        "/seldon/prod-data-science/iris-model/api/v1.0/predictions", json={"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-labdeck-predictor"] == "default"
    assert answer.json()["data"]["ndarray"] == models.iris.predict_proba(np.array([SETOSA])).tolist()
    # the same deployment under labdeck's own prefix, and several rows at once
    rows = models.X[::25].tolist()
    again = clean_lab.http.post("/deployments/iris-model/api/v1.0/predictions", json=seldon_body(rows))
    assert again.status_code == 200, again.text
    assert again.json()["data"]["ndarray"] == models.iris.predict_proba(np.array(rows)).tolist()
    assert "Serving" in clean_lab.kinds("iris-model")


def test_a_canary_gets_its_share_of_1000_requests(clean_lab: Lab, models: Models) -> None:
    clean_lab.deploy(
        model_deployment(
            "canary",
            {"name": "main", "model": str(models["iris"]), "traffic": 80},
            {"name": "candidate", "model": str(models["shifted"]), "traffic": 20},
        )
    )
    # setosa is class 0 to the main model and class 1 to the candidate: the answer itself
    # says who gave it, as well as the gateway's header
    expected = {"main": 0, "candidate": 1}
    by_header: dict[str, int] = {"main": 0, "candidate": 0}
    body = v2_body("canary", [SETOSA])
    for _ in range(1000):
        answer = clean_lab.http.post("/deployments/canary/v2/models/canary/infer", json=body)
        assert answer.status_code == 200, answer.text
        predictor = answer.headers["x-labdeck-predictor"]
        assert answer.json()["outputs"][0]["data"] == [expected[predictor]]
        by_header[predictor] += 1
    note("canary 80/20 over 1000 requests (httpx): %s", by_header)
    assert by_header["main"] + by_header["candidate"] == 1000
    assert within_4_sigma(by_header["candidate"], 1000, 0.2), by_header

    # Triton's own client, through the gateway's prefix, in binary mode
    with triton_http(clean_lab.url + "/deployments/canary") as client:
        assert client.is_server_ready()
        assert client.is_model_ready("canary")
        by_answer = {0: 0, 1: 0}
        rows = np.array([SETOSA], dtype=np.float64)
        for _ in range(100):
            given = triton.InferInput("x", list(rows.shape), "FP64")
            given.set_data_from_numpy(rows, binary_data=True)
            result = client.infer("canary", [given], outputs=[triton.InferRequestedOutput("predict", binary_data=True)])
            assert result.get_response()["model_name"] == "canary"
            by_answer[int(result.as_numpy("predict")[0])] += 1
    note("canary 80/20 over 100 requests (tritonclient): main %d, candidate %d", by_answer[0], by_answer[1])
    assert by_answer[0] + by_answer[1] == 100
    assert within_4_sigma(by_answer[1], 100, 0.2), by_answer


def test_a_slow_shadow_gets_copies_and_the_caller_only_main_answers(clean_lab: Lab, models: Models) -> None:
    d = clean_lab.deploy(
        model_deployment(
            "mirrored",
            {"name": "main", "model": str(models["iris"])},
            {"name": "mirror", "model": str(models["slow"]), "shadow": True},
        )
    )
    (main,) = next(p for p in d["predictors"] if p["name"] == "main")["replicas"]
    (mirror,) = next(p for p in d["predictors"] if p["name"] == "mirror")["replicas"]
    assert requests_served(mirror["http"]) == 0

    sent = 12
    body = v2_body("mirrored", [SETOSA])
    answers: list[tuple[str, Any]] = []
    latencies = []
    for _ in range(sent):
        started = time.perf_counter()
        answer = clean_lab.http.post("/deployments/mirrored/v2/models/mirrored/infer", json=body)
        latencies.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
        answers.append((answer.headers["x-labdeck-predictor"], answer.json()["outputs"][0]["data"]))
    caller_done = time.perf_counter()
    assert answers == [("main", [0])] * sent  # never the shadow's answer (it says 7)

    wait_until(lambda: requests_served(mirror["http"]) >= sent, f"the shadow answering {sent} copies")
    shadow_done = time.perf_counter()
    assert requests_served(mirror["http"]) == sent
    assert requests_served(main["http"]) == sent
    note(
        "shadow (sleeps %.2f s per call): caller latency median %.1f ms, max %.1f ms; the shadow finished its copies %.2f s "
        "after the caller's last answer",
        SLOW_S, sorted(latencies)[sent // 2] * 1000, max(latencies) * 1000, shadow_done - caller_done,
    )

