// A registered model: its versions (with their source runs), aliases and stages with the
// controls that move them (each behind a confirmation), the history of those moves, and
// "Deploy", which makes a deployment of a version or an alias in two clicks.
import "../lib/shell.js";
import { mlflow, v1 } from "../lib/api.js";
import { badge, confirmAction, fmtTime, h, link, pageContext, render, run, table } from "../lib/dom.js";
import { field, formDialog, input, select, statusLine } from "../lib/forms.js";

const { args } = pageContext();
const name = args.name;
const STAGES = ["None", "Staging", "Production", "Archived"];

/** A deployment name the spec accepts (a DNS label of at most 40 characters), not yet taken. */
export function deploymentName(base, taken) {
  const clean = base.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/-+/g, "-").replace(/^-|-$/g, "") || "model";
  let candidate = clean.slice(0, 40).replace(/-$/, "");
  for (let i = 2; taken.has(candidate); i += 1) candidate = `${clean.slice(0, 36).replace(/-$/, "")}-${i}`;
  return candidate;
}

async function deploy(target) {
  const { deployments } = await v1.get("/deployments");
  const taken = new Set(deployments.map((d) => d.name));
  const suggested = deploymentName(`${name}-${target.alias ? target.alias : `v${target.version}`}`, taken);
  const uri = target.alias ? `models:/${name}@${target.alias}` : `models:/${name}/${target.version}`;
  const created = await formDialog(
    `Deploy ${target.alias ? `@${target.alias}` : `version ${target.version}`} of ${name}`,
    [
      field("Deployment name", input("name", { value: suggested, required: true, maxlength: 40 }),
        "lower-case letters, digits and '-'"),
      field("Model URI", input("model", { value: uri, required: true })),
      field("Replicas", input("replicas", { type: "number", min: 1, max: 64, value: 1, required: true })),
    ],
    "Create",
    (values) => v1.post("/deployments", {
      apiVersion: "labdeck.dev/v1",
      kind: "ModelDeployment",
      metadata: { name: values.name.trim() },
      spec: { predictors: [{ name: "main", model: values.model.trim(), replicas: Number(values.replicas) }] },
    }),
    { intro: target.alias ? "An alias is followed as it moves: the deployment rolls out the version it points at." : null },
  );
  if (created) location.assign(`/ui/deployments/${encodeURIComponent(created.name)}`);
}

function describe(e) {
  const v = (x) => `v${x}`;
  switch (e.kind) {
    case "ALIAS_SET":
      return e.from_version ? `moved @${e.alias} from ${v(e.from_version)} to ${v(e.to_version)}` : `set @${e.alias} on ${v(e.to_version)}`;
    case "ALIAS_DELETED":
      return `removed @${e.alias} (was on ${v(e.from_version)})`;
    case "STAGE_CHANGED":
      return `moved ${v(e.version)} from ${e.from_stage || "None"} to ${e.to_stage}`;
    case "VERSION_CREATED":
      return `created ${v(e.version)}`;
    case "VERSION_DELETED":
      return `deleted ${v(e.version)}`;
    case "RENAMED":
      return `renamed from ${e.from_name} to ${e.to_name}`;
    case "DEPLOYED":
      return `deployment ${e.deployment} started serving ${v(e.version)}`;
    default:
      return e.kind.toLowerCase();
  }
}

function timeline(events) {
  if (!events.length) return h("p", { class: "empty" }, "Nothing has happened to this model yet.");
  return h("ol", { class: "timeline", "aria-label": "History" },
    events.map((e) => h("li", { dataset: { kind: e.kind } },
      h("time", { datetime: new Date(e.timestamp).toISOString() }, fmtTime(e.timestamp)), " ",
      h("strong", {}, e.actor || "someone"), " ", describe(e))));
}

async function load() {
  const [{ registered_model: model }, found, history] = await Promise.all([
    mlflow.get("/registered-models/get", { name }),
    mlflow.get("/model-versions/search", { filter: `name = '${name.replaceAll("'", "\\'")}'`, max_results: 10000 }),
    v1.get(`/models/${encodeURIComponent(name)}/history`, { limit: 100 }),
  ]);
  const versions = (found.model_versions || []).sort((a, b) => Number(b.version) - Number(a.version));
  return { model, versions, events: history.events };
}

async function change(question, label, action, status) {
  if (!(await confirmAction(question, label))) return;
  try {
    await action();
    status.ok(`${label}: done.`);
    await draw(status);
  } catch (error) {
    status.fail(error);
  }
}

