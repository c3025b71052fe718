// A deployment: its predictors, replicas and their states, traffic split and the model
// version each serves; recent events and logs; live request-rate and latency charts from the
// gateway's per-second counts; and "try it", a V2 or Seldon v1 request sent through the
// gateway with its answer or error shown.
import "../lib/shell.js";
import { ApiError, request, v1 } from "../lib/api.js";
import { badge, confirmAction, errorBox, fmtNumber, fmtTime, h, link, pageContext, render, replace, run, table } from "../lib/dom.js";
import { field, select, statusLine } from "../lib/forms.js";
import { LineChart } from "../lib/linechart.js";

const { args } = pageContext();
const name = args.name;
const path = `/deployments/${encodeURIComponent(name)}`;
const STATUS_MS = 3000;
const METRICS_MS = 2000;
const CHART_SECONDS = 120;
const SAMPLE = [5.1, 3.5, 1.4, 0.2];

function stateBadge(state) {
  const kind = { AVAILABLE: "ok", RUNNING: "ok", READY: "ok", PROGRESSING: "warn", PENDING: "warn", STARTING: "warn", DEGRADED: "bad", FAILED: "bad" }[state] || "";
  return badge(String(state || "unknown").toLowerCase(), kind);
}

function revision(r) {
  if (!r) return h("span", { class: "muted" }, "nothing yet");
  return [r.version ? `v${r.version} ` : "", h("code", {}, r.model)];
}

function summary(d) {
  return h("dl", { class: "facts" },
    h("dt", {}, "State"), h("dd", {}, stateBadge(d.state), d.message ? ` ${d.message}` : ""),
    h("dt", {}, "Namespace"), h("dd", {}, d.namespace),
    h("dt", {}, "Created"), h("dd", {}, `${fmtTime(d.created_at)} by ${d.created_by || "?"}`),
    h("dt", {}, "Updated"), h("dd", {}, `${fmtTime(d.updated_at)} (generation ${d.generation})`),
    h("dt", {}, "V2 endpoint"), h("dd", {}, h("code", {}, d.endpoints.v2)),
    h("dt", {}, "Seldon endpoint"), h("dd", {}, h("code", {}, d.endpoints.seldon)));
}

function predictors(d) {
  return [
    table(
      [
        { label: "Predictor", value: (p) => p.name },
        { label: "State", value: (p) => [stateBadge(p.state), p.message ? h("div", { class: "muted" }, p.message) : ""] },
        { label: "Model", value: (p) => h("code", {}, p.model) },
        { label: "Serving", value: (p) => revision(p.serving) },
        { label: "Traffic", value: (p) => (p.shadow ? "shadow copy" : `${p.traffic}%`), class: "num" },
        { label: "Replicas ready", value: (p) => `${p.ready_replicas} / ${p.desired_replicas}`, class: "num" },
      ],
      d.predictors,
      { caption: "Predictors and traffic split" },
    ),
    table(
      [
        { label: "Predictor", value: (r) => r.predictor },
        { label: "Replica", value: (r) => r.id },
        { label: "State", value: (r) => stateBadge(r.state) },
        { label: "Revision", value: (r) => h("code", {}, String(r.revision || "").slice(0, 12)) },
        { label: "Endpoint", value: (r) => r.http || "" },
        { label: "Restarts", value: (r) => r.restarts, class: "num" },
        { label: "Started", value: (r) => fmtTime(r.started_at) },
        { label: "Message", value: (r) => r.message || "" },
      ],
      d.predictors.flatMap((p) => p.replicas.map((r) => ({ ...r, predictor: p.name }))),
      { caption: "Replicas", empty: "No replica has started yet." },
    ),
  ];
}

function events(d) {
  const recent = [...(d.events || [])].sort((a, b) => b.at - a.at);
  return table(
    [
      { label: "When", value: (e) => fmtTime(e.at) },
      { label: "Predictor", value: (e) => e.predictor || "" },
      { label: "What", value: (e) => e.kind },
      { label: "Message", value: (e) => e.message },
    ],
    recent,
    { caption: "Recent events, newest first", empty: "No events yet." },
  );
}

