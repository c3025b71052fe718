"""Every validation rule of the MLflow tracking API and every kind of bad input, over raw
HTTP on SQLite and PostgreSQL: the 4xx status, the ``error_code`` and the message.

Messages are MLflow's wherever MLflow has one (``mlflow/utils/validation.py``,
``mlflow/server/handlers.py``, ``sqlalchemy_store.py``). An autouse check runs on every
response of these tests: never a 5xx, and an error body is exactly ``error_code`` and
``message``. Where a write is refused, the test reads back that nothing was stored.

MLflow appends " See the API docs for more information about request parameters." to the
errors of its request-schema checks; labdeck sends the message without that sentence.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from tests.mlflow_errors import check_error_shape, every_response_checked, expect_error  # noqa: F401

from labdeck.auth.needs import Public
from labdeck.wire.mlflow_rpc import RpcRequest, RpcRouter, rpc

BAD_CHARACTERS = (
    "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), "
    "spaces ( ), colon(:) and slashes (/)."
)
DOUBLE_MAX = 1.7976931348623157e308


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def new_experiment(api: httpx.Client, name: str | None = None) -> str:
    return ok(api.post("/experiments/create", json={"name": name or f"exp-{uuid.uuid4().hex[:8]}"}))["experiment_id"]


def new_run(api: httpx.Client, experiment_id: str | None = None) -> str:
    experiment_id = experiment_id or new_experiment(api)
    return ok(api.post("/runs/create", json={"experiment_id": experiment_id}))["run"]["info"]["run_id"]


def run_data(api: httpx.Client, run_id: str) -> dict:
    return ok(api.get("/runs/get", params={"run_id": run_id}))["run"]["data"]


def params_of(api: httpx.Client, run_id: str) -> dict[str, str]:
    return {p["key"]: p["value"] for p in run_data(api, run_id).get("params", [])}


def tags_of(api: httpx.Client, run_id: str) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run_data(api, run_id).get("tags", [])}


def metrics_of(api: httpx.Client, run_id: str) -> dict[str, object]:
    return {m["key"]: m["value"] for m in run_data(api, run_id).get("metrics", [])}


def metric(key: str = "m", value: object = 1.0, timestamp: object = 1, step: object = 0) -> dict:
    return {"key": key, "value": value, "timestamp": timestamp, "step": step}


# ---------------------------------------------------------------------- log-batch limits


def batch_limit_message(limit: int, what: str, count: int) -> str:
    return (
        f"A batch logging request can contain at most {limit} {what}. Got {count} {what}. "
        f"Please split up {what} across multiple requests and try again."
    )


def test_log_batch_limits(api):
    run_id = new_run(api)
    cases = [
        ({"metrics": [metric(f"m{i}") for i in range(1001)]}, batch_limit_message(1000, "metrics", 1001)),
        ({"params": [{"key": f"p{i}", "value": "v"} for i in range(101)]}, batch_limit_message(100, "params", 101)),
        ({"tags": [{"key": f"t{i}", "value": "v"} for i in range(101)]}, batch_limit_message(100, "tags", 101)),
        (
            {
                "metrics": [metric(f"m{i}") for i in range(900)],
                "params": [{"key": f"p{i}", "value": "v"} for i in range(100)],
                "tags": [{"key": "t", "value": "v"}],
            },
            batch_limit_message(1000, "metrics, params, and tags", 1001),
        ),
    ]
    for body, message in cases:
        expect_error(
            api.post("/runs/log-batch", json={"run_id": run_id, **body}), 400, "INVALID_PARAMETER_VALUE", message
        )
    data = run_data(api, run_id)
    assert "metrics" not in data and "params" not in data
    assert set(tags_of(api, run_id)) == {"mlflow.runName"}

    at_limit = {
        "metrics": [metric(f"m{i}") for i in range(900)],
        "params": [{"key": f"p{i}", "value": "v"} for i in range(50)],
        "tags": [{"key": f"t{i}", "value": "v"} for i in range(50)],
    }
    ok(api.post("/runs/log-batch", json={"run_id": run_id, **at_limit}))
    assert len(metrics_of(api, run_id)) == 900


def test_log_batch_duplicate_param_keys(api):
    run_id = new_run(api)
    params = [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}, {"key": "a", "value": "1"}]
    expect_error(
        api.post("/runs/log-batch", json={"run_id": run_id, "params": params}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Duplicate parameter keys have been submitted: ['a']. Please ensure the request contains only one "
        "param value per param key.",
    )
    assert params_of(api, run_id) == {}


def test_log_batch_is_all_or_nothing(api):
    run_id = new_run(api)
    body = {
        "run_id": run_id,
        "metrics": [metric("good"), metric("bad", value="abc")],
        "params": [{"key": "p", "value": "v"}],
        "tags": [{"key": "t", "value": "v"}],
    }
    expect_error(
        api.post("/runs/log-batch", json=body),
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid value \"abc\" for parameter 'metrics[1].value' supplied: (timestamp=1). "
        "Please specify value as a valid double (64-bit floating point)",
    )
    assert run_data(api, run_id).keys() == {"tags"}
    assert set(tags_of(api, run_id)) == {"mlflow.runName"}


# ---------------------------------------------------------------------- key names


def resolves_message(resolved: str) -> str:
    return (
        "Names may be treated as files in certain cases, and must not resolve to other names when treated "
        f"as such. This name would resolve to '{resolved}'"
    )


BAD_KEYS = [
    ("a!b", BAD_CHARACTERS),
    ("tab\there", BAD_CHARACTERS),
    ("é?", BAD_CHARACTERS),
    ("..", resolves_message("..")),
    ("../up", resolves_message("../up")),
    ("/abs", resolves_message("/abs")),
    ("a/../b", resolves_message("b")),
    ("a//b", resolves_message("a/b")),
    ("trailing/", resolves_message("trailing")),
    (".", resolves_message(".")),
]


@pytest.mark.parametrize(
    ("endpoint", "make", "path", "too_long_name"),
    [
        ("/runs/log-parameter", lambda k: {"key": k, "value": "v"}, "key", "Param key"),
        ("/runs/set-tag", lambda k: {"key": k, "value": "v"}, "key", "key"),
        ("/runs/log-metric", lambda k: metric(k), "name", "Metric name"),
        ("/runs/log-batch", lambda k: {"params": [{"key": k, "value": "v"}]}, "params[0].key", "Param key"),
        ("/runs/log-batch", lambda k: {"tags": [{"key": k, "value": "v"}]}, "tags[0].key", "tags[0].key"),
        ("/runs/log-batch", lambda k: {"metrics": [metric(k)]}, "metrics[0].name", "Metric name"),
    ],
    ids=["log-parameter", "set-tag", "log-metric", "batch-param", "batch-tag", "batch-metric"],
)
def test_run_key_names(api, endpoint, make, path, too_long_name):
    run_id = new_run(api)
    for key, reason in BAD_KEYS:
        response = api.post(endpoint, json={"run_id": run_id, **make(key)})
        shown = json.dumps(key, ensure_ascii=False)
        expect_error(
            response, 400, "INVALID_PARAMETER_VALUE", f"Invalid value {shown} for parameter '{path}' supplied: {reason}"
        )
    expect_error(
        api.post(endpoint, json={"run_id": run_id, **make("k" * 251)}),
        400,
        "INVALID_PARAMETER_VALUE",
        f"'{too_long_name}' exceeds the maximum length of 250 characters",
    )
    missing_path = path.replace(".name", ".key") if "." in path else "key"
    expect_error(
        api.post(endpoint, json={"run_id": run_id, **make(None)}),
        400,
        "INVALID_PARAMETER_VALUE",
        f"Missing value for required parameter '{missing_path}'.",
    )
    assert run_data(api, run_id).keys() <= {"tags"}
    assert set(tags_of(api, run_id)) == {"mlflow.runName"}

    for good in ("k" * 250, "a/b.c-d_e f:g", "x"):
        ok(api.post(endpoint, json={"run_id": run_id, **make(good)}))


def test_experiment_tag_key_names(api):
    experiment_id = new_experiment(api)
    for key, reason in BAD_KEYS:
        expect_error(
            api.post(
                "/experiments/set-experiment-tag", json={"experiment_id": experiment_id, "key": key, "value": "v"}
            ),
            400,
            "INVALID_PARAMETER_VALUE",
            f"Invalid value {json.dumps(key, ensure_ascii=False)} for parameter 'key' supplied: {reason}",
        )
    expect_error(
        api.post(
            "/experiments/set-experiment-tag", json={"experiment_id": experiment_id, "key": "k" * 251, "value": "v"}
        ),
        400,
        "INVALID_PARAMETER_VALUE",
        "'key' exceeds the maximum length of 250 characters",
    )
    expect_error(
        api.post("/experiments/set-experiment-tag", json={"experiment_id": experiment_id, "value": "v"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'key'.",
    )
    expect_error(
        api.post("/experiments/create", json={"name": "tagged", "tags": [{"key": "a!b", "value": "v"}]}),
        400,
        "INVALID_PARAMETER_VALUE",
        f"Invalid value \"a!b\" for parameter 'key' supplied: {BAD_CHARACTERS}",
    )
    expect_error(
        api.get("/experiments/get-by-name", params={"experiment_name": "tagged"}), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    assert "tags" not in ok(api.get("/experiments/get", params={"experiment_id": experiment_id}))["experiment"]


# ---------------------------------------------------------------------- value lengths


def test_long_param_and_tag_values_are_truncated(api):
    run_id = new_run(api)
    ok(api.post("/runs/log-parameter", json={"run_id": run_id, "key": "p", "value": "a" * 6001}))
    ok(api.post("/runs/set-tag", json={"run_id": run_id, "key": "t", "value": "b" * 8001}))
    ok(
        api.post(
            "/runs/log-batch",
            json={
                "run_id": run_id,
                "params": [{"key": "bp", "value": "c" * 7000}],
                "tags": [{"key": "bt", "value": "d" * 9000}],
            },
        )
    )
    params, tags = params_of(api, run_id), tags_of(api, run_id)
    assert params["p"] == "a" * 6000 and params["bp"] == "c" * 6000
    assert tags["t"] == "b" * 8000 and tags["bt"] == "d" * 8000
    # logging the same long value again is the same (truncated) param: no conflict
    ok(api.post("/runs/log-parameter", json={"run_id": run_id, "key": "p", "value": "a" * 6001}))


def test_experiment_tag_value_limit(api):
    experiment_id = new_experiment(api)
    message = "'value' exceeds the maximum length of 20000 characters"
    expect_error(
        api.post(
            "/experiments/set-experiment-tag", json={"experiment_id": experiment_id, "key": "k", "value": "v" * 20001}
        ),
        400,
        "INVALID_PARAMETER_VALUE",
        message,
    )
    expect_error(
        api.post("/experiments/create", json={"name": "long-tag", "tags": [{"key": "k", "value": "v" * 20001}]}),
        400,
        "INVALID_PARAMETER_VALUE",
        message,
    )
    experiment = ok(api.get("/experiments/get", params={"experiment_id": experiment_id}))["experiment"]
    assert "tags" not in experiment
    ok(
        api.post(
            "/experiments/set-experiment-tag", json={"experiment_id": experiment_id, "key": "k", "value": "v" * 20000}
        )
    )
    experiment = ok(api.get("/experiments/get", params={"experiment_id": experiment_id}))["experiment"]
    assert experiment["tags"] == [{"key": "k", "value": "v" * 20000}]


def test_experiment_names(api):
    cases = [
        ({}, "Missing value for required parameter 'name'."),
        ({"name": None}, "Missing value for required parameter 'name'."),
        ({"name": ""}, "Missing value for required parameter 'name'."),
        ({"name": "   "}, "Invalid experiment name: '   '"),
        ({"name": "\t\n"}, "Invalid experiment name: '\t\n'"),
        ({"name": "n" * 501}, "'name' exceeds the maximum length of 500 characters"),
    ]
    for body, message in cases:
        expect_error(api.post("/experiments/create", json=body), 400, "INVALID_PARAMETER_VALUE", message)
    experiment_id = new_experiment(api, "n" * 500)
    for new_name, message in [
        ("", "Missing value for required parameter 'new_name'."),
        ("  ", "Invalid experiment name: '  '"),
        ("n" * 501, "'name' exceeds the maximum length of 500 characters"),
    ]:
        expect_error(
            api.post("/experiments/update", json={"experiment_id": experiment_id, "new_name": new_name}),
            400,
            "INVALID_PARAMETER_VALUE",
            message,
        )
    assert ok(api.get("/experiments/get", params={"experiment_id": experiment_id}))["experiment"]["name"] == "n" * 500


def test_bounded_string_fields(api):
    """Strings that go to bounded columns are refused when too long, on SQLite as on PostgreSQL."""
    experiment_id = new_experiment(api)
    run_id = new_run(api, experiment_id)
    cases = [
        (
            "/runs/create",
            {"experiment_id": experiment_id, "user_id": "u" * 257},
            "'user_id' exceeds the maximum length of 256 characters",
        ),
        (
            "/runs/create",
            {"experiment_id": experiment_id, "run_name": "r" * 251},
            "'run_name' exceeds the maximum length of 250 characters",
        ),
        (
            "/runs/create",
            {"experiment_id": experiment_id, "tags": [{"key": "mlflow.runName", "value": "r" * 251}]},
            "'mlflow.runName' exceeds the maximum length of 250 characters",
        ),
        (
            "/runs/update",
            {"run_id": run_id, "run_name": "r" * 251},
            "'run_name' exceeds the maximum length of 250 characters",
        ),
        (
            "/runs/log-metric",
            {"run_id": run_id, **metric(), "model_id": "m" * 65},
            "'model_id' exceeds the maximum length of 64 characters",
        ),
        (
            "/runs/log-metric",
            {"run_id": run_id, **metric(), "dataset_name": "d" * 501},
            "'dataset_name' exceeds the maximum length of 500 characters",
        ),
        (
            "/runs/log-metric",
            {"run_id": run_id, **metric(), "dataset_digest": "d" * 37},
            "'dataset_digest' exceeds the maximum length of 36 characters",
        ),
        (
            "/runs/log-batch",
            {"run_id": run_id, "metrics": [{**metric(), "model_id": "m" * 65}]},
            "'metrics[0].model_id' exceeds the maximum length of 64 characters",
        ),
        (
            "/runs/log-inputs",
            {"run_id": run_id, "models": [{"model_id": "m" * 65}]},
            "'models[0].model_id' exceeds the maximum length of 64 characters",
        ),
        (
            "/runs/outputs",
            {"run_id": run_id, "models": [{"model_id": "m" * 65, "step": 1}]},
            "'models[0].model_id' exceeds the maximum length of 64 characters",
        ),
        (
            "/logged-models",
            {"experiment_id": experiment_id, "name": "n" * 501},
            "'name' exceeds the maximum length of 500 characters",
        ),
        (
            "/logged-models",
            {"experiment_id": experiment_id, "model_type": "t" * 501},
            "'model_type' exceeds the maximum length of 500 characters",
        ),
    ]
    for endpoint, body, message in cases:
        expect_error(api.post(endpoint, json=body), 400, "INVALID_PARAMETER_VALUE", message)
    runs = ok(api.post("/runs/search", json={"experiment_ids": [experiment_id]}))["runs"]
    assert [r["info"]["run_id"] for r in runs] == [run_id]
    assert run_data(api, run_id).keys() == {"tags"}
    assert "models" not in ok(api.post("/logged-models/search", json={"experiment_ids": [experiment_id]}))


# ---------------------------------------------------------------------- metric values


def test_metric_values(api):
    run_id = new_run(api)
    not_double = "(timestamp=1). Please specify value as a valid double (64-bit floating point)"
    cases = [
        ("abc", f"Invalid value \"abc\" for parameter 'value' supplied: {not_double}"),
        ("", f"Invalid value \"\" for parameter 'value' supplied: {not_double}"),
        ("nan!", f"Invalid value \"nan!\" for parameter 'value' supplied: {not_double}"),
        (True, f"Invalid value true for parameter 'value' supplied: {not_double}"),
        (False, f"Invalid value false for parameter 'value' supplied: {not_double}"),
        ([1.0], f"Invalid value [1.0] for parameter 'value' supplied: {not_double}"),
        ({"v": 1}, f"Invalid value {{\"v\":1}} for parameter 'value' supplied: {not_double}"),
        (None, "Missing value for required parameter 'value'."),
    ]
    for value, message in cases:
        expect_error(
            api.post("/runs/log-metric", json={"run_id": run_id, **metric(value=value)}),
            400,
            "INVALID_PARAMETER_VALUE",
            message,
        )
    expect_error(
        api.post("/runs/log-batch", json={"run_id": run_id, "metrics": [metric(value=None)]}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'metrics[0].value'.",
    )
    assert "metrics" not in run_data(api, run_id)
    # numbers written as strings are numbers
    ok(api.post("/runs/log-metric", json={"run_id": run_id, **metric("s", value="2.5")}))
    assert metrics_of(api, run_id) == {"s": 2.5}


def test_nan_and_infinity_are_accepted(api):
    run_id = new_run(api)
    for key, value in [("nan", "NaN"), ("inf", "Infinity"), ("ninf", "-Infinity")]:
        ok(api.post("/runs/log-metric", json={"run_id": run_id, **metric(key, value=value)}))
    ok(api.post("/runs/log-batch", json={"run_id": run_id, "metrics": [metric("bnan", value="NaN")]}))
    response = api.get("/runs/get", params={"run_id": run_id})
    assert '"value":"NaN"' in response.text.replace(" ", "")
    assert metrics_of(api, run_id) == {"nan": "NaN", "bnan": "NaN", "inf": DOUBLE_MAX, "ninf": -DOUBLE_MAX}
    history = ok(api.get("/metrics/get-history", params={"run_id": run_id, "metric_key": "nan"}))["metrics"]
    assert [m["value"] for m in history] == ["NaN"]


def test_metric_timestamp_and_step(api):
    run_id = new_run(api)
    cases = [
        ({"timestamp": None}, "Missing value for required parameter 'timestamp'."),
        (
            {"timestamp": -1},
            "Invalid value -1 for parameter 'timestamp' supplied: metric 'm' (value=1.0). "
            "Timestamp must be a nonnegative long (64-bit integer) ",
        ),
        (
            {"timestamp": "soon"},
            "Invalid value \"soon\" for parameter 'timestamp' supplied: metric 'm' (value=1.0). "
            "Timestamp must be a nonnegative long (64-bit integer) ",
        ),
        (
            {"timestamp": 2**63},
            "Invalid value 9223372036854775808 for parameter 'timestamp' supplied: metric 'm' (value=1.0). "
            "Timestamp must be a nonnegative long (64-bit integer) ",
        ),
        (
            {"step": 1.5},
            "Invalid value 1.5 for parameter 'step' supplied: metric 'm' (value=1.0). "
            "Step must be a valid long (64-bit integer).",
        ),
        (
            {"step": "two"},
            "Invalid value \"two\" for parameter 'step' supplied: metric 'm' (value=1.0). "
            "Step must be a valid long (64-bit integer).",
        ),
        (
            {"step": True},
            "Invalid value true for parameter 'step' supplied: metric 'm' (value=1.0). "
            "Step must be a valid long (64-bit integer).",
        ),
    ]
    for override, message in cases:
        body = {"run_id": run_id, **metric(), **override}
        expect_error(api.post("/runs/log-metric", json=body), 400, "INVALID_PARAMETER_VALUE", message)
    expect_error(
        api.post("/runs/log-batch", json={"run_id": run_id, "metrics": [{"key": "m", "value": 1}]}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'metrics[0].timestamp'.",
    )
    expect_error(
        api.post("/runs/log-batch", json={"run_id": run_id, "metrics": [metric(step=-0.5)]}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid value -0.5 for parameter 'metrics[0].step' supplied: metric 'm' (value=1.0). "
        "Step must be a valid long (64-bit integer).",
    )
    assert "metrics" not in run_data(api, run_id)
    # int64 bounds, integral floats and digit strings are fine; negative steps too
    for override in ({"timestamp": 2**63 - 1}, {"step": -(2**63)}, {"step": 3.0}, {"timestamp": "12", "step": "-4"}):
        ok(api.post("/runs/log-metric", json={"run_id": run_id, **metric(), **override}))
    history = ok(api.get("/metrics/get-history", params={"run_id": run_id, "metric_key": "m"}))["metrics"]
    assert sorted((m["timestamp"], m["step"]) for m in history) == sorted(
        [(2**63 - 1, 0), (1, -(2**63)), (1, 3), (12, -4)]
    )


# ---------------------------------------------------------------------- params are immutable


def test_param_immutability(api):
    run_id = new_run(api)
    ok(api.post("/runs/log-parameter", json={"run_id": run_id, "key": "lr", "value": "0.1"}))
    ok(api.post("/runs/log-parameter", json={"run_id": run_id, "key": "lr", "value": "0.1"}))
    expect_error(
        api.post("/runs/log-parameter", json={"run_id": run_id, "key": "lr", "value": "0.2"}),
        400,
        "INVALID_PARAMETER_VALUE",
        f"Changing param values is not allowed. Param with key='lr' was already logged with value='0.1' "
        f"for run ID='{run_id}'. Attempted logging new value '0.2'.",
    )
    batch = {"run_id": run_id, "params": [{"key": "lr", "value": "0.2"}, {"key": "new", "value": "x"}]}
    expect_error(
        api.post("/runs/log-batch", json=batch),
        400,
        "INVALID_PARAMETER_VALUE",
        "Changing param values is not allowed. Params were already logged="
        f"'[{{'key': 'lr', 'old_value': '0.1', 'new_value': '0.2'}}]' for run ID='{run_id}'.",
    )
    assert params_of(api, run_id) == {"lr": "0.1"}
    expect_error(
        api.post("/runs/log-batch", json={"run_id": run_id, "params": [{"key": "lr", "value": "0.3"}]}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Changing param values is not allowed. Params were already logged="
        f"'[{{'key': 'lr', 'old_value': '0.1', 'new_value': '0.3'}}]' for run ID='{run_id}'.",
    )
    ok(
        api.post(
            "/runs/log-batch",
            json={"run_id": run_id, "params": [{"key": "lr", "value": "0.1"}, {"key": "new", "value": "x"}]},
        )
    )
    assert params_of(api, run_id) == {"lr": "0.1", "new": "x"}


# ---------------------------------------------------------------------- lifecycle


def test_writes_to_a_deleted_run(api):
    experiment_id = new_experiment(api)
    run_id = new_run(api, experiment_id)
    ok(api.post("/runs/set-tag", json={"run_id": run_id, "key": "keep", "value": "1"}))
    ok(api.post("/runs/delete", json={"run_id": run_id}))
    before = ok(api.get("/runs/get", params={"run_id": run_id}))["run"]
    message = f"The run {run_id} must be in the 'active' state. Current state is deleted."
    model_json = json.dumps({"artifact_path": "m", "flavors": {}, "utc_time_created": "now", "run_id": run_id})
    dataset = {"name": "d", "digest": "abc", "source_type": "local", "source": "{}"}
    writes = [
        ("/runs/log-metric", metric()),
        ("/runs/log-parameter", {"key": "p", "value": "v"}),
        ("/runs/log-batch", {"params": [{"key": "p", "value": "v"}]}),
        ("/runs/log-batch", {"metrics": [metric()]}),
        ("/runs/set-tag", {"key": "t", "value": "v"}),
        ("/runs/delete-tag", {"key": "keep"}),
        ("/runs/log-inputs", {"datasets": [{"dataset": dataset}]}),
        ("/runs/outputs", {"models": [{"model_id": "m-1", "step": 0}]}),
        ("/runs/log-model", {"model_json": model_json}),
        ("/runs/update", {"status": "FINISHED", "end_time": 5}),
    ]
    for endpoint, body in writes:
        expect_error(api.post(endpoint, json={"run_id": run_id, **body}), 400, "INVALID_PARAMETER_VALUE", message)
    assert ok(api.get("/runs/get", params={"run_id": run_id}))["run"] == before
    ok(api.post("/runs/restore", json={"run_id": run_id}))
    ok(api.post("/runs/log-parameter", json={"run_id": run_id, "key": "p", "value": "v"}))


def test_writes_to_a_deleted_experiment(api):
    experiment_id = new_experiment(api)
    ok(api.post("/experiments/set-experiment-tag", json={"experiment_id": experiment_id, "key": "keep", "value": "1"}))
    ok(api.post("/experiments/delete", json={"experiment_id": experiment_id}))
    before = ok(api.get("/experiments/get", params={"experiment_id": experiment_id}))["experiment"]
    message = f"The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
    for endpoint, body in [
        ("/experiments/set-experiment-tag", {"key": "k", "value": "v"}),
        ("/experiments/delete-experiment-tag", {"key": "keep"}),
        ("/runs/create", {}),
        ("/logged-models", {"name": "model"}),
    ]:
        expect_error(
            api.post(endpoint, json={"experiment_id": experiment_id, **body}), 400, "INVALID_PARAMETER_VALUE", message
        )
    expect_error(
        api.post("/experiments/update", json={"experiment_id": experiment_id, "new_name": "renamed"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Cannot rename a non-active experiment.",
    )
    expect_error(
        api.post("/experiments/delete", json={"experiment_id": experiment_id}),
        400,
        "INVALID_PARAMETER_VALUE",
        f"Cannot delete experiment {experiment_id}: it is already deleted.",
    )
    assert ok(api.get("/experiments/get", params={"experiment_id": experiment_id}))["experiment"] == before


def test_duplicate_experiment_names(api):
    new_experiment(api, "taken")
    deleted = new_experiment(api, "was-deleted")
    ok(api.post("/experiments/delete", json={"experiment_id": deleted}))
    other = new_experiment(api, "other")
    for name in ("taken", "was-deleted"):
        expect_error(
            api.post("/experiments/create", json={"name": name}),
            400,
            "RESOURCE_ALREADY_EXISTS",
            f"Experiment(name={name}) already exists.",
        )
        expect_error(
            api.post("/experiments/update", json={"experiment_id": other, "new_name": name}),
            400,
            "RESOURCE_ALREADY_EXISTS",
            f"Experiment(name={name}) already exists.",
        )
    assert ok(api.get("/experiments/get", params={"experiment_id": other}))["experiment"]["name"] == "other"
    names = [
        e["name"]
        for e in ok(api.post("/experiments/search", json={"max_results": 100, "view_type": "ALL"}))["experiments"]
    ]
    assert sorted(names) == ["Default", "other", "taken", "was-deleted"]


# ---------------------------------------------------------------------- ids


def test_unknown_ids_are_not_found(api):
    missing_run = uuid.uuid4().hex
    run_message = f"Run with id={missing_run} not found"
    for method, endpoint, kwargs in [
        ("GET", "/runs/get", {"params": {"run_id": missing_run}}),
        ("GET", "/metrics/get-history", {"params": {"run_id": missing_run, "metric_key": "m"}}),
        ("POST", "/runs/log-metric", {"json": {"run_id": missing_run, **metric()}}),
        ("POST", "/runs/log-parameter", {"json": {"run_id": missing_run, "key": "k", "value": "v"}}),
        ("POST", "/runs/log-batch", {"json": {"run_id": missing_run, "tags": [{"key": "k", "value": "v"}]}}),
        ("POST", "/runs/set-tag", {"json": {"run_id": missing_run, "key": "k", "value": "v"}}),
        ("POST", "/runs/delete-tag", {"json": {"run_id": missing_run, "key": "k"}}),
        ("POST", "/runs/update", {"json": {"run_id": missing_run, "status": "FINISHED"}}),
        ("POST", "/runs/delete", {"json": {"run_id": missing_run}}),
        ("POST", "/runs/restore", {"json": {"run_id": missing_run}}),
    ]:
        expect_error(api.request(method, endpoint, **kwargs), 404, "RESOURCE_DOES_NOT_EXIST", run_message)
    experiment_message = "No Experiment with id=4242 exists"
    for method, endpoint, kwargs in [
        ("GET", "/experiments/get", {"params": {"experiment_id": "4242"}}),
        ("POST", "/experiments/update", {"json": {"experiment_id": "4242", "new_name": "x"}}),
        ("POST", "/experiments/delete", {"json": {"experiment_id": "4242"}}),
        ("POST", "/experiments/restore", {"json": {"experiment_id": "4242"}}),
        ("POST", "/experiments/set-experiment-tag", {"json": {"experiment_id": "4242", "key": "k", "value": "v"}}),
        ("POST", "/experiments/delete-experiment-tag", {"json": {"experiment_id": "4242", "key": "k"}}),
        ("POST", "/runs/create", {"json": {"experiment_id": "4242"}}),
        ("POST", "/logged-models", {"json": {"experiment_id": "4242"}}),
    ]:
        expect_error(api.request(method, endpoint, **kwargs), 404, "RESOURCE_DOES_NOT_EXIST", experiment_message)
    expect_error(
        api.get("/experiments/get-by-name", params={"experiment_name": "absent"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
        "Could not find experiment with name 'absent'",
    )


def test_malformed_ids_are_bad_requests(api):
    for run_id in ("not a run!", "-leading-dash", "x" * 257, "../etc"):
        shown = json.dumps(run_id)
        for method, endpoint, kwargs in [
            ("GET", "/runs/get", {"params": {"run_id": run_id}}),
            ("POST", "/runs/log-parameter", {"json": {"run_id": run_id, "key": "k", "value": "v"}}),
            ("POST", "/runs/delete", {"json": {"run_id": run_id}}),
        ]:
            expect_error(
                api.request(method, endpoint, **kwargs),
                400,
                "INVALID_PARAMETER_VALUE",
                f"Invalid value {shown} for parameter 'run_id' supplied.",
            )
    for experiment_id in ("abc", "-1", "1.5", " 1", "1" * 19):
        message = f"Invalid experiment ID '{experiment_id}'. Experiment ID must be a valid integer."
        expect_error(
            api.get("/experiments/get", params={"experiment_id": experiment_id}),
            400,
            "INVALID_PARAMETER_VALUE",
            message,
        )
        expect_error(
            api.post("/runs/create", json={"experiment_id": experiment_id}), 400, "INVALID_PARAMETER_VALUE", message
        )
        expect_error(
            api.post("/runs/search", json={"experiment_ids": ["0", experiment_id]}),
            400,
            "INVALID_PARAMETER_VALUE",
            message,
        )
    # an integer beyond the 32-bit id column cannot name an experiment (PostgreSQL would fail)
    too_big = "99999999999"
    message = f"Invalid experiment ID '{too_big}'. Experiment ID must be a valid integer no greater than 2147483647."
    expect_error(
        api.get("/experiments/get", params={"experiment_id": too_big}), 400, "INVALID_PARAMETER_VALUE", message
    )
    expect_error(api.post("/runs/create", json={"experiment_id": too_big}), 400, "INVALID_PARAMETER_VALUE", message)
    expect_error(api.post("/runs/search", json={"experiment_ids": [too_big]}), 400, "INVALID_PARAMETER_VALUE", message)
    expect_error(
        api.post("/logged-models/search", json={"experiment_ids": [too_big]}), 400, "INVALID_PARAMETER_VALUE", message
    )
    expect_error(
        api.post("/experiments/set-experiment-tag", json={"experiment_id": too_big, "key": "k", "value": "v"}),
        400,
        "INVALID_PARAMETER_VALUE",
        message,
    )
    ok(api.get("/experiments/get", params={"experiment_id": "0"}))
    expect_error(api.get("/experiments/get", params={"experiment_id": "2147483647"}), 404, "RESOURCE_DOES_NOT_EXIST")


# ---------------------------------------------------------------------- request bodies


def test_malformed_and_non_object_bodies(api):
    headers = {"content-type": "application/json"}
    expect_error(
        api.post("/experiments/create", content=b'{"name": ', headers=headers),
        400,
        "MALFORMED_REQUEST",
        starts="Malformed JSON in request body: ",
    )
    expect_error(
        api.post("/experiments/create", content=b"{'name': 'x'}", headers=headers),
        400,
        "MALFORMED_REQUEST",
        starts="Malformed JSON",
    )
    expect_error(
        api.post("/experiments/create", content=b'{"name": NaN}', headers=headers),
        400,
        "MALFORMED_REQUEST",
        starts="Malformed JSON",
    )
    expect_error(
        api.post("/experiments/create", content=b"\xff\xfe", headers=headers),
        400,
        "MALFORMED_REQUEST",
        starts="Malformed JSON",
    )
    for body in (b"[1, 2]", b"42", b"null", b"true", b'"[1]"', b'"\\"text\\""'):
        expect_error(
            api.post("/experiments/create", content=body, headers=headers),
            400,
            "MALFORMED_REQUEST",
            "Request body must be a JSON object.",
        )
    expect_error(
        api.post("/experiments/create", content=b'"not json"', headers=headers),
        400,
        "MALFORMED_REQUEST",
        starts="Malformed JSON",
    )
    names = [e["name"] for e in ok(api.post("/experiments/search", json={"max_results": 10}))["experiments"]]
    assert names == ["Default"]


def test_double_encoded_and_empty_bodies(api):
    double = json.dumps(json.dumps({"name": "double-encoded"}))
    experiment_id = ok(api.post("/experiments/create", content=double, headers={"content-type": "application/json"}))[
        "experiment_id"
    ]
    assert (
        ok(api.get("/experiments/get", params={"experiment_id": experiment_id}))["experiment"]["name"]
        == "double-encoded"
    )
    for body in (b"", b"  \n", b"{}"):
        expect_error(
            api.post("/experiments/create", content=body),
            400,
            "INVALID_PARAMETER_VALUE",
            "Missing value for required parameter 'name'.",
        )
    # an empty body is {}: runs/create then makes a run in the Default experiment
    run = ok(api.post("/runs/create", content=b""))["run"]
    assert run["info"]["experiment_id"] == "0"
    # unknown fields are ignored
    ok(
        api.post(
            "/runs/set-tag",
            json={"run_id": run["info"]["run_id"], "key": "k", "value": "v", "surprise": [1, {"a": None}]},
        )
    )


def test_wrong_field_types(api):
    run_id = new_run(api)
    experiment_id = new_experiment(api)
    cases = [
        (
            "/experiments/search",
            {"max_results": "many"},
            "Invalid value \"many\" for parameter 'max_results' supplied: expected an integer.",
        ),
        (
            "/experiments/search",
            {"max_results": 1.5},
            "Invalid value 1.5 for parameter 'max_results' supplied: expected an integer.",
        ),
        (
            "/experiments/search",
            {"max_results": True},
            "Invalid value true for parameter 'max_results' supplied: expected an integer.",
        ),
        (
            "/experiments/search",
            {"max_results": 10, "view_type": "SOME"},
            "Invalid value \"SOME\" for parameter 'view_type' supplied: "
            "expected one of ACTIVE_ONLY, DELETED_ONLY, ALL.",
        ),
        ("/experiments/search", {"max_results": 10, "order_by": "name"}, None),
        (
            "/experiments/search",
            {"max_results": 10, "order_by": [1]},
            "Invalid value [1] for parameter 'order_by' supplied: expected a list of strings.",
        ),
        (
            "/runs/create",
            {"experiment_id": experiment_id, "start_time": "yesterday"},
            "Invalid value \"yesterday\" for parameter 'start_time' supplied: expected an integer.",
        ),
        (
            "/runs/create",
            {"experiment_id": experiment_id, "start_time": 2**63},
            "Invalid value 9223372036854775808 for parameter 'start_time' supplied: must fit in a 64-bit integer.",
        ),
        (
            "/runs/create",
            {"experiment_id": experiment_id, "tags": {"key": "k", "value": "v"}},
            'Invalid value {"key":"k","value":"v"} for parameter \'tags\' supplied: expected a list of objects.',
        ),
        (
            "/runs/create",
            {"experiment_id": experiment_id, "tags": ["k=v"]},
            "Invalid value [\"k=v\"] for parameter 'tags' supplied: expected a list of objects.",
        ),
        (
            "/runs/create",
            {"experiment_id": int(experiment_id)},
            f"Invalid value {experiment_id} for parameter 'experiment_id' supplied: expected a string.",
        ),
        ("/experiments/create", {"name": 5}, "Invalid value 5 for parameter 'name' supplied: expected a string."),
        (
            "/experiments/create",
            {"name": ["a"]},
            "Invalid value [\"a\"] for parameter 'name' supplied: expected a string.",
        ),
        (
            "/runs/log-parameter",
            {"run_id": run_id, "key": "k", "value": 5},
            "Invalid value 5 for parameter 'value' supplied: expected a string.",
        ),
        (
            "/runs/log-parameter",
            {"run_id": 12, "key": "k", "value": "v"},
            "Invalid value 12 for parameter 'run_id' supplied: expected a string.",
        ),
        (
            "/runs/set-tag",
            {"run_id": run_id, "key": {"k": 1}, "value": "v"},
            "Invalid value {\"k\":1} for parameter 'key' supplied: expected a string.",
        ),
        (
            "/runs/log-batch",
            {"run_id": run_id, "metrics": {"key": "m"}},
            'Invalid value {"key":"m"} for parameter \'metrics\' supplied: expected a list of objects.',
        ),
        (
            "/runs/log-batch",
            {"run_id": run_id, "params": [{"key": "p", "value": 1}]},
            "Invalid value 1 for parameter 'params[0].value' supplied: expected a string",
        ),
        (
            "/runs/log-batch",
            {"run_id": run_id, "tags": [{"key": "t", "value": False}]},
            "Invalid value false for parameter 'tags[0].value' supplied: expected a string",
        ),
        (
            "/runs/update",
            {"run_id": run_id, "status": "DONE"},
            "Invalid value \"DONE\" for parameter 'status' supplied: "
            "expected one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED.",
        ),
        (
            "/runs/update",
            {"run_id": run_id, "end_time": -1},
            "Invalid value -1 for parameter 'end_time' supplied: value must be a nonnegative 64-bit integer",
        ),
        ("/runs/search", {"experiment_ids": "0"}, None),
        (
            "/runs/search",
            {"experiment_ids": [0]},
            "Invalid value [0] for parameter 'experiment_ids' supplied: expected a list of strings.",
        ),
    ]
    for endpoint, body, message in cases:
        response = api.post(endpoint, json=body)
        if message is None:  # a single string is accepted where a list of strings is expected
            ok(response)
        else:
            expect_error(response, 400, "INVALID_PARAMETER_VALUE", message)
    # integer-like strings are integers
    ok(api.post("/experiments/search", json={"max_results": "10"}))
    ok(api.post("/runs/update", json={"run_id": run_id, "end_time": "7", "status": 3}))
    info = ok(api.get("/runs/get", params={"run_id": run_id}))["run"]["info"]
    assert (info["end_time"], info["status"]) == (7, "FINISHED")
    assert run_data(api, run_id).keys() == {"tags"}
    assert [
        r["info"]["run_id"]
        for r in ok(api.post("/runs/search", json={"experiment_ids": [experiment_id]})).get("runs", [])
    ] == []


def test_body_over_16_mib_is_refused(api):
    body = b'{"name": "' + b"x" * (16 * 1024 * 1024) + b'"}'
    expect_error(
        api.post("/experiments/create", content=body, headers={"content-type": "application/json"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "request body is larger than the limit of 16777216 bytes",
    )
    assert ok(api.post("/experiments/search", json={"max_results": 10}))["experiments"][0]["name"] == "Default"


def test_nul_characters_are_refused_everywhere(api):
    """PostgreSQL cannot store NUL, so no request string may hold one, on either backend."""
    run_id = new_run(api)
    expect_error(
        api.post("/runs/log-parameter", json={"run_id": run_id, "key": "k", "value": "a\x00b"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid value \"a\\u0000b\" for parameter 'value' supplied: it contains a NUL character.",
    )
    expect_error(
        api.post("/runs/log-batch", json={"run_id": run_id, "tags": [{"key": "t", "value": "\x00"}]}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid value \"\\u0000\" for parameter 'tags[0].value' supplied: it contains a NUL character.",
    )
    expect_error(
        api.post("/experiments/create", content=json.dumps(json.dumps({"name": "n\x00"}))),
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid value \"n\\u0000\" for parameter 'name' supplied: it contains a NUL character.",
    )
    expect_error(
        api.get("/experiments/get-by-name", params={"experiment_name": "x\x00"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid value \"x\\u0000\" for parameter 'experiment_name' supplied: it contains a NUL character.",
    )
    expect_error(
        api.get("/metrics/get-history", params={"run_id": run_id, "metric_key": "\x00"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid value \"\\u0000\" for parameter 'metric_key' supplied: it contains a NUL character.",
    )
    expect_error(
        api.get("/logged-models/m-%00"),
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid value \"m-\\u0000\" for parameter 'model_id' supplied: it contains a NUL character.",
    )
    # an escaped backslash before "u0000" is not a NUL
    ok(api.post("/runs/set-tag", content=b'{"run_id": "%s", "key": "t", "value": "\\\\u0000"}' % run_id.encode()))
    assert tags_of(api, run_id)["t"] == "\\u0000"
    assert run_data(api, run_id).keys() == {"tags"}


def test_deeply_nested_values_are_bad_requests(api):
    nested: object = "x"
    for _ in range(500):
        nested = [nested]
    for endpoint, body in [
        ("/runs/log-parameter", {"run_id": nested, "key": "k", "value": "v"}),
        ("/runs/log-metric", {"run_id": uuid.uuid4().hex, "key": "m", "value": nested, "timestamp": 1}),
        ("/experiments/create", {"name": "deep", "tags": [{"key": "k", "value": nested}]}),
    ]:
        message = expect_error(api.post(endpoint, json=body), 400, "INVALID_PARAMETER_VALUE")
        assert "nested too deeply to show" in message


# ---------------------------------------------------------------------- GET parameters and routing


class _BooleanProbe:
    @rpc("GET", "/probe/flag", needs=Public())
    async def flag(self, req: RpcRequest) -> dict:
        return {"flag": req.bool("flag", default=None)}


def test_get_boolean_parameters():
    """No tracking GET endpoint has a boolean field yet: the router's own rule, through a probe."""
    async def anyone(_need: object, _request: RpcRequest) -> None:
        """The probe is public; access rules are tested elsewhere."""

    router = RpcRouter(anyone)
    router.include(_BooleanProbe())

    async def get_all(values: list[str | None]) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=router)
        async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
            return [await client.get("/api/2.0/probe/flag", params={} if v is None else {"flag": v}) for v in values]

    good = [("true", True), ("false", False), ("TRUE", True), ("False", False), (None, None)]
    bad = ["yes", "1", "0", "", "on", "truth"]
    responses = asyncio.run(get_all([v for v, _ in good] + bad))
    for (_, expected), response in zip(good, responses, strict=False):
        assert response.status_code == 200, response.text
        assert response.json() == {"flag": expected}
    for value, response in zip(bad, responses[len(good) :], strict=True):
        assert response.status_code == 400, response.text
        assert response.json() == {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": f"Invalid boolean value: {value}, must be 'true' or 'false'.",
        }


