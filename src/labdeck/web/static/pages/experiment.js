// An experiment's runs table. Everything heavy happens on the server: MLflow's runs/search
// pages (100 runs a page, page tokens for next/previous), sorts (order_by) and filters (the
// search grammar, whose 400 message shows next to the box). The column chooser lists the
// experiment's param/metric/tag keys from /api/v1/experiments/{id}/columns, searchable since
// there may be a thousand; the chosen columns are remembered per experiment in localStorage.
import "../lib/shell.js";
import { mlflow, v1 } from "../lib/api.js";
import { errorBox, fmtDuration, fmtNumber, fmtTime, h, link, pageContext, render, replace, run } from "../lib/dom.js";

const PAGE_SIZE = 100;
const SHOWN_PER_KIND = 100;
const DEFAULT_METRICS = 5;
const DEFAULT_PARAMS = 3;
const KINDS = [["metrics", "Metrics"], ["params", "Params"], ["tags", "Tags"]];

const { args } = pageContext();
const experimentId = args.experiment_id;
const storeKey = `labdeck.columns.${experimentId}`;

const ATTRIBUTES = [
  { id: "attributes.run_name", label: "Run", asc: true,
    value: (r) => link(`/ui/runs/${r.info.run_id}`, r.info.run_name || r.info.run_id) },
  { id: "attributes.start_time", label: "Started", value: (r) => fmtTime(r.info.start_time) },
  { id: "attributes.status", label: "Status", asc: true, value: (r) => r.info.status },
  { id: "attributes.user_id", label: "User", asc: true, value: (r) => r.info.user_id },
  { id: "duration", label: "Duration", value: (r) => fmtDuration(r.info.start_time, r.info.end_time) },
];

const state = {
  filter: "",
  order: { id: "attributes.start_time", asc: false },
  tokens: [undefined],
  index: 0,
  runs: [],
  hasNext: false,
  chosen: loadChosen(),
  selected: new Set(),
  keys: null, // the columns endpoint's answer, fetched once
};

function loadChosen() {
  try {
    const saved = JSON.parse(localStorage.getItem(storeKey) || "null");
    return Array.isArray(saved) ? saved : null;
  } catch {
    return null;
  }
}

function saveChosen() {
  localStorage.setItem(storeKey, JSON.stringify(state.chosen));
}

const columnId = (kind, key) => `${kind}.${key}`;
function splitId(id) {
  const dot = id.indexOf(".");
  return [id.slice(0, dot), id.slice(dot + 1)];
}

function orderBy({ id, asc }) {
  const direction = asc ? "ASC" : "DESC";
  if (id.startsWith("attributes.")) return `${id} ${direction}`;
  const [kind, key] = splitId(id);
  return `${kind}.\`${key}\` ${direction}`;
}

// Without a saved choice: the first few metrics and params the runs on screen have.
function defaultColumns(runs) {
  const metrics = new Set();
  const params = new Set();
  for (const r of runs) {
    for (const m of r.data.metrics || []) metrics.add(m.key);
    for (const p of r.data.params || []) params.add(p.key);
  }
  return [
    ...[...metrics].sort().slice(0, DEFAULT_METRICS).map((k) => columnId("metrics", k)),
    ...[...params].sort().slice(0, DEFAULT_PARAMS).map((k) => columnId("params", k)),
  ];
}

function valueOf(r, id) {
  const [kind, key] = splitId(id);
  const found = (r.data[kind] || []).find((item) => item.key === key);
  if (!found) return "";
  return kind === "metrics" ? fmtNumber(found.value) : found.value;
}

