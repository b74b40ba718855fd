// The thread's runs, newest first, 20 a page: state, target, durability,
// times, and for a failed run its error and the task that raised it; "Follow"
// shows a run's event log, "Cancel run" stops an active one.

import { call } from "../api.js";
import { h, clear, errorBox } from "../dom.js";
import { time, duration, enumName } from "../format.js";

export const RUNS_PAGE = 20;
const ACTIVE = new Set(["running", "pending"]);
const ENDED = new Set(["succeeded", "failed", "cancelled", "interrupted"]);

export function runState(run) {
  return enumName(run.state, "RUN_STATE") || "pending";
}

export function isActive(run) {
  return ACTIVE.has(runState(run));
}

const WAIT_TEXT = {
  no_worker: (w) => `no connected worker serves "${w.task_name}"`,
  worker_busy: (w) => `every worker serving "${w.task_name}" is busy`,
  retry_backoff: (w) => `"${w.task_name}" waits to retry${w.until_time ? ` until ${time(w.until_time)}` : ""}`,
  timer: (w) => `"${w.task_name}" sleeps until ${time(w.until_time)}`,
};

/** "waits: no connected worker serves "fetch" (since …)" for each entry of run.waiting. */
export function waitingText(waiting) {
  return (waiting || []).map((w) => {
    const reason = enumName(w.reason, "WAIT_REASON");
    const text = WAIT_TEXT[reason] ? WAIT_TEXT[reason](w) : `${reason || "waiting"} on "${w.task_name}"`;
    return `${text}${w.since_time ? ` (since ${time(w.since_time)})` : ""}`;
  });
}

/**
 * Which task raised a failed run's error: the TaskError names none, so it is
 * looked up in the run's newest checkpoint (GetStateHistory filtered on the
 * run id): a failed task other than the entrypoint itself when there is one
 * (the entrypoint re-raises what its task raised), else the entrypoint.
 * `newest`: the run is the thread's newest one.
 */
async function raisingTask(run, newest) {
  const details = (run.error && run.error.details) || {};
  if (details.task_name) return details.task_name;
  const answer = await call("ThreadService/GetStateHistory", {
    thread_id: run.thread_id,
    limit: 1,
    filter: { run_id: run.run_id },
  });
  let snap = (answer.states || [])[0];
  // A resumed run continues on the checkpoint of the run it resumed, which
  // carries that run's id: for the thread's newest run, its latest state.
  if (!snap && newest) snap = (await call("ThreadService/GetState", { thread_id: run.thread_id })).state;
  const failed = ((snap && snap.tasks) || []).filter((t) => t.error && (t.error.type || t.error.message));
  const inner = failed.find((t) => t.name !== run.target) || failed[0];
  return inner ? inner.name : "";
}

