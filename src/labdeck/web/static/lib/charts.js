// Metric charts shared by the run and compare pages: histories come from labdeck's
// down-sampling endpoint (each bucket's min and max, so spikes survive) and are drawn as
// plotly SVG line charts (no WebGL: the tests' Chromium runs without a GPU).
import { v1 } from "./api.js";
import { h, loadPlotly } from "./dom.js";

export const MAX_POINTS = 1500;

/** One metric's history for a chart: {points, total_count, downsampled}. */
export function history(runId, key) {
  return v1.get(`/runs/${encodeURIComponent(runId)}/metric-history`, { key, max_points: MAX_POINTS });
}

/** Draw line traces [{name, found}] into el; x is the step, hover shows the value. */
export async function lineChart(el, title, traces) {
  const Plotly = await loadPlotly();
  const data = traces.map(({ name, found }) => ({
    type: "scatter",
    mode: found.points.length > 1 ? "lines" : "markers",
    name,
    x: found.points.map((p) => p.step),
    y: found.points.map((p) => p.value),
    hovertemplate: `${name}<br>step %{x}<br>%{y}<extra></extra>`,
  }));
  const sampled = traces.some(({ found }) => found.downsampled);
  const total = traces.reduce((sum, { found }) => sum + found.total_count, 0);
  const layout = {
    title: { text: title, font: { size: 14 } },
    margin: { l: 56, r: 16, t: 36, b: 40 },
    height: 300,
    xaxis: { title: { text: "step" } },
    showlegend: traces.length > 1,
    legend: { orientation: "h", y: -0.25 },
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
  };
  el.replaceChildren();
  await Plotly.newPlot(el, data, layout, { responsive: true, displaylogo: false });
  el.dataset.points = String(data.reduce((sum, t) => sum + t.x.length, 0));
  el.setAttribute("role", "img");
  el.setAttribute("aria-label", `${title}: line chart of ${total} points${sampled ? ", down-sampled for drawing" : ""}`);
  return el;
}

/** A chart box that draws itself when first scrolled into view (a run may have 1,000 metrics). */
export function lazyChart(title, load) {
  const box = h("div", { class: "chart", dataset: { metric: title } }, h("p", { class: "loading" }, `Loading ${title}…`));
  const observer = new IntersectionObserver((entries) => {
    if (!entries.some((e) => e.isIntersecting)) return;
    observer.disconnect();
    load(box).catch((error) => {
      box.replaceChildren(h("p", { class: "error", role: "alert" }, `${title}: ${error.message}`));
    });
  }, { rootMargin: "200px" });
  observer.observe(box);
  return box;
}
