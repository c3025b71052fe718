// Compare runs (/ui/compare?runs=a,b,c): a chosen metric's histories overlaid, a
// parallel-coordinates chart of params against a chosen metric (our own SVG), and a table
// of params and metrics whose differing rows stand out.
import "../lib/shell.js";
import { mlflow } from "../lib/api.js";
import { history, lineChart } from "../lib/charts.js";
import { errorBox, fmtNumber, h, link, render, replace, run } from "../lib/dom.js";

const MAX_RUNS = 50;
const MAX_AXES = 12;
const SVG = "http://www.w3.org/2000/svg";
const LOW = [44, 123, 182];
const HIGH = [215, 25, 28];

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const pairs = (items) => Object.fromEntries((items || []).map((item) => [item.key, item.value]));
const shortText = (text, n = 16) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

function colour(t) {
  if (t === null) return "#8c959f";
  const mix = LOW.map((low, i) => Math.round(low + (HIGH[i] - low) * t));
  return `rgb(${mix.join(",")})`;
}

function numeric(values) {
  const present = values.filter((v) => v !== undefined && v !== "");
  return present.length > 0 && present.every((v) => Number.isFinite(Number(v)));
}

/** An axis: where each value sits (0 bottom .. 1 top, null: missing) and its tick labels. */
function axis(label, values) {
  if (numeric(values)) {
    const numbers = values.filter((v) => v !== undefined && v !== "").map(Number);
    const low = Math.min(...numbers);
    const high = Math.max(...numbers);
    const place = (v) => (v === undefined || v === "" ? null : high === low ? 0.5 : (Number(v) - low) / (high - low));
    const ticks = high === low ? [[0.5, fmtNumber(low)]] : [[0, fmtNumber(low)], [0.5, fmtNumber((low + high) / 2)], [1, fmtNumber(high)]];
    return { label, place, ticks };
  }
  const categories = [...new Set(values.filter((v) => v !== undefined))].sort();
  const position = new Map(categories.map((c, i) => [c, categories.length === 1 ? 0.5 : i / (categories.length - 1)]));
  return { label, place: (v) => (v === undefined ? null : position.get(v)), ticks: categories.map((c) => [position.get(c), shortText(c)]) };
}

function parallelCoordinates(runs, paramKeys, metric) {
  const width = 1000;
  const height = 380;
  const top = 40;
  const bottom = 330;
  const left = 70;
  const right = width - 90;
  const metricValues = runs.map((r) => r.metrics[metric]);
  const axes = [
    ...paramKeys.map((key) => axis(key, runs.map((r) => r.params[key]))),
    axis(metric, metricValues),
  ];
  const x = (i) => (axes.length === 1 ? (left + right) / 2 : left + (i * (right - left)) / (axes.length - 1));
  const y = (t) => (t === null ? bottom + 22 : bottom - t * (bottom - top));
  const colourOf = axis("", metricValues).place;
  const lines = runs.map((r, n) => {
    const points = axes.map((a, i) => {
      const value = i < paramKeys.length ? r.params[paramKeys[i]] : metricValues[n];
      return `${x(i).toFixed(1)},${y(a.place(value)).toFixed(1)}`;
    });
    const value = metricValues[n];
    return svg("polyline", {
      points: points.join(" "), fill: "none", stroke: colour(value === undefined ? null : colourOf(value)),
      "stroke-width": 2.5, "stroke-opacity": 0.85, class: "pc-line", "data-run-id": r.id,
    }, svg("title", {}, `${r.name}: ${metric} = ${value === undefined ? "missing" : fmtNumber(value)}`));
  });
  const drawnAxes = axes.map((a, i) => svg("g", { class: "pc-axis" },
    svg("line", { x1: x(i), x2: x(i), y1: top, y2: bottom, stroke: "#1b1f24", "stroke-width": 1 }),
    svg("text", { x: x(i), y: top - 14, "text-anchor": "middle", "font-weight": 600, "font-size": 13 }, shortText(a.label, 20)),
    a.ticks.map(([t, text]) => svg("text", { x: x(i) + 6, y: y(t) + 4, "font-size": 11, fill: "#57606a" }, text))));
  return svg("svg", {
    viewBox: `0 0 ${width} ${height}`, class: "parallel", role: "img", width: "100%",
    "aria-label": `Parallel coordinates of ${paramKeys.length} params and ${metric} for ${runs.length} runs`,
  }, drawnAxes, lines);
}

function differs(values) {
  return new Set(values.map((v) => (v === undefined ? "\u0000missing" : String(v)))).size > 1;
}

