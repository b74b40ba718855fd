// The followed run's event log, live: stream chunks (updates, custom, tasks,
// ...) as compact JSON with their mode and namespace, and run lifecycle
// events (state changes, waiting reasons). Newest at the bottom. api.js's
// followRun reads the log from event 0 and reconnects from the last event id
// when the connection drops.

import { followRun } from "../api.js";
import { h, clear, errorBox } from "../dom.js";
import { time, compact, enumName } from "../format.js";
import { runState, waitingText } from "./runs.js";

// Past this many events the oldest ones leave the page (the log itself stays
// on the server; following the run again starts from event 0).
const MAX_EVENTS = 2000;

/** The text of a run lifecycle event. */
export function lifecycleText(run) {
  const state = runState(run);
  const parts = [`run ${state}`];
  const waits = waitingText(run.waiting);
  if (waits.length) parts.push(...waits.map((w) => `waits: ${w}`));
  else if (state === "running") parts.push("(no wait)");
  if (state === "failed" && run.error) parts.push(`${run.error.type || "Error"}: ${run.error.message || ""}`);
  if (state === "interrupted") parts.push(`${(run.interrupts || []).length} interrupt(s) pending`);
  return parts.join(" — ");
}

export class EventLog {
  /**
   * onRunEvent(run) for each lifecycle event, onChunk() for each chunk,
   * onEnd(runId) when the followed run's log ends.
   */
  constructor({ onRunEvent, onChunk, onEnd }) {
    this.onRunEvent = onRunEvent;
    this.onChunk = onChunk;
    this.onEnd = onEnd;
    this.handle = null;
    this.runId = "";
    this.count = 0;
    this.list = h("ol", { "data-testid": "events", class: "events" });
    // role=log sits on a wrapper: on the <ol> itself it would hide the list
    // semantics of its items.
    this.log = h("div", { class: "event-log", role: "log", "aria-live": "polite", "aria-label": "Run events", tabindex: "0" }, this.list);
    this.state = h("p", { class: "run-state", role: "status", "aria-live": "polite", "data-testid": "followed-run" }, "No run followed. Choose “Follow” on a run.");
    this.errors = h("div", {});
    this.element = h(
      "section",
      { class: "events-pane", "aria-labelledby": "events-title" },
      h("h2", { id: "events-title" }, "Run events"),
      this.state,
      this.log,
      this.errors,
    );
  }

  /** Follows `run` from its first event, replacing the previous one. */
  follow(run) {
    this.close();
    this.runId = run.run_id;
    this.count = 0;
    clear(this.list);
    clear(this.errors);
    this.state.textContent = `Following run ${run.run_id}: ${runState(run)}.`;
    const runId = run.run_id;
    this.handle = followRun(runId, {
      after: 0,
      onEvent: (event) => this.add(event),
      onEnd: () => {
        if (this.runId !== runId) return;
        this.state.textContent = `${this.state.textContent} The log ended.`;
        this.handle = null;
        this.onEnd(runId);
      },
      onError: (err) => {
        if (this.runId !== runId) return;
        this.errors.replaceChildren(errorBox(err, "The event log stopped"));
        this.handle = null;
      },
    });
  }

  add(event) {
    // Stay at the bottom when the reader was there; leave them where they
    // scrolled to otherwise.
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 24;
    this.list.append(this.item(event));
    this.count += 1;
    if (this.list.children.length > MAX_EVENTS) this.list.firstElementChild.remove();
    if (atBottom) this.log.scrollTop = this.log.scrollHeight;
    if (event.run) {
      this.state.textContent = `Following run ${this.runId}: ${lifecycleText(event.run)}.`;
      this.onRunEvent(event.run);
    } else if (event.chunk) {
      this.onChunk();
    }
  }

  item(event) {
    const id = String(event.event_id ?? "");
    const when = h("time", { datetime: event.create_time || "", class: "ev-time" }, time(event.create_time));
    if (event.run) {
      const state = runState(event.run);
      return h(
        "li",
        { "data-testid": "event", "data-event-id": id, "data-kind": "run", "data-state": state, class: "event ev-run" },
        h("span", { class: "ev-id" }, `#${id}`), " ", when, " ",
        h("span", { class: "ev-kind" }, "run"), " ",
        h("span", { class: "ev-text" }, lifecycleText(event.run)),
      );
    }
    const chunk = event.chunk || {};
    const mode = enumName(chunk.mode, "STREAM_MODE") || "chunk";
    const ns = chunk.namespace && chunk.namespace.length ? chunk.namespace.join(" / ") : "";
    return h(
      "li",
      { "data-testid": "event", "data-event-id": id, "data-kind": mode, class: `event ev-${mode}` },
      h("span", { class: "ev-id" }, `#${id}`), " ", when, " ",
      h("span", { class: "ev-kind" }, mode), " ",
      ns ? h("span", { class: "ev-ns", title: "namespace" }, `[${ns}] `) : null,
      h("code", { class: "ev-data" }, compact(chunk.data ?? null, 400)),
    );
  }

  close() {
    if (this.handle) this.handle.close();
    this.handle = null;
    this.runId = "";
  }
}
