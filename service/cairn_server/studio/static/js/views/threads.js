// Threads view (#/threads?status=...&metadata=...): the namespace's threads,
// newest first, 25 a page, filtered by status and metadata, and a search box
// that opens one thread by id; above them, the "Start a run" form
// (start_run.js).

import { h, clear, dataTable, errorBox, statusLine } from "../dom.js";
import { call } from "../api.js";
import { time, compact, enumName, plural } from "../format.js";
import { startRunPanel } from "./start_run.js";

const PAGE_SIZE = 25;
const STATUSES = ["idle", "busy", "interrupted", "error"];

// The id of the filter control to focus once the view rendered again after a
// filter change (the router rebuilds the view from the new URL).
let focusAfterRender = null;

/** A status badge: the word is always shown, the colour only adds to it. */
export function statusBadge(status) {
  const name = enumName(status, "THREAD_STATUS") || "unknown";
  return h("span", { class: `badge badge-${name}` }, name);
}

// Splits "a=1, b=[1,2], c="x,y"" at the commas that are outside of JSON
// strings, arrays and objects.
function splitPairs(text) {
  const parts = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === "\\") i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === "[" || c === "{") depth++;
    else if (c === "]" || c === "}") depth--;
    else if (c === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim()).filter(Boolean);
}

/**
 * "key=value, key2=value2" → the metadata Struct. Values that parse as JSON
 * are JSON (1, true, "x", [..]); others are strings. Throws on a bad pair.
 */
export function parseMetadata(text) {
  const result = {};
  for (const pair of splitPairs(text || "")) {
    const eq = pair.indexOf("=");
    const key = eq < 0 ? "" : pair.slice(0, eq).trim();
    if (!key) throw new Error(`"${pair}" is not key=value.`);
    const raw = pair.slice(eq + 1).trim();
    let value;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    result[key] = value;
  }
  return result;
}

function threadLink(id) {
  return h("a", { href: `#/threads/${encodeURIComponent(id)}` }, id);
}

function threadRow(thread) {
  const meta = thread.metadata && Object.keys(thread.metadata).length ? thread.metadata : null;
  return h(
    "tr",
    { "data-testid": "thread-row", "data-thread-id": thread.thread_id, "data-status": enumName(thread.status, "THREAD_STATUS") },
    h("th", { scope: "row" }, threadLink(thread.thread_id)),
    h("td", {}, statusBadge(thread.status)),
    h("td", {}, h("time", { datetime: thread.create_time || "" }, time(thread.create_time))),
    h("td", {}, h("time", { datetime: thread.update_time || "" }, time(thread.update_time))),
    h("td", { class: "metadata" }, meta ? h("code", {}, compact(meta, 100)) : h("span", { class: "muted" }, "none")),
  );
}

function filtersHash(status, metadata) {
  const params = new URLSearchParams();
  if (status) params.set("status", status);
  if (metadata) params.set("metadata", metadata);
  const query = params.toString();
  return query ? `#/threads?${query}` : "#/threads";
}

