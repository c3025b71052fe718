"""Seldon Core's v1 prediction protocol (``SeldonMessage``) with httpx, as Seldon's Python
microservice answers it (``seldon_core/utils.py construct_response_json``): the answer's
``data`` is of the kind the request sent (ndarray or tensor; anything not numeric comes
back as an ndarray), ``names`` are ``t:0..`` for a 2-D answer and empty for a 1-D one,
``meta`` echoes the request's ``puid`` and ``tags``; errors are Seldon's ``status`` object.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.serving.models_kit import IRIS_ROWS, Models, Server, Servers, expected


@pytest.fixture(scope="module", autouse=True)
def _started(servers: Servers) -> None:
    servers.start(["iris", "rf_seldon", "xgb_json"])


def predict(server: Server, body: Any, path: str = "/api/v1.0/predictions") -> Any:
    with server.http() as http:
        answer = http.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def assert_seldon_error(answer: Any, phrase: str) -> None:
    assert answer.status_code == 400, answer.text
    status = answer.json()["status"]
    assert status["status"] == 1  # FAILURE, as the Python microservice writes it
    assert status["code"] == -1
    assert status["reason"] == "MICROSERVICE_BAD_DATA"
    assert phrase in status["info"], status["info"]


def test_ndarray_in_ndarray_out(servers: Servers, trained: Models) -> None:
    body = {"data": {"ndarray": IRIS_ROWS.tolist()}, "meta": {"puid": "p-42", "tags": {"team": "a"}}}
    reply = predict(servers.get("iris"), body)
    assert reply["data"] == {"names": [], "ndarray": expected(trained["lr_skops"], IRIS_ROWS).tolist()}
    assert reply["meta"]["puid"] == "p-42"
    assert reply["meta"]["tags"] == {"team": "a"}
    assert reply["meta"]["requestPath"] == {"iris": "labdeck"}


def test_tensor_in_tensor_out(servers: Servers, trained: Models) -> None:
    body = {"data": {"tensor": {"shape": [3, 4], "values": IRIS_ROWS.reshape(-1).tolist()}}}
    reply = predict(servers.get("iris"), body)
    assert reply["data"] == {"names": [], "tensor": {"shape": [3], "values": expected(trained["lr_skops"], IRIS_ROWS).tolist()}}
    # made up when the request has none, a new one each time
    assert reply["meta"]["puid"] and reply["meta"]["puid"] != predict(servers.get("iris"), body)["meta"]["puid"]


def test_a_two_dimensional_answer_is_named_t0_to_tn(servers: Servers, trained: Models) -> None:
    xgb = servers.get("xgb_json")
    want = expected(trained["xgb_json"], IRIS_ROWS)
    reply = predict(xgb, {"data": {"ndarray": IRIS_ROWS.tolist()}})
    assert reply["data"]["names"] == ["t:0", "t:1", "t:2"]
    np.testing.assert_array_equal(np.array(reply["data"]["ndarray"], dtype=np.float32), want)
    reply = predict(xgb, {"data": {"tensor": {"shape": [3, 4], "values": IRIS_ROWS.reshape(-1).tolist()}}})
    assert reply["data"]["tensor"]["shape"] == [3, 3]
    np.testing.assert_array_equal(np.array(reply["data"]["tensor"]["values"], dtype=np.float32), want.reshape(-1))


def test_names_say_which_column_is_which(servers: Servers, trained: Models) -> None:
    """``data.names`` in another order than the model's columns: the values follow their names."""
    order = [2, 0, 3, 1]
    names = [trained.columns[i] for i in order]
    body = {"data": {"names": names, "ndarray": IRIS_ROWS[:, order].tolist()}}
    reply = predict(servers.get("iris"), body)
    assert reply["data"]["ndarray"] == expected(trained["lr_skops"], IRIS_ROWS).tolist()


