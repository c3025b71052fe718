"""Every validation rule of the MLflow model registry API and every kind of bad input, over
raw HTTP on SQLite and PostgreSQL: the 4xx status, the ``error_code`` and the message.

Messages are MLflow's wherever MLflow has one (``mlflow/utils/validation.py``,
``mlflow/server/handlers.py``, ``store/model_registry/sqlalchemy_store.py``). An autouse
check runs on every response of these tests: never a 5xx, and an error body is exactly
``error_code`` and ``message``. Where a write is refused, the test reads the model and its
versions back and finds them unchanged.

Deliberate differences from MLflow, each asserted below:

- MLflow appends " See the API docs for more information about request parameters." to
  the errors of its request-schema checks, and words a wrongly typed field as "Invalid
  value 1 for parameter 'version' supplied. Hint: ..."; labdeck says "... supplied:
  expected a string." without that sentence.
- ``order_by`` naming a field twice is 400 INVALID_PARAMETER_VALUE (MLflow raises it
  without an error code, i.e. 500).
- A model name longer than 256 characters is refused up front (MLflow leaves it to the
  database column, which PostgreSQL refuses with a 500).
- A version number no version can have (beyond the 32-bit column) is 404, like any other
  missing version (MLflow's query fails on PostgreSQL with a 500).
- ``run_id`` (32) and ``model_id`` (64) of a new version are bounded by their columns.
- A version whose source names nothing (``models:/...``, and also ``runs:/...``, which
  labdeck resolves at registration too) is 400 "Unable to fetch model from model URI
  source artifact location '...'. Error: ..." (MLflow sends that text as a 500).
- RESOURCE_ALREADY_EXISTS on rename does not carry the database's error text.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.mlflow_errors import check_error_shape, every_response_checked, expect_error  # noqa: F401


def invalid(response: httpx.Response, message: str | None = None, **kwargs: Any) -> str:
    return expect_error(response, 400, "INVALID_PARAMETER_VALUE", message, **kwargs)


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def delete(api: httpx.Client, path: str, body: dict) -> httpx.Response:
    return api.request("DELETE", path, json=body)


def unique(prefix: str = "model") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_model(api: httpx.Client, versions: int = 2, name: str | None = None) -> str:
    """A model with ``versions`` versions, a tag, a version tag and an alias on version 1."""
    name = name or unique()
    ok(api.post("/registered-models/create", json={"name": name, "tags": [{"key": "team", "value": "a"}]}))
    for i in range(versions):
        ok(api.post("/model-versions/create", json={"name": name, "source": f"s3://bucket/{name}/{i}"}))
    if versions:
        ok(api.post("/model-versions/set-tag", json={"name": name, "version": "1", "key": "vt", "value": "x"}))
        ok(api.post("/registered-models/alias", json={"name": name, "alias": "champion", "version": "1"}))
    return name


def state(api: httpx.Client, name: str) -> dict[str, Any]:
    """Everything stored about a model: the model, its versions one by one, the search."""
    model = ok(api.get("/registered-models/get", params={"name": name}))["registered_model"]
    found = ok(api.get("/model-versions/search", params={"filter": f"name = '{name}'"})).get("model_versions", [])
    versions = {
        v["version"]: ok(api.get("/model-versions/get", params={"name": name, "version": v["version"]}))
        for v in found
    }
    return {"model": model, "search": found, "versions": versions}


def model_names(api: httpx.Client) -> set[str]:
    return {m["name"] for m in ok(api.get("/registered-models/search", params={"max_results": 1000})).get("registered_models", [])}


# ---------------------------------------------------------------------- aliases


def test_reserved_aliases(api):
    name = new_model(api)
    before = state(api, name)
    for alias in ["latest", "LATEST", "Latest", "lAtEsT"]:
        invalid(
            api.post("/registered-models/alias", json={"name": name, "alias": alias, "version": "1"}),
            "'latest' alias name (case insensitive) is reserved.",
        )
    for alias in ["v1", "V2", "v0", "V0099", "v12345678901234567890"]:
        invalid(
            api.post("/registered-models/alias", json={"name": name, "alias": alias, "version": "2"}),
            f"Version alias name '{alias}' is reserved.",
        )
    assert state(api, name) == before
    # only names that look like a version are reserved
    for alias in ["v", "v1a", "vv1", "version1", "latest2", "_latest", "v-1"]:
        ok(api.post("/registered-models/alias", json={"name": name, "alias": alias, "version": "2"}))
    aliases = {a["alias"]: a["version"] for a in state(api, name)["model"]["aliases"]}
    assert aliases == {"champion": "1", **dict.fromkeys(["v", "v1a", "vv1", "version1", "latest2", "_latest", "v-1"], "2")}


def test_reserved_aliases_still_read_and_delete(api):
    """MLflow checks reservation only when setting: reading 'v1' is a missing alias, reading
    'latest' is the newest version, deleting either is a no-op."""
    name = new_model(api, versions=3)
    before = state(api, name)
    assert ok(api.get("/registered-models/alias", params={"name": name, "alias": "LATEST"}))["model_version"]["version"] == "3"
    invalid(api.get("/registered-models/alias", params={"name": name, "alias": "v1"}), "Registered model alias v1 not found.")
    ok(delete(api, "/registered-models/alias", {"name": name, "alias": "latest"}))
    ok(delete(api, "/registered-models/alias", {"name": name, "alias": "V1"}))
    assert state(api, name) == before


BAD_ALIAS = "Names may only contain alphanumerics, underscores (_), and dashes (-)."


MALFORMED_ALIASES = [
        ("has space", f"Invalid alias name: 'has space'. {BAD_ALIAS}"),
        ("a/b", f"Invalid alias name: 'a/b'. {BAD_ALIAS}"),
        ("a.b", f"Invalid alias name: 'a.b'. {BAD_ALIAS}"),
        ("a:b", f"Invalid alias name: 'a:b'. {BAD_ALIAS}"),
        ("a@b", f"Invalid alias name: 'a@b'. {BAD_ALIAS}"),
        (" ", f"Invalid alias name: ' '. {BAD_ALIAS}"),
        ("tab\t", f"Invalid alias name: 'tab\t'. {BAD_ALIAS}"),
        ("x" * 256, "'Registered model alias name' exceeds the maximum length of 255 characters"),
        ("é" * 256, "'Registered model alias name' exceeds the maximum length of 255 characters"),
        ("", "Missing value for required parameter 'alias'."),
        (None, "Missing value for required parameter 'alias'."),
]


def test_malformed_aliases(api):
    name = new_model(api)
    before = state(api, name)
    for alias, message in MALFORMED_ALIASES:
        body = {"name": name, "version": "2"} | ({} if alias is None else {"alias": alias})
        invalid(api.post("/registered-models/alias", json=body), message)
        if alias:  # the same format rules when reading and deleting
            invalid(api.get("/registered-models/alias", params={"name": name, "alias": alias}), message)
            invalid(delete(api, "/registered-models/alias", {"name": name, "alias": alias}), message)
    assert state(api, name) == before


def test_longest_alias_and_unicode_word_characters_are_accepted(api):
    name = new_model(api)
    for alias in ["x" * 255, "é" * 255, "漢字_-9"]:
        ok(api.post("/registered-models/alias", json={"name": name, "alias": alias, "version": "2"}))
        assert ok(api.get("/registered-models/alias", params={"name": name, "alias": alias}))["model_version"]["version"] == "2"


def test_unknown_alias(api):
    """MLflow answers an unknown alias with 400 INVALID_PARAMETER_VALUE, not 404."""
    name = new_model(api)
    invalid(api.get("/registered-models/alias", params={"name": name, "alias": "nope"}), "Registered model alias nope not found.")
    before = state(api, name)
    ok(delete(api, "/registered-models/alias", {"name": name, "alias": "nope"}))  # a no-op, as MLflow
    assert state(api, name) == before
    # an alias of a deleted version is gone with it
    ok(api.post("/registered-models/alias", json={"name": name, "alias": "gone", "version": "2"}))
    ok(delete(api, "/model-versions/delete", {"name": name, "version": "2"}))
    invalid(api.get("/registered-models/alias", params={"name": name, "alias": "gone"}), "Registered model alias gone not found.")


def test_alias_on_a_missing_version(api):
    name = new_model(api)
    before = state(api, name)
    for version in ["9", "0", "-1", "2147483648", "99999999999999999999999"]:
        expect_error(
            api.post("/registered-models/alias", json={"name": name, "alias": "champion", "version": version}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            f"Model Version (name={name}, version={int(version)}) not found",
        )
    ok(delete(api, "/model-versions/delete", {"name": name, "version": "2"}))
    after_delete = state(api, name)
    expect_error(
        api.post("/registered-models/alias", json={"name": name, "alias": "champion", "version": "2"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
        f"Model Version (name={name}, version=2) not found",
    )
    assert state(api, name) == after_delete
    assert before["model"]["aliases"] == after_delete["model"]["aliases"] == [{"alias": "champion", "version": "1"}]


# ---------------------------------------------------------------------- unknown models and versions


def test_unknown_model_is_not_found_everywhere(api):
    missing = unique("missing")
    message = f"Registered Model with name={missing} not found"
    calls = [
        ("GET", "/registered-models/get", {"name": missing}),
        ("PATCH", "/registered-models/update", {"name": missing, "description": "d"}),
        ("POST", "/registered-models/rename", {"name": missing, "new_name": unique()}),
        ("DELETE", "/registered-models/delete", {"name": missing}),
        ("POST", "/registered-models/set-tag", {"name": missing, "key": "k", "value": "v"}),
        ("DELETE", "/registered-models/delete-tag", {"name": missing, "key": "k"}),
        ("GET", "/registered-models/get-latest-versions", {"name": missing}),
        ("POST", "/registered-models/get-latest-versions", {"name": missing, "stages": ["Production"]}),
        ("POST", "/registered-models/alias", {"name": missing, "alias": "a", "version": "1"}),
        ("DELETE", "/registered-models/alias", {"name": missing, "alias": "a"}),
        ("GET", "/registered-models/alias", {"name": missing, "alias": "a"}),
        ("GET", "/registered-models/alias", {"name": missing, "alias": "latest"}),
        ("POST", "/model-versions/create", {"name": missing, "source": "s3://b/k"}),
        ("GET", "/model-versions/get", {"name": missing, "version": "1"}),
        ("GET", "/model-versions/get", {"name": missing, "version": "99999999999999999999"}),
        ("PATCH", "/model-versions/update", {"name": missing, "version": "1", "description": "d"}),
        ("POST", "/model-versions/transition-stage", {"name": missing, "version": "1", "stage": "Staging"}),
        ("DELETE", "/model-versions/delete", {"name": missing, "version": "1"}),
        ("GET", "/model-versions/get-download-uri", {"name": missing, "version": "1"}),
        ("POST", "/model-versions/set-tag", {"name": missing, "version": "1", "key": "k", "value": "v"}),
        ("DELETE", "/model-versions/delete-tag", {"name": missing, "version": "1", "key": "k"}),
    ]
    for method, path, fields in calls:
        kwargs = {"params": fields} if method == "GET" else {"json": fields}
        expect_error(api.request(method, path, **kwargs), 404, "RESOURCE_DOES_NOT_EXIST", message)
    assert missing not in model_names(api)


def test_unknown_version_is_not_found_everywhere(api):
    name = new_model(api)
    ok(delete(api, "/model-versions/delete", {"name": name, "version": "2"}))
    before = state(api, name)
    for version in ["9", "2", "0", "-3", "007", "2147483648", "9223372036854775808", "-99999999999999999999"]:
        message = f"Model Version (name={name}, version={int(version)}) not found"
        calls = [
            ("GET", "/model-versions/get", {"name": name, "version": version}),
            ("PATCH", "/model-versions/update", {"name": name, "version": version, "description": "d"}),
            ("POST", "/model-versions/transition-stage", {"name": name, "version": version, "stage": "Production"}),
            ("DELETE", "/model-versions/delete", {"name": name, "version": version}),
            ("GET", "/model-versions/get-download-uri", {"name": name, "version": version}),
            ("POST", "/model-versions/set-tag", {"name": name, "version": version, "key": "k", "value": "v"}),
            ("DELETE", "/model-versions/delete-tag", {"name": name, "version": version, "key": "vt"}),
            ("POST", "/registered-models/alias", {"name": name, "alias": "a", "version": version}),
        ]
        if version == "007":
            message = f"Model Version (name={name}, version=7) not found"
        for method, path, fields in calls:
            kwargs = {"params": fields} if method == "GET" else {"json": fields}
            expect_error(api.request(method, path, **kwargs), 404, "RESOURCE_DOES_NOT_EXIST", message)
    assert state(api, name) == before
    # a leading zero or sign still names a version that exists
    assert ok(api.get("/model-versions/get", params={"name": name, "version": "01"}))["model_version"]["version"] == "1"
    assert ok(api.get("/model-versions/get", params={"name": name, "version": "+1"}))["model_version"]["version"] == "1"


def test_versions_that_are_not_integers(api):
    name = new_model(api)
    before = state(api, name)
    for version in ["abc", "1.5", "1e3", "one", "0x1", "1 2", "9" * 5000]:
        message = f"Parameter 'version' must be an integer, got '{version}'."
        calls = [
            ("GET", "/model-versions/get", {"name": name, "version": version}),
            ("PATCH", "/model-versions/update", {"name": name, "version": version, "description": "d"}),
            ("POST", "/model-versions/transition-stage", {"name": name, "version": version, "stage": "Staging"}),
            ("DELETE", "/model-versions/delete", {"name": name, "version": version}),
            ("POST", "/model-versions/set-tag", {"name": name, "version": version, "key": "k", "value": "v"}),
            ("DELETE", "/model-versions/delete-tag", {"name": name, "version": version, "key": "vt"}),
            ("POST", "/registered-models/alias", {"name": name, "alias": "a", "version": version}),
        ]
        for method, path, fields in calls:
            kwargs = {"params": fields} if method == "GET" else {"json": fields}
            invalid(api.request(method, path, **kwargs), message)
    for version in ["", None]:
        body = {"name": name, "alias": "a"} | ({} if version is None else {"version": version})
        invalid(api.post("/registered-models/alias", json=body), "Missing value for required parameter 'version'.")
        invalid(
            api.get("/model-versions/get", params={"name": name} | ({} if version is None else {"version": version})),
            "Missing value for required parameter 'version'.",
        )
    # versions are strings on MLflow's wire: a JSON number is a wrongly typed field
    invalid(
        api.post("/registered-models/alias", json={"name": name, "alias": "a", "version": 1}),
        "Invalid value 1 for parameter 'version' supplied: expected a string.",
    )
    invalid(
        api.post("/model-versions/set-tag", json={"name": name, "version": 1.5, "key": "k", "value": "v"}),
        "Invalid value 1.5 for parameter 'version' supplied: expected a string.",
    )
    assert state(api, name) == before


# ---------------------------------------------------------------------- model names


def test_duplicate_model_names(api):
    taken = new_model(api)
    other = new_model(api, versions=1)
    before_taken, before_other = state(api, taken), state(api, other)
    expect_error(
        api.post("/registered-models/create", json={"name": taken, "description": "second"}),
        400,
        "RESOURCE_ALREADY_EXISTS",
        f"Registered Model (name={taken}) already exists.",
    )
    expect_error(
        api.post("/registered-models/rename", json={"name": other, "new_name": taken}),
        400,
        "RESOURCE_ALREADY_EXISTS",
        starts=f"Registered Model (name={taken}) already exists.",
    )
    assert state(api, taken) == before_taken
    assert state(api, other) == before_other
    # names are case-sensitive: another case is another model
    ok(api.post("/registered-models/create", json={"name": taken.upper()}))
    # renaming a model to its own name changes nothing but the time
    renamed = ok(api.post("/registered-models/rename", json={"name": other, "new_name": other}))["registered_model"]
    assert renamed["name"] == other and renamed["tags"] == before_other["model"]["tags"]


def resolves(name: str, to: str) -> str:
    return (
        f"Invalid value {json.dumps(name)} for parameter 'name' supplied: Names may be treated as files in certain "
        f"cases, and must not resolve to other names when treated as such. This name would resolve to '{to}'"
    )


BAD_NAMES = [
    ("a/b", "Invalid model name 'a/b'. Names cannot contain '/' or ':'."),
    ("a:b", "Invalid model name 'a:b'. Names cannot contain '/' or ':'."),
    ("/abs", "Invalid model name '/abs'. Names cannot contain '/' or ':'."),
    ("../up", "Invalid model name '../up'. Names cannot contain '/' or ':'."),
    ("..", resolves("..", "..")),
    (".", resolves(".", ".")),
    ("", "Missing value for required parameter 'name'."),
    ("   ", "Missing value for required parameter 'name'."),
    ("x" * 257, "'name' exceeds the maximum length of 256 characters"),
]


def test_invalid_model_names(api):
    existing = new_model(api, versions=1)
    before = state(api, existing)
    for bad, message in BAD_NAMES:
        invalid(api.post("/registered-models/create", json={"name": bad}), message)
        new_name_message = message.replace("'name'", "'new_name'")
        invalid(api.post("/registered-models/rename", json={"name": existing, "new_name": bad}), new_name_message)
        invalid(api.get("/registered-models/get", params={"name": bad}), message)
        invalid(api.post("/model-versions/create", json={"name": bad, "source": "s3://b/k"}), message)
        invalid(api.post("/registered-models/set-tag", json={"name": bad, "key": "k", "value": "v"}), message)
        invalid(api.get("/model-versions/get", params={"name": bad, "version": "1"}), message)
    assert state(api, existing) == before
    assert model_names(api) == {existing}


def test_model_names_mlflow_accepts(api):
    names = ["with space", "dots.in.name", "a..b", "émoji 💥", "at@sign", "x" * 256, "é" * 256, "quote'd", 'dq"x', "100%"]
    for name in names:
        created = ok(api.post("/registered-models/create", json={"name": name}))["registered_model"]
        assert created["name"] == name
        ok(api.post("/model-versions/create", json={"name": name, "source": "s3://b/k"}))
        assert ok(api.get("/registered-models/get", params={"name": name}))["registered_model"]["latest_versions"][0]["version"] == "1"
    assert model_names(api) == set(names)


def test_rename_to_the_longest_names(api):
    """A rename is recorded in the model's history; two long names must still fit."""
    old, new = "o" * 256, "n" * 256
    ok(api.post("/registered-models/create", json={"name": old}))
    ok(api.post("/model-versions/create", json={"name": old, "source": "s3://b/k"}))
    renamed = ok(api.post("/registered-models/rename", json={"name": old, "new_name": new}))["registered_model"]
    assert renamed["name"] == new
    assert ok(api.get("/model-versions/get", params={"name": new, "version": "1"}))["model_version"]["name"] == new
    expect_error(api.get("/registered-models/get", params={"name": old}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_required_names_and_missing_fields(api):
    name = new_model(api)
    before = state(api, name)
    missing = "Missing value for required parameter '{}'."
    cases = [
        ("POST", "/registered-models/create", {}, "name"),
        ("POST", "/registered-models/rename", {"name": name}, "new_name"),
        ("POST", "/registered-models/rename", {"name": name, "new_name": ""}, "new_name"),
        ("POST", "/registered-models/rename", {"name": name, "new_name": "  "}, "new_name"),
        ("POST", "/registered-models/rename", {"new_name": "x"}, "name"),
        ("PATCH", "/registered-models/update", {"description": "d"}, "name"),
        ("DELETE", "/registered-models/delete", {}, "name"),
        ("POST", "/registered-models/set-tag", {"name": name, "value": "v"}, "key"),
        ("POST", "/registered-models/set-tag", {"name": name, "key": "", "value": "v"}, "key"),
        ("DELETE", "/registered-models/delete-tag", {"name": name}, "key"),
        ("POST", "/model-versions/create", {"name": name}, "source"),
        ("POST", "/model-versions/create", {"name": name, "source": ""}, "source"),
        ("POST", "/model-versions/transition-stage", {"name": name, "version": "1"}, "stage"),
        ("POST", "/model-versions/transition-stage", {"name": name, "version": "1", "stage": ""}, "stage"),
        ("POST", "/model-versions/set-tag", {"name": name, "version": "1", "value": "v"}, "key"),
        ("DELETE", "/model-versions/delete-tag", {"name": name, "version": "1", "key": ""}, "key"),
        ("DELETE", "/model-versions/delete", {"name": name}, "version"),
        ("GET", "/registered-models/get", {}, "name"),
        ("GET", "/registered-models/alias", {"name": name}, "alias"),
        ("GET", "/model-versions/get-download-uri", {"name": name}, "version"),
    ]
    for method, path, fields, field in cases:
        kwargs = {"params": fields} if method == "GET" else {"json": fields}
        invalid(api.request(method, path, **kwargs), missing.format(field))
    assert state(api, name) == before


# ---------------------------------------------------------------------- stages


def test_invalid_stage(api):
    name = new_model(api)
    before = state(api, name)
    for bad in ["Prod", "production ", "Deleted", "none!", "1"]:
        invalid(
            api.post("/model-versions/transition-stage", json={"name": name, "version": "1", "stage": bad}),
            f"Invalid Model Version stage: {bad}. Value must be one of None, Staging, Production, Archived.",
        )
        invalid(
            api.get("/registered-models/get-latest-versions", params={"name": name, "stages": ["Staging", bad]}),
            f"Invalid Model Version stage: {bad}. Value must be one of None, Staging, Production, Archived.",
        )
    invalid(
        api.post("/model-versions/transition-stage", json={"name": name, "version": "1", "stage": 3}),
        "Invalid value 3 for parameter 'stage' supplied: expected a string.",
    )
    assert state(api, name) == before
    # any letter case names a stage, and the stored stage is spelled canonically
    for spelled, canonical in [("production", "Production"), ("STAGING", "Staging"), ("archived", "Archived"), ("nOnE", "None")]:
        moved = ok(api.post("/model-versions/transition-stage", json={"name": name, "version": "2", "stage": spelled}))
        assert moved["model_version"]["current_stage"] == canonical


def test_archive_existing_versions_needs_an_active_stage(api):
    name = new_model(api, versions=3)
    ok(api.post("/model-versions/transition-stage", json={"name": name, "version": "1", "stage": "Production"}))
    ok(api.post("/model-versions/transition-stage", json={"name": name, "version": "2", "stage": "Archived"}))
    before = state(api, name)
    for target in ["Archived", "None", "archived", "none"]:
        invalid(
            api.post(
                "/model-versions/transition-stage",
                json={"name": name, "version": "3", "stage": target, "archive_existing_versions": True},
            ),
            "Model version transition cannot archive existing model versions because "
            f"'{target}' is not an Active stage. Valid stages are ['Staging', 'Production']",
        )
    for flag in ["yes", 1, "1", "on"]:
        invalid(
            api.post(
                "/model-versions/transition-stage",
                json={"name": name, "version": "3", "stage": "Production", "archive_existing_versions": flag},
            ),
            f"Invalid boolean value: {flag}, must be 'true' or 'false'.",
        )
    assert state(api, name) == before
    # and with an active stage, the others in it are archived
    ok(
        api.post(
            "/model-versions/transition-stage",
            json={"name": name, "version": "3", "stage": "production", "archive_existing_versions": "true"},
        )
    )
    stages = {v: s["model_version"]["current_stage"] for v, s in state(api, name)["versions"].items()}
    assert stages == {"1": "Archived", "2": "Archived", "3": "Production"}


# ---------------------------------------------------------------------- tags

BAD_CHARACTERS = (
    "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), "
    "spaces ( ), colon(:) and slashes (/)."
)


def _tag_writes(name: str, key: Any, value: Any) -> list[tuple[str, str, dict]]:
    return [
        ("POST", "/registered-models/set-tag", {"name": name, "key": key, "value": value}),
        ("POST", "/model-versions/set-tag", {"name": name, "version": "1", "key": key, "value": value}),
        ("POST", "/registered-models/create", {"name": unique(), "tags": [{"key": key, "value": value}]}),
        ("POST", "/model-versions/create", {"name": name, "source": "s3://b/k", "tags": [{"key": key, "value": value}]}),
    ]


def test_tag_key_and_value_limits(api):
    name = new_model(api)
    before, names = state(api, name), model_names(api)
    cases = [
        ("k" * 251, "v", "'key' exceeds the maximum length of 250 characters"),
        ("k", "v" * 100_001, "'value' exceeds the maximum length of 100000 characters"),
        ("a!b", "v", f'Invalid value "a!b" for parameter \'key\' supplied: {BAD_CHARACTERS}'),
        ("tab\there", "v", f'Invalid value "tab\\there" for parameter \'key\' supplied: {BAD_CHARACTERS}'),
        ("a/../b", "v", "Invalid value \"a/../b\" for parameter 'key' supplied: Names may be treated as files in certain "
         "cases, and must not resolve to other names when treated as such. This name would resolve to 'b'"),
        ("/abs", "v", "Invalid value \"/abs\" for parameter 'key' supplied: Names may be treated as files in certain "
         "cases, and must not resolve to other names when treated as such. This name would resolve to '/abs'"),
        (5, "v", "Invalid value 5 for parameter 'key' supplied: expected a string."),
        ("k", 5, "Invalid value 5 for parameter 'value' supplied: expected a string"),
        ("k", ["v"], "Invalid value [\"v\"] for parameter 'value' supplied: expected a string"),
    ]
    for key, value, message in cases:
        for method, path, body in _tag_writes(name, key, value):
            got = invalid(api.request(method, path, json=body))
            # the same words whether the tag comes alone or in a list (one ends with a period)
            assert got.rstrip(".") == message.rstrip("."), (path, got)
    assert state(api, name) == before
    assert model_names(api) == names
    # the limits themselves are fine
    ok(api.post("/registered-models/set-tag", json={"name": name, "key": "k" * 250, "value": "v" * 100_000}))
    ok(api.post("/model-versions/set-tag", json={"name": name, "version": "1", "key": "k" * 250, "value": "é" * 100_000}))
    after = state(api, name)
    assert {t["key"]: len(t["value"]) for t in after["model"]["tags"]} == {"team": 1, "k" * 250: 100_000}
    assert {t["key"]: t["value"] for t in after["versions"]["1"]["model_version"]["tags"]} == {"vt": "x", "k" * 250: "é" * 100_000}


def test_tag_without_a_value_is_empty(api):
    """MLflow reads an absent string field as the empty string, for tags too."""
    name = new_model(api)
    ok(api.post("/registered-models/set-tag", json={"name": name, "key": "flag"}))
    ok(api.post("/model-versions/set-tag", json={"name": name, "version": "2", "key": "flag", "value": None}))
    after = state(api, name)
    assert {"key": "flag", "value": ""} in after["model"]["tags"]
    assert after["versions"]["2"]["model_version"]["tags"] == [{"key": "flag", "value": ""}]


def test_deleting_a_missing_tag_is_a_no_op(api):
    """As MLflow's store: deleting a tag that is not there answers 200 and changes nothing."""
    name = new_model(api)
    before = state(api, name)
    ok(delete(api, "/registered-models/delete-tag", {"name": name, "key": "nope"}))
    ok(delete(api, "/model-versions/delete-tag", {"name": name, "version": "1", "key": "nope"}))
    ok(delete(api, "/model-versions/delete-tag", {"name": name, "version": "2", "key": "vt"}))  # vt is on version 1
    assert state(api, name) == before
    invalid(delete(api, "/registered-models/delete-tag", {"name": name, "key": "a!b"}), starts='Invalid value "a!b" for parameter \'key\'')
    ok(delete(api, "/registered-models/delete-tag", {"name": name, "key": "team"}))
    ok(delete(api, "/model-versions/delete-tag", {"name": name, "version": "1", "key": "vt"}))
    after = state(api, name)
    assert "tags" not in after["model"] and "tags" not in after["versions"]["1"]["model_version"]


def test_malformed_tag_lists(api):
    name = new_model(api)
    before, names = state(api, name), model_names(api)
    cases = [
        ({"tags": "team=a"}, "Invalid value \"team=a\" for parameter 'tags' supplied: expected a list of objects."),
        ({"tags": {"key": "k"}}, "Invalid value {\"key\":\"k\"} for parameter 'tags' supplied: expected a list of objects."),
        ({"tags": [["k", "v"]]}, "Invalid value [[\"k\",\"v\"]] for parameter 'tags' supplied: expected a list of objects."),
        ({"tags": [{"value": "v"}]}, "Missing value for required parameter 'key'."),
    ]
    for extra, message in cases:
        invalid(api.post("/registered-models/create", json={"name": unique(), **extra}), message)
        invalid(api.post("/model-versions/create", json={"name": name, "source": "s3://b/k", **extra}), message)
    assert state(api, name) == before
    assert model_names(api) == names


# ---------------------------------------------------------------------- versions: sources, runs, logged models


def test_version_sources_that_name_nothing(api):
    name = new_model(api)
    before = state(api, name)
    cases = [
        ("models:/", "Not a proper models:/ URI: models:/. "),
        ("models:/a/b/c", "Not a proper models:/ URI: models:/a/b/c. "),
        ("runs:/", "Not a proper runs:/ URI: runs:/. "),
        (f"models:/{name}/9", f"Unable to fetch model from model URI source artifact location 'models:/{name}/9'. "
         f"Error: Model Version (name={name}, version=9) not found"),
        (f"models:/{name}@nope", f"Unable to fetch model from model URI source artifact location 'models:/{name}@nope'. "
         "Error: Registered model alias nope not found."),
        ("models:/a:b/1", "Unable to fetch model from model URI source artifact location 'models:/a:b/1'. "
         "Error: Invalid model name 'a:b'. Names cannot contain '/' or ':'."),
        (f"models:/{name}/Prod", f"Unable to fetch model from model URI source artifact location 'models:/{name}/Prod'. "
         "Error: Invalid Model Version stage: Prod. Value must be one of None, Staging, Production, Archived."),
        ("models:/m-0123456789abcdef", "Unable to fetch model from model URI source artifact location "
         "'models:/m-0123456789abcdef'. Error: Logged model with ID 'm-0123456789abcdef' not found."),
        (f"runs:/{uuid.uuid4().hex}/model", "Unable to fetch model from model URI source artifact location 'runs:/"),
        (f"models:/{name}/Production", f"Unable to fetch model from model URI source artifact location "
         f"'models:/{name}/Production'. Error: No versions of registered model '{name}' in stage 'Production'."),
    ]
    for source, message in cases:
        got = invalid(api.post("/model-versions/create", json={"name": name, "source": source}))
        assert got.startswith(message), got
    assert state(api, name) == before


def test_version_run_and_model_ids_are_bounded(api):
    name = new_model(api)
    before = state(api, name)
    invalid(
        api.post("/model-versions/create", json={"name": name, "source": "s3://b/k", "run_id": "r" * 33}),
        "'run_id' exceeds the maximum length of 32 characters",
    )
    invalid(
        api.post(
            "/model-versions/create", json={"name": name, "source": "s3://b/k", "run_id": "r" * 32, "model_id": "m" * 65}
        ),
        "'model_id' exceeds the maximum length of 64 characters",
    )
    invalid(
        api.post("/model-versions/create", json={"name": name, "source": "s3://b/k", "run_id": 7}),
        "Invalid value 7 for parameter 'run_id' supplied: expected a string.",
    )
    expect_error(
        api.post("/model-versions/create", json={"name": name, "source": "s3://b/k", "model_id": "m-404"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
        "Logged model with ID 'm-404' not found.",
    )
    assert state(api, name) == before
    created = ok(api.post("/model-versions/create", json={"name": name, "source": "s3://b/k", "run_id": "r" * 32}))
    assert created["model_version"]["run_id"] == "r" * 32 and created["model_version"]["version"] == "3"


# ---------------------------------------------------------------------- search


def test_search_filters_mlflow_rejects(api):
    name = new_model(api)
    cases = {
        "/registered-models/search": [
            (f"name = '{name}' OR name = 'x'", "Invalid clause(s) in filter string: ", "OR"),
            ("foo = 'x'", "Invalid attribute key 'foo' specified. Valid keys are ", "name"),
            ("run_id = 'x'", "Invalid attribute key 'run_id' specified.", ""),
            ("version_number = 1", "Invalid attribute key 'version_number' specified.", ""),
            ("name = m", "Parameter value is either not quoted or unidentified quote types used for string value m. "
             "Use either single or double quotes.", ""),
            ("name > 'm'", "Invalid comparator '>'", "name"),
            ("tags.team > 'a'", "Invalid comparator '>'", "team"),
            ("tags.team IN ('a')", "Invalid comparator 'IN'", "team"),
        ],
        "/model-versions/search": [
            (f"name = '{name}' OR name = 'x'", "Invalid clause(s) in filter string: ", "OR"),
            ("foo = 'x'", "Invalid attribute key 'foo' specified. Valid keys are ", "source_path"),
            ("stage = 'None'", "Invalid attribute key 'stage' specified.", ""),
            ("name = m", "Parameter value is either not quoted or unidentified quote types used for string value m. "
             "Use either single or double quotes.", ""),
            ("name > 'm'", "Invalid comparator '>'", "name"),
            ("source_path IN ('a')", "Only ['name', 'run_id'] attributes support comparison with a list", ""),
            ("version_number = '1'", "Expected numeric value type for numeric attribute: version_number.", ""),
            ("tags.vt > 'x'", "Invalid comparator '>'", "vt"),
        ],
    }
    for path, filters in cases.items():
        for filter_string, starts, mentions in filters:
            got = invalid(api.get(path, params={"filter": filter_string}), starts=starts)
            assert mentions in got, got


def test_search_order_by_mlflow_rejects(api):
    new_model(api)
    for path, valid_keys in [
        ("/registered-models/search", ["name", "timestamp", "last_updated_timestamp"]),
        ("/model-versions/search", ["name", "version_number", "creation_timestamp", "last_updated_timestamp"]),
    ]:
        got = invalid(api.get(path, params={"order_by": ["foo DESC"]}), starts="Invalid order by key 'foo' specified.")
        assert all(key in got for key in valid_keys), got
        invalid(api.get(path, params={"order_by": ["name ASCX"]}), "Invalid order_by clause 'name ASCX'. Could not be parsed.")
        invalid(
            api.get(path, params={"order_by": ["name", "name DESC"]}),
            "`order_by` contains duplicate fields: ['name', 'name DESC']",
        )
        for key in valid_keys:
            ok(api.get(path, params={"order_by": [f"{key} DESC"]}))
    invalid(api.get("/model-versions/search", params={"order_by": ["timestamp"]}), starts="Invalid order by key 'timestamp'")
    invalid(api.get("/registered-models/search", params={"order_by": ["version_number"]}), starts="Invalid order by key 'version_number'")


def test_search_max_results_out_of_range(api):
    new_model(api)
    for path, limit in [("/registered-models/search", 1000), ("/model-versions/search", 200_000)]:
        for value in ["0", "-1", "-9223372036854775808"]:
            invalid(
                api.get(path, params={"max_results": value}),
                f"Invalid value for max_results. It must be a positive integer, but got {value}",
            )
        invalid(
            api.get(path, params={"max_results": str(limit + 1)}),
            f"Invalid value for request parameter max_results. It must be at most {limit}, but got value {limit + 1}",
        )
        for value in ["abc", "1.5", "", "9223372036854775808"]:
            invalid(api.get(path, params={"max_results": value}), starts=f"Invalid value \"{value}\" for parameter 'max_results' supplied")
        assert ok(api.get(path, params={"max_results": str(limit)}))
    invalid(api.get("/model-versions/search", params={"page_token": "garbage"}), starts="Invalid page token")
    invalid(api.get("/registered-models/search", params={"page_token": "garbage"}), starts="Invalid page token")


# ---------------------------------------------------------------------- request shape


def test_malformed_json_bodies(api):
    name = new_model(api)
    before, names = state(api, name), model_names(api)
    writes = [
        ("POST", "/registered-models/create"),
        ("POST", "/registered-models/rename"),
        ("PATCH", "/registered-models/update"),
        ("DELETE", "/registered-models/delete"),
        ("POST", "/registered-models/alias"),
        ("POST", "/model-versions/create"),
        ("POST", "/model-versions/transition-stage"),
        ("POST", "/model-versions/set-tag"),
        ("DELETE", "/model-versions/delete"),
    ]
    for method, path in writes:
        for content, starts in [
            (b"{", "Malformed JSON in request body: "),
            (b'{"name": "' + name.encode() + b'",}', "Malformed JSON in request body: "),
            (b"\xff\xfe{}", "Malformed JSON in request body: "),
            (b"[]", "Request body must be a JSON object."),
            (b'"just text"', "Malformed JSON in request body: "),
            (b"42", "Request body must be a JSON object."),
        ]:
            expect_error(
                api.request(method, path, content=content, headers={"content-type": "application/json"}),
                400,
                "MALFORMED_REQUEST",
                starts=starts,
            )
    assert state(api, name) == before
    assert model_names(api) == names
    # a double-encoded body is read as MLflow's legacy clients send it
    ok(api.post("/registered-models/set-tag", content=json.dumps(json.dumps({"name": name, "key": "k", "value": "v"}))))
    assert {"key": "k", "value": "v"} in state(api, name)["model"]["tags"]


def test_wrong_field_types(api):
    name = new_model(api)
    before, names = state(api, name), model_names(api)
    cases = [
        ("POST", "/registered-models/create", {"name": 5}, "Invalid value 5 for parameter 'name' supplied: expected a string."),
        ("POST", "/registered-models/create", {"name": ["a"]}, "Invalid value [\"a\"] for parameter 'name' supplied: expected a string."),
        ("POST", "/registered-models/create", {"name": "n", "description": {"d": 1}}, "Invalid value {\"d\":1} for parameter 'description' supplied: expected a string."),
        ("POST", "/registered-models/rename", {"name": name, "new_name": True}, "Invalid value true for parameter 'new_name' supplied: expected a string."),
        ("PATCH", "/registered-models/update", {"name": name, "description": 5}, "Invalid value 5 for parameter 'description' supplied: expected a string."),
        ("POST", "/registered-models/alias", {"name": name, "alias": 1, "version": "1"}, "Invalid value 1 for parameter 'alias' supplied: expected a string."),
        ("POST", "/model-versions/create", {"name": name, "source": ["s3://b"]}, "Invalid value [\"s3://b\"] for parameter 'source' supplied: expected a string."),
        ("POST", "/model-versions/create", {"name": name, "source": "s3://b", "run_link": 1}, "Invalid value 1 for parameter 'run_link' supplied: expected a string."),
        ("PATCH", "/model-versions/update", {"name": name, "version": "1", "description": False}, "Invalid value false for parameter 'description' supplied: expected a string."),
        ("POST", "/registered-models/get-latest-versions", {"name": name, "stages": "Production"}, None),
        ("POST", "/registered-models/get-latest-versions", {"name": name, "stages": [1]}, "Invalid value [1] for parameter 'stages' supplied: expected a list of strings."),
        ("POST", "/model-versions/set-tag", {"name": name, "version": "1", "key": "k", "value": {"v": 1}}, "Invalid value {\"v\":1} for parameter 'value' supplied: expected a string."),
    ]
    for method, path, body, message in cases:
        response = api.request(method, path, json=body)
        if message is None:
            ok(response)  # a single string where MLflow expects a list is read as a list of one
        else:
            invalid(response, message)
    assert state(api, name) == before
    assert model_names(api) == names


def test_nul_characters_are_refused(api):
    name = new_model(api)
    before = state(api, name)
    invalid(
        api.post("/registered-models/set-tag", json={"name": name, "key": "k", "value": "a\x00b"}),
        "Invalid value \"a\\u0000b\" for parameter 'value' supplied: it contains a NUL character.",
    )
    invalid(
        api.post("/registered-models/create", json={"name": "n\x00"}),
        "Invalid value \"n\\u0000\" for parameter 'name' supplied: it contains a NUL character.",
    )
    invalid(
        api.get("/registered-models/get", params={"name": "n\x00"}),
        "Invalid value \"n\\u0000\" for parameter 'name' supplied: it contains a NUL character.",
    )
    assert state(api, name) == before


def test_get_only_and_post_only_methods(server, api):
    cases = [
        ("POST", "/registered-models/search", "GET"),
        ("POST", "/model-versions/search", "GET"),
        ("POST", "/registered-models/get", "GET"),
        ("POST", "/model-versions/get", "GET"),
        ("POST", "/model-versions/get-download-uri", "GET"),
        ("GET", "/registered-models/create", "POST"),
        ("GET", "/registered-models/rename", "POST"),
        ("GET", "/model-versions/create", "POST"),
        ("GET", "/model-versions/transition-stage", "POST"),
        ("GET", "/registered-models/set-tag", "POST"),
        ("POST", "/registered-models/update", "PATCH"),
        ("POST", "/model-versions/update", "PATCH"),
        ("GET", "/registered-models/delete", "DELETE"),
        ("POST", "/model-versions/delete", "DELETE"),
        ("POST", "/model-versions/delete-tag", "DELETE"),
        ("PUT", "/registered-models/alias", "DELETE, GET, POST"),
        ("DELETE", "/registered-models/get-latest-versions", "GET, POST"),
    ]
    for method, path, allowed in cases:
        response = api.request(method, path)
        expect_error(
            response, 405, "BAD_REQUEST", f"Method {method} is not allowed for /api/2.0/mlflow{path}; use {allowed}."
        )
        assert response.headers["allow"] == allowed
    expect_error(
        api.get("/registered-models/nope"), 404, "ENDPOINT_NOT_FOUND", "No API endpoint GET /api/2.0/mlflow/registered-models/nope."
    )
    # the UI's prefix serves the same endpoints
    with httpx.Client(base_url=server.url, timeout=60) as root:
        root.event_hooks["response"].append(check_error_shape)
        expect_error(root.post("/ajax-api/2.0/mlflow/registered-models/search"), 405, "BAD_REQUEST")
        assert "registered_models" not in ok(root.get("/ajax-api/2.0/mlflow/registered-models/search"))


def test_get_latest_versions_by_post_and_get(api):
    name = new_model(api, versions=3)
    ok(api.post("/model-versions/transition-stage", json={"name": name, "version": "2", "stage": "Staging"}))
    by_get = ok(api.get("/registered-models/get-latest-versions", params={"name": name, "stages": ["staging"]}))
    by_post = ok(api.post("/registered-models/get-latest-versions", json={"name": name, "stages": ["Staging"]}))
    assert by_get == by_post
    assert [v["version"] for v in by_get["model_versions"]] == ["2"]
    every = ok(api.get("/registered-models/get-latest-versions", params={"name": name}))["model_versions"]
    assert sorted((v["current_stage"], v["version"]) for v in every) == [("None", "3"), ("Staging", "2")]
    assert ok(api.post("/registered-models/get-latest-versions", json={"name": name, "stages": ["Production"]})) == {}
