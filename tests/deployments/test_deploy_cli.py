"""``labdeck deploy`` and ``labdeck deployments list|get|events|logs|delete`` through click's
CliRunner against a live server (``--url``) whose replicas really start: a file with two
documents, a deployment written from flags and then changed (the command waits for the
change, not for the state before it), tables and ``--json``, a model that cannot load
(exit status 1 with the reason), and bad input refused with the field's path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from labdeck.cli import cli
from tests.deployments.deploy_kit import (
    SETOSA,
    Lab,
    Models,
    as_yaml,
    model_deployment,
    v2_body,
)
from tests.processes import alive
from tests.seed import SEED_MODEL_URI, SEED_SELDON_DEPLOYMENT


@pytest.fixture
def labdeck(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """``labdeck(*args)``: the command line against the module's server; the test's
    deployments are deleted after it."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no saved token of the user's
    monkeypatch.delenv("LABDECK_TOKEN", raising=False)

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, [*args, "--url", lab.url], input=input)

    yield invoke
    lab.delete_everything()


def ok(result: Result) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}{result.exception!r}"
    return result.output


def failed(result: Result) -> str:
    assert result.exit_code != 0, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.output


def table(output: str) -> list[list[str]]:
    """The rows of a printed table (after its header), split on runs of spaces."""
    lines = [line for line in output.splitlines() if line.strip()]
    return [line.split() for line in lines[1:]]


def seldon_yaml(name: str, model: Path) -> str:
    return SEED_SELDON_DEPLOYMENT.replace("name: iris-model", f"name: {name}").replace(SEED_MODEL_URI, str(model))


def test_deploy_a_file_with_two_documents_then_list_get_events_logs_and_delete(
    labdeck: Callable[..., Result], lab: Lab, models: Models, tmp_path: Path
) -> None:
    file = tmp_path / "deployments.yaml"
    labdeck_doc = model_deployment("cli-one", {"name": "main", "model": str(models["iris"])})
    file.write_text(as_yaml(labdeck_doc) + "---\n" + seldon_yaml("cli-two", models["iris"]))

    rows = table(ok(labdeck("deploy", "-f", str(file))))
    assert [r[:5] for r in rows] == [
        ["cli-one", "main", "AVAILABLE", "1/1", "100%"],
        ["cli-two", "default", "AVAILABLE", "1/1", "100%"],
    ]
    for name in ("cli-one", "cli-two"):
        assert lab.get(name)["state"] == "AVAILABLE"
    answer = lab.http.post("/seldon/prod-data-science/cli-two/api/v1.0/predictions", json={"data": {"ndarray": [SETOSA]}})
    assert answer.status_code == 200, answer.text

    # list
    rows = table(ok(labdeck("deployments", "list")))
    assert {(r[0], r[2]) for r in rows} == {("cli-one", "AVAILABLE"), ("cli-two", "AVAILABLE")}
    listed = json.loads(ok(labdeck("deployments", "list", "--json")))
    assert {d["name"]: d["kind"] for d in listed} == {"cli-one": "ModelDeployment", "cli-two": "SeldonDeployment"}

    # get: the summary, every replica, the endpoints, recent events
    output = ok(labdeck("deployments", "get", "cli-one"))
    d = lab.get("cli-one")
    (replica,) = d["predictors"][0]["replicas"]
    assert replica["id"] in output and replica["http"] in output
    assert f"v2: {lab.url}/deployments/cli-one/v2/models/cli-one/infer" in output
    assert f"seldon: {lab.url}/seldon/default/cli-one/api/v1.0/predictions" in output
    assert "Serving" in output
    got = json.loads(ok(labdeck("deployments", "get", "cli-two", "--json")))
    assert (got["name"], got["namespace"], got["state"]) == ("cli-two", "prod-data-science", "AVAILABLE")

    # events and logs
    events = json.loads(ok(labdeck("deployments", "events", "cli-one", "--json")))
    assert [e["kind"] for e in events] == ["Serving"]
    assert "Serving" in ok(labdeck("deployments", "events", "cli-one", "--limit", "5"))
    output = ok(labdeck("deployments", "logs", "cli-one", "--tail", "20"))
    assert f"==> main/{replica['id']} <==" in output and "labdeck serve" in output
    logs = json.loads(ok(labdeck("deployments", "logs", "cli-one", "--json")))
    assert set(logs["main"]) == {replica["id"]}

    # delete waits until the replicas are gone
    assert json.loads(ok(labdeck("deployments", "delete", "cli-one", "--json"))) == {"deleted": "cli-one"}
    assert lab.http.get("/api/v1/deployments/cli-one").status_code == 404
    assert not alive(replica["pid"])
    assert "cli-two" in ok(labdeck("deployments", "delete", "cli-two"))
    assert "RESOURCE_DOES_NOT_EXIST" in failed(labdeck("deployments", "get", "cli-one"))
    assert "RESOURCE_DOES_NOT_EXIST" in failed(labdeck("deployments", "delete", "cli-one"))
    assert ok(labdeck("deployments", "list")).strip() == "(none)"


