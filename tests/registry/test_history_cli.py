"""A model's history (``GET /api/v1/models/<name>/history``) and the ``labdeck models``
commands, against live servers on SQLite and PostgreSQL.

The history records every version created or deleted, every alias move (from -> to
version) and removal, every stage change (with the versions ``archive_existing_versions``
archived) and renames, newest first, paged with ``limit`` and ``before``. The CLI is run
with click's ``CliRunner`` against a live server, in its table and ``--json`` forms, and
must fail clearly (exit code 1, the server's message) on an unknown model or an
unreachable server.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import httpx
from click.testing import CliRunner, Result

from labdeck.cli import cli
from tests.conftest import free_port


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def mlflow(server: Any, method: str, path: str, **kwargs: Any) -> dict:
    with httpx.Client(base_url=server.url + "/api/2.0/mlflow", timeout=60, trust_env=False) as client:
        return ok(client.request(method, path, **kwargs))


def history(server: Any, name: str, **params: Any) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=60, trust_env=False) as client:
        # dots escaped too, or ".." would be taken as a path segment
        return client.get(f"/api/v1/models/{quote(name, safe='').replace('.', '%2E')}/history", params=params)


def shape(event: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(event.get(k) for k in ("kind", "alias", "version", "from_version", "to_version", "from_stage", "to_stage"))


def build_history(server: Any, name: str) -> list[tuple[Any, ...]]:
    """Drive a model through every kind of event; the events expected, oldest first."""

    def call(method: str, path: str, **body: Any) -> None:
        mlflow(server, method, path, json=body)

    call("POST", "/registered-models/create", name=name)
    for i in range(3):
        call("POST", "/model-versions/create", name=name, source=f"s3://b/{i}")
    call("POST", "/registered-models/alias", name=name, alias="champion", version="1")
    call("POST", "/registered-models/alias", name=name, alias="champion", version="2")
    call("POST", "/registered-models/alias", name=name, alias="champion", version="2")  # no move, no event
    call("POST", "/registered-models/alias", name=name, alias="challenger", version="3")
    call("DELETE", "/registered-models/alias", name=name, alias="challenger")
    call("DELETE", "/registered-models/alias", name=name, alias="challenger")  # nothing to remove, no event
    call("POST", "/model-versions/transition-stage", name=name, version="1", stage="production")
    call("POST", "/model-versions/transition-stage", name=name, version="3", stage="Staging")
    call("POST", "/model-versions/transition-stage", name=name, version="3", stage="Staging")  # no change
    call(
        "POST",
        "/model-versions/transition-stage",
        name=name,
        version="2",
        stage="Production",
        archive_existing_versions=True,
    )
    call("POST", "/registered-models/alias", name=name, alias="temp", version="3")
    call("DELETE", "/model-versions/delete", name=name, version="3")  # takes its alias with it
    call("POST", "/model-versions/set-tag", name=name, version="1", key="k", value="v")  # not history
    call("PATCH", "/registered-models/update", name=name, description="d")  # not history
    return [
        ("VERSION_CREATED", None, 1, None, None, None, None),
        ("VERSION_CREATED", None, 2, None, None, None, None),
        ("VERSION_CREATED", None, 3, None, None, None, None),
        ("ALIAS_SET", "champion", None, None, 1, None, None),
        ("ALIAS_SET", "champion", None, 1, 2, None, None),
        ("ALIAS_SET", "challenger", None, None, 3, None, None),
        ("ALIAS_DELETED", "challenger", None, 3, None, None, None),
        ("STAGE_CHANGED", None, 1, None, None, "None", "Production"),
        ("STAGE_CHANGED", None, 3, None, None, "None", "Staging"),
        ("STAGE_CHANGED", None, 1, None, None, "Production", "Archived"),
        ("STAGE_CHANGED", None, 2, None, None, "None", "Production"),
        ("ALIAS_SET", "temp", None, None, 3, None, None),
        ("ALIAS_DELETED", "temp", None, 3, None, None, None),
        ("VERSION_DELETED", None, 3, None, None, None, None),
    ]


# ---------------------------------------------------------------------- the history API


def test_history_records_every_change_newest_first(server):
    expected = build_history(server, "churn")
    found = ok(history(server, "churn"))
    assert set(found) == {"events"}  # one page: no next_before
    events = found["events"]
    assert [shape(e) for e in events] == expected[::-1]
    ids = [e["event_id"] for e in events]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps, reverse=True)
    local_user = server.app.platform.auth.local_principal().username  # single-user mode: the local user acts
    assert all(e["model"] == "churn" and e["actor"] == local_user for e in events)
    # what the history replays to is what the registry holds
    model = mlflow(server, "GET", "/registered-models/get", params={"name": "churn"})["registered_model"]
    assert model["aliases"] == [{"alias": "champion", "version": "2"}]
    assert sorted((v["version"], v["current_stage"]) for v in model["latest_versions"]) == [
        ("1", "Archived"),
        ("2", "Production"),
    ]


def test_history_follows_a_rename_and_ends_with_the_model(server):
    build_history(server, "old name")
    before = ok(history(server, "old name"))["events"]
    mlflow(server, "POST", "/registered-models/rename", json={"name": "old name", "new_name": "new#name?"})
    after = ok(history(server, "new#name?"))["events"]
    assert shape(after[0])[0] == "RENAMED" and (after[0]["from_name"], after[0]["to_name"]) == ("old name", "new#name?")
    assert [e["event_id"] for e in after[1:]] == [e["event_id"] for e in before]
    assert all(e["model"] == "new#name?" for e in after)
    gone = history(server, "old name")
    assert gone.status_code == 404
    assert gone.json() == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": "Registered Model with name=old name not found",
        "details": None,
    }
    # a deleted and re-created model starts a new history
    mlflow(server, "DELETE", "/registered-models/delete", json={"name": "new#name?"})
    mlflow(server, "POST", "/registered-models/create", json={"name": "new#name?"})
    assert ok(history(server, "new#name?")) == {"events": []}


def test_history_pages_with_limit_and_before(server):
    expected = build_history(server, "paged")  # 14 events
    for limit in (1, 3, 7, 14, 15):
        pages, before = [], None
        while True:
            params = {"limit": limit} | ({} if before is None else {"before": before})
            page = ok(history(server, "paged", **params))
            assert 0 < len(page["events"]) <= limit
            pages.append(page["events"])
            if "next_before" not in page:
                break
            assert len(page["events"]) == limit
            before = page["next_before"]
            assert before == page["events"][-1]["event_id"]
        assert [shape(e) for page in pages for e in page] == expected[::-1], limit
        assert len(pages) == -(-len(expected) // limit)  # no empty last page, even when limit divides
    every = ok(history(server, "paged"))["events"]
    older = ok(history(server, "paged", before=every[1]["event_id"]))["events"]
    assert older == every[2:]
    # a cursor past every event is every event; the oldest event has nothing before it
    assert ok(history(server, "paged", before=2**70)) == ok(history(server, "paged"))
    oldest = ok(history(server, "paged"))["events"][-1]["event_id"]
    assert ok(history(server, "paged", before=oldest)) == {"events": []}


def test_history_errors(server):
    mlflow(server, "POST", "/registered-models/create", json={"name": "m"})
    unknown = history(server, "nope")
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": "Registered Model with name=nope not found",
        "details": None,
    }
    for params, field, problem in [
        ({"limit": 0}, "limit", "Input should be greater than or equal to 1"),
        ({"limit": -1}, "limit", "Input should be greater than or equal to 1"),
        ({"limit": 1001}, "limit", "Input should be less than or equal to 1000"),
        ({"limit": "x"}, "limit", "Input should be a valid integer, unable to parse string as an integer"),
        ({"limit": "1.5"}, "limit", "Input should be a valid integer, unable to parse string as an integer"),
        ({"before": 0}, "before", "Input should be greater than or equal to 1"),
        ({"before": "x"}, "before", "Input should be a valid integer, unable to parse string as an integer"),
    ]:
        response = history(server, "m", **params)
        assert response.status_code == 400, response.text
        assert response.json() == {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": f"Invalid request: {field}: {problem}",
            "details": [{"field": field, "problem": problem}],
        }
    for bad, message in [
        ("..", "Invalid value \"..\" for parameter 'name' supplied: Names may be treated as files in certain cases, "
         "and must not resolve to other names when treated as such. This name would resolve to '..'"),
        ("a:b", "Invalid model name 'a:b'. Names cannot contain '/' or ':'."),
        ("a\x00b", "Invalid value \"a\\u0000b\" for parameter 'name' supplied: it contains a NUL character."),
    ]:
        response = history(server, bad)
        assert response.status_code == 400, response.text
        assert response.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": message, "details": None}
    with httpx.Client(base_url=server.url, timeout=60, trust_env=False) as client:
        response = client.post("/api/v1/models/m/history")
        assert response.status_code == 405
        assert response.json() == {"error_code": "BAD_REQUEST", "message": "Method Not Allowed", "details": None}


# ---------------------------------------------------------------------- the CLI


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(cli, ["models", *args], catch_exceptions=False)


def table(result: Result) -> list[list[str]]:
    """The rows of a printed table, split on runs of two or more spaces."""
    assert result.exit_code == 0, result.output
    return [re.split(r"\s{2,}", line.strip()) for line in result.stdout.splitlines() if line.strip()]


WHEN = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


def test_cli_list_show_and_versions(server):
    url = ["--url", server.url]
    assert run_cli("list", *url).stdout == "(none)\n"
    build_history(server, "churn")
    mlflow(server, "POST", "/registered-models/create", json={"name": "o'brien"})
    mlflow(server, "POST", "/model-versions/create", json={"name": "o'brien", "source": "s3://b/x"})
    mlflow(server, "POST", "/registered-models/set-tag", json={"name": "churn", "key": "team", "value": "risk"})

    rows = table(run_cli("list", *url))
    assert rows[0] == ["NAME", "LATEST", "ALIASES", "UPDATED"]
    assert rows[1][:3] == ["churn", "2", "champion=v2"] and rows[2][:2] == ["o'brien", "1"]  # o'brien: no aliases
    assert len(rows) == 3 and all(WHEN.match(r[-1]) for r in rows[1:])
    listed = json.loads(run_cli("list", "--json", *url).stdout)
    assert [m["name"] for m in listed] == ["churn", "o'brien"]
    assert listed == mlflow(server, "GET", "/registered-models/search")["registered_models"]
    assert [r[0] for r in table(run_cli("list", "--filter", "name LIKE 'o%'", *url))[1:]] == ["o'brien"]

    rows = dict((r + [""])[:2] for r in table(run_cli("show", "churn", *url))[1:])
    assert rows["name"] == "churn" and rows["description"] == "d" and rows["aliases"] == "champion=v2"
    assert rows["tags"] == "team=risk" and rows["latest"] == "v1 (Archived), v2 (Production)"
    assert WHEN.match(rows["created"]) and WHEN.match(rows["updated"])
    shown = json.loads(run_cli("show", "churn", "--json", *url).stdout)
    assert shown == mlflow(server, "GET", "/registered-models/get", params={"name": "churn"})["registered_model"]

    rows = table(run_cli("versions", "churn", *url))
    assert rows[0] == ["VERSION", "STAGE", "ALIASES", "RUN", "SOURCE", "CREATED"]
    assert [r[:2] for r in rows[1:]] == [["2", "Production"], ["1", "Archived"]]  # newest first; 3 is deleted
    assert rows[1][2] == "champion" and rows[1][3] == "s3://b/1"
    versions = json.loads(run_cli("versions", "churn", "--json", *url).stdout)
    assert [v["version"] for v in versions] == ["2", "1"] and versions[0]["aliases"] == ["champion"]
    assert [v["version"] for v in json.loads(run_cli("versions", "o'brien", "--json", *url).stdout)] == ["1"]


def test_cli_aliases_and_history(server):
    url = ["--url", server.url]
    build_history(server, "churn")
    assert table(run_cli("alias", "set", "churn", "canary", "1", *url)) == [
        ["MODEL", "ALIAS", "VERSION"],
        ["churn", "canary", "1"],
    ]
    assert json.loads(run_cli("alias", "set", "churn", "canary", "2", "--json", *url).stdout) == {
        "name": "churn",
        "alias": "canary",
        "version": "2",
    }
    model = mlflow(server, "GET", "/registered-models/get", params={"name": "churn"})["registered_model"]
    assert model["aliases"] == [{"alias": "canary", "version": "2"}, {"alias": "champion", "version": "2"}]
    assert table(run_cli("alias", "delete", "churn", "canary", *url)) == [["MODEL", "ALIAS"], ["churn", "canary", "deleted"]]
    model = mlflow(server, "GET", "/registered-models/get", params={"name": "churn"})["registered_model"]
    assert model["aliases"] == [{"alias": "champion", "version": "2"}]

    rows = table(run_cli("history", "churn", *url))
    assert rows[0] == ["EVENT", "WHEN", "WHO", "KIND", "CHANGE"]
    described = [(r[-2], r[-1]) for r in rows[1:]]
    assert described[:3] == [
        ("ALIAS_DELETED", "@canary removed (was v2)"),
        ("ALIAS_SET", "@canary: v1 -> v2"),
        ("ALIAS_SET", "@canary: (new) -> v1"),
    ]
    assert ("STAGE_CHANGED", "v1: Production -> Archived") in described
    assert ("VERSION_DELETED", "v3") in described and described[-1] == ("VERSION_CREATED", "v1")
    assert len(described) == 17 and all(WHEN.match(r[1]) for r in rows[1:])

    paged = run_cli("history", "churn", "--limit", "2", *url)
    assert len(table(paged)) == 3
    page = json.loads(run_cli("history", "churn", "--limit", "2", "--json", *url).stdout)
    assert [e["kind"] for e in page["events"]] == ["ALIAS_DELETED", "ALIAS_SET"]
    assert paged.stderr == f"(older events: --before {page['next_before']})\n"
    rest = json.loads(run_cli("history", "churn", "--before", str(page["next_before"]), "--json", *url).stdout)
    every = json.loads(run_cli("history", "churn", "--json", *url).stdout)
    assert rest == {"events": every["events"][2:]} and len(rest["events"]) == 15

    # names that need escaping in a URL
    mlflow(server, "POST", "/registered-models/rename", json={"name": "churn", "new_name": "churn #2?"})
    renamed = json.loads(run_cli("history", "churn #2?", "--limit", "1", "--json", *url).stdout)
    assert renamed["events"][0]["kind"] == "RENAMED" and renamed["events"][0]["model"] == "churn #2?"
    assert table(run_cli("history", "churn #2?", "--limit", "1", *url))[1][-1] == "renamed churn -> churn #2?"


def test_cli_errors(server):
    url = ["--url", server.url]
    mlflow(server, "POST", "/registered-models/create", json={"name": "m"})
    not_found = "Error: RESOURCE_DOES_NOT_EXIST: Registered Model with name=nope not found\n"
    for args in [
        ("show", "nope"),
        ("versions", "nope"),
        ("history", "nope"),
        ("alias", "set", "nope", "a", "1"),
        ("alias", "delete", "nope", "a"),
    ]:
        result = run_cli(*args, *url)
        assert (result.exit_code, result.stdout, result.stderr) == (1, "", not_found), args
    cases = [
        (("alias", "set", "m", "latest", "1"), "INVALID_PARAMETER_VALUE: 'latest' alias name (case insensitive) is reserved."),
        (("alias", "set", "m", "a", "1"), "RESOURCE_DOES_NOT_EXIST: Model Version (name=m, version=1) not found"),
        (("alias", "set", "m", "a", "x"), "INVALID_PARAMETER_VALUE: Parameter 'version' must be an integer, got 'x'."),
        (("list", "--filter", "name = m"), "INVALID_PARAMETER_VALUE: Parameter value is either not quoted or "
         "unidentified quote types used for string value m. Use either single or double quotes."),
        (("history", "a:b"), "INVALID_PARAMETER_VALUE: Invalid model name 'a:b'. Names cannot contain '/' or ':'."),
    ]
    for args, message in cases:
        result = run_cli(*args, *url)
        assert (result.exit_code, result.stderr) == (1, f"Error: {message}\n"), args
    # bad options are refused before any request
    result = run_cli("history", "m", "--limit", "0", *url)
    assert result.exit_code == 2 and "Invalid value for '--limit'" in result.stderr


def test_cli_unreachable_server():
    url = f"http://127.0.0.1:{free_port()}"
    for args in [("list",), ("show", "m"), ("versions", "m"), ("history", "m"), ("alias", "set", "m", "a", "1")]:
        result = run_cli(*args, "--url", url)
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        assert result.stderr.startswith(f"Error: cannot reach labdeck at {url}: "), result.stderr


def test_cli_reads_the_url_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("LABDECK_URL", server.url)
    mlflow(server, "POST", "/registered-models/create", json={"name": "from-env"})
    assert [r[0] for r in table(run_cli("list"))[1:]] == ["from-env"]
