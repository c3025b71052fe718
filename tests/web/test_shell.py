"""The UI's frame in a real browser: sign-in redirects, navigation, assets, sign-out."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import RunningServer
from tests.web.conftest import sign_in


def test_pages_send_a_stranger_to_sign_in_and_back(page: Any, ui_server: RunningServer, shot: Any) -> None:
    sign_in(page, ui_server, next_url="/ui/deployments")
    assert page.locator("nav[aria-label=Main] a[aria-current=page]").inner_text() == "Deployments"


def test_home_shows_my_sections_and_sign_out_ends_the_session(signed_in: Any, ui_server: RunningServer, shot: Any) -> None:
    page = signed_in
    for title in ("My workspaces", "My recent runs", "Deployments"):
        page.get_by_role("region", name=title).wait_for()
    assert page.get_by_role("heading", level=1).inner_text() == "Welcome, root"
    shot(page, "home")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/auth/login"))
    page.goto(f"{ui_server.url}/ui/models")
    page.wait_for_url(re.compile(r"/auth/login\?next=/ui/models$"))


def test_keyboard_reaches_the_content_first(signed_in: Any) -> None:
    page = signed_in
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_assets_are_fingerprinted_cached_and_compressed(ui_server: RunningServer) -> None:
    with httpx.Client(base_url=ui_server.url) as client:
        shell = client.get("/ui/", follow_redirects=False)
        assert shell.status_code == 303 and shell.headers["location"] == "/auth/login?next=/ui/"
        login = client.post("/auth/login", data={"username": "root", "password": "root-password-123", "next": "/ui/"})
        assert login.status_code in (200, 303)
        shell = client.get("/ui/")
        assert shell.status_code == 200
        assert "script-src 'self'" in shell.headers["content-security-policy"]
        prefix = re.search(r'href="(/ui/static/[0-9a-f]{12}/)app.css"', shell.text).group(1)
        css = client.get(prefix + "app.css", headers={"Accept-Encoding": "gzip"})
        assert css.status_code == 200 and css.headers["content-encoding"] == "gzip"
        assert "immutable" in css.headers["cache-control"] and css.text.startswith("/* labdeck")
        chart = client.get(prefix + "lib/linechart.js")
        assert chart.status_code == 200 and chart.headers["content-type"].startswith("text/javascript")
        assert client.get(prefix + "vendor/plotly.min.js").status_code == 404  # one way to draw a chart: ours
        assert client.get(prefix + "../../pyproject.toml").status_code == 404
        assert client.get(prefix + "nothing.js").status_code == 404
        assert client.get("/ui/static/000000000000/app.css").status_code == 404
        admin = client.get("/ui/admin")
        assert admin.status_code == 200


def test_admin_page_is_for_admins(ui_server: RunningServer, root_api: httpx.Client) -> None:
    created = root_api.post("/api/v1/users", json={"username": "dora", "password": "password-for-tests"})
    assert created.status_code == 201, created.text
    with httpx.Client(base_url=ui_server.url) as client:
        client.post("/auth/login", data={"username": "dora", "password": "password-for-tests", "next": "/ui/"})
        assert client.get("/ui/").status_code == 200
        refused = client.get("/ui/admin")
        assert refused.status_code == 403 and "not an administrator" in refused.text


def test_links_the_mlflow_client_prints_open_the_same_run_here(
    signed_in: Any, ui_server: RunningServer, root_api: httpx.Client
) -> None:
    """mlflow prints "View run at <tracking uri>/#/experiments/<id>/runs/<run id>"."""
    page = signed_in
    mlflow_api = "/api/2.0/mlflow"
    experiment = root_api.post(f"{mlflow_api}/experiments/create", json={"name": "printed-links"}).json()["experiment_id"]
    run = root_api.post(f"{mlflow_api}/runs/create", json={"experiment_id": experiment, "run_name": "linked"}).json()
    run_id = run["run"]["info"]["run_id"]
    page.goto(f"{ui_server.url}/#/experiments/{experiment}/runs/{run_id}")
    page.wait_for_url(f"{ui_server.url}/ui/runs/{run_id}")
    page.get_by_role("heading", level=1, name="linked").wait_for()
    page.goto(f"{ui_server.url}/#/experiments/{experiment}")
    page.wait_for_url(f"{ui_server.url}/ui/experiments/{experiment}")