def test_deploy_by_name_then_change_it(labdeck: Callable[..., Result], lab: Lab, models: Models) -> None:
    deployed = json.loads(ok(labdeck("deploy", "flags", "--model", str(models["iris"]), "--replicas", "2", "--method", "predict_proba", "--json")))
    (d,) = deployed
    (main,) = d["predictors"]
    assert (d["state"], main["ready_replicas"], main["desired_replicas"]) == ("AVAILABLE", 2, 2)
    assert d["spec"]["spec"]["predictors"] == [
        {"name": "main", "model": str(models["iris"]), "method": "predict_proba", "replicas": 2}
    ]
    answer = lab.http.post("/deployments/flags/v2/models/flags/infer", json=v2_body("flags", [SETOSA]))
    assert answer.json()["outputs"][0]["shape"] == [1, 3]  # probabilities

    # the same command again changes it; it returns once the change serves, not before
    changed = json.loads(ok(labdeck("deploy", "flags", "--model", str(models["shifted"]), "--json")))
    (d,) = changed
    (main,) = d["predictors"]
    assert d["generation"] == 2 and d["state"] == "AVAILABLE"
    assert main["serving"]["location"] == str(models["shifted"]) and main["target"] is None
    assert main["ready_replicas"] == main["desired_replicas"] == 1
    answer = lab.http.post("/deployments/flags/v2/models/flags/infer", json=v2_body("flags", [SETOSA]))
    assert answer.json()["outputs"][0]["data"] == [1]  # the shifted model's answer

    # --no-wait returns what the server accepted
    (d,) = json.loads(ok(labdeck("deploy", "flags", "--model", str(models["iris"]), "--no-wait", "--json")))
    assert d["generation"] == 3 and d["state"] in ("PENDING", "PROGRESSING")
    lab.wait("flags", lambda d: d["state"] == "AVAILABLE" and d["predictors"][0]["serving"]["location"] == str(models["iris"]), "iris serving")


def test_a_model_that_cannot_load_fails_the_command_with_the_reason(labdeck: Callable[..., Result], lab: Lab, models: Models) -> None:
    output = failed(labdeck("deploy", "broken", "--model", str(models["broken"]), "--timeout", "120"))
    assert "deployment broken is FAILED" in output, output
    assert "exited with status 1" in output, output
    d = lab.get("broken")
    assert d["state"] == "FAILED" and d["message"]
    ok(labdeck("deployments", "delete", "broken"))


def test_bad_input_is_refused_with_the_field(labdeck: Callable[..., Result], lab: Lab, models: Models, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(as_yaml(model_deployment("bad", {"name": "main", "model": str(models["iris"]), "replicas": 0})))
    output = failed(labdeck("deploy", "-f", str(bad)))
    assert "INVALID_PARAMETER_VALUE" in output and "spec.predictors[0].replicas" in output, output

    seldon = tmp_path / "tf.yaml"
    seldon.write_text(seldon_yaml("bad", models["iris"]).replace("SKLEARN_SERVER", "TENSORFLOW_SERVER"))
    output = failed(labdeck("deploy", "-f", str(seldon)))
    assert "TENSORFLOW_SERVER" in output and "SKLEARN_SERVER" in output, output

    output = failed(labdeck("deploy", "bad", "--model", str(tmp_path / "missing")))
    assert "spec.predictors[0].model" in output and "nothing at" in output, output

    assert "--replicas" in failed(labdeck("deploy", "bad", "--model", str(models["iris"]), "--replicas", "65"))
    assert "Give either -f FILE or NAME" in failed(labdeck("deploy"))
    assert "Give either -f FILE or NAME" in failed(labdeck("deploy", "bad", "-f", str(bad)))
    assert "needs --model" in failed(labdeck("deploy", "bad"))

    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    assert "holds no deployment" in failed(labdeck("deploy", "-f", str(empty)))
    broken = tmp_path / "broken.yaml"
    broken.write_text("metadata: {name: [\n")
    assert "is not valid YAML" in failed(labdeck("deploy", "-f", str(broken)))
    nameless = tmp_path / "nameless.yaml"
    nameless.write_text(as_yaml({"kind": "ModelDeployment", "spec": {}}))
    assert "no metadata.name" in failed(labdeck("deploy", "-f", str(nameless)))
    assert lab.http.get("/api/v1/deployments").json()["deployments"] == []


def test_deploy_reads_stdin(labdeck: Callable[..., Result], lab: Lab, models: Models) -> None:
    document: dict[str, Any] = model_deployment("piped", {"name": "main", "model": str(models["iris"])})
    (d,) = json.loads(ok(labdeck("deploy", "-f", "-", "--no-wait", "--json", input=as_yaml(document))))
    assert d["name"] == "piped"
    lab.wait_available("piped")
