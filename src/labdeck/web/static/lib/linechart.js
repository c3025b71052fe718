// labdeck's line chart: a small SVG chart for a few series of at most a few thousand points
// (the server down-samples longer histories). It owns drawing, axes, the legend, hover,
// drag-to-zoom, keyboard use and resizing; fetching data is the caller's business.
//
//   const chart = new LineChart(container, { title, series: [{ name, x: [], y: [] }], ... });
//   chart.update(series);   // redraw in place (keeps zoom and the hover cursor)
//   chart.destroy();
//
// x values are numbers (steps, or epoch milliseconds with xType "time"); a null y is a gap.
import { fmtNumber, fmtTime, h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#0a58ca", "#d1242f", "#1a7f37", "#8250df", "#bc4c00", "#0e7490", "#bf3989", "#57606a", "#7d6608", "#1b1f24"];
const MARGIN = { top: 10, right: 18, bottom: 28 };
const Y_PAD = 5; // px between the extreme values and the plot's edges, so peaks stay whole
const DRAG_MIN = 5; // px a drag must cover to count as a zoom rather than a click
const MARKERS_UP_TO = 200; // visible points per series below which each point gets a dot
const SECOND = 1000, MINUTE = 60 * SECOND, HOUR = 60 * MINUTE, DAY = 24 * HOUR;
const TIME_STEPS = [SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND, 30 * SECOND, MINUTE, 2 * MINUTE,
  5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY,
  14 * DAY, 30 * DAY, 91 * DAY, 365 * DAY];
let charts = 0;

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const tidy = (v) => Number(v.toPrecision(12)) || 0; // 0.30000000000000004 -> 0.3, -0 -> 0

/** First index i with xs[i] >= v (xs ascending), or with xs[i] > v if `after`. */
function lowerBound(xs, v, after = false) {
  let lo = 0, hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < v || (after && xs[mid] === v)) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// ------------------------------------------------------------------ ticks and labels

/** Ticks at 1, 2 or 5 times a power of ten, about `count` of them across [lo, hi]. */
export function niceTicks(lo, hi, count, integer = false) {
  const raw = (hi - lo) / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const f = raw / magnitude;
  let step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * magnitude;
  if (integer) step = Math.max(1, Math.round(step));
  const ticks = [];
  for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + step * 1e-9; i += 1) ticks.push(tidy(i * step));
  return { ticks, step };
}

function logTicks(lo, hi) {
  const first = Math.floor(Math.log10(lo)), last = Math.ceil(Math.log10(hi));
  const multiples = last - first <= 2 ? [1, 2, 5] : [1];
  const every = Math.max(1, Math.ceil((last - first) / 6));
  const ticks = [];
  for (let e = first; e <= last; e += every) {
    for (const m of multiples) {
      const v = tidy(m * 10 ** e);
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push(v);
    }
  }
  return ticks;
}

function timeTicks(lo, hi, count) {
  const step = TIME_STEPS.find((s) => s >= (hi - lo) / Math.max(1, count)) || TIME_STEPS[TIME_STEPS.length - 1];
  const offset = -new Date(lo).getTimezoneOffset() * MINUTE; // align hours and days to local time
  const ticks = [];
  for (let t = Math.ceil((lo + offset) / step) * step - offset; t <= hi; t += step) ticks.push(t);
  return { ticks, step };
}

const decimals = (step) => clamp(-Math.floor(Math.log10(step) + 1e-9), 0, 12);
const trimZeros = (text) => (text.includes(".") ? text.replace(/\.?0+$/, "") : text);

/** A short label: 1k, 2.5M, 0.05, 1e-5; `step` (the gap between ticks) sets the precision. */
export function compactNumber(v, step = Math.abs(v) || 1) {
  if (v === 0) return "0";
  const size = Math.abs(v);
  for (const [unit, suffix] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (size >= unit) return trimZeros((v / unit).toFixed(decimals(step / unit))) + suffix;
  }
  if (size < 1e-3) return v.toExponential(clamp(Math.floor(Math.log10(size)) - Math.floor(Math.log10(step)), 0, 3)).replace(/\.?0+e/, "e");
  return trimZeros(v.toFixed(decimals(step)));
}

