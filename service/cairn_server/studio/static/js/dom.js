// Small DOM helpers: build elements without a framework and without
// innerHTML, so that data from the server is always inserted as text.

const SVG_NS = "http://www.w3.org/2000/svg";

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) {
      append(el, child);
    } else if (child instanceof Node) {
      el.appendChild(child);
    } else {
      el.appendChild(document.createTextNode(String(child)));
    }
  }
}

/**
 * h("a", {href: "#/x", class: "link", onclick: fn}, "text", [nodes], null)
 * Attribute keys starting with "on" that hold a function become listeners;
 * true gives an empty attribute; false/null/undefined are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Same as h() but in the SVG namespace. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Removes every child of node; returns node. */
export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/**
 * A visible alert box for an error of an API call (ApiError from api.js)
 * or any other Error: code, reason, message and, when api.js knows one,
 * a hint about what to do.
 */
export function errorBox(err, title = "Error") {
  const code = err && err.code ? err.code : null;
  const reason = err && err.reason ? err.reason : null;
  const message = err && err.message ? err.message : String(err);
  return h(
    "div",
    { role: "alert", class: "error-box", "data-testid": "error" },
    h("strong", {}, title),
    code ? h("span", { class: "error-code" }, " ", code) : null,
    reason && reason !== code ? h("span", { class: "error-reason" }, " (", reason, ")") : null,
    h("p", { class: "error-message" }, message),
    err && err.hint ? h("p", { class: "error-hint" }, err.hint) : null,
  );
}

/** A table of `columns` (header texts) around `tbody`, found by tests as
 * `table[data-testid=<testid>]`; the caption names it for screen readers. */
export function dataTable(testid, caption, columns, tbody) {
  return h(
    "table",
    { "data-testid": testid, class: "data" },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    tbody,
  );
}

/** A polite live region for "Loading…" and result counts. */
export function statusLine(text = "") {
  return h("p", { class: "status-line", role: "status", "aria-live": "polite" }, text);
}
