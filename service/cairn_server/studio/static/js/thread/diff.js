// Differences between two checkpoints' values, as rows a person can read:
// one row per changed leaf with its path (`meta.tags[1]`), the kind of
// change and the value before and after, instead of two JSON blobs.

import { h } from "../dom.js";
import { compact } from "../format.js";

// Past this many rows the table stops (a state with thousands of changed
// list items would make the page slow to scroll and to read).
const MAX_ROWS = 500;
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function kind(v) {
  if (Array.isArray(v)) return "array";
  if (isObject(v)) return "object";
  return "leaf";
}

/** Deep equality of two JSON values (key order does not matter). */
export function equal(a, b) {
  if (a === b) return true;
  const ka = kind(a);
  if (ka !== kind(b) || ka === "leaf") return false;
  if (ka === "array") return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => k in b && equal(a[k], b[k]));
}

/** `meta.tags[1]`, `["odd key"]`; "" is the whole value. */
export function joinPath(path, key) {
  if (typeof key === "number") return `${path}[${key}]`;
  if (IDENTIFIER.test(key)) return path ? `${path}.${key}` : key;
  return `${path}[${JSON.stringify(key)}]`;
}

/**
 * Rows {path, change: "added"|"removed"|"changed", before, after} that turn
 * `before` into `after`. Objects are compared key by key and lists index by
 * index, recursively; anything else (or a change of type) is one "changed"
 * row. At the top, a missing value (an entrypoint's first checkpoint holds
 * null) counts as an empty one, so its first result shows as added keys.
 */
export function diffValues(before, after) {
  const rows = [];
  const top = (v, other) => (v === null || v === undefined ? emptyLike(other) : v);
  walk(top(before, after), top(after, before), "", rows);
  return rows;
}

function emptyLike(v) {
  if (Array.isArray(v)) return [];
  if (isObject(v)) return {};
  return v === undefined ? null : undefined;
}

function walk(a, b, path, rows) {
  if (a === undefined && b === undefined) return;
  if (a === undefined) {
    rows.push({ path, change: "added", before: undefined, after: b });
    return;
  }
  if (b === undefined) {
    rows.push({ path, change: "removed", before: a, after: undefined });
    return;
  }
  const ka = kind(a);
  if (ka !== kind(b) || ka === "leaf") {
    if (!equal(a, b)) rows.push({ path, change: "changed", before: a, after: b });
    return;
  }
  if (ka === "array") {
    for (let i = 0; i < Math.max(a.length, b.length); i += 1) {
      walk(i < a.length ? a[i] : undefined, i < b.length ? b[i] : undefined, joinPath(path, i), rows);
    }
    return;
  }
  const keys = [...Object.keys(a)];
  for (const k of Object.keys(b)) if (!(k in a)) keys.push(k);
  for (const k of keys) walk(k in a ? a[k] : undefined, k in b ? b[k] : undefined, joinPath(path, k), rows);
}

const SYMBOL = { added: "+", removed: "−", changed: "~" };

function cell(value) {
  if (value === undefined) return h("td", { class: "diff-none" }, "—");
  const text = compact(value, 200);
  return h("td", {}, h("code", { title: text.length >= 200 ? JSON.stringify(value) : null }, text));
}

/**
 * The diff as a table inside `[data-testid="state-diff"]`. `before` is
 * undefined when the checkpoint has no parent.
 */
export function renderDiff(container, before, after, { hasParent }) {
  const rows = diffValues(hasParent ? before : null, after);
  const intro = hasParent
    ? rows.length === 0
      ? "No change from the parent checkpoint."
      : `${rows.length} ${rows.length === 1 ? "change" : "changes"} from the parent checkpoint.`
    : "First checkpoint of the thread: no parent, everything is new.";
  container.append(h("p", { class: "diff-summary" }, intro));
  if (rows.length === 0) return;
  const shown = rows.slice(0, MAX_ROWS);
  container.append(
    h(
      "table",
      { class: "diff", "aria-label": "Changes from the parent checkpoint" },
      h(
        "thead",
        {},
        h("tr", {}, h("th", { scope: "col" }, "Path"), h("th", { scope: "col" }, "Change"),
          h("th", { scope: "col" }, "Before"), h("th", { scope: "col" }, "After")),
      ),
      h(
        "tbody",
        {},
        shown.map((row) =>
          h(
            "tr",
            { "data-testid": "diff-row", "data-path": row.path, "data-change": row.change, class: `diff-${row.change}` },
            h("th", { scope: "row" }, h("code", {}, row.path || "(whole value)")),
            h("td", { class: "diff-change" }, h("span", { "aria-hidden": "true" }, SYMBOL[row.change], " "), row.change),
            cell(row.before),
            cell(row.after),
          ),
        ),
      ),
    ),
  );
  if (rows.length > shown.length) {
    container.append(h("p", { class: "diff-more" }, `…and ${rows.length - shown.length} more changes (see the values above).`));
  }
}