function timeLabel(t, step) {
  const options = step < MINUTE ? { timeStyle: "medium" } : step < DAY ? { timeStyle: "short" } : { day: "numeric", month: "short" };
  return new Date(t).toLocaleString("en-GB", options);
}

// ------------------------------------------------------------------ the chart

export class LineChart {
  /**
   * @param {HTMLElement} container  emptied, then holds the chart's <figure>
   * @param {object} options  title; series [{name, x, y, colour?}]; xLabel ("step"); xType
   *   ("linear" | "time"); xInteger (ticks and zoom in whole steps); yZero (keep 0 in view);
   *   markers (a dot on every point); height (of the plot, px); description (for the
   *   accessible name); logToggle (offer a log-scale y).
   */
  constructor(container, options) {
    this.options = { xLabel: "step", xType: "linear", height: 240, logToggle: true, ...options };
    this.id = `lc${(charts += 1)}`;
    this.view = null; // the zoomed x range [lo, hi], or null for all of it
    this.cursor = null; // the x the hover rule sits at
    this.log = false;
    this.width = 0;
    this.build(container);
    this.update(this.options.series || []);
    this.resizer = new ResizeObserver((entries) => {
      const width = Math.round(entries[entries.length - 1].contentRect.width);
      if (width > 0 && width !== this.width) this.draw();
    });
    this.resizer.observe(this.plot);
  }

  build(container) {
    const { title } = this.options;
    this.reset = h("button", { type: "button", class: "lc-reset", disabled: true, onclick: () => this.zoom(null) }, "Reset zoom");
    const tools = h("div", { class: "lc-tools" }, this.reset);
    if (this.options.logToggle) {
      this.logBox = h("input", { type: "checkbox", id: `${this.id}-log`, onchange: () => { this.log = this.logBox.checked; this.draw(); } });
      tools.append(h("label", { class: "check", for: `${this.id}-log` }, this.logBox, "Log scale"));
    }
    this.svg = svg("svg", { role: "img", tabindex: 0, class: "lc-svg", height: this.options.height });
    this.clip = svg("rect");
    const clipPath = svg("clipPath", { id: `${this.id}-clip` });
    clipPath.append(this.clip);
    const defs = svg("defs");
    defs.append(clipPath);
    this.svg.append(defs);
    this.grid = svg("g", { class: "lc-grid" });
    this.axes = svg("g", { class: "lc-axes" });
    this.lines = svg("g", { class: "lc-lines", "clip-path": `url(#${this.id}-clip)` });
    this.rule = svg("line", { class: "lc-rule", visibility: "hidden" });
    this.dots = svg("g", { class: "lc-dots" });
    this.brush = svg("rect", { class: "lc-brush", visibility: "hidden" });
    this.overlay = svg("rect", { class: "lc-overlay" });
    this.svg.append(this.grid, this.axes, this.lines, this.rule, this.dots, this.brush, this.overlay);
    this.tip = h("div", { class: "lc-tip", role: "status", hidden: true });
    this.plot = h("div", { class: "lc-plot" }, this.svg, this.tip);
    this.legend = h("ul", { class: "lc-legend", "aria-label": "Legend" });
    this.figure = h("figure", { class: "linechart" }, h("figcaption", {}, title), tools, this.plot, this.legend);
    container.replaceChildren(this.figure);
    this.listen();
  }