const heading = h("h1", {}, "Experiment");
const summary = h("p", { class: "muted", id: "run-summary" });
const filterBox = h("input", {
  id: "run-filter", type: "search", size: 60, "aria-describedby": "filter-error",
  placeholder: "metrics.acc > 0.9 and params.lr = '0.01'",
});
const problem = h("div", { id: "filter-error" });
const compareButton = h("button", { type: "button", class: "primary", disabled: true, onclick: compare }, "Compare");
const chooserButton = h("button", { type: "button", "aria-expanded": "false", "aria-controls": "column-chooser", onclick: toggleChooser }, "Columns");
const chooser = h("section", { id: "column-chooser", class: "card chooser", "aria-label": "Choose columns", hidden: true });
const results = h("div", { class: "results" });

function compare() {
  location.assign(`/ui/compare?runs=${[...state.selected].join(",")}`);
}

function updateCompare() {
  const n = state.selected.size;
  compareButton.disabled = n < 2;
  compareButton.textContent = n ? `Compare (${n})` : "Compare";
}

async function load() {
  replace(problem);
  let found;
  try {
    found = await mlflow.post("/runs/search", {
      experiment_ids: [experimentId],
      filter: state.filter || undefined,
      max_results: PAGE_SIZE,
      order_by: [orderBy(state.order)],
      page_token: state.tokens[state.index],
    });
  } catch (error) {
    if (error.status !== 400) throw error;
    replace(problem, errorBox(error));
    return;
  }
  state.runs = found.runs || [];
  state.hasNext = Boolean(found.next_page_token);
  state.tokens[state.index + 1] = found.next_page_token;
  if (!state.chosen) state.chosen = defaultColumns(state.runs);
  draw();
}

function sortHeader(id, label, asc) {
  const active = state.order.id === id;
  const sort = active ? (state.order.asc ? "ascending" : "descending") : "none";
  const arrow = active ? (state.order.asc ? " ▲" : " ▼") : "";
  const click = () => {
    state.order = active ? { id, asc: !state.order.asc } : { id, asc: Boolean(asc) };
    state.tokens = [undefined];
    state.index = 0;
    load().catch(showError);
  };
  return h("th", { scope: "col", "aria-sort": sort, dataset: { column: id } },
    h("button", { type: "button", class: "sort", onclick: click }, label, h("span", { "aria-hidden": "true" }, arrow)));
}

function draw() {
  const pageIds = state.runs.map((r) => r.info.run_id);
  const allPicked = pageIds.length > 0 && pageIds.every((id) => state.selected.has(id));
  const pickAll = h("input", {
    type: "checkbox", "aria-label": "Select every run on this page", checked: allPicked,
    onchange: (event) => {
      for (const id of pageIds) event.target.checked ? state.selected.add(id) : state.selected.delete(id);
      draw();
    },
  });
  const head = h("tr", {},
    h("th", { scope: "col", class: "pick" }, pickAll),
    ATTRIBUTES.map((a) => (a.id === "duration" ? h("th", { scope: "col" }, a.label) : sortHeader(a.id, a.label, a.asc))),
    state.chosen.map((id) => {
      const [kind, key] = splitId(id);
      return sortHeader(id, h("span", {}, h("span", { class: "kind" }, kind.slice(0, -1)), " ", key), kind !== "metrics");
    }));
  const rows = state.runs.map((r) => {
    const id = r.info.run_id;
    const pick = h("input", {
      type: "checkbox", "aria-label": `Select ${r.info.run_name || id}`, checked: state.selected.has(id),
      onchange: (event) => {
        event.target.checked ? state.selected.add(id) : state.selected.delete(id);
        event.target.closest("tr").classList.toggle("selected", event.target.checked);
        updateCompare();
      },
    });
    return h("tr", { class: state.selected.has(id) ? "selected" : "", dataset: { runId: id } },
      h("td", { class: "pick" }, pick),
      ATTRIBUTES.map((a) => h("td", {}, a.value(r))),
      state.chosen.map((c) => h("td", { class: c.startsWith("metrics.") ? "num" : "" }, valueOf(r, c))));
  });
  const first = state.index * PAGE_SIZE;
  replace(results,
    state.runs.length
      ? h("div", { class: "scroll" }, h("table", { id: "runs", class: "runs" },
        h("caption", {}, `Runs ${first + 1}–${first + state.runs.length}`),
        h("thead", {}, head), h("tbody", {}, rows)))
      : h("p", { class: "empty" }, state.filter ? "No run matches this filter." : "No runs yet."),
    pager());
  updateCompare();
}

