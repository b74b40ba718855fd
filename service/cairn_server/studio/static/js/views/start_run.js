// "Start a run" on the threads list: a collapsible form that starts an
// entrypoint or a graph served by the connected workers on a new (or given)
// thread, then opens that thread, whose view follows the running run.

import { h, clear, errorBox } from "../dom.js";
import { call, startRun } from "../api.js";

// The stream modes the thread view shows (as it uses for its own runs).
export const STREAM_MODES = ["STREAM_MODE_UPDATES", "STREAM_MODE_CUSTOM", "STREAM_MODE_TASKS"];
// ListWorkers pages read for the suggestions, at most.
const MAX_WORKER_PAGES = 20;

// Whether the form was open, so that re-rendering the list (a filter
// change) does not fold it away under the user.
let wasOpen = false;

/** {ok: true, value} or {ok: false, empty, error} for the text of the input. */
export function parseInput(text) {
  if (!text.trim()) {
    return { ok: false, empty: true, error: "Type the input as JSON, e.g. {\"topic\": \"cats\"}, \"text\" or null." };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, empty: false, error: `Not valid JSON: ${err.message}` };
  }
}

/** A random (version 4) UUID; crypto.randomUUID only exists in secure contexts. */
export function newThreadId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The names a run may target, from the connected workers: entrypoints, and
 * graphs. Resolves to sorted [{name, kind: "entrypoint" | "graph"}].
 */
export async function servedTargets() {
  const entrypoints = new Set();
  const graphs = new Set();
  let token = "";
  for (let page = 0; page < MAX_WORKER_PAGES; page++) {
    const answer = await call("WorkerService/ListWorkers", { page_size: 100, page_token: token });
    for (const worker of answer.workers || []) {
      for (const served of worker.names || []) {
        if (served.kind === "TASK_KIND_ENTRYPOINT") entrypoints.add(served.name);
        else if (served.kind === "TASK_KIND_GRAPH") graphs.add(served.name);
      }
    }
    token = answer.next_page_token || "";
    if (!token) break;
  }
  return [
    ...[...entrypoints].map((name) => ({ name, kind: "entrypoint" })),
    ...[...graphs].filter((name) => !entrypoints.has(name)).map((name) => ({ name, kind: "graph" })),
  ].sort((a, b) => a.name.localeCompare(b.name));
}

function countText(targets) {
  const entrypoints = targets.filter((t) => t.kind === "entrypoint").length;
  const graphs = targets.length - entrypoints;
  if (!targets.length) return "No connected worker serves an entrypoint or a graph now.";
  const parts = [];
  if (entrypoints) parts.push(`${entrypoints} ${entrypoints === 1 ? "entrypoint" : "entrypoints"}`);
  if (graphs) parts.push(`${graphs} ${graphs === 1 ? "graph" : "graphs"}`);
  return `Suggestions: the ${parts.join(" and ")} the connected workers serve.`;
}

/** The <details> holding the form (data-testid="start-run"). */
export function startRunPanel() {
  const targetList = h("datalist", { id: "start-run-targets" });
  const target = h("input", {
    id: "start-run-target", name: "target", type: "text", list: "start-run-targets",
    required: true, "aria-required": "true", autocomplete: "off", spellcheck: "false",
    "aria-describedby": "start-run-target-help",
  });
  const targetHelp = h("p", { id: "start-run-target-help", class: "help" }, "The entrypoint or graph to run.");
  const thread = h("input", {
    id: "start-run-thread", name: "thread_id", type: "text", autocomplete: "off", spellcheck: "false",
    "aria-describedby": "start-run-thread-help",
  });
  const threadHelp = h("p", { id: "start-run-thread-help", class: "help" },
    "Optional: empty starts a new thread with a generated id; an existing thread gets a new run.");
  const input = h("textarea", {
    id: "start-run-input", name: "input", rows: "4", spellcheck: "false",
    "aria-describedby": "start-run-input-check",
  });
  const check = h("p", { id: "start-run-input-check", class: "start-run-check hint", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary", disabled: true }, "Start run");
  const outcome = h("div", { class: "start-run-outcome", "aria-live": "polite" });
  let busy = false;

  const validate = () => {
    const parsed = parseInput(input.value);
    input.setAttribute("aria-invalid", parsed.ok || parsed.empty ? "false" : "true");
    check.textContent = parsed.ok ? "Valid JSON." : parsed.error;
    check.className = `start-run-check ${parsed.ok ? "valid" : parsed.empty ? "hint" : "invalid"}`;
    submit.disabled = busy || !parsed.ok || !target.value.trim();
    return parsed;
  };

  const form = h(
    "form",
    { "data-testid": "start-run", class: "start-run-form", "aria-label": "Start a run", novalidate: true },
    h("div", { class: "field" }, h("label", { for: target.id }, "Target"), target, targetList, targetHelp),
    h("div", { class: "field" }, h("label", { for: thread.id }, "Thread id"), thread, threadHelp),
    h("div", { class: "field wide" }, h("label", { for: input.id }, "Input (JSON)"), input, check),
    h("div", { class: "field wide" }, submit),
    outcome,
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const parsed = validate();
    const name = target.value.trim();
    if (busy || !parsed.ok || !name) return;
    const threadId = thread.value.trim() || newThreadId();
    busy = true;
    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    outcome.replaceChildren(h("p", { class: "muted" }, `Starting ${name} on thread ${threadId}…`));
    try {
      const run = await startRun({
        thread_id: threadId,
        target: name,
        input: parsed.value,
        create_thread: true,
        stream_modes: STREAM_MODES,
      });
      wasOpen = false;
      location.hash = `#/threads/${encodeURIComponent((run && run.thread_id) || threadId)}`;
    } catch (err) {
      outcome.replaceChildren(errorBox(err, "Could not start the run"));
    } finally {
      busy = false;
      submit.removeAttribute("aria-busy");
      validate();
    }
  });
  input.addEventListener("input", validate);
  target.addEventListener("input", validate);

  let loaded = false;
  const loadTargets = async () => {
    if (loaded) return;
    loaded = true;
    targetHelp.textContent = "The entrypoint or graph to run. Loading what the connected workers serve…";
    try {
      const targets = await servedTargets();
      clear(targetList).append(...targets.map((t) => h("option", { value: t.name, label: t.kind })));
      targetHelp.textContent = `The entrypoint or graph to run. ${countText(targets)}`;
    } catch (err) {
      loaded = false; // try again at the next opening
      targetHelp.textContent = "The entrypoint or graph to run. " +
        `The served names could not be listed (${err.code || err.message}); type one.`;
    }
  };

  const panel = h(
    "details",
    { class: "start-run", open: wasOpen },
    h("summary", {}, "Start a run"),
    form,
  );
  panel.addEventListener("toggle", () => {
    wasOpen = panel.open;
    if (panel.open) loadTargets();
  });
  if (wasOpen) loadTargets();
  validate();
  return panel;
}