  /** New data (same chart): zoom, log scale and the cursor stay where the user put them. */
  update(series) {
    this.series = series.map((s, i) => normalise(s, s.colour || COLOURS[i % COLOURS.length]));
    const xs = this.series.filter((s) => s.x.length);
    this.full = xs.length ? [Math.min(...xs.map((s) => s.x[0])), Math.max(...xs.map((s) => s.x[s.x.length - 1]))] : [0, 1];
    if (this.full[0] === this.full[1]) this.full = [this.full[0] - 1, this.full[1] + 1];
    if (this.logBox) this.logBox.disabled = !this.series.some((s) => s.y.some((v) => v > 0));
    this.legend.replaceChildren(...(this.series.length > 1 ? this.series.map((s) => h("li", {},
      h("span", { class: "lc-swatch", style: `background:${s.colour}` }), s.name)) : []));
    this.draw();
  }

  destroy() {
    this.resizer.disconnect();
    this.figure.remove();
  }

  // -------------------------------------------------------------- scales

  get range() {
    return this.view || this.full;
  }

  layout() {
    this.width = Math.round(this.plot.clientWidth) || this.width || 600;
    const height = this.options.height;
    const [lo, hi] = this.range;
    const inView = this.series.map((s) => [Math.max(0, lowerBound(s.x, lo) - 1), Math.min(s.x.length, lowerBound(s.x, hi) + 1)]);
    const ys = [];
    this.series.forEach((s, i) => {
      const [a, b] = inView[i];
      for (let j = a; j < b; j += 1) {
        const y = s.y[j];
        if (y !== null && s.x[j] >= lo && s.x[j] <= hi && (!this.log || y > 0)) ys.push(y);
      }
    });
    let yLo = ys.length ? ys.reduce((m, v) => Math.min(m, v)) : 0;
    let yHi = ys.length ? ys.reduce((m, v) => Math.max(m, v)) : 1;
    if (this.options.yZero && !this.log) { yLo = Math.min(0, yLo); yHi = Math.max(0, yHi); }
    if (yLo === yHi) {
      const spread = this.log ? 2 : Math.abs(yLo) * 0.1 || 1;
      [yLo, yHi] = this.log ? [yLo / spread, yHi * spread] : [yLo - spread, yHi + spread];
    }
    const plotHeight = height - MARGIN.top - MARGIN.bottom;
    const yTicks = this.log ? { ticks: logTicks(yLo, yHi) } : niceTicks(yLo, yHi, Math.max(2, Math.floor(plotHeight / 48)));
    const yLabels = yTicks.ticks.map((v) => compactNumber(v, yTicks.step));
    const left = Math.max(36, 12 + 7 * Math.max(...yLabels.map((t) => t.length), 1));
    const box = { left, top: MARGIN.top, width: Math.max(40, this.width - left - MARGIN.right), height: plotHeight };
    const toY = this.log ? Math.log10 : (v) => v;
    const [ty0, ty1] = [toY(yLo), toY(yHi)];
    this.x = (v) => box.left + ((v - lo) / (hi - lo)) * box.width;
    this.xInvert = (px) => lo + ((px - box.left) / box.width) * (hi - lo);
    this.y = (v) => box.top + Y_PAD + (1 - (toY(v) - ty0) / (ty1 - ty0)) * (box.height - 2 * Y_PAD);
    const xCount = Math.max(2, Math.floor(box.width / (this.options.xType === "time" ? 110 : 80)));
    const xTicks = this.options.xType === "time" ? timeTicks(lo, hi, xCount) : niceTicks(lo, hi, xCount, this.options.xInteger);
    this.box = box;
    return { box, inView, yTicks: yTicks.ticks, yLabels, xTicks };
  }

  // -------------------------------------------------------------- drawing