export async function render(main, route) {
  const status = STATUSES.includes(route.params.get("status")) ? route.params.get("status") : "";
  const metadataText = route.params.get("metadata") || "";
  const tokens = []; // page tokens of the pages before the current one
  let pageToken = "";
  let nextToken = "";
  let loading = false;

  // ---- filters ----
  const statusSelect = h(
    "select",
    { id: "filter-status", name: "status" },
    h("option", { value: "", selected: status === "" }, "any"),
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)),
  );
  const metadataInput = h("input", {
    id: "filter-metadata", name: "metadata", type: "text", value: metadataText,
    placeholder: "key=value, key2=value2", autocomplete: "off", spellcheck: "false",
    "aria-describedby": "filter-metadata-help",
  });
  const metadataHelp = h("p", { id: "filter-metadata-help", class: "help" }, "key=value pairs, comma separated; values may be JSON.");
  const filterForm = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter threads" },
    h("div", { class: "field" }, h("label", { for: "filter-status" }, "Status"), statusSelect),
    h("div", { class: "field grow" }, h("label", { for: "filter-metadata" }, "Metadata"), metadataInput, metadataHelp),
    h("div", { class: "field" }, h("button", { type: "submit" }, "Apply filters")),
  );

  // ---- open by id ----
  const idInput = h("input", { id: "find-thread", name: "thread_id", type: "search", autocomplete: "off", spellcheck: "false" });
  const findResult = h("div", { class: "find-result" });
  const findForm = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Open a thread" },
    h("div", { class: "field grow" }, h("label", { for: "find-thread" }, "Thread id"), idInput),
    h("div", { class: "field" }, h("button", { type: "submit" }, "Open")),
    findResult,
  );

  // ---- table ----
  const loadingLine = statusLine("Loading…");
  const errorSlot = h("div");
  const tbody = h("tbody");
  const table = dataTable("threads", "Threads, newest first",
    ["Thread id", "Status", "Created", "Updated", "Metadata"], tbody);
  const prevButton = h("button", { type: "button", disabled: true }, "Previous page");
  const nextButton = h("button", { type: "button", disabled: true }, "Next page");
  const pageLabel = h("span", { class: "muted" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" }, prevButton, pageLabel, nextButton);

  main.append(
    h("h1", {}, "Threads"),
    startRunPanel(),
    filterForm,
    findForm,
    loadingLine,
    errorSlot,
    h("div", { class: "table-wrap" }, table),
    pager,
  );

  if (focusAfterRender) {
    document.getElementById(focusAfterRender)?.focus();
    focusAfterRender = null;
  }

  // ---- behaviour ----
  let metadata = {};
  try {
    metadata = parseMetadata(metadataText);
  } catch (e) {
    metadataInput.setAttribute("aria-invalid", "true");
    metadataHelp.textContent = `Metadata: ${e.message} Use key=value, comma separated.`;
    metadataHelp.classList.add("invalid");
    loadingLine.textContent = "";
    return undefined;
  }

  async function load(token) {
    if (loading) return;
    loading = true;
    table.setAttribute("aria-busy", "true");
    loadingLine.textContent = "Loading…";
    clear(errorSlot);
    const request = { page_size: PAGE_SIZE, page_token: token };
    if (status) request.status = `THREAD_STATUS_${status.toUpperCase()}`;
    if (Object.keys(metadata).length) request.metadata = metadata;
    try {
      const answer = await call("ThreadService/ListThreads", request);
      const threads = answer.threads || [];
      pageToken = token;
      nextToken = answer.next_page_token || "";
      clear(tbody).append(...threads.map(threadRow));
      const page = tokens.length + 1;
      const filtered = status || Object.keys(metadata).length;
      loadingLine.textContent = threads.length
        ? `${plural(threads.length, "thread")} on page ${page}.`
        : filtered ? "No threads match these filters." : "No threads yet.";
      pageLabel.textContent = `Page ${page}`;
    } catch (err) {
      loadingLine.textContent = "";
      errorSlot.append(errorBox(err, "Could not list the threads"));
    } finally {
      loading = false;
      table.removeAttribute("aria-busy");
      updatePager();
    }
  }

  function updatePager() {
    const focused = document.activeElement;
    prevButton.disabled = tokens.length === 0;
    nextButton.disabled = !nextToken;
    // A button that just got disabled loses focus; keep it in the pager.
    if ((focused === prevButton || focused === nextButton) && focused.disabled) {
      const other = focused === prevButton ? nextButton : prevButton;
      if (!other.disabled) other.focus();
      else {
        table.setAttribute("tabindex", "-1");
        table.focus();
      }
    }
  }

  nextButton.addEventListener("click", () => {
    if (loading || !nextToken) return;
    tokens.push(pageToken);
    load(nextToken);
  });
  prevButton.addEventListener("click", () => {
    if (loading || !tokens.length) return;
    load(tokens.pop());
  });

  // Filters go into the URL; the router renders the view again from it, so
  // reload and back work. Focus returns to the control the user changed.
  function applyFilters(focusId) {
    const target = filtersHash(statusSelect.value, metadataInput.value.trim());
    if (target === location.hash || (target === "#/threads" && !location.hash)) {
      load("");
      return;
    }
    focusAfterRender = focusId;
    location.hash = target;
  }
  statusSelect.addEventListener("change", () => applyFilters("filter-status"));
  filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    applyFilters(document.activeElement?.id || "filter-metadata");
  });

  findForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = idInput.value.trim();
    clear(findResult);
    if (!id) return;
    try {
      await call("ThreadService/GetThread", { thread_id: id });
      location.hash = `#/threads/${encodeURIComponent(id)}`;
    } catch (err) {
      if (err.code === "NOT_FOUND" && err.reason !== "NAMESPACE_NOT_FOUND") {
        findResult.append(h("p", { role: "alert", class: "not-found" }, `no thread ${id}`));
      } else {
        findResult.append(errorBox(err, "Could not open the thread"));
      }
    }
  });

  await load("");
  return undefined;
}
