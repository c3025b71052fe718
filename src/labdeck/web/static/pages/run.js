// A run: its facts, note, params, latest metrics, tags, the models it logged (with "Register
// model"), every metric's history as a chart (drawn when scrolled into view, down-sampled by
// the server), and an artifact browser with previews and downloads.
import "../lib/shell.js";
import { mlflow } from "../lib/api.js";
import { history, lazyChart, lineChart } from "../lib/charts.js";
import {
  errorBox, fmtDuration, fmtNumber, fmtTime, h, link, pageContext, render, replace, run, table,
} from "../lib/dom.js";

const NOTE_TAG = "mlflow.note.content";
const MODEL_HISTORY_TAG = "mlflow.log-model.history";
const TEXT_LIMIT = 1024 * 1024; // previews read at most this much; larger files are for downloading
const IMAGE_LIMIT = 10 * 1024 * 1024;
const CSV_ROWS = 50;
const EARLY_CHARTS = 4;
const IMAGE = /\.(png|jpe?g|gif|svg|webp)$/i;
const JSON_FILE = /\.json$/i;
const YAML_FILE = /(\.ya?ml$|(^|\/)MLmodel$)/i;
const CSV_FILE = /\.(csv|tsv)$/i;
const TEXT_FILE = /(\.(txt|log|md|py|toml|ini|cfg|sh|r|sql|html?|xml)$|(^|\/)(requirements|conda|python_env)[^/]*$|(^|\/)[^/.]+$)/i;

const { args } = pageContext();
const runId = args.run_id;

const artifactUrl = (path) => `/get-artifact?run_id=${encodeURIComponent(runId)}&path=${encodeURIComponent(path)}`;

function pairs(items) {
  return Object.fromEntries((items || []).map((item) => [item.key, item.value]));
}

function section(title, ...children) {
  return h("section", { class: "card", "aria-label": title }, h("h2", {}, title), children);
}

function keyValueTable(caption, entries, format = (v) => v) {
  return table(
    [
      { label: "Key", value: ([key]) => key },
      { label: "Value", value: ([, value]) => format(value) },
    ],
    entries.sort(([a], [b]) => a.localeCompare(b)),
    { caption, empty: `No ${caption.toLowerCase()}.` },
  );
}

// ------------------------------------------------------------------ note

function noteEditor(initial) {
  const text = h("textarea", { id: "run-note", rows: 4, cols: 80 });
  text.value = initial;
  const status = h("div", { class: "note-status" });
  const form = h("form", { class: "note" },
    h("label", { for: "run-note" }, "Note", text),
    h("div", {}, h("button", { type: "submit" }, "Save note")),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(status);
    try {
      await mlflow.post("/runs/set-tag", { run_id: runId, key: NOTE_TAG, value: text.value });
      replace(status, h("p", { class: "notice", role: "status" }, "Note saved."));
    } catch (error) {
      replace(status, errorBox(error));
    }
  });
  return form;
}

// ------------------------------------------------------------------ models

async function registeredModelExists(name) {
  const filter = `name = '${name.replaceAll("'", "\\'")}'`;
  const found = await mlflow.get("/registered-models/search", { filter, max_results: 1 });
  return (found.registered_models || []).length > 0;
}

function registerDialog(source, modelId, onDone) {
  const input = h("input", { id: "register-name", required: true, autocomplete: "off", size: 32 });
  const problem = h("div");
  const form = h("form", {},
    h("h2", { id: "register-title" }, "Register model"),
    h("p", { class: "muted" }, `From ${source}`),
    h("label", { for: "register-name" }, "Model name", input),
    problem,
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"),
      h("button", { type: "submit", class: "primary" }, "Register")));
  const dialog = h("dialog", { class: "confirm", "aria-labelledby": "register-title" }, form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = input.value.trim();
    replace(problem);
    try {
      if (!(await registeredModelExists(name))) await mlflow.post("/registered-models/create", { name });
      const { model_version: version } = await mlflow.post("/model-versions/create", {
        name, source, run_id: runId, model_id: modelId,
      });
      dialog.close();
      onDone(version);
    } catch (error) {
      replace(problem, errorBox(error));
    }
  });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}