async function logs() {
  const { predictors: found } = await v1.get(`${path}/logs`, { tail: 100 });
  const blocks = [];
  for (const [predictor, replicas] of Object.entries(found)) {
    for (const [replica, lines] of Object.entries(replicas)) {
      blocks.push(h("h3", {}, `${predictor} · replica ${replica}`), h("pre", { class: "logs", tabindex: 0 }, lines.join("\n") || "(no output yet)"));
    }
  }
  return blocks.length ? blocks : h("p", { class: "empty" }, "No output yet.");
}

// ---------------------------------------------------------------- live charts

/** Draw both charts once; the returned update() polls the metrics and redraws them in place. */
function drawCharts(rate, latency) {
  const common = { xType: "time", xLabel: "time", yZero: true, height: 200, logToggle: false };
  const rateChart = new LineChart(rate, { ...common, title: "Requests per second", description: "answered and failed requests per second" });
  const latencyChart = new LineChart(latency, { ...common, title: "Mean latency (ms)", description: "mean latency in milliseconds", markers: true });
  return async function update() {
    const m = await v1.get(`${path}/metrics`, { seconds: CHART_SECONDS });
    const x = m.requests.map((_, i) => (m.start + i) * 1000);
    rateChart.update([
      { name: "answered", x, y: m.requests.map((n, i) => n - m.errors[i]), colour: "#1a7f37" },
      { name: "failed", x, y: m.errors, colour: "#b42318" },
    ]);
    latencyChart.update([{ name: "mean latency", x, y: m.latency_ms, colour: "#0a58ca" }]);
    rate.dataset.total = m.total_requests;
    return m;
  };
}

// ---------------------------------------------------------------- try it

function sampleValue(datatype, i) {
  if (datatype === "BOOL") return false;
  if (datatype === "BYTES") return "text";
  if (/^U?INT/.test(datatype)) return 1;
  return SAMPLE[i % SAMPLE.length];
}

/** Example requests for both protocols, from the model's V2 metadata (its signature) when known. */
export function examples(metadata) {
  const inputs = (metadata && metadata.inputs) || [];
  if (inputs.length > 1) {
    const row = inputs.map((t, i) => sampleValue(t.datatype, i));
    return {
      v2: { inputs: inputs.map((t, i) => ({ name: t.name, shape: [1], datatype: t.datatype, data: [row[i]] })) },
      seldon: { data: { names: inputs.map((t) => t.name), ndarray: [row] } },
    };
  }
  const tensor = inputs[0];
  const width = tensor && tensor.shape && tensor.shape.length === 2 && tensor.shape[1] > 0 ? tensor.shape[1] : SAMPLE.length;
  const datatype = tensor ? tensor.datatype : "FP64";
  const row = Array.from({ length: width }, (_, i) => sampleValue(datatype, i));
  return {
    v2: { inputs: [{ name: tensor ? tensor.name : "input-0", shape: [1, width], datatype, data: row }] },
    seldon: { data: { ndarray: [row] } },
  };
}

async function metadataOf(d) {
  const ready = d.predictors.some((p) => p.ready_replicas > 0);
  if (!ready) return null;
  try {
    return await request("GET", `/deployments/${encodeURIComponent(d.name)}/v2/models/${encodeURIComponent(d.name)}`);
  } catch {
    return null; // no metadata: the generic example will do
  }
}

