// Experiments: every experiment the caller may read, searchable by name or by MLflow's
// experiment filter grammar, with how many active runs each has.
import "../lib/shell.js";
import { mlflow, v1 } from "../lib/api.js";
import { errorBox, fmtNumber, fmtTime, h, link, render, replace, run, table } from "../lib/dom.js";

const PAGE_SIZE = 100;
const GRAMMAR = /(=|<|>|\bLIKE\b|\bILIKE\b|\bIN\b)/i;

// Plain words search names; anything with an operator is taken as a filter as it stands.
function filterFor(text) {
  const typed = text.trim();
  if (!typed) return undefined;
  if (GRAMMAR.test(typed)) return typed;
  return `name ILIKE '%${typed.replaceAll("'", "\\'")}%'`;
}

const state = { filter: undefined, tokens: [undefined], index: 0 };
const results = h("div", { class: "results", "aria-live": "polite" });
const problem = h("div", { class: "filter-error" });

async function show() {
  replace(problem);
  let found;
  try {
    found = await mlflow.post("/experiments/search", {
      filter: state.filter,
      max_results: PAGE_SIZE,
      order_by: ["last_update_time DESC"],
      page_token: state.tokens[state.index],
    });
  } catch (error) {
    replace(problem, errorBox(error));
    return;
  }
  const experiments = found.experiments || [];
  state.tokens[state.index + 1] = found.next_page_token;
  let counts = {};
  if (experiments.length) {
    counts = (await v1.get("/experiments/run-counts", { experiment_ids: experiments.map((e) => e.experiment_id) })).run_counts;
  }
  replace(
    results,
    table(
      [
        { label: "Name", value: (e) => link(`/ui/experiments/${e.experiment_id}`, e.name) },
        { label: "ID", value: (e) => e.experiment_id },
        { label: "Runs", class: "num", value: (e) => fmtNumber(counts[e.experiment_id] ?? "") },
        { label: "Created", value: (e) => fmtTime(e.creation_time) },
        { label: "Last updated", value: (e) => fmtTime(e.last_update_time) },
      ],
      experiments,
      { caption: "Experiments", empty: state.filter ? "No experiment matches." : "No experiments yet." },
    ),
    pager(Boolean(found.next_page_token)),
  );
}

function pager(hasNext) {
  if (state.index === 0 && !hasNext) return null;
  return h("nav", { class: "pager", "aria-label": "Pages of experiments" },
    h("button", { type: "button", disabled: state.index === 0, onclick: () => { state.index -= 1; show(); } }, "Previous"),
    h("span", {}, `Page ${state.index + 1}`),
    h("button", { type: "button", disabled: !hasNext, onclick: () => { state.index += 1; show(); } }, "Next"));
}

run("Experiments", async () => {
  const box = h("input", { id: "experiment-search", type: "search", placeholder: "churn  or  tags.team = 'blue'", size: 40 });
  const form = h("form", { class: "toolbar", role: "search" },
    h("label", { for: "experiment-search" }, "Search experiments", box),
    h("button", { type: "submit", class: "primary" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    state.filter = filterFor(box.value);
    state.tokens = [undefined];
    state.index = 0;
    show();
  });
  render("Experiments", h("h1", {}, "Experiments"), form, problem, results);
  await show();
});
