"""The platform pages in a real browser: models (search, alias and stage moves behind a
confirmation, the history), deploying a version in two clicks and "try it" in both protocols,
the live traffic endpoint, refusals showing the API's message, workspaces (start, progress,
JupyterLab through the proxy, stop) and administration (users, teams, tokens, permissions).
Data comes from the real ``mlflow`` client and the API; the browser does the rest."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.auth.access_kit import PASSWORD
from tests.conftest import RunningServer
from tests.web.conftest import sign_in
from tests.web.platform_kit import admin_api, grant, make_user, platform_server, register_iris, wait_until  # noqa: F401

MODEL = "iris-ui"


@pytest.fixture(scope="module")
def iris(platform_server: RunningServer, admin_api: httpx.Client) -> str:  # noqa: F811
    register_iris(platform_server, admin_api, MODEL, versions=2)
    return MODEL


def alias_version(api: httpx.Client, name: str, alias: str) -> str | None:
    got = api.get("/api/2.0/mlflow/registered-models/alias", params={"name": name, "alias": alias})
    return got.json()["model_version"]["version"] if got.status_code == 200 else None


def confirm(page: Any, button: str) -> None:
    """Click ``button`` in the open confirmation dialog."""
    dialog = page.locator("dialog[open]")
    dialog.wait_for()
    dialog.get_by_role("button", name=button, exact=True).click()
    dialog.wait_for(state="detached")


def test_models_list_searches_by_name(page: Any, platform_server: RunningServer, iris: str, shot: Any) -> None:  # noqa: F811
    sign_in(page, platform_server, next_url="/ui/models")
    page.get_by_role("link", name=iris).wait_for()
    page.get_by_label("Search models").fill("no-such-thing")
    page.get_by_role("button", name="Search").click()
    page.get_by_text("No model matches.").wait_for()
    page.get_by_label("Search models").fill("IRIS")  # ILIKE: any case
    page.keyboard.press("Enter")
    page.get_by_role("link", name=iris).wait_for()
    assert "q=IRIS" in page.url
    shot(page, "models")
    page.get_by_role("link", name=iris).click()
    page.wait_for_url(re.compile(rf"/ui/models/{iris}$"))
    page.get_by_role("heading", level=1, name=iris).wait_for()


def test_alias_and_stage_moves_ask_first_and_show_in_the_history(
    page: Any, platform_server: RunningServer, admin_api: httpx.Client, iris: str, shot: Any  # noqa: F811
) -> None:
    sign_in(page, platform_server, next_url=f"/ui/models/{iris}")
    versions = page.get_by_role("region", name="Versions")
    versions.get_by_role("link").first.wait_for()
    assert versions.get_by_role("link").count() == 2  # each version links to its source run
    run_link = versions.get_by_role("link").first.get_attribute("href")
    assert re.fullmatch(r"/ui/runs/[0-9a-f]{32}", run_link)

    moving = page.get_by_role("form", name="Move an alias")
    moving.get_by_label("Alias", exact=True).fill("production")
    moving.get_by_label("Version", exact=True).select_option("1")
    moving.get_by_role("button", name="Move alias").click()
    assert "Set @production of iris-ui on version 1?" in page.locator("dialog[open]").inner_text()
    confirm(page, "Cancel")  # cancelling changes nothing
    assert alias_version(admin_api, iris, "production") is None

    moving.get_by_role("button", name="Move alias").click()
    confirm(page, "Move alias")
    page.get_by_text("Move alias: done.").wait_for()
    assert alias_version(admin_api, iris, "production") == "1"

    moving = page.get_by_role("form", name="Move an alias")  # the page was redrawn
    moving.get_by_label("Version", exact=True).select_option("2")
    moving.get_by_role("button", name="Move alias").click()
    assert "from version 1 to version 2" in page.locator("dialog[open]").inner_text()
    confirm(page, "Move alias")
    history = page.get_by_role("list", name="History")
    history.get_by_text("moved @production from v1 to v2").wait_for()
    assert alias_version(admin_api, iris, "production") == "2"

    stages = page.get_by_role("form", name="Change a stage")
    stages.get_by_label("Version", exact=True).select_option("2")
    stages.get_by_label("Stage", exact=True).select_option("Staging")
    stages.get_by_role("button", name="Change stage").click()
    confirm(page, "Change stage")
    page.get_by_role("list", name="History").get_by_text("moved v2 from None to Staging").wait_for()
    got = admin_api.get("/api/2.0/mlflow/model-versions/get", params={"name": iris, "version": "2"}).json()
    assert got["model_version"]["current_stage"] == "Staging"
    aliases = page.get_by_role("region", name="Aliases")
    assert "models:/iris-ui@production" in aliases.inner_text()
    shot(page, "model")


def test_a_reader_is_refused_with_the_api_message_and_nothing_changes(
    page: Any, platform_server: RunningServer, admin_api: httpx.Client, iris: str, console: Any  # noqa: F811
) -> None:
    make_user(admin_api, "rita")
    grant(admin_api, "registered_model", iris, "rita", "READ")
    before = alias_version(admin_api, iris, "champion")
    console.allow(r"status of 403")
    sign_in(page, platform_server, "rita", PASSWORD, next_url=f"/ui/models/{iris}")
    moving = page.get_by_role("form", name="Move an alias")
    moving.get_by_label("Alias", exact=True).fill("champion")
    moving.get_by_role("button", name="Move alias").click()
    confirm(page, "Move alias")
    refusal = page.get_by_role("alert")
    refusal.wait_for()
    assert "Permission denied" in refusal.inner_text() and "EDIT" in refusal.inner_text()
    assert alias_version(admin_api, iris, "champion") == before is None


def test_deploy_a_version_in_two_clicks_and_try_it_in_both_protocols(
    page: Any, platform_server: RunningServer, admin_api: httpx.Client, iris: str, console: Any, shot: Any  # noqa: F811
) -> None:
    sign_in(page, platform_server, next_url=f"/ui/models/{iris}")
    page.get_by_role("button", name="Deploy version 1").click()  # click one
    dialog = page.locator("dialog[open]")
    assert dialog.get_by_label("Deployment name").input_value() == "iris-ui-v1"
    assert dialog.get_by_label("Model URI").input_value() == "models:/iris-ui/1"
    shot(page, "deploy-dialog")
    dialog.get_by_role("button", name="Create").click()  # click two
    page.wait_for_url(re.compile(r"/ui/deployments/iris-ui-v1$"))
    status = page.get_by_role("region", name="Status")
    status.get_by_text("available", exact=True).wait_for(timeout=120_000)
    # once a replica is ready, the example follows the model's signature (four named columns)
    trial = page.get_by_role("form", name="Try it")
    trial.get_by_text("prefilled from the model's signature").wait_for()
    body = trial.get_by_label("Request body (JSON)").input_value()
    assert "sepal length (cm)" in body

    trial.get_by_role("button", name="Send").click()
    answer = trial.locator("pre.result")
    answer.wait_for()
    assert '"outputs"' in answer.inner_text() and '"model_name": "iris-ui-v1"' in answer.inner_text()

    trial.get_by_label("Protocol").select_option("seldon")
    assert '"ndarray"' in trial.get_by_label("Request body (JSON)").input_value()
    trial.get_by_role("button", name="Send").click()
    page.wait_for_function("document.querySelector('pre.result').textContent.includes('\"data\"')")
    seldon = trial.locator("pre.result").inner_text()
    assert '"meta"' in seldon or '"ndarray"' in seldon
    shot(page, "deployment-try-it")

    # a request the model refuses shows the server's message
    console.allow(r"status of 400")
    trial.get_by_label("Request body (JSON)").fill('{"data": {"ndarray": [[1, 2]]}}')
    trial.get_by_role("button", name="Send").click()
    trial.get_by_role("alert").wait_for()
    assert trial.get_by_role("alert").inner_text().strip() != ""
    trial.get_by_label("Request body (JSON)").fill("{not json")
    trial.get_by_role("button", name="Send").click()
    page.get_by_text("The request body is not valid JSON").wait_for()

    # the live charts count what went through the gateway
    wait_until(
        lambda: int(page.locator("#rate-chart").get_attribute("data-total") or 0) >= 3, "the requests in the rate chart"
    )
    page.get_by_role("region", name="Traffic").get_by_text(re.compile(r"\d+ requests in the last 120 s")).wait_for()
    rate = page.locator("#rate-chart")
    assert rate.locator("ul.lc-legend li").all_inner_texts() == ["answered", "failed"]
    assert rate.locator("path.lc-line").count() == 2
    assert "Requests per second" in rate.locator("svg").get_attribute("aria-label")
    page.locator("#latency-chart circle.lc-point").first.wait_for()  # the seconds that saw requests
    predictors = page.get_by_role("region", name="Predictors").inner_text()
    assert "models:/iris-ui/1" in predictors and "100%" in predictors and "1 / 1" in predictors
    assert page.get_by_role("region", name="Events").locator("tbody tr").count() > 0
    page.get_by_role("region", name="Logs").locator("pre.logs").first.wait_for()
    shot(page, "deployment")

    page.goto(f"{platform_server.url}/ui/deployments")
    row = page.get_by_role("row", name=re.compile("iris-ui-v1"))
    row.wait_for()
    assert "available" in row.inner_text() and "models:/iris-ui/1" in row.inner_text()
    shot(page, "deployments")


def deploy(api: httpx.Client, name: str, model: str) -> None:
    made = api.post(
        "/api/v1/deployments",
        json={
            "apiVersion": "labdeck.dev/v1",
            "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": {"predictors": [{"name": "main", "model": model}]},
        },
    )
    assert made.status_code == 201, made.text


def test_deployment_metrics_api(platform_server: RunningServer, admin_api: httpx.Client, iris: str) -> None:  # noqa: F811
    deploy(admin_api, "iris-metrics", f"models:/{iris}/2")
    wait_until(lambda: admin_api.get("/api/v1/deployments/iris-metrics").json()["state"] == "AVAILABLE", "AVAILABLE")
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
    for _ in range(3):
        assert admin_api.post("/deployments/iris-metrics/v2/models/iris-metrics/infer", json=body).status_code == 200
    refused = admin_api.post("/deployments/iris-metrics/v2/models/iris-metrics/infer", json={"inputs": []})
    assert refused.status_code == 400

    def counted() -> dict[str, Any] | None:
        series = admin_api.get("/api/v1/deployments/iris-metrics/metrics", params={"seconds": 60}).json()
        return series if series["total_requests"] == 4 else None

    series = wait_until(counted, "four requests counted")
    assert len(series["requests"]) == 60 and series["end"] - series["start"] == 59
    assert series["total_errors"] == 0  # a 400 is the caller's mistake, not a failure
    assert series["mean_latency_ms"] > 0
    assert [x for x in series["latency_ms"] if x is not None]

    missing = admin_api.get("/api/v1/deployments/nothing-here/metrics")
    assert missing.status_code == 404 and "nothing-here" in missing.json()["message"]
    bad = admin_api.get("/api/v1/deployments/iris-metrics/metrics", params={"seconds": 0})
    assert bad.status_code == 400 and "seconds" in bad.text
    documented = admin_api.get("/api/v1/openapi.json").json()["paths"]
    assert any(path.endswith("/deployments/{name}/metrics") for path in documented)
    with httpx.Client(base_url=platform_server.url, timeout=60) as anonymous:
        assert anonymous.get("/api/v1/deployments/iris-metrics/metrics").status_code == 401


def test_deleting_without_manage_shows_the_api_error_and_keeps_the_deployment(
    page: Any, platform_server: RunningServer, admin_api: httpx.Client, iris: str, console: Any  # noqa: F811
) -> None:
    deploy(admin_api, "iris-kept", f"models:/{iris}/1")
    make_user(admin_api, "eddie")
    grant(admin_api, "deployment", "iris-kept", "eddie", "EDIT")
    console.allow(r"status of 403")
    sign_in(page, platform_server, "eddie", PASSWORD, next_url="/ui/deployments/iris-kept")
    page.get_by_role("button", name="Delete deployment").click()
    confirm(page, "Delete")
    refusal = page.get_by_role("alert").first
    refusal.wait_for()
    assert "Permission denied" in refusal.inner_text() and "MANAGE" in refusal.inner_text()
    assert page.url.endswith("/ui/deployments/iris-kept")
    assert admin_api.get("/api/v1/deployments/iris-kept").status_code == 200


def test_start_watch_open_and_stop_a_workspace(
    page: Any, platform_server: RunningServer, admin_api: httpx.Client, console: Any, shot: Any  # noqa: F811
) -> None:
    console.allow(r"/user/root/")  # JupyterLab's own console chatter is not ours to judge
    sign_in(page, platform_server, next_url="/ui/workspaces")
    start = page.get_by_role("form", name="Start a workspace")
    assert start.get_by_label("Environment").input_value() == "sklearn"
    start.get_by_role("button", name="Start workspace").click()
    page.locator("progress").first.wait_for()  # progress while it starts
    page.get_by_role("status").filter(has_text=re.compile("starting")).first.wait_for()
    shot(page, "workspaces-starting")
    opener = page.get_by_role("link", name="Open root")
    opener.wait_for(timeout=120_000)
    page.get_by_text("root is running.").wait_for()
    shot(page, "workspaces")
    with page.context.expect_page() as opened:
        opener.click()
    lab = opened.value
    lab.locator(".jp-LauncherCard").first.wait_for(timeout=90_000)
    assert "/user/root/" in lab.url
    shot(lab, "jupyterlab")
    lab.close()

    page.get_by_role("button", name="Stop root").click()
    confirm(page, "Stop")
    page.get_by_role("row", name=re.compile(r"root.*stopped")).wait_for(timeout=60_000)
    assert admin_api.get("/api/v1/workspaces/root").json()["state"] == "STOPPED"


def test_admin_manages_users_teams_tokens_and_permissions(
    page: Any, platform_server: RunningServer, admin_api: httpx.Client, iris: str, shot: Any  # noqa: F811
) -> None:
    sign_in(page, platform_server, next_url="/ui/admin")
    users = page.get_by_role("region", name="Users")
    create = users.get_by_role("form", name="Create a user")
    create.get_by_label("Username").fill("carol")
    create.get_by_label("Password").fill("carol-password-1")
    create.get_by_role("button", name="Create user").click()
    users.get_by_text("User carol created.").wait_for()
    expect(users.get_by_role("row", name=re.compile("carol"))).to_have_count(1)  # the list refreshes after the message
    with httpx.Client(base_url=platform_server.url, timeout=60, auth=("carol", "carol-password-1")) as carol:
        assert carol.get("/api/v1/me").json()["username"] == "carol"

    teams = page.get_by_role("region", name="Teams")
    teams.get_by_label("Team name").fill("analysts")
    teams.get_by_role("button", name="Create team").click()
    teams.get_by_text("Team analysts created.").wait_for()
    adding = teams.get_by_role("form", name="Add a member")
    adding.get_by_label("Team").select_option("analysts")
    adding.get_by_label("Member").select_option("carol")
    adding.get_by_role("button", name="Add member").click()
    teams.get_by_text("carol added to analysts.").wait_for()
    assert admin_api.get("/api/v1/teams/analysts").json()["members"] == ["carol"]

    tokens = page.get_by_role("region", name="API tokens")
    tokens.get_by_label("Token name").fill("laptop")
    tokens.get_by_role("button", name="Create token").click()
    secret = tokens.locator("code.token")
    secret.wait_for()
    token = secret.inner_text().strip()
    with httpx.Client(base_url=platform_server.url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
        assert http.get("/api/v1/me").json()["username"] == "root"
    expect(tokens.get_by_role("row", name=re.compile("laptop"))).to_have_count(1)

    permissions = page.get_by_role("region", name="Permissions")
    permissions.get_by_label("Resource type").select_option("registered_model")
    permissions.get_by_label("Resource", exact=True).select_option(iris)
    permissions.get_by_role("button", name="Show permissions").click()
    granting = permissions.get_by_role("form", name="Grant a level")
    granting.get_by_label("User or team").fill("carol")
    granting.get_by_label("Level").select_option("EDIT")
    granting.get_by_role("button", name="Grant").click()
    permissions.get_by_text(f"EDIT granted to carol on {iris}.").wait_for()
    permissions.get_by_role("row", name=re.compile(r"carol \(user\)")).wait_for()
    grants = admin_api.get(f"/api/v1/permissions/registered_model/{iris}").json()["grants"]
    assert {"user": "carol", "level": "EDIT"} in grants
    shot(page, "admin")

    carol_row = users.get_by_role("row", name=re.compile("carol"))
    carol_row.get_by_role("button", name="Deactivate carol").click()
    confirm(page, "Deactivate")
    users.get_by_text("carol is deactivated.").wait_for()
    assert admin_api.get("/api/v1/users/carol").json()["active"] is False

    page.reload()  # the secret was shown once: never again
    page.get_by_role("region", name="API tokens").get_by_role("row", name=re.compile("laptop")).wait_for()
    assert page.locator("code.token").count() == 0
    assert token not in page.content()
