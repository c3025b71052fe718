// Forms the platform pages share: a labelled field, a dialog that asks for a few values and
// stays open showing the server's message when the action is refused, and a status line.
import { errorBox, h, replace } from "./dom.js";

let fieldCount = 0;

/** A control with its <label> (tied by id, so the name is the label's text alone) and a hint. */
export function field(label, control, hint) {
  if (!control.id) control.id = `field-${++fieldCount}`;
  const hintEl = hint ? h("span", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl);
}

export function input(name, attrs = {}) {
  return h("input", { name, type: "text", autocomplete: "off", ...attrs });
}

export function select(name, options, value, attrs = {}) {
  return h("select", { name, ...attrs },
    options.map((o) => {
      const [optionValue, text] = Array.isArray(o) ? o : [o, o];
      return h("option", { value: optionValue, selected: String(optionValue) === String(value) }, text);
    }));
}

export function checkbox(label, name, checked = false) {
  return h("label", { class: "check" }, h("input", { type: "checkbox", name, checked }), label);
}

/** The values of a form's named controls (checkboxes as booleans). */
export function values(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    out[el.name] = el.type === "checkbox" ? el.checked : el.value;
  }
  return out;
}

/**
 * A modal <dialog> with a form. ``submit(values)`` does the action; if it throws, the error is
 * shown in the dialog, which stays open. Resolves to what ``submit`` returned, or null when
 * cancelled.
 */
export function formDialog(title, controls, submitLabel, submit, { intro } = {}) {
  return new Promise((resolve) => {
    const problem = h("div", { class: "problem" });
    const send = h("button", { type: "submit", class: "primary" }, submitLabel);
    const cancel = h("button", { type: "button" }, "Cancel");
    const form = h("form", { class: "stack" },
      h("h2", {}, title),
      intro ? h("p", {}, intro) : null,
      controls,
      problem,
      h("div", { class: "actions" }, cancel, send));
    const dialog = h("dialog", { class: "form", "aria-label": title }, form);
    let result = null;
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      send.disabled = true;
      replace(problem);
      try {
        result = await submit(values(form));
        dialog.close();
      } catch (error) {
        replace(problem, errorBox(error));
      } finally {
        send.disabled = false;
      }
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A live region for what an action did (or the error it met). */
export function statusLine() {
  const el = h("div", { class: "status-line", "aria-live": "polite" });
  return {
    el,
    ok(text) { replace(el, h("p", { class: "notice", role: "status" }, text)); },
    fail(error) { replace(el, errorBox(error)); },
    clear() { replace(el); },
  };
}
