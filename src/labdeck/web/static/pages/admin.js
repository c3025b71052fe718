// Administration (admins only; the API refuses everyone else): users, teams, API tokens and
// the permissions on one experiment, model or deployment.
import "../lib/shell.js";
import { mlflow, v1 } from "../lib/api.js";
import { badge, confirmAction, fmtTime, h, pageContext, render, replace, run, table } from "../lib/dom.js";
import { checkbox, field, input, select, statusLine, values } from "../lib/forms.js";

const { user: me } = pageContext();

/** A section whose body is redrawn by ``draw``; an error shows in its place. */
function section(title, intro) {
  const body = h("div", {});
  const status = statusLine();
  const el = h("section", { class: "card", "aria-label": title }, h("h2", {}, title), intro ? h("p", { class: "muted" }, intro) : null, status.el, body);
  return { el, body, status };
}

async function act(status, action, done, redraw) {
  try {
    await action();
    status.ok(done);
    await redraw();
  } catch (error) {
    status.fail(error);
  }
}

function submitForm(form, handler) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    handler(values(form), form);
  });
  return form;
}

// ---------------------------------------------------------------- users

async function users(part, shared) {
  const { users: all } = await v1.get("/users");
  shared.users = all.map((u) => u.username);
  const toggle = (u) => act(part.status, () => v1.patch(`/users/${encodeURIComponent(u.username)}`, { active: !u.active }),
    `${u.username} is ${u.active ? "deactivated" : "active again"}.`, () => users(part, shared));
  const form = submitForm(h("form", { class: "inline", "aria-label": "Create a user" },
    field("Username", input("username", { required: true })),
    field("Password", input("password", { type: "password", autocomplete: "new-password", minlength: 8 })),
    checkbox("Administrator", "admin"),
    h("button", { type: "submit", class: "primary" }, "Create user")), (v, f) =>
    act(part.status, async () => {
      await v1.post("/users", { username: v.username.trim(), password: v.password || null, admin: v.admin });
      f.reset();
    }, `User ${v.username.trim()} created.`, () => users(part, shared)));
  replace(part.body, form, h("div", { class: "scroll" }, table(
    [
      { label: "User", value: (u) => [u.username, u.display_name ? h("span", { class: "muted" }, ` (${u.display_name})`) : ""] },
      { label: "Role", value: (u) => (u.admin ? badge("admin", "warn") : "user") },
      { label: "Status", value: (u) => (u.active ? badge("active", "ok") : badge("deactivated", "bad")) },
      { label: "Sign-in", value: (u) => [u.has_password ? "password" : "", u.single_sign_on ? " single sign-on" : ""] },
      { label: "Last sign-in", value: (u) => fmtTime(u.last_login_at) },
      {
        label: "Actions",
        value: (u) => (u.username === me ? "" : h("button", {
          type: "button", class: u.active ? "danger" : "", "aria-label": `${u.active ? "Deactivate" : "Activate"} ${u.username}`,
          onclick: async () => {
            if (!u.active || await confirmAction(`Deactivate ${u.username}? Their sessions and tokens stop working at once.`, "Deactivate")) toggle(u);
          },
        }, u.active ? "Deactivate" : "Activate")),
      },
    ],
    all,
    { caption: "Users" },
  )));
}

// ---------------------------------------------------------------- teams

