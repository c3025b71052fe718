"""The whole mission in one browser session, as a data scientist lives it: sign in, start a
workspace, train an iris model in a JupyterLab notebook (typed into its cells, run with
Shift+Enter) and log it with ``mlflow``, register it from the run page, set its
``production`` alias, deploy that alias and get a prediction through "try it". A screenshot
of every page on the way lands in test-artifacts/screenshots/journey-*.png."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.auth.access_kit import PASSWORD
from tests.conftest import RunningServer
from tests.web.conftest import SCREENSHOTS, sign_in
from tests.web.platform_kit import admin_api, make_user, platform_server  # noqa: F401

USER = "maria"
MODEL = "iris-journey"
CELLS = [
    "import mlflow, mlflow.sklearn; from mlflow.models import infer_signature; "
    "from sklearn.datasets import load_iris; from sklearn.linear_model import LogisticRegression",
    "X, y = load_iris(return_X_y=True, as_frame=True); model = LogisticRegression(max_iter=1000).fit(X, y); "
    'print("accuracy", round(model.score(X, y), 3))',
    'mlflow.set_experiment("iris-journey"); run = mlflow.start_run(run_name="iris-logreg"); '
    'mlflow.log_param("max_iter", 1000); mlflow.log_metric("accuracy", model.score(X, y)); '
    'mlflow.sklearn.log_model(model, name="model", signature=infer_signature(X, model.predict(X)), '
    'pip_requirements=["scikit-learn", "skops"]); mlflow.end_run(); print("RUN_ID=" + run.info.run_id)',
]
SLOW_MS = 180_000  # a cold kernel's first import of mlflow and sklearn takes a while


def confirm(page: Any, button: str) -> None:
    dialog = page.locator("dialog[open]")
    dialog.wait_for()
    dialog.get_by_role("button", name=button, exact=True).click()
    dialog.wait_for(state="detached")


def run_cells(lab: Any, cells: list[str]) -> str:
    """Type each cell into the notebook's editor and run it with Shift+Enter; the text of
    the notebook's outputs once the last cell has printed the run id."""
    for i, code in enumerate(cells):
        editor = lab.locator(".jp-Notebook .jp-Cell").nth(i).locator(".cm-content")
        editor.click()
        # one line per cell, inserted as text: CodeMirror's bracket closing reacts to keys
        lab.keyboard.insert_text(code)
        assert editor.inner_text().strip() == code, f"cell {i} holds {editor.inner_text()!r}"
        lab.keyboard.press("Shift+Enter")
        # the cell's prompt shows its execution count once it has run: one cell at a time,
        # so that a failure is the failing cell's
        prompt = lab.locator(".jp-Notebook .jp-Cell").nth(i).locator(".jp-InputPrompt")
        try:
            lab.wait_for_function(
                "([el, n]) => el.textContent.includes(`[${n}]`)", arg=[prompt.element_handle(), i + 1], timeout=SLOW_MS
            )
        except Exception:
            lab.screenshot(path=str(SCREENSHOTS / "journey-notebook-failed.png"), full_page=True)
            raise AssertionError(f"cell {i} never ran; the notebook's outputs:\n" + "\n".join(outputs_of(lab))) from None
    return "\n".join(outputs_of(lab))


def outputs_of(lab: Any) -> list[str]:
    return lab.locator(".jp-Notebook .jp-OutputArea-output").all_inner_texts()


def test_from_notebook_to_prediction(
    page: Any, platform_server: RunningServer, admin_api: httpx.Client, console: Any, shot: Any  # noqa: F811
) -> None:
    make_user(admin_api, USER)
    console.allow(rf"/user/{USER}/")  # JupyterLab's own console chatter is not ours to judge

    # sign in and start a workspace
    sign_in(page, platform_server, USER, PASSWORD, next_url="/ui/")
    shot(page, "journey-1-home")
    page.get_by_role("link", name="Workspaces").click()
    page.get_by_role("form", name="Start a workspace").get_by_role("button", name="Start workspace").click()
    page.locator("progress").first.wait_for()
    opener = page.get_by_role("link", name=f"Open {USER}")
    opener.wait_for(timeout=120_000)
    shot(page, "journey-2-workspace")

    # open JupyterLab, make a notebook, train and log the model
    with page.context.expect_page() as opened:
        opener.click()
    lab = opened.value
    lab.set_default_timeout(60_000)
    lab.locator(".jp-LauncherCard[data-category=Notebook]").first.click()
    lab.locator(".jp-Notebook .jp-Cell .cm-content").first.wait_for()
    # the kernel must be up before the first cell runs, or JupyterLab may drop the request
    lab.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=SLOW_MS)
    text = run_cells(lab, CELLS)
    assert re.search(r"accuracy 0\.9\d", text), text
    run_id = re.search(r"RUN_ID=([0-9a-f]{32})", text).group(1)
    shot(lab, "journey-3-notebook")
    lab.close()

    # the run page: register the model it logged
    page.goto(f"{platform_server.url}/ui/runs/{run_id}")
    page.get_by_role("button", name="Register model").first.click()
    page.get_by_label("Model name").fill(MODEL)
    page.get_by_role("button", name="Register", exact=True).click()
    page.get_by_text(f"Registered {MODEL} version 1.").wait_for()
    shot(page, "journey-4-run")

    # the model page: set the production alias (after a confirmation)
    page.goto(f"{platform_server.url}/ui/models/{MODEL}")
    moving = page.get_by_role("form", name="Move an alias")
    moving.get_by_label("Alias", exact=True).fill("production")
    moving.get_by_label("Version", exact=True).select_option("1")
    moving.get_by_role("button", name="Move alias").click()
    confirm(page, "Move alias")
    page.get_by_role("list", name="History").get_by_text("set @production on v1").wait_for()
    shot(page, "journey-5-model")

    # deploy the alias in two clicks and ask it for a prediction
    page.get_by_role("button", name="Deploy @production").click()
    dialog = page.locator("dialog[open]")
    assert dialog.get_by_label("Model URI").input_value() == f"models:/{MODEL}@production"
    dialog.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(rf"/ui/deployments/{MODEL}-production$"))
    page.get_by_role("region", name="Status").get_by_text("available", exact=True).wait_for(timeout=120_000)
    trial = page.get_by_role("form", name="Try it")
    trial.get_by_text("prefilled from the model's signature").wait_for()
    trial.get_by_role("button", name="Send").click()
    answer = trial.locator("pre.result")
    answer.wait_for()
    assert '"outputs"' in answer.inner_text()
    assert re.search(r'"data": \[\s*0\s*\]', answer.inner_text()), answer.inner_text()  # a setosa's measurements
    shot(page, "journey-6-deployment")

    served = admin_api.get(f"/api/v1/deployments/{MODEL}-production").json()
    assert served["created_by"] == USER
    assert served["predictors"][0]["serving"]["version"] == "1"
