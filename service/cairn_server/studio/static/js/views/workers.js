// Workers view (#/workers): the workers connected to the answering replica
// and what they serve, then the runs of the namespace that wait (no worker,
// busy workers, retry backoff) and why.

import { h, clear, dataTable, errorBox } from "../dom.js";
import { call } from "../api.js";
import { time, ago, enumName, plural } from "../format.js";

const MAX_PAGES = 20; // a bound on the pages read, should the server loop

// Reads every page of a List call; `key` is the repeated field of the answer.
async function readAll(method, request, key) {
  const items = [];
  let token = "";
  for (let page = 0; page < MAX_PAGES; page++) {
    const answer = await call(method, { ...request, page_token: token });
    items.push(...(answer[key] || []));
    token = answer.next_page_token || "";
    if (!token) return { items, complete: true };
  }
  return { items, complete: false };
}

function servedNames(worker) {
  const names = worker.names || [];
  if (!names.length) return h("span", { class: "muted" }, "nothing");
  return h(
    "ul",
    { class: "plain names" },
    names.map((n) => h("li", {}, h("code", {}, n.name), " ",
      h("span", { class: "kind" }, enumName(n.kind, "TASK_KIND") || "unknown"))),
  );
}

function slots(free, max) {
  return `${free ?? 0}/${max ?? 0}`;
}

function workerRow(w) {
  const sdk = [w.sdk_language, w.sdk_version].filter(Boolean).join(" ") || "—";
  return h(
    "tr",
    { "data-testid": "worker-row", "data-worker-id": w.worker_id },
    h("th", { scope: "row" }, h("code", {}, w.worker_id)),
    h("td", {}, sdk),
    h("td", {}, w.identity || "—"),
    h("td", {}, w.replica_id ? h("code", {}, w.replica_id) : "—"),
    h("td", {}, servedNames(w)),
    h("td", { class: "num" }, slots(w.free_task_slots, w.max_concurrent_tasks)),
    h("td", { class: "num" }, slots(w.free_entrypoint_slots, w.max_concurrent_entrypoints)),
  );
}

/** The reason a run waits, in words. */
export function waitText(wait) {
  const name = wait.task_name || "?";
  switch (wait.reason) {
    case "WAIT_REASON_NO_WORKER":
      return `no worker serves ${name}`;
    case "WAIT_REASON_WORKER_BUSY":
      return `workers of ${name} are busy`;
    case "WAIT_REASON_RETRY_BACKOFF":
      return `${name}: retry at ${time(wait.until_time)}`;
    case "WAIT_REASON_TIMER":
      return `${name}: sleeps until ${time(wait.until_time)}`;
    default:
      return `${name}: ${enumName(wait.reason, "WAIT_REASON") || "waiting"}`;
  }
}

function waitingRow(run) {
  const waits = run.waiting || [];
  return h(
    "tr",
    { "data-testid": "waiting-run", "data-run-id": run.run_id },
    h("th", { scope: "row" }, h("code", {}, run.run_id)),
    h("td", {}, h("a", { href: `#/threads/${encodeURIComponent(run.thread_id)}` }, run.thread_id)),
    h("td", {}, h("code", {}, run.target)),
    h("td", {}, h("ul", { class: "plain" },
      waits.map((w) => h("li", { "data-reason": enumName(w.reason, "WAIT_REASON") }, waitText(w))))),
    h("td", {}, h("ul", { class: "plain" },
      waits.map((w) => h("li", {}, h("time", { datetime: w.since_time || "" }, time(w.since_time)),
        h("span", { class: "muted small" }, ` (${ago(w.since_time)})`))))),
  );
}

function table(testid, caption, columns, tbody) {
  return h("div", { class: "table-wrap" }, dataTable(testid, caption, columns, tbody));
}

export async function render(main) {
  const refreshButton = h("button", { type: "button" }, "Refresh");
  const workersStatus = h("p", { class: "status-line", role: "status", "aria-live": "polite" }, "Loading…");
  const workersError = h("div");
  const workersBody = h("tbody");
  const runsStatus = h("p", { class: "status-line", role: "status", "aria-live": "polite" }, "Loading…");
  const runsError = h("div");
  const runsBody = h("tbody");
  const workersTable = table("workers", "Connected workers",
    ["Worker", "SDK", "Identity", "Replica", "Serves", "Task slots (free/max)", "Entrypoint slots (free/max)"], workersBody);
  const runsTable = table("waiting-runs", "Runs waiting",
    ["Run", "Thread", "Target", "Waits because", "Since"], runsBody);

  main.append(
    h("div", { class: "title-row" }, h("h1", {}, "Workers"), refreshButton),
    h("section", { "aria-labelledby": "workers-title" },
      h("h2", { id: "workers-title" }, "Connected workers"),
      h("p", { class: "intro" }, "Workers connected to the replica the Studio talks to."),
      workersStatus, workersError, workersTable),
    h("section", { "aria-labelledby": "waiting-title" },
      h("h2", { id: "waiting-title" }, "Runs waiting"),
      h("p", { class: "intro" }, "Runs of this namespace that cannot go on, and why."),
      runsStatus, runsError, runsTable),
  );

  async function loadWorkers() {
    workersStatus.textContent = "Loading…";
    clear(workersError);
    try {
      const { items, complete } = await readAll("WorkerService/ListWorkers", { page_size: 1000 }, "workers");
      clear(workersBody).append(...items.map(workerRow));
      workersTable.hidden = items.length === 0;
      workersStatus.textContent = items.length
        ? `${plural(items.length, "worker")} connected${complete ? "" : " (list cut short)"}.`
        : "No worker is connected.";
    } catch (err) {
      workersStatus.textContent = "";
      workersError.append(errorBox(err, "Could not list the workers"));
    }
  }

  async function loadRuns() {
    runsStatus.textContent = "Loading…";
    clear(runsError);
    try {
      const { items, complete } = await readAll("RunService/ListRuns", { waiting: true, page_size: 200 }, "runs");
      // Also filter here, in case the server does not know `waiting` yet.
      const runs = items.filter((r) => (r.waiting || []).length);
      clear(runsBody).append(...runs.map(waitingRow));
      runsTable.hidden = runs.length === 0;
      runsStatus.textContent = runs.length
        ? `${plural(runs.length, "run")} ${runs.length === 1 ? "waits" : "wait"}${complete ? "" : " (list cut short)"}.`
        : "No run waits.";
    } catch (err) {
      runsStatus.textContent = "";
      runsTable.hidden = true;
      runsError.append(errorBox(err, "Could not list the waiting runs"));
    }
  }

  let refreshing = false;
  refreshButton.addEventListener("click", async () => {
    if (refreshing) return;
    refreshing = true;
    refreshButton.setAttribute("aria-busy", "true");
    await Promise.all([loadWorkers(), loadRuns()]);
    refreshButton.removeAttribute("aria-busy");
    refreshing = false;
  });

  await Promise.all([loadWorkers(), loadRuns()]);
  return undefined;
}
