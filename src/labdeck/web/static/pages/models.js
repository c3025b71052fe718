// Models: every registered model the caller may read, with a search by name.
import "../lib/shell.js";
import { mlflow } from "../lib/api.js";
import { badge, errorBox, fmtTime, h, link, render, replace, run, table } from "../lib/dom.js";
import { field, input } from "../lib/forms.js";

const params = new URLSearchParams(location.search);

function filterFor(text) {
  const term = text.trim();
  if (!term) return undefined;
  return `name ILIKE '%${term.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}%'`;
}

function latest(model) {
  const versions = (model.latest_versions || []).map((v) => Number(v.version));
  return versions.length ? `v${Math.max(...versions)}` : "";
}

async function results(term) {
  const found = await mlflow.get("/registered-models/search", {
    filter: filterFor(term), max_results: 1000, order_by: "name ASC",
  });
  return table(
    [
      { label: "Name", value: (m) => link(`/ui/models/${encodeURIComponent(m.name)}`, m.name) },
      { label: "Latest version", value: latest },
      { label: "Aliases", value: (m) => (m.aliases || []).map((a) => badge(`@${a.alias} → v${a.version}`)) },
      { label: "Description", value: (m) => m.description || "" },
      { label: "Updated", value: (m) => fmtTime(m.last_updated_timestamp) },
    ],
    found.registered_models || [],
    { caption: term ? `Models whose name contains “${term}”` : "Registered models", empty: term ? "No model matches." : "No registered models yet." },
  );
}

run("Models", async () => {
  const term = params.get("q") || "";
  const box = input("q", { type: "search", value: term, placeholder: "part of a name" });
  const list = h("div", { class: "scroll" }, await results(term));
  const form = h("form", { class: "inline", role: "search" },
    field("Search models", box), h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const url = new URL(location.href);
    if (box.value.trim()) url.searchParams.set("q", box.value.trim());
    else url.searchParams.delete("q");
    history.replaceState(null, "", url);
    try {
      replace(list, await results(box.value));
    } catch (error) {
      replace(list, errorBox(error));
    }
  });
  render("Models", h("h1", {}, "Models"), form, list);
});