async function draw(status = statusLine()) {
  const { model, versions, events } = await load();
  const aliases = (model.aliases || []).sort((a, b) => a.alias.localeCompare(b.alias));
  const versionOptions = versions.map((v) => [v.version, `version ${v.version}`]);

  const aliasForm = h("form", { class: "inline", "aria-label": "Move an alias" },
    field("Alias", input("alias", { value: aliases[0] ? aliases[0].alias : "production", required: true, list: "alias-names" })),
    h("datalist", { id: "alias-names" }, aliases.map((a) => h("option", { value: a.alias }))),
    field("Version", select("version", versionOptions, versions[0] && versions[0].version)),
    h("button", { type: "submit", class: "primary" }, "Move alias"));
  aliasForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const alias = aliasForm.elements.alias.value.trim();
    const version = aliasForm.elements.version.value;
    const current = aliases.find((a) => a.alias === alias);
    const question = current
      ? `Move @${alias} of ${name} from version ${current.version} to version ${version}?`
      : `Set @${alias} of ${name} on version ${version}?`;
    change(question, "Move alias", () => mlflow.post("/registered-models/alias", { name, alias, version }), status);
  });

  const stageForm = h("form", { class: "inline", "aria-label": "Change a stage" },
    field("Version", select("version", versionOptions, versions[0] && versions[0].version)),
    field("Stage", select("stage", STAGES, "Production")),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "archive" }), "Archive the versions now in that stage"),
    h("button", { type: "submit" }, "Change stage"));
  stageForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const { version, stage, archive } = stageForm.elements;
    change(`Move version ${version.value} of ${name} to ${stage.value}?`, "Change stage",
      () => mlflow.post("/model-versions/transition-stage", {
        name, version: version.value, stage: stage.value, archive_existing_versions: archive.checked,
      }), status);
  });

  render(
    name,
    h("p", { class: "crumbs" }, link("/ui/models", "Models"), " / "),
    h("h1", {}, name),
    model.description ? h("p", {}, model.description) : null,
    status.el,
    h("section", { class: "card", "aria-label": "Versions" },
      h("h2", {}, "Versions"),
      h("div", { class: "scroll" }, table(
        [
          { label: "Version", value: (v) => `v${v.version}` },
          { label: "Source run", value: (v) => (v.run_id ? link(`/ui/runs/${v.run_id}`, v.run_id.slice(0, 12)) : h("span", { class: "muted" }, v.source)) },
          { label: "Stage", value: (v) => badge(v.current_stage || "None", v.current_stage === "Production" ? "ok" : "") },
          { label: "Aliases", value: (v) => (v.aliases || []).map((a) => badge(`@${a}`, "ok")) },
          { label: "Status", value: (v) => v.status },
          { label: "Created", value: (v) => fmtTime(v.creation_timestamp) },
          { label: "By", value: (v) => v.user_id || "" },
          { label: "Actions", value: (v) => h("button", { type: "button", onclick: () => deploy({ version: v.version }).catch(status.fail), "aria-label": `Deploy version ${v.version}` }, "Deploy") },
        ],
        versions,
        { empty: "This model has no versions yet." },
      ))),
    h("section", { class: "card", "aria-label": "Aliases" },
      h("h2", {}, "Aliases"),
      table(
        [
          { label: "Alias", value: (a) => h("code", {}, `models:/${name}@${a.alias}`) },
          { label: "Version", value: (a) => `v${a.version}` },
          {
            label: "Actions",
            value: (a) => [
              h("button", { type: "button", onclick: () => deploy({ alias: a.alias }).catch(status.fail), "aria-label": `Deploy @${a.alias}` }, "Deploy"), " ",
              h("button", {
                type: "button", class: "danger", "aria-label": `Remove @${a.alias}`,
                onclick: () => change(`Remove @${a.alias} from ${name}?`, "Remove alias",
                  () => mlflow.delete("/registered-models/alias", { name, alias: a.alias }), status),
              }, "Remove"),
            ],
          },
        ],
        aliases,
        { empty: "No aliases yet." },
      ),
      versions.length ? aliasForm : null),
    h("section", { class: "card", "aria-label": "Stages" }, h("h2", {}, "Stages"), versions.length ? stageForm : h("p", { class: "empty" }, "No versions.")),
    h("section", { class: "card", "aria-label": "History" }, h("h2", {}, "History"), timeline(events)),
  );
}

run(name, () => draw());