  draw() {
    const { box, inView, yTicks, yLabels, xTicks } = this.layout();
    const height = this.options.height;
    this.svg.setAttribute("viewBox", `0 0 ${this.width} ${height}`);
    this.svg.setAttribute("width", this.width);
    this.svg.setAttribute("aria-label", this.label());
    for (const el of [this.clip, this.overlay]) {
      const pad = el === this.clip ? 4 : 0; // let dots and thick lines at the edges show whole
      Object.entries({ x: box.left - pad, y: box.top - pad, width: box.width + 2 * pad, height: box.height + 2 * pad })
        .forEach(([k, v]) => el.setAttribute(k, v));
    }
    const bottom = box.top + box.height;
    const crisp = (v) => Math.round(v) + 0.5;
    this.grid.replaceChildren(...yTicks.map((v) => svg("line", { x1: box.left, x2: box.left + box.width, y1: crisp(this.y(v)), y2: crisp(this.y(v)) })));
    const xAxis = svg("g", { class: "lc-x" });
    xAxis.append(svg("line", { class: "lc-axis", x1: box.left, x2: box.left + box.width, y1: crisp(bottom), y2: crisp(bottom) }));
    for (const t of xTicks.ticks) {
      const px = crisp(this.x(t));
      const label = this.options.xType === "time" ? timeLabel(t, xTicks.step) : compactNumber(t, xTicks.step);
      const tick = svg("g", { class: "lc-tick" });
      tick.append(svg("line", { x1: px, x2: px, y1: bottom, y2: bottom + 4 }), svg("text", { x: px, y: bottom + 16, "text-anchor": "middle" }, label));
      xAxis.append(tick);
    }
    const yAxis = svg("g", { class: "lc-y" });
    yAxis.append(svg("line", { class: "lc-axis", x1: crisp(box.left), x2: crisp(box.left), y1: box.top, y2: bottom }));
    yTicks.forEach((v, i) => {
      const tick = svg("g", { class: "lc-tick" });
      tick.append(svg("text", { x: box.left - 6, y: this.y(v) + 4, "text-anchor": "end" }, yLabels[i]));
      yAxis.append(tick);
    });
    this.axes.replaceChildren(xAxis, yAxis);
    this.lines.replaceChildren(...this.series.flatMap((s, i) => this.trace(s, inView[i])));
    if (!this.series.some((s) => s.x.length)) {
      this.lines.append(svg("text", { class: "lc-empty", x: box.left + box.width / 2, y: box.top + box.height / 2, "text-anchor": "middle" }, "No data yet"));
    }
    this.reset.disabled = this.view === null;
    this.figure.dataset.zoomed = String(this.view !== null);
    this.hover(this.cursor);
  }

  /** One series as a path (null y values break it), with dots where a point stands alone. */
  trace(s, [a, b]) {
    const parts = [];
    const dots = [];
    let run = [];
    const flush = () => {
      if (run.length === 1 && !this.options.markers) dots.push(run[0]);
      if (run.length > 1) parts.push(`M${run.map(([x, y]) => `${x},${y}`).join("L")}`);
      run = [];
    };
    for (let j = a; j < b; j += 1) {
      const y = s.y[j];
      if (y === null || (this.log && y <= 0)) { flush(); continue; }
      const point = [Math.round(this.x(s.x[j]) * 10) / 10, Math.round(this.y(y) * 10) / 10];
      run.push(point);
      if (this.options.markers && b - a <= MARKERS_UP_TO) dots.push(point);
    }
    flush();
    const drawn = [];
    if (parts.length) drawn.push(svg("path", { class: "lc-line", d: parts.join(""), stroke: s.colour, "data-series": s.name }));
    for (const [cx, cy] of dots) drawn.push(svg("circle", { class: "lc-point", cx, cy, r: 3, fill: s.colour, "data-series": s.name }));
    return drawn;
  }

  label() {
    const { title, description } = this.options;
    const count = this.series.reduce((n, s) => n + s.x.length, 0);
    const [lo, hi] = this.range;
    const span = this.options.xType === "time" ? `${fmtTime(lo)} to ${fmtTime(hi)}` : `${this.options.xLabel} ${fmtNumber(lo)} to ${fmtNumber(hi)}`;
    return `${title}: line chart of ${this.series.length === 1 ? "" : `${this.series.length} series, `}${count} points, ${span}` +
      `${description ? `, ${description}` : ""}. Arrow keys move the cursor, plus and minus zoom, 0 resets.`;
  }

