// Workspaces: start a JupyterLab server in a chosen environment, watch it start, open it,
// stop it. Admins see everyone's servers (and may stop them); others see their own.
import "../lib/shell.js";
import { v1 } from "../lib/api.js";
import { badge, confirmAction, errorBox, fmtTime, h, pageContext, render, replace, run, table } from "../lib/dom.js";
import { field, input, select, statusLine } from "../lib/forms.js";

const { user, admin } = pageContext();
const POLL_MS = 1000;
const REFRESH_MS = 5000;
const ACTIVE = new Set(["STARTING", "STOPPING"]);

const serverPath = (s) => `/workspaces/${encodeURIComponent(s.user)}${s.server ? `/${encodeURIComponent(s.server)}` : ""}`;

function stateBadge(state) {
  const kind = { RUNNING: "ok", STARTING: "warn", STOPPING: "warn", FAILED: "bad" }[state] || "";
  return badge(state.toLowerCase(), kind);
}

function progressOf(s) {
  if (ACTIVE.has(s.state)) {
    return h("div", { class: "progress", role: "status" },
      h("progress", { "aria-label": `${s.name}: ${s.progress || s.state.toLowerCase()}` }), " ",
      h("span", {}, s.progress || `${s.state.toLowerCase()}…`));
  }
  if (s.state === "FAILED") return h("span", { class: "error-text" }, s.message || "it could not start");
  return s.message || "";
}

run("Workspaces", async () => {
  const status = statusLine();
  const listSlot = h("div", { class: "scroll" });
  const watchers = new Map();

  async function stop(s) {
    const whose = s.user === user ? "your" : `${s.user}'s`;
    if (!(await confirmAction(`Stop ${whose} workspace ${s.name}? Running kernels end; saved files stay.`, "Stop"))) return;
    try {
      await v1.delete(serverPath(s));
      status.ok(`Stopping ${s.name}.`);
      watch(s);
    } catch (error) {
      status.fail(error);
    }
  }

  function actions(s) {
    return [
      s.state === "RUNNING" && s.url ? h("a", { href: s.url, class: "button primary", target: "_blank", rel: "noopener" }, `Open ${s.name}`) : null,
      " ",
      s.desired === "RUNNING" || ACTIVE.has(s.state)
        ? h("button", { type: "button", class: "danger", onclick: () => stop(s), "aria-label": `Stop ${s.name}` }, "Stop")
        : null,
    ];
  }

  async function refresh() {
    const { workspaces } = await v1.get("/workspaces", admin ? { all: "true" } : undefined);
    replace(listSlot, table(
      [
        admin ? { label: "User", value: (s) => s.user } : null,
        { label: "Server", value: (s) => s.name },
        { label: "Environment", value: (s) => s.environment || "" },
        { label: "State", value: (s) => stateBadge(s.state) },
        { label: "Progress", value: progressOf },
        { label: "Started", value: (s) => fmtTime(s.started_at) },
        { label: "Last activity", value: (s) => fmtTime(s.last_activity) },
        { label: "Actions", value: actions },
      ].filter(Boolean),
      workspaces,
      { caption: admin ? "Everyone's workspaces" : "Your workspaces", empty: "No workspace yet: start one above." },
    ));
    for (const s of workspaces) if (ACTIVE.has(s.state)) watch(s);
  }

  // Poll one server quickly while it starts or stops, then redraw the list once it settles.
  function watch(s) {
    const key = serverPath(s);
    if (watchers.has(key)) return;
    const timer = setInterval(async () => {
      try {
        const now = await v1.get(key);
        if (!ACTIVE.has(now.state)) {
          clearInterval(timer);
          watchers.delete(key);
          if (now.state === "FAILED") status.fail(new Error(`${now.name} failed to start: ${now.message || "no reason given"}`));
          else if (now.state === "RUNNING") status.ok(`${now.name} is running.`);
        }
        await refresh();
      } catch (error) {
        clearInterval(timer);
        watchers.delete(key);
        status.fail(error);
      }
    }, POLL_MS);
    watchers.set(key, timer);
  }

  const { environments } = await v1.get("/environments");
  const choice = select("environment", environments.map((e) => [e.name, `${e.name}${e.description ? ` — ${e.description}` : ""}${e.state === "built" ? "" : ` (${e.state.replace("_", " ")})`}`]),
    (environments.find((e) => e.default) || environments[0] || {}).name);
  const serverName = input("server", { placeholder: "optional", pattern: "[a-z0-9-]*", maxlength: 30 });
  const startButton = h("button", { type: "submit", class: "primary" }, "Start workspace");
  const form = h("form", { class: "inline", "aria-label": "Start a workspace" },
    field("Environment", choice), field("Server name", serverName, "empty: your default server"), startButton);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    startButton.disabled = true;
    try {
      const started = await v1.post(serverPath({ user, server: serverName.value.trim() }), { environment: choice.value });
      status.ok(started.state === "RUNNING" ? `${started.name} is already running.` : `Starting ${started.name}…`);
      await refresh();
      watch(started);
    } catch (error) {
      status.fail(error);
    } finally {
      startButton.disabled = false;
    }
  });

  await refresh();
  render("Workspaces",
    h("h1", {}, "Workspaces"),
    h("section", { class: "card", "aria-label": "Start a workspace" }, h("h2", {}, "Start a workspace"),
      environments.length ? form : h("p", { class: "empty" }, "No environment is open to you: ask an administrator."),
      environments.length ? h("ul", { class: "envs" }, environments.map((e) => h("li", {}, h("strong", {}, e.name), e.spark ? " (Spark)" : "", e.description ? ` — ${e.description}` : ""))) : null),
    status.el,
    h("section", { class: "card", "aria-label": admin ? "All workspaces" : "My workspaces" }, h("h2", {}, admin ? "All workspaces" : "My workspaces"), listSlot));
  setInterval(() => refresh().catch((error) => replace(listSlot, errorBox(error))), REFRESH_MS);
});
