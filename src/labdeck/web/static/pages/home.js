// Home: my workspaces, my recent runs, my deployments.
import "../lib/shell.js";
import "../lib/mlflow_links.js";
import { mlflow, v1 } from "../lib/api.js";
import { badge, errorBox, fmtTime, h, link, pageContext, render, run, table } from "../lib/dom.js";

const { user } = pageContext();

async function section(title, load) {
  try {
    return h("section", { class: "card", "aria-label": title }, h("h2", {}, title), await load());
  } catch (error) {
    return h("section", { class: "card", "aria-label": title }, h("h2", {}, title), errorBox(error));
  }
}

async function workspaces() {
  const { workspaces: servers } = await v1.get("/workspaces");
  return table(
    [
      { label: "Server", value: (s) => s.name },
      { label: "Environment", value: (s) => s.environment },
      { label: "State", value: (s) => badge(s.state.toLowerCase(), s.state === "RUNNING" ? "ok" : "") },
      { label: "Actions", value: (s) => (s.state === "RUNNING" ? link(s.url, `Open ${s.name}`) : link("/ui/workspaces", "Manage")) },
    ],
    servers,
    { empty: "No workspace yet. Start one from Workspaces." },
  );
}

async function recentRuns() {
  const experiments = await mlflow.get("/experiments/search", { max_results: 1000 });
  const ids = (experiments.experiments || []).map((e) => e.experiment_id);
  if (!ids.length) return h("p", { class: "empty" }, "No experiments yet.");
  const filter = user ? `attributes.user_id = '${user.replaceAll("'", "\\'")}'` : undefined;
  const found = await mlflow.post("/runs/search", {
    experiment_ids: ids, filter, max_results: 10, order_by: ["attributes.start_time DESC"],
  });
  return table(
    [
      { label: "Run", value: (r) => link(`/ui/runs/${r.info.run_id}`, r.info.run_name || r.info.run_id) },
      { label: "Status", value: (r) => r.info.status },
      { label: "Started", value: (r) => fmtTime(r.info.start_time) },
    ],
    found.runs || [],
    { empty: "No runs of yours yet." },
  );
}

async function deployments() {
  const { deployments: items } = await v1.get("/deployments");
  return table(
    [
      { label: "Deployment", value: (d) => link(`/ui/deployments/${encodeURIComponent(d.name)}`, d.name) },
      { label: "State", value: (d) => badge(String(d.state || "").toLowerCase(), d.state === "AVAILABLE" ? "ok" : d.state === "FAILED" ? "bad" : "") },
    ],
    items,
    { empty: "No deployments yet." },
  );
}

run("Home", async () => {
  const parts = await Promise.all([
    section("My workspaces", workspaces),
    section("My recent runs", recentRuns),
    section("Deployments", deployments),
  ]);
  render("Home", h("h1", {}, `Welcome, ${user}`), h("div", { class: "grid" }, parts));
});