async function teams(part, shared) {
  const { teams: all } = await v1.get("/teams");
  shared.teams = all.map((t) => t.name);
  const redraw = () => teams(part, shared);
  const create = submitForm(h("form", { class: "inline", "aria-label": "Create a team" },
    field("Team name", input("name", { required: true })),
    field("Description", input("description")),
    checkbox("Private", "private"),
    h("button", { type: "submit", class: "primary" }, "Create team")), (v) =>
    act(part.status, () => v1.post("/teams", { name: v.name.trim(), description: v.description || null, private: v.private }),
      `Team ${v.name.trim()} created.`, redraw));
  const add = submitForm(h("form", { class: "inline", "aria-label": "Add a member" },
    field("Team", select("team", shared.teams, shared.teams[0])),
    field("Member", select("member", shared.users || [], (shared.users || [])[0])),
    h("button", { type: "submit" }, "Add member")), (v) =>
    act(part.status, () => v1.put(`/teams/${encodeURIComponent(v.team)}/members/${encodeURIComponent(v.member)}`),
      `${v.member} added to ${v.team}.`, redraw));
  replace(part.body, create, all.length ? add : null, h("div", { class: "scroll" }, table(
    [
      { label: "Team", value: (t) => t.name },
      { label: "Description", value: (t) => t.description || "" },
      { label: "Visibility", value: (t) => (t.private ? badge("private", "warn") : "open") },
      {
        label: "Members",
        value: (t) => (t.members.length ? t.members.map((m) => h("span", { class: "member" }, m, " ",
          h("button", {
            type: "button", class: "link", "aria-label": `Remove ${m} from ${t.name}`,
            onclick: () => act(part.status, () => v1.delete(`/teams/${encodeURIComponent(t.name)}/members/${encodeURIComponent(m)}`),
              `${m} removed from ${t.name}.`, redraw),
          }, "remove"))) : h("span", { class: "muted" }, "none")),
      },
    ],
    all,
    { caption: "Teams", empty: "No teams yet." },
  )));
}

// ---------------------------------------------------------------- tokens

async function tokens(part, made = null) {
  const { tokens: all } = await v1.get("/tokens", { all: "true" });
  const redraw = () => tokens(part);
  // shown here once, right after it is made: the server keeps only a hash of it
  const secret = made ? h("div", { class: "notice secret", role: "status" },
    h("p", {}, `Token “${made.name}” created. Copy it now: it will not be shown again.`),
    h("code", { class: "token", tabindex: 0 }, made.token)) : null;
  const form = submitForm(h("form", { class: "inline", "aria-label": "Create a token" },
    field("Token name", input("name", { required: true, placeholder: "laptop, ci, …" })),
    field("Expires in (days)", input("expires", { type: "number", min: 1, step: "any", placeholder: "never" })),
    checkbox("Read only", "read_only"),
    h("button", { type: "submit", class: "primary" }, "Create token")), async (v) => {
    try {
      part.status.clear();
      await tokens(part, await v1.post("/tokens", {
        name: v.name.trim(), read_only: v.read_only, expires_in_days: v.expires ? Number(v.expires) : null,
      }));
    } catch (error) {
      part.status.fail(error);
    }
  });
  replace(part.body, form, secret, h("div", { class: "scroll" }, table(
    [
      { label: "User", value: (t) => t.user },
      { label: "Name", value: (t) => t.name },
      { label: "Starts with", value: (t) => h("code", {}, `${t.prefix}…`) },
      { label: "Access", value: (t) => (t.read_only ? "read only" : "read and write") },
      { label: "Created", value: (t) => fmtTime(t.created_at) },
      { label: "Expires", value: (t) => (t.expires_at ? fmtTime(t.expires_at) : "never") },
      { label: "Last used", value: (t) => fmtTime(t.last_used_at) },
      {
        label: "Actions",
        value: (t) => h("button", {
          type: "button", class: "danger", "aria-label": `Revoke token ${t.name} of ${t.user}`,
          onclick: async () => {
            if (await confirmAction(`Revoke ${t.user}'s token “${t.name}”? Whatever uses it stops working.`, "Revoke")) {
              act(part.status, () => v1.delete(`/tokens/${t.id}`), `Token ${t.name} revoked.`, redraw);
            }
          },
        }, "Revoke"),
      },
    ],
    all,
    { caption: "Everyone's API tokens", empty: "No tokens yet." },
  )));
}

// ---------------------------------------------------------------- permissions

const KINDS = [["registered_model", "Model"], ["experiment", "Experiment"], ["deployment", "Deployment"]];

