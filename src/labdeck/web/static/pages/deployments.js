// Deployments: every deployment the caller may read, with its state, what it serves and how
// many replicas are ready; refreshed while the page is open.
import "../lib/shell.js";
import { v1 } from "../lib/api.js";
import { badge, errorBox, fmtTime, h, link, render, replace, run, table } from "../lib/dom.js";

const REFRESH_MS = 5000;

function stateBadge(state) {
  const kind = { AVAILABLE: "ok", PROGRESSING: "warn", PENDING: "warn", DEGRADED: "bad", FAILED: "bad" }[state] || "";
  return badge(String(state || "unknown").toLowerCase(), kind);
}

function serving(d) {
  return d.predictors.map((p) => h("div", {},
    h("code", {}, p.model), p.serving && p.serving.version ? ` (v${p.serving.version})` : "",
    d.predictors.length > 1 ? h("span", { class: "muted" }, ` · ${p.name} ${p.shadow ? "shadow" : `${p.traffic}%`}`) : ""));
}

function replicas(d) {
  const ready = d.predictors.reduce((n, p) => n + p.ready_replicas, 0);
  const wanted = d.predictors.reduce((n, p) => n + p.desired_replicas, 0);
  return `${ready} / ${wanted}`;
}

function list(deployments) {
  return table(
    [
      { label: "Name", value: (d) => link(`/ui/deployments/${encodeURIComponent(d.name)}`, d.name) },
      { label: "State", value: (d) => stateBadge(d.state) },
      { label: "Serving", value: serving },
      { label: "Replicas ready", value: replicas, class: "num" },
      { label: "Created by", value: (d) => d.created_by },
      { label: "Updated", value: (d) => fmtTime(d.updated_at) },
    ],
    deployments,
    { empty: "No deployments yet. Deploy a model version from its model page." },
  );
}

run("Deployments", async () => {
  const holder = h("div", { class: "scroll" }, list((await v1.get("/deployments")).deployments));
  render("Deployments", h("h1", {}, "Deployments"), holder);
  setInterval(async () => {
    try {
      replace(holder, list((await v1.get("/deployments")).deployments));
    } catch (error) {
      replace(holder, errorBox(error));
    }
  }, REFRESH_MS);
});
