"""The tracking pages in a real browser: experiments, the runs table (paging, sorting,
filtering, columns, picking runs), a run (charts, note, models, artifacts) and the
comparison of runs, over data logged with the real mlflow client."""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.web.conftest import mlflow_pointed_at, sign_in

SWEEP_RUNS = 130
SPIKE_STEP, SPIKE = 4321, 500.0
PASSWORD = "password-for-tests"


def _png(width: int = 3, height: int = 2) -> bytes:
    """A real PNG (red pixels), made by hand so that no image library is needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


ARTIFACTS = {
    "notes.txt": b"trained on the March data\nsecond line\n",
    "config.json": json.dumps({"model": {"depth": 3, "kind": "tree"}}, separators=(",", ":")).encode(),
    "params.yaml": b"lr: 0.1\nlayers:\n  - 64\n  - 32\n",
    "table.csv": b"name,score\nalpha,0.91\n\"beta, b\",0.85\n",
    "plots/picture.png": _png(),
    "plots/shape.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20"><rect width="20" height="20" fill="blue"/></svg>',
}


def path_coordinates(path: Any) -> list[tuple[float, float]]:
    """The (x, y) points of an SVG path drawn with M and L commands only, as the chart draws."""
    d = path.get_attribute("d")
    return [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", d)]


def path_points(path: Any) -> int:
    return len(path_coordinates(path))


def plot_box(chart: Any) -> dict[str, float]:
    """The plot area of a line chart (its hover overlay covers exactly that), in SVG units."""
    overlay = chart.locator("rect.lc-overlay")
    return {k: float(overlay.get_attribute(k)) for k in ("x", "y", "width", "height")}


@pytest.fixture(scope="module")
def tracked(ui_server: RunningServer, root_api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two experiments logged with the mlflow client as root: a 130-run sweep, and three
    detailed runs with histories, artifacts and a logged scikit-learn model."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    token = root_api.headers["Authorization"].removeprefix("Bearer ")
    with mlflow_pointed_at(ui_server.url, token):  # other modules' tests aim mlflow elsewhere
        client = MlflowClient(ui_server.url)
        sweep = client.create_experiment("ui-sweep")
        sweep_runs: dict[str, str] = {}
        for i in range(SWEEP_RUNS):
            run = client.create_run(sweep, run_name=f"sweep-{i:03d}", start_time=1_700_000_000_000 + i)
            acc = ((i * 37) % SWEEP_RUNS) / SWEEP_RUNS
            client.log_batch(
                run.info.run_id,
                metrics=[Metric("acc", acc, 1, 0), Metric("loss", 1 - acc, 1, 0)],
                params=[Param("lr", str([0.1, 0.01, 0.001][i % 3])), Param("depth", str(2 + i % 4))],
                tags=[RunTag("team", "blue" if i % 2 else "red")],
            )
            client.set_terminated(run.info.run_id)
            sweep_runs[f"sweep-{i:03d}"] = run.info.run_id

        detail = client.create_experiment("ui-detail")
        detail_runs: dict[str, str] = {}
        settings = {"alpha": ("0.1", "adam", 0.91), "beta": ("0.01", "adam", 0.85), "gamma": ("0.001", "sgd", 0.70)}
        for name, (lr, optimizer, acc) in settings.items():
            run = client.create_run(detail, run_name=name)
            run_id = run.info.run_id
            client.log_batch(
                run_id,
                params=[Param("lr", lr), Param("optimizer", optimizer), Param("seed", "7")],
                metrics=[Metric("acc", acc, 1, 0)]
                + [Metric("loss", math.exp(-s / 10) + float(lr), 1_700_000_000_000 + s, s) for s in range(50)],
            )
            detail_runs[name] = run_id
        alpha = detail_runs["alpha"]
        wave = [math.sin(s / 200) for s in range(10_000)]
        wave[SPIKE_STEP] = SPIKE
        for start in range(0, len(wave), 1000):
            client.log_batch(alpha, metrics=[Metric("wave", wave[s], 1_700_000_000_000 + s, s) for s in range(start, start + 1000)])
        folder = tmp_path_factory.mktemp("artifacts")
        for relative, body in ARTIFACTS.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        client.log_artifacts(alpha, str(folder))

        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
        mlflow.set_experiment(experiment_id=detail)
        with mlflow.start_run(run_id=alpha):
            logged = mlflow.sklearn.log_model(model, name="model")
        for run_id in detail_runs.values():
            client.set_terminated(run_id)
        created = root_api.post("/api/v1/users", json={"username": "reader", "password": PASSWORD})
        assert created.status_code == 201, created.text
        yield {
            "client": client,
            "sweep": sweep,
            "sweep_runs": sweep_runs,
            "detail": detail,
            "runs": detail_runs,
            "model_id": logged.model_id,
        }


def _rows(page: Any) -> Any:
    return page.locator("table#runs tbody tr")


def _column_values(page: Any, column: str) -> list[str]:
    index = page.locator("table#runs thead th").evaluate_all(
        "(ths, column) => ths.findIndex((th) => th.dataset.column === column)", column
    )
    assert index >= 0, f"no column {column}"
    return page.locator(f"table#runs tbody tr td:nth-child({index + 1})").all_inner_texts()


def test_experiments_list_counts_runs_and_searches(signed_in: Any, ui_server: RunningServer, tracked: dict[str, Any], shot: Any) -> None:
    page = signed_in
    page.goto(f"{ui_server.url}/ui/experiments")
    sweep_row = page.get_by_role("row").filter(has=page.get_by_role("link", name="ui-sweep"))
    sweep_row.wait_for()
    assert sweep_row.get_by_role("cell").nth(2).inner_text() == str(SWEEP_RUNS)
    shot(page, "experiments")
    page.get_by_label("Search experiments").fill("detail")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="ui-sweep").wait_for(state="detached")
    assert page.get_by_role("link", name="ui-detail").is_visible()


def test_runs_table_pages_sorts_and_filters(
    signed_in: Any, ui_server: RunningServer, root_api: httpx.Client, tracked: dict[str, Any], console: Any, shot: Any
) -> None:
    page = signed_in
    page.goto(f"{ui_server.url}/ui/experiments/{tracked['sweep']}")
    page.get_by_role("table").wait_for()
    assert _rows(page).count() == 100
    assert page.locator("table#runs caption").inner_text() == "Runs 1–100"
    page.get_by_text(f"{SWEEP_RUNS} runs ·").wait_for()
    shot(page, "experiment-runs")

    page.get_by_role("button", name="Next").click()
    page.locator("table#runs caption", has_text="Runs 101–130").wait_for()
    assert _rows(page).count() == SWEEP_RUNS - 100
    page.get_by_role("button", name="Previous").click()
    page.locator("table#runs caption", has_text="Runs 1–100").wait_for()

    acc = page.locator('th[data-column="metrics.acc"]')
    acc.get_by_role("button").click()
    page.locator('th[data-column="metrics.acc"][aria-sort="descending"]').wait_for()
    values = [float(v) for v in _column_values(page, "metrics.acc")]
    assert values == sorted(values, reverse=True) and values[0] == pytest.approx((SWEEP_RUNS - 1) / SWEEP_RUNS, rel=1e-5)
    acc.get_by_role("button").click()
    page.locator('th[data-column="metrics.acc"][aria-sort="ascending"]').wait_for()
    values = [float(v) for v in _column_values(page, "metrics.acc")]
    assert values == sorted(values) and values[0] == 0
    assert page.locator('th[data-column="attributes.start_time"]').get_attribute("aria-sort") == "none"

    page.get_by_label("Filter runs").fill("metrics.acc > 0.9 and params.lr = '0.1'")
    page.get_by_role("button", name="Apply").click()
    expected = sum(1 for i in range(SWEEP_RUNS) if ((i * 37) % SWEEP_RUNS) / SWEEP_RUNS > 0.9 and i % 3 == 0)
    page.wait_for_function(f"() => document.querySelectorAll('table#runs tbody tr').length === {expected}")
    assert all(float(v) > 0.9 for v in _column_values(page, "metrics.acc"))
    assert set(_column_values(page, "params.lr")) == {"0.1"}

    console.allow(r"status of 400")
    page.get_by_label("Filter runs").fill("metrics.acc >")
    page.get_by_role("button", name="Apply").click()
    refused = root_api.post(
        "/api/2.0/mlflow/runs/search", json={"experiment_ids": [tracked["sweep"]], "filter": "metrics.acc >"}
    )
    assert refused.status_code == 400
    error = page.locator("#filter-error [role=alert]")
    error.wait_for()
    assert error.inner_text() == refused.json()["message"]
    shot(page, "experiment-filter-error")


def test_column_chooser_searches_keys_and_remembers_the_choice(signed_in: Any, ui_server: RunningServer, tracked: dict[str, Any]) -> None:
    page = signed_in
    page.goto(f"{ui_server.url}/ui/experiments/{tracked['sweep']}")
    page.get_by_role("table").wait_for()
    assert page.locator('th[data-column="tags.team"]').count() == 0
    chooser = page.get_by_role("button", name="Columns")
    chooser.click()
    assert chooser.get_attribute("aria-expanded") == "true"
    page.get_by_label("Search columns").fill("tea")
    region = page.get_by_role("region", name="Choose columns")
    region.get_by_text("Metrics (0 of 2)").wait_for()
    region.get_by_label("team").check()
    page.locator('th[data-column="tags.team"]').wait_for()
    assert set(_column_values(page, "tags.team")) == {"red", "blue"}
    region.get_by_label("Search columns").fill("")
    region.get_by_label("acc").uncheck()
    assert page.locator('th[data-column="metrics.acc"]').count() == 0

    page.reload()
    page.locator('th[data-column="tags.team"]').wait_for()
    assert page.locator('th[data-column="metrics.acc"]').count() == 0
    detail = f"{ui_server.url}/ui/experiments/{tracked['detail']}"
    page.goto(detail)  # the choice is per experiment
    page.locator('th[data-column="metrics.acc"]').wait_for()


def test_compare_three_runs_from_the_table(signed_in: Any, ui_server: RunningServer, tracked: dict[str, Any], shot: Any) -> None:
    page = signed_in
    page.goto(f"{ui_server.url}/ui/experiments/{tracked['detail']}")
    page.get_by_role("table").wait_for()
    compare = page.get_by_role("button", name=re.compile("^Compare"))
    assert compare.is_disabled()
    for name in ("alpha", "beta", "gamma"):
        page.get_by_label(f"Select {name}").check()
    assert compare.inner_text() == "Compare (3)"
    compare.click()
    page.wait_for_url(re.compile(r"/ui/compare\?runs="))
    assert set(page.url.split("runs=")[1].split(",")) == set(tracked["runs"].values())

    chart = page.locator("#overlay-chart")
    chart.locator("circle.lc-point").first.wait_for()  # acc: one point per run, drawn as a dot
    assert chart.locator("circle.lc-point").count() == 3
    assert chart.locator("ul.lc-legend li").all_inner_texts() == ["alpha", "beta", "gamma"]
    assert page.get_by_label("Metric", exact=True).input_value() == "acc"
    page.get_by_label("Metric", exact=True).select_option("loss")
    chart.locator("path.lc-line").first.wait_for()
    assert chart.locator("path.lc-line").count() == 3  # one line per run
    assert [path_points(chart.locator("path.lc-line").nth(i)) for i in range(3)] == [50, 50, 50]
    assert len({chart.locator("path.lc-line").nth(i).get_attribute("stroke") for i in range(3)}) == 3

    lines = page.locator("svg.parallel polyline.pc-line")
    assert lines.count() == 3
    axes = page.locator("svg.parallel g.pc-axis > text:first-of-type").all_text_contents()
    assert axes[:2] == ["lr", "optimizer"] and axes[-1] == "acc"
    colours = {lines.nth(i).get_attribute("stroke") for i in range(3)}
    assert len(colours) == 3  # coloured by acc, which differs
    page.get_by_label("Colour by metric").select_option("loss")
    assert page.locator("svg.parallel g.pc-axis > text:first-of-type").last.text_content() == "loss"

    table = page.locator("table#comparison")
    assert table.locator('tr[data-key="lr"]').get_attribute("class") == "differs"
    assert table.locator('tr[data-key="optimizer"]').get_attribute("class") == "differs"
    assert table.locator('tr[data-key="seed"]').get_attribute("class") == ""
    assert table.locator('tr[data-key="seed"] td.differs').count() == 0
    assert table.locator('tr[data-key="acc"] td.differs').count() == 3
    shot(page, "compare")


def test_run_page_shows_everything_and_charts_keep_the_spike(signed_in: Any, ui_server: RunningServer, tracked: dict[str, Any], shot: Any) -> None:
    page = signed_in
    alpha = tracked["runs"]["alpha"]
    page.goto(f"{ui_server.url}/ui/runs/{alpha}")
    page.get_by_role("heading", name="alpha", level=1).wait_for()
    params = page.get_by_role("region", name="Params")
    assert params.get_by_role("row").filter(has_text="optimizer").inner_text().split() == ["optimizer", "adam"]
    metrics = page.get_by_role("region", name="Latest metrics")
    assert metrics.get_by_role("row").filter(has_text="wave").get_by_role("cell").nth(1).inner_text() == f"{math.sin(9999 / 200):.6g}"
    models = page.get_by_role("region", name="Models")
    models.get_by_role("cell", name=tracked["model_id"]).wait_for()

    loss = page.locator('[data-metric="loss"]')
    loss.scroll_into_view_if_needed()
    line = loss.locator("path.lc-line")
    line.wait_for()
    assert path_points(line) == 50  # every point of a short history
    wave = page.locator('[data-metric="wave"]')
    wave.scroll_into_view_if_needed()
    drawn = wave.locator("path.lc-line")
    drawn.wait_for()
    points = path_coordinates(drawn)
    assert len(points) <= 2 * 1500
    plot = plot_box(wave)
    # the spike survives the down-sampling: the line's highest point is at the top of the plot,
    # at the spike's step, and the y axis reaches its value
    top_x, top_y = min(points, key=lambda p: p[1])
    assert abs(top_y - plot["y"]) <= 6
    assert abs(top_x - (plot["x"] + plot["width"] * SPIKE_STEP / 9999)) <= 2
    assert wave.locator(".lc-y text").last.text_content() == "500"
    assert "down-sampled" in wave.locator("svg").get_attribute("aria-label")
    page.mouse.move(0, 0)
    shot(page, "run")


def test_artifact_previews_and_downloads(signed_in: Any, ui_server: RunningServer, tracked: dict[str, Any], shot: Any) -> None:
    page = signed_in
    page.goto(f"{ui_server.url}/ui/runs/{tracked['runs']['alpha']}")
    artifacts = page.get_by_role("region", name="Artifacts")
    viewer = artifacts.locator(".artifact-viewer")

    def open_file(path: str) -> None:
        artifacts.locator(f'button.file[data-path="{path}"]').click()
        viewer.get_by_role("heading", name=path).wait_for()
        viewer.get_by_role("link", name="Download").wait_for()

    open_file("notes.txt")
    assert viewer.locator("pre").inner_text() == ARTIFACTS["notes.txt"].decode()
    open_file("config.json")
    assert viewer.locator("pre.json").inner_text() == json.dumps(json.loads(ARTIFACTS["config.json"]), indent=2)
    open_file("params.yaml")
    assert "  - 64" in viewer.locator("pre.yaml").inner_text()
    open_file("table.csv")
    cells = viewer.locator("table.csv tbody tr").first.get_by_role("cell").all_inner_texts()
    assert viewer.locator("table.csv th").all_inner_texts() == ["name", "score"]
    assert cells == ["alpha", "0.91"] and viewer.locator("table.csv tbody tr").nth(1).get_by_role("cell").first.inner_text() == "beta, b"

    folder = artifacts.locator('button.folder[data-path="plots"]')
    assert folder.get_attribute("aria-expanded") == "false"
    folder.click()
    assert folder.get_attribute("aria-expanded") == "true"
    for path in ("plots/picture.png", "plots/shape.svg"):
        open_file(path)
        image = viewer.get_by_role("img", name=path)
        image.wait_for()
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    shot(page, "run-artifacts")

    open_file("table.csv")
    href = viewer.get_by_role("link", name="Download").get_attribute("href")
    downloaded = page.request.get(f"{ui_server.url}{href}")
    assert downloaded.status == 200 and downloaded.body() == ARTIFACTS["table.csv"]
    open_file("plots/picture.png")
    href = viewer.get_by_role("link", name="Download").get_attribute("href")
    assert page.request.get(f"{ui_server.url}{href}").body() == ARTIFACTS["plots/picture.png"]


def test_note_is_saved_by_an_editor_and_refused_to_a_reader(
    page: Any, ui_server: RunningServer, tracked: dict[str, Any], console: Any
) -> None:
    beta = tracked["runs"]["beta"]
    client = tracked["client"]
    sign_in(page, ui_server, next_url=f"/ui/runs/{beta}")
    page.get_by_role("textbox", name="Note").fill("Best of the adam runs.")
    page.get_by_role("button", name="Save note").click()
    page.get_by_role("status").filter(has_text="Note saved.").wait_for()
    assert client.get_run(beta).data.tags["mlflow.note.content"] == "Best of the adam runs."

    page.context.clear_cookies()
    console.allow(r"status of 403")
    sign_in(page, ui_server, "reader", PASSWORD, next_url=f"/ui/runs/{beta}")
    note = page.get_by_role("textbox", name="Note")
    assert note.input_value() == "Best of the adam runs."
    note.fill("vandalised")
    page.get_by_role("button", name="Save note").click()
    refusal = page.locator("form.note [role=alert]")
    refusal.wait_for()
    assert "reader needs EDIT" in refusal.inner_text()
    assert client.get_run(beta).data.tags["mlflow.note.content"] == "Best of the adam runs."


def test_register_model_from_the_run_page(
    signed_in: Any, ui_server: RunningServer, root_api: httpx.Client, tracked: dict[str, Any], shot: Any
) -> None:
    page = signed_in
    page.goto(f"{ui_server.url}/ui/runs/{tracked['runs']['alpha']}")
    models = page.get_by_role("region", name="Models")
    models.get_by_text("No registered version comes from this run yet.").wait_for()
    for expected in ("1", "2"):  # the second time the registered model already exists
        models.get_by_role("button", name="Register model").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Model name").fill("ui-churn")
        if expected == "1":
            shot(page, "run-register-dialog")
        dialog.get_by_role("button", name="Register").click()
        models.get_by_text(f"Registered ui-churn version {expected}.").wait_for()
    versions = tracked["client"].search_model_versions("name = 'ui-churn'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert {v.run_id for v in versions} == {tracked["runs"]["alpha"]}
    # mlflow's client drops model_id when it reads a version (its from_proto skips it): ask over REST
    version = root_api.get("/api/2.0/mlflow/model-versions/get", params={"name": "ui-churn", "version": "1"}).json()["model_version"]
    assert version["model_id"] == tracked["model_id"] and version["source"] == f"models:/{tracked['model_id']}"
    assert models.get_by_role("link", name="ui-churn").count() == 2


def test_pages_without_data_say_so(signed_in: Any, ui_server: RunningServer, console: Any) -> None:
    page = signed_in
    console.allow(r"status of 404")
    page.goto(f"{ui_server.url}/ui/compare")
    page.get_by_role("alert").filter(has_text="Choose runs to compare").wait_for()
    page.goto(f"{ui_server.url}/ui/runs/0123456789abcdef0123456789abcdef")
    page.get_by_role("alert").filter(has_text="0123456789abcdef0123456789abcdef").wait_for()