  // -------------------------------------------------------------- hover, zoom, keys

  /** Put the cursor at x (null hides it): a rule, a dot per series, and the values in a tooltip. */
  hover(x) {
    this.cursor = x;
    const [lo, hi] = this.range;
    if (x === null || x < lo || x > hi || !this.series.length) {
      this.rule.setAttribute("visibility", "hidden");
      this.dots.replaceChildren();
      this.tip.hidden = true;
      return;
    }
    const px = this.x(x);
    const near = (2 * (hi - lo)) / this.box.width; // a value counts as "at x" within 2 px of it
    const rows = [];
    const dots = [];
    for (const s of this.series) {
      const j = nearest(s.x, x);
      const found = j >= 0 && Math.abs(s.x[j] - x) <= near && s.y[j] !== null ? s.y[j] : null;
      if (found !== null && (!this.log || found > 0)) dots.push(svg("circle", { cx: this.x(s.x[j]), cy: this.y(found), r: 4, fill: s.colour }));
      rows.push(h("li", {}, h("span", { class: "lc-swatch", style: `background:${s.colour}` }), `${s.name}: `,
        h("strong", {}, found === null ? "—" : fmtNumber(found))));
    }
    Object.entries({ x1: px, x2: px, y1: this.box.top, y2: this.box.top + this.box.height }).forEach(([k, v]) => this.rule.setAttribute(k, v));
    this.rule.setAttribute("visibility", "visible");
    this.dots.replaceChildren(...dots);
    const at = this.options.xType === "time" ? new Date(x).toLocaleTimeString("en-GB") : `${this.options.xLabel} ${fmtNumber(x)}`;
    this.tip.replaceChildren(h("div", { class: "lc-at" }, at), h("ul", {}, rows));
    this.tip.hidden = false;
    const scale = this.svg.getBoundingClientRect().width / this.width || 1;
    const room = this.plot.clientWidth - this.tip.offsetWidth - 8;
    const left = px * scale + 14 <= room ? px * scale + 14 : px * scale - this.tip.offsetWidth - 14;
    this.tip.style.left = `${Math.max(0, left)}px`;
    this.tip.style.top = `${this.box.top + 4}px`;
  }

  /** Show [lo, hi] of x (null: everything); the y axis follows the data in view. */
  zoom(range) {
    if (range) {
      const [flo, fhi] = this.full;
      const least = this.options.xInteger ? 2 : (fhi - flo) * 1e-9;
      let [lo, hi] = [Math.max(flo, Math.min(...range)), Math.min(fhi, Math.max(...range))];
      if (hi - lo < least) [lo, hi] = [Math.max(flo, (lo + hi) / 2 - least / 2), Math.min(fhi, (lo + hi) / 2 + least / 2)];
      range = lo <= flo && hi >= fhi ? null : [lo, hi];
    }
    this.view = range;
    this.draw();
  }

  /** Zoom in (factor < 1) or out (> 1) around the cursor, or the middle if there is none. */
  scaleBy(factor) {
    const [lo, hi] = this.range;
    const centre = this.cursor !== null && this.cursor >= lo && this.cursor <= hi ? this.cursor : (lo + hi) / 2;
    const span = (hi - lo) * factor;
    const [flo, fhi] = this.full;
    const start = clamp(centre - span * ((centre - lo) / (hi - lo)), flo, Math.max(flo, fhi - span));
    this.zoom([start, start + span]);
  }

  /** Move the cursor to the nearest point's x to the right (+1) or left (-1), over every series. */
  step(direction) {
    const [lo, hi] = this.range;
    const inView = this.cursor !== null && this.cursor >= lo && this.cursor <= hi;
    let best = null;
    for (const s of this.series) {
      const j = direction > 0
        ? (inView ? lowerBound(s.x, this.cursor, true) : lowerBound(s.x, lo))
        : (inView ? lowerBound(s.x, this.cursor) : lowerBound(s.x, hi, true)) - 1;
      const candidate = s.x[j];
      if (candidate === undefined || candidate < lo || candidate > hi) continue;
      if (best === null || (direction > 0 ? candidate < best : candidate > best)) best = candidate;
    }
    if (best !== null) this.hover(best);
  }