function comparisonTable(runs, paramKeys, metricKeys) {
  const row = (kind, key, values, format = (v) => v) => {
    const changed = differs(values);
    return h("tr", { class: changed ? "differs" : "", dataset: { kind, key } },
      h("th", { scope: "row" }, key, changed ? h("span", { class: "visually-hidden" }, " (differs)") : null),
      values.map((v) => h("td", { class: `${kind === "metric" ? "num" : ""}${changed ? " differs" : ""}`.trim() },
        v === undefined ? "—" : format(v))));
  };
  const group = (title) => h("tr", { class: "group" }, h("th", { scope: "colgroup", colspan: runs.length + 1 }, title));
  return h("div", { class: "scroll" }, h("table", { class: "compare", id: "comparison" },
    h("caption", {}, "Params and metrics (rows that differ between runs are highlighted)"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Run"),
      runs.map((r) => h("th", { scope: "col" }, link(`/ui/runs/${r.id}`, r.name))))),
    h("tbody", {},
      group("Params"),
      paramKeys.map((key) => row("param", key, runs.map((r) => r.params[key]))),
      group("Metrics"),
      metricKeys.map((key) => row("metric", key, runs.map((r) => r.metrics[key]), fmtNumber)))));
}

function picker(id, label, keys, chosen, onChange) {
  const select = h("select", { id }, keys.map((k) => h("option", { value: k, selected: k === chosen }, k)));
  select.addEventListener("change", () => onChange(select.value));
  // the select sits beside its label, not inside it: inside, its options would join the label's name
  return h("div", { class: "field" }, h("label", { for: id }, label), select);
}

async function overlay(box, runs, key) {
  const having = runs.filter((r) => key in r.metrics);
  replace(box, h("p", { class: "loading" }, `Loading ${key}…`));
  const traces = await Promise.all(having.map(async (r) => ({ name: r.name, found: await history(r.id, key) })));
  lineChart(box, key, traces);
}

run("Compare runs", async () => {
  const requested = [...new Set((new URLSearchParams(location.search).get("runs") || "").split(",").filter(Boolean))];
  if (!requested.length) throw new Error("Choose runs to compare: /ui/compare?runs=<id>,<id>,…");
  if (requested.length > MAX_RUNS) throw new Error(`Compare at most ${MAX_RUNS} runs at a time (${requested.length} asked).`);
  const loaded = await Promise.all(requested.map((id) => mlflow.get("/runs/get", { run_id: id })));
  const runs = loaded.map(({ run: r }) => ({
    id: r.info.run_id,
    name: r.info.run_name || r.info.run_id,
    params: pairs(r.data.params),
    metrics: Object.fromEntries((r.data.metrics || []).map((m) => [m.key, m.value])),
  }));
  const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  // Params that differ say the most; the chart has room for a dozen axes.
  const axisKeys = [
    ...paramKeys.filter((k) => differs(runs.map((r) => r.params[k]))),
    ...paramKeys.filter((k) => !differs(runs.map((r) => r.params[k]))),
  ].slice(0, MAX_AXES);

  const chartBox = h("div", { class: "chart", id: "overlay-chart" });
  const parallelBox = h("div", { id: "parallel" });
  const drawParallel = (metric) => replace(parallelBox,
    paramKeys.length && metric
      ? [parallelCoordinates(runs, axisKeys, metric),
        h("p", { class: "muted" }, `Line colour: ${metric}, low (blue) to high (red); grey: not logged.`)]
      : h("p", { class: "empty" }, "These runs have no params or metrics to chart."));
  const showChart = (key) => overlay(chartBox, runs, key).catch((error) => replace(chartBox, errorBox(error)));
  const first = metricKeys[0];

  render("Compare runs",
    h("h1", {}, `Compare ${runs.length} runs`),
    h("section", { class: "card", "aria-label": "Metric charts" },
      h("h2", {}, "Metric charts"),
      metricKeys.length
        ? [h("div", { class: "toolbar" }, picker("metric-picker", "Metric", metricKeys, first, showChart)), chartBox]
        : h("p", { class: "empty" }, "These runs logged no metrics.")),
    h("section", { class: "card", "aria-label": "Parallel coordinates" },
      h("h2", {}, "Parallel coordinates"),
      metricKeys.length ? h("div", { class: "toolbar" }, picker("pc-metric", "Colour by metric", metricKeys, first, drawParallel)) : null,
      parallelBox),
    h("section", { class: "card", "aria-label": "Params and metrics" },
      h("h2", {}, "Params and metrics"),
      comparisonTable(runs, paramKeys, metricKeys)));
  drawParallel(first);
  if (first) await showChart(first);
});