async function modelsSection(r) {
  const body = h("div");
  const notice = h("div", { role: "status" });
  const versionsBox = h("div");
  const refreshVersions = async () => {
    const found = await mlflow.get("/model-versions/search", { filter: `run_id = '${runId}'`, max_results: 100 });
    replace(versionsBox, table(
      [
        { label: "Registered model", value: (v) => link(`/ui/models/${encodeURIComponent(v.name)}`, v.name) },
        { label: "Version", value: (v) => v.version },
        { label: "Aliases", value: (v) => (v.aliases || []).join(", ") },
        { label: "Created", value: (v) => fmtTime(v.creation_timestamp) },
      ],
      found.model_versions || [],
      { caption: "Registered versions from this run", empty: "No registered version comes from this run yet." },
    ));
  };
  const registerButton = (source, modelId) => h("button", {
    type: "button",
    onclick: () => registerDialog(source, modelId, async (version) => {
      replace(notice, h("p", { class: "notice" }, `Registered ${version.name} version ${version.version}.`));
      await refreshVersions();
    }),
  }, "Register model");

  const logged = await mlflow.post("/logged-models/search", {
    experiment_ids: [r.info.experiment_id], filter: `source_run_id = '${runId}'`, max_results: 100,
  });
  const models = (logged.models || []).map((m) => ({
    name: m.info.name, id: m.info.model_id, type: m.info.model_type || "", source: `models:/${m.info.model_id}`, modelId: m.info.model_id,
  }));
  // Models logged by MLflow 2 clients are folders of the run's artifacts, listed in a tag.
  const tags = pairs(r.data.tags);
  let older = [];
  try {
    older = JSON.parse(tags[MODEL_HISTORY_TAG] || "[]");
  } catch {
    older = [];
  }
  for (const entry of older) {
    if (!entry.artifact_path || entry.model_id) continue;
    models.push({
      name: entry.artifact_path, id: "", type: Object.keys(entry.flavors || {}).join(", "),
      source: `runs:/${runId}/${entry.artifact_path}`, modelId: undefined,
    });
  }
  replace(body, table(
    [
      { label: "Logged model", value: (m) => m.name },
      { label: "Id", value: (m) => m.id },
      { label: "Flavor", value: (m) => m.type },
      { label: "", value: (m) => registerButton(m.source, m.modelId) },
    ],
    models,
    { caption: "Models logged by this run", empty: "This run logged no model." },
  ));
  await refreshVersions();
  return section("Models", notice, body, versionsBox);
}

// ------------------------------------------------------------------ artifacts

function parseCsv(text, separator) {
  const rows = [];
  let row = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length && rows.length <= CSV_ROWS; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i += 1; } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === separator) { row.push(cell); cell = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i += 1;
      row.push(cell); rows.push(row); row = []; cell = "";
    } else cell += c;
  }
  if ((cell || row.length) && rows.length <= CSV_ROWS) { row.push(cell); rows.push(row); }
  return rows;
}

async function fetchText(path) {
  const response = await fetch(artifactUrl(path), { credentials: "same-origin" });
  if (!response.ok) throw new Error(`The server answered ${response.status} for ${path}.`);
  return response.text();
}

