// Building the page: h() makes elements (text always goes in as text, never as HTML), plus the
// few pieces every page shares: headings, errors, confirmations, formatting.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "class") el.className = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** The page's <main> and the arguments the server put on it (path parameters and more). */
export function pageContext() {
  const main = document.getElementById("main");
  return {
    main,
    args: JSON.parse(main.dataset.args || "{}"),
    staticPrefix: main.dataset.static,
    user: main.dataset.user,
    admin: main.dataset.admin === "true",
    authMode: main.dataset.auth,
  };
}

/** Replace <main>'s content, set the document title, and keep focus order sensible. */
export function render(title, ...children) {
  const { main } = pageContext();
  document.title = `${title} · labdeck`;
  replace(main, children);
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error && error.message ? error.message : String(error));
}

/** Run an async page body; any error it throws is shown in place of the page. */
export async function run(title, body) {
  try {
    await body();
  } catch (error) {
    render(title, h("h1", {}, title), errorBox(error));
  }
}

/** A native <dialog> asking to confirm an action; resolves true only on the confirm button. */
export function confirmAction(question, confirmLabel = "Confirm") {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-label": question },
      h("form", { method: "dialog" },
        h("p", {}, question),
        h("div", { class: "actions" },
          h("button", { value: "cancel", type: "submit" }, "Cancel"),
          h("button", { value: "confirm", type: "submit", class: "primary" }, confirmLabel))),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

const number = new Intl.NumberFormat("en", { maximumSignificantDigits: 6 });

export function fmtNumber(value) {
  if (value === undefined || value === null || value === "") return "";
  const n = Number(value);
  return Number.isFinite(n) ? number.format(n) : String(value);
}

export function fmtTime(ms) {
  if (!ms) return "";
  const date = new Date(Number(ms));
  return date.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
}

export function fmtDuration(startMs, endMs) {
  if (!startMs || !endMs) return "";
  let s = Math.max(0, Math.round((Number(endMs) - Number(startMs)) / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  s %= 60;
  if (m < 60) return `${m} min ${s} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A <table> from column definitions {label, value(row) -> node|text, class?} and rows. */
export function table(columns, rows, { caption, empty = "Nothing here yet." } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.class }, c.value(row)))))));
}

export function link(href, text) {
  return h("a", { href }, text);
}

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}`.trim() }, text);
}
