// Metric charts shared by the run and compare pages: histories come from labdeck's
// down-sampling endpoint (each bucket's min and max, so spikes survive) and are drawn by our
// own SVG line chart (lib/linechart.js).
import { v1 } from "./api.js";
import { h } from "./dom.js";
import { LineChart } from "./linechart.js";

export const MAX_POINTS = 1500;

/** One metric's history for a chart: {points, total_count, downsampled}. */
export function history(runId, key) {
  return v1.get(`/runs/${encodeURIComponent(runId)}/metric-history`, { key, max_points: MAX_POINTS });
}

/** Draw histories [{name, found}] into el against the step (replacing a chart drawn there before). */
export function lineChart(el, title, traces) {
  if (el.chart) el.chart.destroy();
  const sampled = traces.some(({ found }) => found.downsampled);
  const total = traces.reduce((sum, { found }) => sum + found.total_count, 0);
  el.chart = new LineChart(el, {
    title,
    xLabel: "step",
    xInteger: true,
    description: `${total} logged${sampled ? ", down-sampled for drawing" : ""}`,
    series: traces.map(({ name, found }) => ({
      name,
      x: found.points.map((p) => p.step),
      y: found.points.map((p) => p.value),
    })),
  });
  el.dataset.points = String(traces.reduce((sum, { found }) => sum + found.points.length, 0));
  return el.chart;
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