async function preview(file) {
  const size = file.file_size || 0;
  const name = file.path;
  if (IMAGE.test(name)) {
    if (size > IMAGE_LIMIT) return h("p", { class: "muted" }, "This image is too large to preview.");
    return h("img", { class: "artifact-image", src: artifactUrl(name), alt: name });
  }
  const texty = JSON_FILE.test(name) || YAML_FILE.test(name) || CSV_FILE.test(name) || TEXT_FILE.test(name);
  if (!texty) return h("p", { class: "muted" }, "No preview for this kind of file.");
  if (size > TEXT_LIMIT) return h("p", { class: "muted" }, `This file is ${fmtNumber(size)} bytes: too large to preview.`);
  const text = await fetchText(name);
  if (JSON_FILE.test(name)) {
    try {
      return h("pre", { class: "json" }, JSON.stringify(JSON.parse(text), null, 2));
    } catch {
      return h("pre", {}, text);
    }
  }
  if (CSV_FILE.test(name)) {
    const [header, ...rows] = parseCsv(text, name.toLowerCase().endsWith(".tsv") ? "\t" : ",");
    if (!header) return h("p", { class: "muted" }, "This table is empty.");
    return h("div", { class: "scroll" }, h("table", { class: "csv" },
      h("caption", {}, `First ${Math.min(rows.length, CSV_ROWS)} rows of ${name}`),
      h("thead", {}, h("tr", {}, header.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.slice(0, CSV_ROWS).map((row) => h("tr", {}, row.map((c) => h("td", {}, c)))))));
  }
  return h("pre", { class: YAML_FILE.test(name) ? "yaml" : "text" }, text);
}

function artifactsSection() {
  const viewer = h("div", { class: "artifact-viewer", "aria-live": "polite" },
    h("p", { class: "muted" }, "Choose a file to preview it."));
  const show = async (file) => {
    replace(viewer, h("h3", {}, file.path), h("p", { class: "loading" }, "Loading…"));
    let shown;
    try {
      shown = await preview(file);
    } catch (error) {
      shown = errorBox(error);
    }
    replace(viewer,
      h("div", { class: "artifact-head" },
        h("h3", {}, file.path),
        h("span", { class: "muted" }, `${fmtNumber(file.file_size || 0)} bytes`),
        h("a", { class: "button", href: artifactUrl(file.path), download: file.path.split("/").pop() }, "Download")),
      shown);
  };
  const listing = async (path) => {
    const found = await mlflow.get("/artifacts/list", { run_id: runId, path: path || undefined });
    const files = (found.files || []).sort((a, b) => (b.is_dir - a.is_dir) || a.path.localeCompare(b.path));
    if (!files.length) return h("p", { class: "muted" }, path ? "Empty folder." : "No artifacts.");
    return h("ul", { class: "tree" }, files.map((f) => {
      const label = f.path.split("/").pop();
      if (!f.is_dir) {
        return h("li", {}, h("button", { type: "button", class: "link file", dataset: { path: f.path }, onclick: () => show(f) }, label));
      }
      const inner = h("div", { hidden: true });
      const toggle = h("button", { type: "button", class: "link folder", "aria-expanded": "false", dataset: { path: f.path } }, `${label}/`);
      toggle.addEventListener("click", async () => {
        const open = toggle.getAttribute("aria-expanded") !== "true";
        toggle.setAttribute("aria-expanded", String(open));
        inner.hidden = !open;
        if (open && !inner.childElementCount) {
          try {
            replace(inner, await listing(f.path));
          } catch (error) {
            replace(inner, errorBox(error));
          }
        }
      });
      return h("li", {}, toggle, inner);
    }));
  };
  const tree = h("div", { class: "artifact-tree" }, h("p", { class: "loading" }, "Loading…"));
  listing("").then((list) => replace(tree, list), (error) => replace(tree, errorBox(error)));
  return section("Artifacts", h("div", { class: "artifacts" }, tree, viewer));
}

// ------------------------------------------------------------------ page

run("Run", async () => {
  const { run: r } = await mlflow.get("/runs/get", { run_id: runId });
  const info = r.info;
  const name = info.run_name || info.run_id;
  const experimentLink = link(`/ui/experiments/${info.experiment_id}`, `Experiment ${info.experiment_id}`);
  mlflow.get("/experiments/get", { experiment_id: info.experiment_id })
    .then(({ experiment }) => { experimentLink.textContent = experiment.name; })
    .catch(() => {}); // the link still leads there; its page says what went wrong
  // the models need two more searches: their section fills in when they answer
  const models = h("div", {}, section("Models", h("p", { class: "loading" }, "Loading…")));
  modelsSection(r).catch((error) => section("Models", errorBox(error))).then((done) => replace(models, done));
  const tags = pairs(r.data.tags);
  const latest = Object.fromEntries((r.data.metrics || []).map((m) => [m.key, m.value]));
  const metricKeys = Object.keys(latest).sort();
  const shownTags = Object.entries(tags).filter(([key]) => key !== NOTE_TAG && key !== MODEL_HISTORY_TAG);
  // the charts at the top of the list will be seen first: ask for their histories right away
  const early = new Map(metricKeys.slice(0, EARLY_CHARTS).map((key) => [key, history(runId, key)]));
  for (const pending of early.values()) pending.catch(() => {}); // a failure shows on its chart
  const charts = metricKeys.map((key) => lazyChart(key, async (box) => {
    const found = await (early.get(key) || history(runId, key));
    lineChart(box, key, [{ name: key, found }]);
  }));
  render(name,
    h("p", { class: "crumbs" },
      link("/ui/experiments", "Experiments"), " / ",
      experimentLink, " / ", name),
    h("h1", {}, name),
    section("Overview", h("dl", { class: "facts" },
      h("dt", {}, "Run id"), h("dd", {}, info.run_id),
      h("dt", {}, "Status"), h("dd", {}, info.status),
      h("dt", {}, "User"), h("dd", {}, info.user_id || ""),
      h("dt", {}, "Started"), h("dd", {}, fmtTime(info.start_time)),
      h("dt", {}, "Duration"), h("dd", {}, fmtDuration(info.start_time, info.end_time)),
      h("dt", {}, "Artifacts"), h("dd", {}, info.artifact_uri))),
    section("Note", noteEditor(tags[NOTE_TAG] || "")),
    h("div", { class: "grid" },
      section("Params", keyValueTable("Params", Object.entries(pairs(r.data.params)))),
      section("Latest metrics", keyValueTable("Metrics", Object.entries(latest), fmtNumber)),
      section("Tags", keyValueTable("Tags", shownTags))),
    models,
    section("Metric charts", metricKeys.length
      ? h("div", { class: "charts" }, charts)
      : h("p", { class: "empty" }, "This run logged no metrics.")),
    artifactsSection());
});