def test_run_id_and_run_uuid(api):
    run_id = new_run(api)
    other = uuid.uuid4().hex
    message = "Request specifies both 'run_id' and 'run_uuid' with different values; provide only one of them."
    expect_error(
        api.get("/runs/get", params={"run_id": run_id, "run_uuid": other}), 400, "INVALID_PARAMETER_VALUE", message
    )
    expect_error(
        api.post("/runs/set-tag", json={"run_id": run_id, "run_uuid": other, "key": "k", "value": "v"}),
        400,
        "INVALID_PARAMETER_VALUE",
        message,
    )
    assert "k" not in tags_of(api, run_id)
    assert ok(api.get("/runs/get", params={"run_id": run_id, "run_uuid": run_id}))["run"]["info"]["run_id"] == run_id
    assert ok(api.get("/runs/get", params={"run_uuid": run_id}))["run"]["info"]["run_id"] == run_id
    ok(api.post("/runs/set-tag", json={"run_uuid": run_id, "key": "k", "value": "v"}))
    assert tags_of(api, run_id)["k"] == "v"
    expect_error(api.get("/runs/get"), 400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'run_id'.")
    expect_error(
        api.post("/runs/set-tag", json={"key": "k", "value": "v"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'run_id'.",
    )


def test_unknown_routes_and_wrong_methods(server, api):
    expect_error(api.get("/runs/nope"), 404, "ENDPOINT_NOT_FOUND", "No API endpoint GET /api/2.0/mlflow/runs/nope.")
    expect_error(
        api.post("/experiments"), 404, "ENDPOINT_NOT_FOUND", "No API endpoint POST /api/2.0/mlflow/experiments."
    )
    with httpx.Client(base_url=server.url, timeout=60) as root:
        root.event_hooks["response"].append(check_error_shape)
        expect_error(
            root.get("/ajax-api/2.0/mlflow/nope"),
            404,
            "ENDPOINT_NOT_FOUND",
            "No API endpoint GET /ajax-api/2.0/mlflow/nope.",
        )
        expect_error(root.get("/api/9.0/mlflow/runs/get"), 404, "ENDPOINT_NOT_FOUND")
    response = api.get("/runs/log-metric")
    expect_error(
        response, 405, "BAD_REQUEST", "Method GET is not allowed for /api/2.0/mlflow/runs/log-metric; use POST."
    )
    assert response.headers["allow"] == "POST"
    response = api.delete("/experiments/search")
    expect_error(
        response,
        405,
        "BAD_REQUEST",
        "Method DELETE is not allowed for /api/2.0/mlflow/experiments/search; use GET, POST.",
    )
    assert response.headers["allow"] == "GET, POST"
    expect_error(api.put("/logged-models/m-1"), 405, "BAD_REQUEST", starts="Method PUT is not allowed")


# ---------------------------------------------------------------------- search and history limits


def test_search_max_results(api):
    positive = "It must be a positive integer"
    for method, kwargs, value in [
        ("POST", {"json": {}}, 0),
        ("POST", {"json": {"max_results": 0}}, 0),
        ("POST", {"json": {"max_results": -5}}, -5),
        ("GET", {}, 0),
        ("GET", {"params": {"max_results": "0"}}, 0),
    ]:
        expect_error(
            api.request(method, "/experiments/search", **kwargs),
            400,
            "INVALID_PARAMETER_VALUE",
            f"Invalid value {value} for parameter 'max_results' supplied. {positive}",
        )
    too_many = "Invalid value 50001 for parameter 'max_results' supplied. It must be at most 50000"
    expect_error(api.post("/experiments/search", json={"max_results": 50001}), 400, "INVALID_PARAMETER_VALUE", too_many)
    expect_error(
        api.get("/experiments/search", params={"max_results": 50001}), 400, "INVALID_PARAMETER_VALUE", too_many
    )
    expect_error(
        api.post("/runs/search", json={"experiment_ids": ["0"], "max_results": 50001}),
        400,
        "INVALID_PARAMETER_VALUE",
        too_many,
    )
    expect_error(
        api.post("/runs/search", json={"experiment_ids": ["0"], "max_results": 0}),
        400,
        "INVALID_PARAMETER_VALUE",
        f"Invalid value 0 for parameter 'max_results' supplied. {positive}",
    )
    expect_error(
        api.post("/logged-models/search", json={"experiment_ids": ["0"], "max_results": 50001}),
        400,
        "INVALID_PARAMETER_VALUE",
        too_many,
    )
    ok(api.post("/experiments/search", json={"max_results": 50000}))
    ok(api.get("/experiments/search", params={"max_results": 1}))
    ok(api.post("/runs/search", json={"experiment_ids": ["0"], "max_results": 50000}))


def test_metric_history_limits(api):
    run_id = new_run(api)
    ok(api.post("/runs/log-batch", json={"run_id": run_id, "metrics": [metric(step=s) for s in range(3)]}))
    expect_error(
        api.get("/metrics/get-history", params={"run_id": run_id, "metric_key": "m", "max_results": 0}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer",
    )
    expect_error(
        api.get("/metrics/get-history", params={"run_id": run_id}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'metric_key'.",
    )
    # a page size beyond any history is "everything", not an overflow
    huge = ok(api.get("/metrics/get-history", params={"run_id": run_id, "metric_key": "m", "max_results": 2**63 - 1}))
    assert [m["step"] for m in huge["metrics"]] == [0, 1, 2] and "next_page_token" not in huge
    expect_error(
        api.get("/metrics/get-history-bulk", params={"run_id": run_id, "metric_key": "m", "max_results": -1}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid value -1 for parameter 'max_results' supplied. It must be a positive integer",
    )


def test_metric_history_bulk_interval_limits(api):
    run_id = new_run(api)
    ok(api.post("/runs/log-batch", json={"run_id": run_id, "metrics": [metric(step=s) for s in range(5)]}))
    path = "/metrics/get-history-bulk-interval"

    def get(**params):
        return api.get(path, params={"metric_key": "m", "run_ids": [run_id], **params})

    cases = [
        (
            api.get(path, params={"metric_key": "m", "run_ids": [uuid.uuid4().hex for _ in range(101)]}),
            "GetMetricHistoryBulkInterval request must specify at most 100 run_ids. Received 101 run_ids.",
        ),
        (api.get(path, params={"metric_key": "m"}), "Missing value for required parameter 'run_ids'."),
        (api.get(path, params={"run_ids": [run_id]}), "Missing value for required parameter 'metric_key'."),
        (get(start_step=1), "If either start step or end step are specified, both must be specified."),
        (get(end_step=1), "If either start step or end step are specified, both must be specified."),
        (get(start_step=3, end_step=1), "end_step must be greater than start_step. Found start_step=3 and end_step=1."),
        (get(max_results=0), "max_results must be between 1 and 2500."),
        (get(max_results=2501), "max_results must be between 1 and 2500."),
        (get(max_results="x"), "Invalid value \"x\" for parameter 'max_results' supplied: expected an integer."),
        (
            get(start_step="a", end_step=1),
            "Invalid value \"a\" for parameter 'start_step' supplied: expected an integer.",
        ),
        (
            api.get(path, params={"metric_key": "m", "run_ids": ["bad id"]}),
            "Invalid value \"bad id\" for parameter 'run_ids' supplied.",
        ),
    ]
    for response, message in cases:
        expect_error(response, 400, "INVALID_PARAMETER_VALUE", message)
    points = ok(get(start_step=1, end_step=3, max_results=2500))["metrics"]
    assert [p["step"] for p in points] == [1, 2, 3]
    ok(api.get(path, params={"metric_key": "m", "run_ids": [uuid.uuid4().hex for _ in range(100)]}))


# ---------------------------------------------------------------------- tags, inputs, models


def test_delete_missing_tags(api):
    experiment_id = new_experiment(api)
    run_id = new_run(api, experiment_id)
    expect_error(
        api.post("/runs/delete-tag", json={"run_id": run_id, "key": "absent"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
        f"No tag with name: absent in run with id {run_id}",
    )
    expect_error(
        api.post("/experiments/delete-experiment-tag", json={"experiment_id": experiment_id, "key": "absent"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
        f"No tag with name: absent in experiment with id {experiment_id}",
    )
    expect_error(
        api.post("/runs/delete-tag", json={"run_id": run_id, "key": "../x"}),
        400,
        "INVALID_PARAMETER_VALUE",
        starts="Invalid value \"../x\" for parameter 'key' supplied: Names may be treated as files",
    )
    expect_error(
        api.post("/runs/delete-tag", json={"run_id": run_id}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'key'.",
    )


def test_log_inputs_validation(api):
    run_id = new_run(api)
    dataset = {"name": "d", "digest": "abc", "source_type": "local", "source": "{}"}
    cases = [
        ({"datasets": [{}]}, "Invalid value null for parameter 'datasets[0].dataset' supplied: expected an object"),
        (
            {"datasets": [{"dataset": {**dataset, "digest": None}}]},
            "Missing value for required parameter 'datasets[0].dataset.digest'.",
        ),
        (
            {"datasets": [{"dataset": {**dataset, "name": ""}}]},
            "Missing value for required parameter 'datasets[0].dataset.name'.",
        ),
        (
            {"datasets": [{"dataset": {**dataset, "digest": "d" * 37}}]},
            "Dataset digest exceeds the maximum length of 36 characters",
        ),
        (
            {"datasets": [{"dataset": {**dataset, "name": "n" * 501}}]},
            "Dataset name exceeds the maximum length of 500 characters",
        ),
        (
            {"datasets": [{"dataset": {**dataset, "source": 5}}]},
            "Invalid value 5 for parameter 'datasets[0].dataset.source' supplied: expected a string",
        ),
        (
            {"datasets": [{"dataset": dataset, "tags": 5}]},
            "Invalid value 5 for parameter 'datasets[0].tags' supplied: expected a list of objects",
        ),
        (
            {"datasets": [{"dataset": dataset, "tags": {"key": "k"}}]},
            'Invalid value {"key":"k"} for parameter \'datasets[0].tags\' supplied: expected a list of objects',
        ),
        (
            {"datasets": [{"dataset": dataset, "tags": [{"key": "k"}]}]},
            "Missing value for required parameter 'datasets[0].tags[0].value'.",
        ),
        (
            {"datasets": [{"dataset": dataset, "tags": [{"key": "k" * 256, "value": "v"}]}]},
            "Input tag key exceeds the maximum length of 255 characters",
        ),
        (
            {"datasets": [{"dataset": dataset, "tags": [{"key": "k", "value": "v" * 501}]}]},
            "Input tag value exceeds the maximum length of 500 characters",
        ),
        ({"models": [{}]}, "Missing value for required parameter 'models[0].model_id'."),
        ({"models": [{"model_id": 7}]}, "Missing value for required parameter 'models[0].model_id'."),
    ]
    for body, message in cases:
        expect_error(
            api.post("/runs/log-inputs", json={"run_id": run_id, **body}), 400, "INVALID_PARAMETER_VALUE", message
        )
    for body, message in [
        ({"models": [{"model_id": "m-1"}]}, "Missing value for required parameter 'models[0].step'."),
        (
            {"models": [{"model_id": "m-1", "step": "x"}]},
            "Invalid value \"x\" for parameter 'models[0].step' supplied: value must be a 64-bit integer",
        ),
        ({"models": [{"step": 1}]}, "Missing value for required parameter 'models[0].model_id'."),
    ]:
        expect_error(
            api.post("/runs/outputs", json={"run_id": run_id, **body}), 400, "INVALID_PARAMETER_VALUE", message
        )
    run = ok(api.get("/runs/get", params={"run_id": run_id}))["run"]
    assert run["inputs"] == {} and "outputs" not in run
    ok(
        api.post(
            "/runs/log-inputs",
            json={"run_id": run_id, "datasets": [{"dataset": dataset, "tags": [{"key": "k", "value": "v"}]}]},
        )
    )
    assert len(ok(api.get("/runs/get", params={"run_id": run_id}))["run"]["inputs"]["dataset_inputs"]) == 1


def test_log_model_validation(api):
    run_id = new_run(api)
    cases = [
        ({}, "Missing value for required parameter 'model_json'."),
        ({"model_json": "{not json"}, "Malformed model info: 'model_json' is not valid JSON."),
        ({"model_json": "[1]"}, "Malformed model info: 'model_json' must be a JSON object."),
        (
            {"model_json": {"artifact_path": "m"}},
            'Invalid value {"artifact_path":"m"} for parameter \'model_json\' supplied: expected a string.',
        ),
        (
            {"model_json": json.dumps({"artifact_path": "m", "flavors": {}})},
            "Model json is missing mandatory fields: ['utc_time_created', 'run_id']",
        ),
    ]
    for body, message in cases:
        expect_error(
            api.post("/runs/log-model", json={"run_id": run_id, **body}), 400, "INVALID_PARAMETER_VALUE", message
        )
    assert "mlflow.log-model.history" not in tags_of(api, run_id)


def test_run_creation_and_update_rules(api):
    experiment_id = new_experiment(api)
    expect_error(
        api.post(
            "/runs/create",
            json={"experiment_id": experiment_id, "run_name": "a", "tags": [{"key": "mlflow.runName", "value": "b"}]},
        ),
        400,
        "INVALID_PARAMETER_VALUE",
        "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values "
        "(run_name='a', mlflow.runName='b').",
    )
    expect_error(
        api.post("/runs/create", json={"experiment_id": experiment_id, "start_time": -1}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid value -1 for parameter 'start_time' supplied: value must be a nonnegative 64-bit integer",
    )
    expect_error(
        api.post("/runs/create", json={"experiment_id": experiment_id, "tags": [{"key": "a!", "value": "v"}]}),
        400,
        "INVALID_PARAMETER_VALUE",
        f"Invalid value \"a!\" for parameter 'tags[0].key' supplied: {BAD_CHARACTERS}",
    )
    expect_error(
        api.post("/experiments/create", json={"name": "runs-uri", "artifact_location": "runs:/abc/model"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Artifact location cannot be a runs:/ URI. Given: 'runs:/abc/model'",
    )
    assert "runs" not in ok(api.post("/runs/search", json={"experiment_ids": [experiment_id]}))


def test_logged_model_errors(api):
    experiment_id = new_experiment(api)
    absent = "m-" + uuid.uuid4().hex
    not_found = f"Logged model with ID '{absent}' not found."
    for method, path, kwargs in [
        ("GET", f"/logged-models/{absent}", {}),
        ("PATCH", f"/logged-models/{absent}", {"json": {"status": "LOGGED_MODEL_READY"}}),
        ("DELETE", f"/logged-models/{absent}", {}),
        ("PATCH", f"/logged-models/{absent}/tags", {"json": {"tags": [{"key": "k", "value": "v"}]}}),
        ("POST", f"/logged-models/{absent}/params", {"json": {"params": [{"key": "k", "value": "v"}]}}),
        ("DELETE", f"/logged-models/{absent}/tags/k", {}),
    ]:
        expect_error(api.request(method, path, **kwargs), 404, "RESOURCE_DOES_NOT_EXIST", not_found)

    model = ok(api.post("/logged-models", json={"experiment_id": experiment_id, "name": "model"}))["model"]
    model_id = model["info"]["model_id"]
    statuses = "LOGGED_MODEL_PENDING, LOGGED_MODEL_READY, LOGGED_MODEL_UPLOAD_FAILED"
    for body, message in [
        ({"status": "DONE"}, f"Invalid value \"DONE\" for parameter 'status' supplied: expected one of {statuses}."),
        ({"status": 9}, f"Invalid value 9 for parameter 'status' supplied: expected one of {statuses}."),
        ({}, "Missing value for required parameter 'status'."),
        (
            {"status": "LOGGED_MODEL_PENDING"},
            "A logged model can only be finalized as LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED.",
        ),
    ]:
        expect_error(api.patch(f"/logged-models/{model_id}", json=body), 400, "INVALID_PARAMETER_VALUE", message)
    expect_error(
        api.delete(f"/logged-models/{model_id}/tags/absent"),
        404,
        "RESOURCE_DOES_NOT_EXIST",
        f"No tag with key 'absent' found for logged model with ID '{model_id}'.",
    )
    expect_error(
        api.patch(f"/logged-models/{model_id}/tags", json={"tags": [{"key": "../k", "value": "v"}]}),
        400,
        "INVALID_PARAMETER_VALUE",
        starts="Invalid value \"../k\" for parameter 'tags[0].key' supplied: Names may be treated as files",
    )
    bad_chars = ("/", ":", ".", "%", '"', "'")
    expect_error(
        api.post("/logged-models", json={"experiment_id": experiment_id, "name": "a/b"}),
        400,
        "INVALID_PARAMETER_VALUE",
        f"Invalid model name ('a/b') provided. Model name must be a non-empty string and cannot contain "
        f"the following characters: {bad_chars}",
    )
    expect_error(
        api.post("/logged-models", json={"experiment_id": experiment_id, "source_run_id": uuid.uuid4().hex[:8]}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
        starts="Run with id=",
    )
    expect_error(
        api.post("/logged-models", json={}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'experiment_id'.",
    )
    expect_error(
        api.post(
            "/logged-models/search",
            json={"experiment_ids": [experiment_id], "datasets": [{"dataset_name": "d", "dataset_digest": 5}]},
        ),
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid value 5 for parameter 'datasets[0].dataset_digest' supplied: expected a string",
    )
    after = ok(api.get(f"/logged-models/{model_id}"))["model"]
    assert after["info"]["status"] == "LOGGED_MODEL_PENDING" and "tags" not in after["info"]
    models = ok(api.post("/logged-models/search", json={"experiment_ids": [experiment_id]}))["models"]
    assert [m["info"]["model_id"] for m in models] == [model_id]