async function resourcesOf(kind) {
  if (kind === "experiment") {
    const found = await mlflow.get("/experiments/search", { max_results: 1000 });
    return (found.experiments || []).map((e) => [e.experiment_id, `${e.name} (${e.experiment_id})`]);
  }
  if (kind === "registered_model") {
    const found = await mlflow.get("/registered-models/search", { max_results: 1000 });
    return (found.registered_models || []).map((m) => [m.name, m.name]);
  }
  const { deployments } = await v1.get("/deployments");
  return deployments.map((d) => [d.name, d.name]);
}

async function permissions(part, shared) {
  const kind = select("kind", KINDS, "registered_model");
  const resource = select("resource", []);
  const detail = h("div", {});
  const fill = async () => {
    const options = await resourcesOf(kind.value);
    replace(resource, options.map(([value, text]) => h("option", { value }, text)));
    replace(detail);
  };
  kind.addEventListener("change", () => fill().catch(part.status.fail));
  await fill();

  const show = async () => {
    if (!resource.value) {
      replace(detail, h("p", { class: "empty" }, "There is nothing of that kind yet."));
      return;
    }
    const url = `/permissions/${kind.value}/${encodeURIComponent(resource.value)}`;
    const access = await v1.get(url);
    const redraw = () => show();
    const grants = access.grants.map((g) => ({ who: g.user ? "user" : "team", name: g.user || g.team, level: g.level }));
    const grantForm = submitForm(h("form", { class: "inline", "aria-label": "Grant a level" },
      field("Grant to", select("who", [["user", "a user"], ["team", "a team"]], "user")),
      field("User or team", input("name", { required: true, list: "principals" })),
      h("datalist", { id: "principals" }, [...(shared.users || []), ...(shared.teams || [])].map((n) => h("option", { value: n }))),
      field("Level", select("level", ["READ", "EDIT", "MANAGE"], "READ")),
      h("button", { type: "submit", class: "primary" }, "Grant")), (v) =>
      act(part.status, () => v1.put(url, { [v.who]: v.name.trim(), level: v.level }),
        `${v.level} granted to ${v.name.trim()} on ${access.resource_id}.`, redraw));
    replace(detail,
      h("dl", { class: "facts" },
        h("dt", {}, "Owner"), h("dd", {}, access.owner || "nobody"),
        h("dt", {}, "Owning team"), h("dd", {}, access.team ? `${access.team}${access.team_private ? " (private)" : ""}` : "none")),
      table(
        [
          { label: "Who", value: (g) => `${g.name} (${g.who})` },
          { label: "Level", value: (g) => badge(g.level) },
          {
            label: "Actions",
            value: (g) => h("button", {
              type: "button", class: "danger", "aria-label": `Revoke ${g.name}'s ${g.level}`,
              onclick: async () => {
                if (await confirmAction(`Revoke ${g.name}'s ${g.level} on ${access.resource_id}?`, "Revoke")) {
                  act(part.status, () => v1.delete(url, { [g.who]: g.name }), `${g.name}'s grant revoked.`, redraw);
                }
              },
            }, "Revoke"),
          },
        ],
        grants,
        { caption: `Grants on ${access.resource_type} ${access.resource_id}`, empty: "No grants: only the owner, the owning team and admins have access." },
      ),
      grantForm);
  };
  const picker = submitForm(h("form", { class: "inline", "aria-label": "Choose a resource" },
    field("Resource type", kind), field("Resource", resource),
    h("button", { type: "submit" }, "Show permissions")), () => { part.status.clear(); show().catch(part.status.fail); });
  replace(part.body, picker, detail);
}

run("Administration", async () => {
  const shared = {};
  const parts = {
    users: section("Users"),
    teams: section("Teams"),
    tokens: section("API tokens", "A token's secret is shown once, when it is made."),
    permissions: section("Permissions", "Who may read, edit or manage an experiment, a model or a deployment."),
  };
  await users(parts.users, shared);
  await Promise.all([teams(parts.teams, shared), tokens(parts.tokens)]);
  await permissions(parts.permissions, shared);
  render("Administration", h("h1", {}, "Administration"), Object.values(parts).map((p) => p.el));
});