  listen() {
    let dragFrom = null;
    const at = (event) => {
      const rect = this.svg.getBoundingClientRect();
      return (event.clientX - rect.left) * (this.width / rect.width);
    };
    const snap = (px) => {
      // the data x nearest the pointer, over every series
      const x = this.xInvert(px);
      let best = null;
      for (const s of this.series) {
        const j = nearest(s.x, x);
        if (j >= 0 && (best === null || Math.abs(s.x[j] - x) < Math.abs(best - x))) best = s.x[j];
      }
      return best;
    };
    this.overlay.addEventListener("pointermove", (event) => {
      const px = at(event);
      this.hover(snap(px));
      if (dragFrom === null) return;
      const [a, b] = [clamp(Math.min(dragFrom, px), this.box.left, this.box.left + this.box.width), clamp(Math.max(dragFrom, px), this.box.left, this.box.left + this.box.width)];
      Object.entries({ x: a, y: this.box.top, width: b - a, height: this.box.height }).forEach(([k, v]) => this.brush.setAttribute(k, v));
      this.brush.setAttribute("visibility", "visible");
    });
    this.overlay.addEventListener("pointerleave", () => { if (dragFrom === null) this.hover(null); });
    this.overlay.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      dragFrom = at(event);
      this.overlay.setPointerCapture(event.pointerId);
    });
    const endDrag = (event) => {
      if (dragFrom === null) return;
      const px = at(event);
      const from = dragFrom;
      dragFrom = null;
      this.brush.setAttribute("visibility", "hidden");
      if (Math.abs(px - from) >= DRAG_MIN) this.zoom([this.xInvert(from), this.xInvert(px)]);
    };
    this.overlay.addEventListener("pointerup", endDrag);
    this.overlay.addEventListener("pointercancel", () => { dragFrom = null; this.brush.setAttribute("visibility", "hidden"); });
    this.overlay.addEventListener("dblclick", () => this.zoom(null));
    this.svg.addEventListener("keydown", (event) => {
      const actions = {
        ArrowRight: () => this.step(1),
        ArrowLeft: () => this.step(-1),
        Home: () => { this.cursor = null; this.step(1); },
        End: () => { this.cursor = null; this.step(-1); },
        "+": () => this.scaleBy(0.5),
        "=": () => this.scaleBy(0.5),
        "-": () => this.scaleBy(2),
        0: () => this.zoom(null),
        Escape: () => this.hover(null),
      };
      const action = actions[event.key];
      if (!action || event.ctrlKey || event.metaKey || event.altKey) return;
      event.preventDefault();
      action();
    });
    this.svg.addEventListener("blur", () => this.hover(null));
  }
}

/** A series with numeric, ascending x (sorted if it came unsorted) and y as numbers or null. */
function normalise(s, colour) {
  const x = Array.from(s.x, (v) => (v instanceof Date ? v.getTime() : Number(v)));
  const y = Array.from(s.y, (v) => (v === null || v === undefined || !Number.isFinite(Number(v)) ? null : Number(v)));
  const sorted = x.every((v, i) => i === 0 || x[i - 1] <= v);
  if (sorted) return { name: s.name, colour, x, y };
  const order = x.map((_, i) => i).sort((a, b) => x[a] - x[b]);
  return { name: s.name, colour, x: order.map((i) => x[i]), y: order.map((i) => y[i]) };
}

function nearest(xs, v) {
  if (!xs.length) return -1;
  const i = lowerBound(xs, v);
  if (i === 0) return 0;
  if (i === xs.length) return xs.length - 1;
  return v - xs[i - 1] <= xs[i] - v ? i - 1 : i;
}
