"""labdeck's own line chart (static/lib/linechart.js) in a real browser, on a run page: the
tooltip at the hovered step, drag-to-zoom and its reset, the keyboard, the log scale."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer

STEPS = 50


def value_at(step: int) -> float:
    return 100.0 - 2 * step  # 100 down to 2: round numbers in the tooltip, all positive for log


@pytest.fixture(scope="module")
def run_id(ui_server: RunningServer, root_api: httpx.Client) -> Iterator[str]:
    """A run logged with the mlflow client, with a 50-step metric "loss"."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    saved = os.environ.get("MLFLOW_TRACKING_TOKEN")
    os.environ["MLFLOW_TRACKING_TOKEN"] = root_api.headers["Authorization"].removeprefix("Bearer ")
    try:
        client = MlflowClient(ui_server.url)
        experiment = client.create_experiment("ui-charts")
        run = client.create_run(experiment, run_name="curve")
        metrics = [Metric("loss", value_at(s), 1_700_000_000_000 + s, s) for s in range(STEPS)]
        client.log_batch(run.info.run_id, metrics=metrics)
        client.set_terminated(run.info.run_id)
        yield run.info.run_id
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
        else:
            os.environ["MLFLOW_TRACKING_TOKEN"] = saved


@pytest.fixture
def chart(signed_in: Any, ui_server: RunningServer, run_id: str) -> Any:
    page = signed_in
    page.goto(f"{ui_server.url}/ui/runs/{run_id}")
    box = page.locator('[data-metric="loss"]')
    box.scroll_into_view_if_needed()
    box.locator("path.lc-line").wait_for()
    return box


def x_labels(chart: Any) -> list[float]:
    return [float(t) for t in chart.locator(".lc-x text").all_text_contents()]


def y_labels(chart: Any) -> list[str]:
    return chart.locator(".lc-y text").all_text_contents()


def screen_point(chart: Any, step: float, shown: tuple[float, float] = (0, STEPS - 1)) -> tuple[float, float]:
    """Where on the screen the plot shows `step` (given the x range shown), half-way down."""
    svg = chart.locator("svg").bounding_box()
    overlay = chart.locator("rect.lc-overlay")
    x, y, width, height = (float(overlay.get_attribute(k)) for k in ("x", "y", "width", "height"))
    lo, hi = shown
    return svg["x"] + x + width * (step - lo) / (hi - lo), svg["y"] + y + height / 2


def tooltip(chart: Any) -> str:
    tip = chart.locator(".lc-tip")
    tip.wait_for()
    return tip.inner_text()


def test_hover_shows_the_value_at_the_nearest_step(chart: Any, shot: Any) -> None:
    page = chart.page
    svg = chart.locator("svg")
    assert svg.get_attribute("role") == "img"
    assert svg.get_attribute("aria-label").startswith("loss: line chart of 50 points, step 0 to 49")
    assert chart.locator(".lc-tip").is_hidden()
    page.mouse.move(*screen_point(chart, 10.2))
    assert tooltip(chart).split("\n")[:2] == ["step 10", "loss: 80"]
    assert chart.locator("line.lc-rule").get_attribute("visibility") == "visible"
    assert chart.locator(".lc-dots circle").count() == 1
    page.mouse.move(*screen_point(chart, 37))
    assert tooltip(chart).split("\n")[:2] == ["step 37", "loss: 26"]
    shot(page, "chart-hover")
    page.mouse.move(0, 0)
    chart.locator(".lc-tip").wait_for(state="hidden")


def test_drag_zooms_into_x_and_double_click_resets(chart: Any, shot: Any) -> None:
    page = chart.page
    full = x_labels(chart)
    assert full[0] == 0 and full[-1] >= 40
    assert y_labels(chart)[-1] == "100"
    reset = chart.get_by_role("button", name="Reset zoom")
    assert reset.is_disabled()

    page.mouse.move(*screen_point(chart, 10))
    page.mouse.down()
    page.mouse.move(*screen_point(chart, 20), steps=5)
    assert chart.locator("rect.lc-brush").get_attribute("visibility") == "visible"
    page.mouse.move(*screen_point(chart, 30), steps=5)
    page.mouse.up()
    zoomed = x_labels(chart)
    assert chart.locator("figure").get_attribute("data-zoomed") == "true"
    assert 10 <= zoomed[0] and zoomed[-1] <= 30 and zoomed != full
    # y follows the data in view: 80 (step 10) down to 40 (step 30), no longer up to 100
    assert float(y_labels(chart)[-1]) <= 80 and float(y_labels(chart)[0]) >= 40
    assert reset.is_enabled()
    shot(page, "chart-zoomed")

    page.mouse.dblclick(*screen_point(chart, 20, shown=(zoomed[0], zoomed[-1])))
    assert x_labels(chart) == full
    assert chart.locator("figure").get_attribute("data-zoomed") == "false"

    page.mouse.move(*screen_point(chart, 5))
    page.mouse.down()
    page.mouse.move(*screen_point(chart, 15), steps=5)
    page.mouse.up()
    assert x_labels(chart) != full
    reset.click()
    assert x_labels(chart) == full and reset.is_disabled()


def test_keyboard_moves_the_cursor_and_zooms(chart: Any) -> None:
    page = chart.page
    svg = chart.locator("svg")
    assert svg.get_attribute("tabindex") == "0"
    chart.get_by_label("Log scale").focus()
    page.keyboard.press("Tab")  # the plot is next in the tab order
    assert page.evaluate("document.activeElement.getAttribute('class')") == "lc-svg"
    page.keyboard.press("ArrowRight")
    assert tooltip(chart).startswith("step 0\n")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert tooltip(chart).split("\n")[:2] == ["step 2", "loss: 96"]
    page.keyboard.press("ArrowLeft")
    assert tooltip(chart).startswith("step 1\n")
    page.keyboard.press("End")
    assert tooltip(chart).split("\n")[:2] == ["step 49", "loss: 2"]
    full = x_labels(chart)
    page.keyboard.press("+")  # zoom in around the cursor, at the right end
    zoomed = x_labels(chart)
    assert zoomed[-1] <= 49 and zoomed[0] > 0 and zoomed != full
    assert tooltip(chart).startswith("step 49\n")
    page.keyboard.press("-")
    assert x_labels(chart) == full
    page.keyboard.press("+")
    page.keyboard.press("0")
    assert x_labels(chart) == full
    page.keyboard.press("Escape")
    chart.locator(".lc-tip").wait_for(state="hidden")


def test_log_scale_relabels_the_y_axis(chart: Any) -> None:
    linear = y_labels(chart)
    assert linear[0] == "20" and linear[-1] == "100"
    chart.get_by_label("Log scale").check()
    assert y_labels(chart) == ["2", "5", "10", "20", "50", "100"]
    chart.get_by_label("Log scale").uncheck()
    assert y_labels(chart) == linear