function tryIt(d, metadata) {
  const samples = examples(metadata);
  const protocol = select("protocol", [["v2", "V2 (Open Inference Protocol)"], ["seldon", "Seldon v1"]], "v2");
  const body = h("textarea", { name: "body", rows: 8, cols: 70, spellcheck: "false", class: "code" });
  const answer = h("div", { class: "answer", "aria-live": "polite" });
  const fill = () => { body.value = JSON.stringify(samples[protocol.value], null, 2); };
  fill();
  protocol.addEventListener("change", fill);
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const form = h("form", { class: "stack", "aria-label": "Try it" },
    field("Protocol", protocol),
    field("Request body (JSON)", body, metadata && metadata.inputs && metadata.inputs.length ? "prefilled from the model's signature" : null),
    h("div", {}, send),
    answer);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let json;
    try {
      json = JSON.parse(body.value);
    } catch (error) {
      replace(answer, errorBox(`The request body is not valid JSON: ${error.message}`));
      return;
    }
    const url = protocol.value === "v2" ? d.endpoints.v2 : d.endpoints.seldon;
    send.disabled = true;
    try {
      const result = await request("POST", url, { json });
      replace(answer, h("h3", {}, "Answer"), h("pre", { class: "result", tabindex: 0 }, JSON.stringify(result, null, 2)));
    } catch (error) {
      const details = error instanceof ApiError && error.body && typeof error.body === "object" ? JSON.stringify(error.body, null, 2) : null;
      replace(answer, errorBox(error), details ? h("pre", { class: "result" }, details) : null);
    } finally {
      send.disabled = false;
    }
  });
  return form;
}

// ---------------------------------------------------------------- the page

run(name, async () => {
  let d = await v1.get(path);
  const status = statusLine();
  const head = h("div", {}, summary(d));
  const preds = h("div", { class: "scroll" }, predictors(d));
  const evs = h("div", { class: "scroll" }, events(d));
  const logBox = h("div", {}, await logs().catch(errorBox));
  const trySlot = h("div", {}, tryIt(d, await metadataOf(d)));
  let hadMetadata = d.predictors.some((p) => p.ready_replicas > 0);
  const rate = h("div", { class: "chart small", id: "rate-chart" });
  const latency = h("div", { class: "chart small", id: "latency-chart" });
  const totals = h("p", { class: "muted", "aria-live": "polite" });

  const remove = h("button", { type: "button", class: "danger" }, "Delete deployment");
  remove.addEventListener("click", async () => {
    if (!(await confirmAction(`Delete deployment ${name}? Its replicas stop and its endpoints go away.`, "Delete"))) return;
    try {
      await v1.delete(path);
      location.assign("/ui/deployments");
    } catch (error) {
      status.fail(error);
    }
  });
  const refreshLogs = h("button", { type: "button" }, "Refresh logs");
  refreshLogs.addEventListener("click", async () => replace(logBox, await logs().catch(errorBox)));

  render(
    name,
    h("p", { class: "crumbs" }, link("/ui/deployments", "Deployments"), " / "),
    h("div", { class: "title-row" }, h("h1", {}, name), remove),
    status.el,
    h("section", { class: "card", "aria-label": "Status" }, h("h2", {}, "Status"), head),
    h("section", { class: "card", "aria-label": "Predictors" }, h("h2", {}, "Predictors and replicas"), preds),
    h("section", { class: "card", "aria-label": "Traffic" }, h("h2", {}, "Live traffic"), totals, h("div", { class: "charts" }, rate, latency)),
    h("section", { class: "card", "aria-label": "Try it" }, h("h2", {}, "Try it"), trySlot),
    h("section", { class: "card", "aria-label": "Events" }, h("h2", {}, "Events"), evs),
    h("section", { class: "card", "aria-label": "Logs" }, h("h2", {}, "Logs"), h("div", { class: "toolbar" }, refreshLogs), logBox),
  );

  setInterval(async () => {
    try {
      d = await v1.get(path);
      replace(head, summary(d));
      replace(preds, predictors(d));
      replace(evs, events(d));
      if (!hadMetadata && d.predictors.some((p) => p.ready_replicas > 0)) {
        // the first replica is up: now the example can follow the model's signature
        hadMetadata = true;
        replace(trySlot, tryIt(d, await metadataOf(d)));
      }
    } catch (error) {
      status.fail(error);
    }
  }, STATUS_MS);

  try {
    const update = drawCharts(rate, latency);
    const tick = async () => {
      const m = await update();
      replace(totals, `${m.total_requests} requests in the last ${CHART_SECONDS} s through this server, ${m.total_errors} failed` +
        (m.mean_latency_ms === null ? "." : `, mean latency ${fmtNumber(m.mean_latency_ms)} ms.`));
    };
    await tick();
    setInterval(() => tick().catch((error) => replace(totals, errorBox(error))), METRICS_MS);
  } catch (error) {
    replace(totals, errorBox(error));
  }
});