export class Runs {
  /** onFollow(run) shows a run's events; onChange() after a cancel. */
  constructor(threadId, { onFollow, onChange }) {
    this.threadId = threadId;
    this.onFollow = onFollow;
    this.onChange = onChange;
    this.tokens = [""]; // page tokens of the pages seen, for "Newer runs"
    this.nextToken = "";
    this.runs = [];
    this.followed = "";
    this.body = h("tbody", {});
    this.status = h("p", { class: "status-line", role: "status", "aria-live": "polite" });
    this.newer = h("button", { type: "button", onclick: () => this.go(-1) }, "Newer runs");
    this.olderBtn = h("button", { type: "button", onclick: () => this.go(1) }, "Older runs");
    this.outcome = h("div", { class: "outcome", "aria-live": "polite" });
    const cols = ["Run", "State", "Target", "Durability", "Created", "Updated", "Duration", "Error or wait", "Actions"];
    this.element = h(
      "section",
      { class: "runs-pane", "aria-labelledby": "runs-title" },
      h("h2", { id: "runs-title" }, "Runs"),
      h("div", { class: "table-wrap" },
        h("table", { "data-testid": "runs", class: "data runs" },
          h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, c)))),
          this.body)),
      this.status,
      h("div", { class: "buttons pager" }, this.newer, this.olderBtn),
      this.outcome,
    );
  }

  get page() {
    return this.tokens.length - 1;
  }

  async go(delta) {
    if (delta > 0 && this.nextToken) this.tokens.push(this.nextToken);
    if (delta < 0 && this.tokens.length > 1) this.tokens.pop();
    await this.load();
  }

  /** Loads the current page (the first one after `reset`). */
  async load({ reset = false } = {}) {
    if (reset) this.tokens = [""];
    const token = this.tokens[this.tokens.length - 1];
    const answer = await call("RunService/ListRuns", { thread_id: this.threadId, page_size: RUNS_PAGE, page_token: token });
    this.runs = answer.runs || [];
    this.nextToken = answer.next_page_token || "";
    this.render();
    return this.runs;
  }

  markFollowed(runId) {
    this.followed = runId;
    for (const tr of this.body.children) {
      const on = tr.dataset.runId === runId;
      tr.classList.toggle("followed", on);
      const follow = tr.querySelector("button.follow");
      if (follow) follow.setAttribute("aria-pressed", String(on));
    }
  }

  render() {
    clear(this.body);
    for (const run of this.runs) this.body.append(this.row(run));
    if (!this.runs.length) {
      this.body.append(h("tr", {}, h("td", { colspan: "9", class: "muted" }, "No run on this thread (a LangGraph thread is run by its own application).")));
    }
    this.newer.disabled = this.page === 0;
    this.olderBtn.disabled = !this.nextToken;
    this.status.textContent = `Runs page ${this.page + 1}: ${this.runs.length} shown.`;
    this.markFollowed(this.followed);
  }

  row(run) {
    const state = runState(run);
    const active = ACTIVE.has(state);
    const errorCell = h("td", { class: "run-error" });
    if (state === "failed" && run.error) {
      const raisedBy = h("span", { class: "raised-by" });
      errorCell.append(
        h("strong", {}, run.error.type || "Error"),
        run.error.message ? `: ${run.error.message}` : "",
        run.error.retryable ? " (retryable)" : "",
        raisedBy,
      );
      if (run.error.traceback) {
        errorCell.append(h("details", {}, h("summary", {}, "Traceback"), h("pre", { class: "traceback" }, run.error.traceback)));
      }
      raisingTask(run, this.page === 0 && run === this.runs[0]).then(
        (name) => { if (name) raisedBy.textContent = ` — raised by task ${name}`; },
        () => {},
      );
    } else if (run.waiting && run.waiting.length) {
      errorCell.append(h("ul", { class: "waiting" }, waitingText(run.waiting).map((t) => h("li", {}, `waits: ${t}`))));
    } else if (state === "interrupted") {
      errorCell.append(`${(run.interrupts || []).length} pending interrupt(s)`);
    }
    const actions = h("td", { class: "run-actions" },
      h("button", { type: "button", class: "follow", "aria-pressed": "false", onclick: () => this.onFollow(run) }, "Follow"));
    if (active) {
      actions.append(" ", h("button", { type: "button", class: "cancel", onclick: (e) => this.cancel(run, e.currentTarget) }, "Cancel run"));
    }
    return h(
      "tr",
      { "data-testid": "run-row", "data-run-id": run.run_id, "data-state": state },
      h("td", {}, h("code", { title: run.run_id }, run.run_id)),
      h("td", {}, h("span", { class: `badge run-badge run-${state}` }, state)),
      h("td", {}, run.target || "—"),
      h("td", {}, enumName(run.durability, "DURABILITY") || "—"),
      h("td", {}, time(run.create_time)),
      h("td", {}, time(run.update_time)),
      h("td", {}, ENDED.has(state) ? duration(run.create_time, run.update_time) : `${duration(run.create_time)} so far`),
      errorCell,
      actions,
    );
  }

  async cancel(run, button) {
    button.disabled = true;
    this.outcome.replaceChildren(h("p", { class: "muted" }, `Cancelling run ${run.run_id}…`));
    try {
      await call("RunService/CancelRun", { run_id: run.run_id });
      this.outcome.replaceChildren(h("p", {}, `Run ${run.run_id} cancelled.`));
    } catch (err) {
      // CANCEL_PENDING: the cancellation stands and takes effect shortly.
      const title = err.reason === "CANCEL_PENDING" ? "Cancellation pending" : "Could not cancel the run";
      this.outcome.replaceChildren(errorBox(err, title));
      button.disabled = false;
    }
    this.onChange();
  }
}

/** The errorBox for a failed load of the runs. */
export function runsError(err) {
  return errorBox(err, "Could not load the runs");
}