def test_string_labels_come_back_as_an_ndarray(servers: Servers, trained: Models) -> None:
    forest = servers.get("rf_seldon")
    want = expected(trained["rf_seldon"], IRIS_ROWS).tolist()
    assert want == ["setosa", "virginica", "versicolor"]
    for data in ({"ndarray": IRIS_ROWS.tolist()}, {"tensor": {"shape": [3, 4], "values": IRIS_ROWS.reshape(-1).tolist()}}):
        reply = predict(forest, {"data": data})
        assert reply["data"] == {"names": [], "ndarray": want}, data
    reply = predict(forest, {"data": {"ndarray": IRIS_ROWS[:1].tolist()}})
    assert reply["data"] == {"names": [], "ndarray": ["setosa"]}


def test_other_paths_of_the_microservice(servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    want = expected(trained["lr_skops"], IRIS_ROWS).tolist()
    for path in ("/api/v0.1/predictions", "/predict"):
        assert predict(iris, {"data": {"ndarray": IRIS_ROWS.tolist()}}, path)["data"]["ndarray"] == want
    with iris.http() as http:
        assert http.get("/health/ping").text == "pong"
        assert http.get("/api/v1.0/health/status").status_code == 200
        meta = http.get("/api/v1.0/metadata").json()
    assert meta["name"] == "iris"
    assert meta["versions"] == ["3"]
    assert [i["name"] for i in meta["inputs"]] == trained.columns


def test_payloads_the_model_cannot_take_are_refused_in_seldons_shape(servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    with iris.http() as http:
        assert_seldon_error(http.post("/api/v1.0/predictions", json={"jsonData": {"rows": IRIS_ROWS.tolist()}}), "Input")
        assert_seldon_error(http.post("/api/v1.0/predictions", json={"strData": "5.1,3.5,1.4,0.2"}), "Input")
        assert_seldon_error(http.post("/api/v1.0/predictions", json={"binData": "!!"}), "base64")
        assert_seldon_error(http.post("/api/v1.0/predictions", json={"data": {"ndarray": [[5.1, 3.5, 1.4]]}}), "[rows, 4]")
        assert_seldon_error(http.post("/api/v1.0/predictions", json={"data": {"names": "a,b", "ndarray": [[1, 2]]}}), "names")
        assert_seldon_error(http.post("/api/v1.0/predictions", json={"data": {"tftensor": {}}}), "'ndarray' or 'tensor'")
        assert_seldon_error(http.post("/api/v1.0/predictions", json=[1, 2]), "JSON object")
        answer = http.post("/api/v1.0/predictions", json={"data": {"ndarray": IRIS_ROWS.tolist()}})
    assert answer.json()["data"]["ndarray"] == expected(trained["lr_skops"], IRIS_ROWS).tolist()


def feedback_count(server: Server) -> float:
    with server.http() as http:
        text = http.get("/metrics").text
    samples = [line for line in text.splitlines() if line.startswith("labdeck_serving_feedback_total{")]
    assert all('model="iris"' in line for line in samples), samples
    return sum(float(line.rsplit(" ", 1)[1]) for line in samples)


def test_feedback_is_accepted_and_counted(servers: Servers) -> None:
    iris = servers.get("iris")
    before = feedback_count(iris)
    body = {
        "request": {"data": {"ndarray": IRIS_ROWS.tolist()}},
        "response": {"data": {"names": [], "ndarray": [0, 2, 1]}},
        "reward": 1.0,
        "truth": {"data": {"ndarray": [0, 2, 2]}},
    }
    with iris.http() as http:
        for path in ("/api/v1.0/feedback", "/send-feedback"):
            answer = http.post(path, json=body)
            assert answer.status_code == 200, answer.text
            assert "data" in answer.json() and "meta" in answer.json()
        assert_seldon_error(http.post("/api/v1.0/feedback", json={**body, "reward": "great"}), "reward")
        assert_seldon_error(http.post("/api/v1.0/feedback", content=b"{nope"), "Malformed JSON")
    assert feedback_count(iris) == before + 2