function pager() {
  if (state.index === 0 && !state.hasNext) return null;
  const go = (step) => () => {
    state.index += step;
    load().catch(showError);
  };
  return h("nav", { class: "pager", "aria-label": "Pages of runs" },
    h("button", { type: "button", disabled: state.index === 0, onclick: go(-1) }, "Previous"),
    h("span", {}, `Page ${state.index + 1}`),
    h("button", { type: "button", disabled: !state.hasNext, onclick: go(1) }, "Next"));
}

async function keys() {
  if (!state.keys) state.keys = await v1.get(`/experiments/${experimentId}/columns`);
  return state.keys;
}

async function toggleChooser() {
  const open = chooser.hidden;
  chooser.hidden = !open;
  chooserButton.setAttribute("aria-expanded", String(open));
  if (!open) return;
  try {
    drawChooser(await keys(), "");
  } catch (error) {
    replace(chooser, errorBox(error));
  }
}

function drawChooser(found, query) {
  const search = h("input", { id: "column-search", type: "search", value: query, placeholder: "loss, lr, …" });
  const groups = h("div", { class: "chooser-groups" });
  const fill = () => {
    const needle = search.value.trim().toLowerCase();
    replace(groups, KINDS.map(([kind, title]) => {
      const all = found[kind] || [];
      const matching = needle ? all.filter((k) => k.toLowerCase().includes(needle)) : all;
      const shown = matching.slice(0, SHOWN_PER_KIND);
      return h("fieldset", {},
        h("legend", {}, `${title} (${matching.length}${needle ? ` of ${all.length}` : ""})`),
        shown.map((key) => {
          const id = columnId(kind, key);
          const box = h("input", {
            type: "checkbox", checked: state.chosen.includes(id),
            onchange: (event) => {
              state.chosen = event.target.checked ? [...state.chosen, id] : state.chosen.filter((c) => c !== id);
              saveChosen();
              draw();
            },
          });
          return h("label", { class: "check" }, box, key);
        }),
        matching.length > shown.length
          ? h("p", { class: "muted" }, `${matching.length - shown.length} more: narrow the search.`) : null);
    }));
  };
  search.addEventListener("input", fill);
  replace(chooser,
    h("h2", {}, "Columns"),
    h("div", { class: "toolbar" },
      h("label", { for: "column-search" }, "Search columns", search),
      h("button", { type: "button", onclick: () => {
        localStorage.removeItem(storeKey);
        state.chosen = defaultColumns(state.runs);
        fill();
        draw();
      } }, "Reset to default")),
    groups);
  fill();
}

function showError(error) {
  replace(results, errorBox(error));
}

run("Experiment", async () => {
  // the first page of runs loads while the experiment's name does: the table is what people wait for
  const [{ experiment }] = await Promise.all([mlflow.get("/experiments/get", { experiment_id: experimentId }), load()]);
  heading.textContent = experiment.name;
  const form = h("form", { class: "toolbar", role: "search" },
    h("label", { for: "run-filter" }, "Filter runs", filterBox),
    h("button", { type: "submit" }, "Apply"),
    chooserButton,
    compareButton);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    state.filter = filterBox.value.trim();
    state.tokens = [undefined];
    state.index = 0;
    load().catch(showError);
  });
  render(experiment.name,
    h("p", { class: "crumbs" }, link("/ui/experiments", "Experiments"), " / ", experiment.name),
    heading, summary, form, problem, chooser, results);
  keys()
    .then((found) => { summary.textContent = `${fmtNumber(found.run_count)} runs · ${fmtNumber(found.metrics.length)} metrics · ${fmtNumber(found.params.length)} params`; })
    .catch((error) => { summary.textContent = error.message; });
});
