"""MLflow's scoring protocol (what ``mlflow models serve`` answers) with httpx: POST
``/invocations`` with exactly one of ``dataframe_split``, ``dataframe_records``,
``instances``, ``inputs`` (optionally ``params``), or a CSV body; the answer is
``{"predictions": ...}``, equal to the model's own; ``/ping``, ``/health`` and ``/version``;
bad input is a 400 in MLflow's error shape (``{"error_code": "BAD_REQUEST", "message"}``).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.serving.models_kit import IRIS_ROWS, Models, Server, Servers, expected


@pytest.fixture(scope="module")
def iris(servers: Servers) -> Server:
    servers.start(["iris", "rf_seldon"])
    return servers.get("iris")


def invoke(server: Server, body: Any = None, **kwargs: Any) -> Any:
    with server.http() as http:
        answer = http.post("/invocations", json=body, **kwargs) if body is not None else http.post("/invocations", **kwargs)
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == {"predictions"}
    return answer.json()["predictions"]


def assert_mlflow_error(answer: Any, phrase: str) -> None:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error_code"] == "BAD_REQUEST"
    assert phrase in body["message"], body["message"]


def test_every_json_format(iris: Server, trained: Models) -> None:
    frame = pd.DataFrame(trained.X, columns=trained.columns)
    want = expected(trained["lr_skops"], trained.X).tolist()
    split = frame.to_dict(orient="split")
    assert invoke(iris, {"dataframe_split": split}) == want
    assert invoke(iris, {"dataframe_split": {"columns": split["columns"], "data": split["data"]}}) == want
    reordered = frame[trained.columns[::-1]].to_dict(orient="split")
    assert invoke(iris, {"dataframe_split": reordered}) == want  # columns are matched by name
    assert invoke(iris, {"dataframe_records": frame.to_dict(orient="records")}) == want
    assert invoke(iris, {"instances": trained.X.tolist()}) == want
    assert invoke(iris, {"instances": {c: trained.X[:, i].tolist() for i, c in enumerate(trained.columns)}}) == want
    assert invoke(iris, {"inputs": trained.X.tolist()}) == want
    assert invoke(iris, {"inputs": {c: trained.X[:, i].tolist() for i, c in enumerate(trained.columns)}}) == want


def test_csv(iris: Server, trained: Models) -> None:
    text = pd.DataFrame(trained.X, columns=trained.columns).to_csv(index=False)
    got = invoke(iris, content=text.encode(), headers={"Content-Type": "text/csv"})
    assert got == expected(trained["lr_skops"], trained.X).tolist()
    # pandas' CSV is what MLflow reads too: the same floats, to the bit
    assert np.array_equal(pd.read_csv(io.StringIO(text)).to_numpy(), trained.X)


def test_params_reach_the_model(iris: Server, trained: Models) -> None:
    got = invoke(iris, {"inputs": IRIS_ROWS.tolist(), "params": {"method": "predict_proba"}})
    np.testing.assert_array_equal(np.array(got), expected(trained["lr_skops"], IRIS_ROWS, "predict_proba"))


def test_text_predictions(servers: Servers, trained: Models) -> None:
    forest = servers.get("rf_seldon")
    assert invoke(forest, {"instances": trained.X.tolist()}) == expected(trained["rf_seldon"], trained.X).tolist()


def test_ping_health_version(iris: Server) -> None:
    with iris.http() as http:
        for path in ("/ping", "/health"):
            answer = http.get(path)
            assert answer.status_code == 200
        version = http.get("/version")
    assert version.status_code == 200
    assert version.text.strip()


def test_bad_bodies_in_mlflows_shape(iris: Server, trained: Models) -> None:
    columns = trained.columns
    with iris.http() as http:
        for body, phrase in (
            ({}, "exactly one of"),
            ({"inputs": [[1, 2, 3, 4]], "instances": [[1, 2, 3, 4]]}, "exactly one of"),
            ({"dataframe_split": {"columns": columns}}, "needs 'data'"),
            ({"dataframe_split": {"columns": columns[:3], "data": IRIS_ROWS.tolist()}}, "4 values per row but 3 columns"),
            ({"dataframe_split": {"columns": columns, "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0]]}}, "rectangular"),
            ({"dataframe_records": [{columns[0]: 5.1}]}, "Missing input"),
            ({"dataframe_records": []}, "non-empty list"),
            ({"inputs": [[5.1, 3.5, 1.4]]}, "[rows, 4]"),
            ({"inputs": [["a", 3.5, 1.4, 0.2]]}, "must be FP64, got BYTES"),
            ({"inputs": IRIS_ROWS.tolist(), "params": "predict_proba"}, "'params' must be an object"),
            ({"inputs": IRIS_ROWS.tolist(), "params": {"method": "explain"}}, "no output 'explain'"),
            ([1, 2], "JSON object"),
        ):
            assert_mlflow_error(http.post("/invocations", json=body), phrase)
        assert_mlflow_error(http.post("/invocations", content=b'{"inputs": [[1,', headers={"Content-Type": "application/json"}), "Malformed JSON")
        assert_mlflow_error(http.post("/invocations", content=b"", headers={"Content-Type": "text/csv"}), "CSV")
        assert_mlflow_error(http.post("/invocations", content=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"}), "Unknown input 'a'")
        assert_mlflow_error(http.post("/invocations", content=b"x", headers={"Content-Type": "text/plain"}), "content type")
    assert invoke(iris, {"inputs": IRIS_ROWS.tolist()}) == expected(trained["lr_skops"], IRIS_ROWS).tolist()
