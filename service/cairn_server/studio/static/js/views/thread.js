// One thread (#/threads/<id>?checkpoint=<id>): header, checkpoint timeline,
// the selected checkpoint's state and diff, the forms that answer pending
// interrupts, time travel, runs with their live event log, and the graph
// picture. The parts live in js/thread/*.js; this module loads the data,
// keeps them in step and refreshes them while a run goes on.

import { call, startRun } from "../api.js";
import { h, clear, errorBox } from "../dom.js";
import { Header } from "../thread/header.js";
import { Timeline } from "../thread/timeline.js";
import { renderState } from "../thread/state.js";
import { renderInterrupts } from "../thread/interrupts.js";
import { travelControls } from "../thread/travel.js";
import { Runs, isActive, runsError } from "../thread/runs.js";
import { EventLog } from "../thread/events.js";
import { renderGraph } from "../thread/graph.js";
import { cpId, parentId, meta, interruptsOf } from "../thread/snap.js";

// The stream modes every run started here records, so its log shows them.
export const STREAM_MODES = ["STREAM_MODE_UPDATES", "STREAM_MODE_CUSTOM", "STREAM_MODE_TASKS"];
const LIVE_REFRESH_MS = 1000; // at most one refresh a second while a run streams

export async function render(main, route) {
  const view = new ThreadView(main, route.path[1], route.params);
  await view.start();
  return () => view.close();
}

class ThreadView {
  constructor(main, threadId, params) {
    this.main = main;
    this.threadId = threadId;
    this.params = params;
    this.closed = false;
    this.thread = null;
    this.latest = null; // GetState without checkpoint: the thread's latest state
    this.selectedId = "";
    this.selectToken = 0;
    this.snapCache = new Map(); // checkpoint id -> snapshot loaded with GetState
    this.graph = undefined; // GraphSpec, null when there is none, undefined before loading
    this.liveTimer = null;
    this.refreshing = null;
    this.timeline = new Timeline(threadId, { onSelect: (id, opts) => this.select(id, opts) });
    this.runs = new Runs(threadId, { onFollow: (run) => this.follow(run), onChange: () => this.refresh({}) });
    this.events = new EventLog({
      onRunEvent: () => this.scheduleLive(),
      onChunk: () => this.scheduleLive(),
      onEnd: () => this.refresh({ selectNewest: true }),
    });
    this.header = new Header(threadId);
    this.interrupts = h("section", { "data-testid": "interrupts", class: "interrupts-pane", "aria-labelledby": "interrupts-title", hidden: true });
    this.state = h("section", { "data-testid": "state", class: "state-pane", "aria-labelledby": "state-title" });
    this.graphBox = h("section", { class: "graph-pane", "aria-labelledby": "graph-pane-title" });
  }

  async start() {
    const { main } = this;
    main.setAttribute("data-testid", "thread");
    main.setAttribute("data-thread-id", this.threadId);
    main.append(h("p", { class: "back" }, h("a", { href: "#/threads" }, "← All threads")), this.header.element);
    try {
      this.thread = (await call("ThreadService/GetThread", { thread_id: this.threadId })).thread;
    } catch (err) {
      main.append(errorBox(err, err.code === "NOT_FOUND" ? `No thread "${this.threadId}" in this namespace` : "Could not load the thread"));
      return;
    }
    if (this.closed) return;
    main.append(
      h("div", { class: "thread-grid" },
        this.timeline.element,
        h("div", { class: "thread-detail" }, this.interrupts, this.state, this.graphBox)),
      this.runs.element,
      this.events.element,
    );
    await Promise.all([
      this.timeline.reload().catch((err) => this.timeline.element.append(errorBox(err, "Could not load the checkpoints"))),
      this.loadLatest(),
      this.runs.load().catch((err) => this.runs.element.append(runsError(err))),
    ]);
    if (this.closed) return;
    this.renderHead();
    this.renderInterrupts();
    const wanted = this.params.get("checkpoint");
    const newest = this.timeline.newest();
    await this.select(wanted || (newest ? cpId(newest) : ""), { initial: true });
    this.loadGraph();
    // A run still going on is followed at once.
    const active = this.runs.page === 0 && this.runs.runs.find(isActive);
    if (active) this.follow(active);
  }

  close() {
    this.closed = true;
    clearTimeout(this.liveTimer);
    this.events.close();
  }

  async loadLatest() {
    try {
      this.latest = (await call("ThreadService/GetState", { thread_id: this.threadId })).state || null;
    } catch (err) {
      this.latest = null;
      console.error("GetState failed", err);
    }
  }

  /** The target of the thread: its newest run's, else the newest checkpoint's metadata. */
  target() {
    const run = this.runs.page === 0 && this.runs.runs[0];
    if (run && run.target) return run.target;
    const newest = this.timeline.newest() || this.latest;
    return (newest && meta(newest).target) || "";
  }

  renderHead() {
    this.header.update(this.thread, this.target());
  }

  renderInterrupts() {
    const pending = interruptsOf(this.latest);
    // Redraw only when the pending interrupts changed, so that a refresh
    // while someone types an answer keeps what they typed.
    const key = pending.map((it) => it.id).join(",");
    if (key === this.interruptsKey) return;
    this.interruptsKey = key;
    clear(this.interrupts);
    // No Cairn run on a thread with checkpoints: most likely a LangGraph
    // thread, which the service refuses to resume (LANGGRAPH_THREAD).
    const noRun = this.runs.page === 0 && this.runs.runs.length === 0;
    const why = noRun
      ? "This thread has no Cairn run: if LangGraph wrote it through CairnSaver, its own application resumes it and a resume from here is refused."
      : "";
    renderInterrupts(this.interrupts, pending, { onResume: (command) => this.startAndFollow({ command }), why });
  }

  /** Selects a checkpoint: URL, timeline mark, state panel, graph marks. */
  async select(id, { initial = false } = {}) {
    const token = ++this.selectToken;
    this.selectedId = id;
    this.timeline.markSelected(id);
    if (!initial || this.params.get("checkpoint")) this.writeUrl(id);
    let snap = id ? this.timeline.get(id) || this.snapCache.get(id) : this.latest;
    if (!snap && id) {
      clear(this.state).append(h("h2", { id: "state-title" }, "Checkpoint"), h("p", { class: "muted" }, "Loading…"));
      try {
        snap = await this.snapshot(id);
      } catch (err) {
        if (token !== this.selectToken || this.closed) return;
        clear(this.state).append(h("h2", { id: "state-title" }, "Checkpoint"), errorBox(err, `Could not load checkpoint ${id}`));
        return;
      }
    }
    if (token !== this.selectToken || this.closed) return;
    clear(this.state);
    if (!snap) {
      this.state.append(h("h2", { id: "state-title" }, "State"), h("p", { class: "muted" }, "The thread has no checkpoint yet."));
      this.drawGraph([]);
      return;
    }
    const pid = parentId(snap);
    const parent = pid ? this.timeline.get(pid) || this.snapCache.get(pid) || this.snapshot(pid) : null;
    const note = id && !this.timeline.get(id) ? "This checkpoint is older than the checkpoints loaded in the timeline." : "";
    const actions = cpId(snap)
      ? travelControls(this.threadId, snap, {
          startRun: (request) => this.startAndFollow(request),
          afterUpdate: () => this.refresh({ selectNewest: true }),
        })
      : null;
    this.shownKey = JSON.stringify(snap);
    renderState(this.state, snap, { parent, actions, note });
    this.drawGraph(snap.next || []);
  }

  async snapshot(id) {
    if (this.snapCache.has(id)) return this.snapCache.get(id);
    const snap = (await call("ThreadService/GetState", { thread_id: this.threadId, checkpoint_id: id })).state;
    this.snapCache.set(id, snap);
    return snap;
  }

  // The selection lives in the URL; replaceState does not fire hashchange,
  // so the router does not render the view again for it.
  writeUrl(id) {
    const params = new URLSearchParams(this.params);
    if (id) params.set("checkpoint", id);
    else params.delete("checkpoint");
    const query = params.toString();
    const hash = `#/threads/${encodeURIComponent(this.threadId)}${query ? `?${query}` : ""}`;
    if (location.hash !== hash) history.replaceState(history.state, "", hash);
  }

  async loadGraph() {
    const target = this.target();
    clear(this.graphBox).append(h("h2", { id: "graph-pane-title" }, "Graph"));
    if (!target) {
      this.graph = null;
      this.graphBox.append(h("p", { class: "muted", "data-testid": "no-graph" },
        "No graph picture: this thread has no Cairn run to name its target (a LangGraph thread written through CairnSaver is run by its own application)."));
      return;
    }
    try {
      this.graph = (await call("GraphService/GetGraph", { name: target })).graph;
    } catch (err) {
      this.graph = null;
      if (this.closed) return;
      this.graphBox.append(err.code === "NOT_FOUND"
        ? h("p", { class: "muted", "data-testid": "no-graph" },
          `No graph picture: "${target}" is not a graph the service knows (an entrypoint, or a LangGraph graph run by its own application).`)
        : errorBox(err, "Could not load the graph"));
      return;
    }
    if (this.closed) return;
    const snap = this.timeline.get(this.selectedId) || this.snapCache.get(this.selectedId) || this.latest;
    this.drawGraph((snap && snap.next) || []);
  }

  drawGraph(next) {
    if (!this.graph) return;
    const old = this.graphBox.querySelector(".graph-body");
    const body = h("div", { class: "graph-body" });
    try {
      renderGraph(body, this.graph, next);
    } catch (err) {
      body.append(errorBox(err, "Could not draw the graph"));
    }
    if (old) old.replaceWith(body);
    else this.graphBox.append(body);
  }

  /** Starts a run on this thread with the page's stream modes and follows it. */
  async startAndFollow(request) {
    const run = await startRun({ thread_id: this.threadId, ...request, stream_modes: STREAM_MODES });
    if (this.closed) return run;
    this.follow(run);
    this.refresh({});
    return run;
  }

  follow(run) {
    this.events.follow(run);
    this.runs.markFollowed(run.run_id);
  }

  // While a run streams, the timeline, runs and header follow it (throttled).
  scheduleLive() {
    if (this.liveTimer || this.closed) return;
    this.liveTimer = setTimeout(() => {
      this.liveTimer = null;
      this.refresh({ live: true });
    }, LIVE_REFRESH_MS);
  }

  /**
   * Reloads the thread, the newest checkpoints, the latest state and the
   * runs. selectNewest moves the selection to the newest checkpoint (after a
   * run ended, so the page shows the final state); a selection that was on
   * the newest checkpoint follows it anyway.
   */
  async refresh({ selectNewest = false }) {
    if (this.refreshing) {
      // One refresh at a time; a request meanwhile runs once after it.
      this.again = { selectNewest: selectNewest || (this.again && this.again.selectNewest) };
      return this.refreshing;
    }
    const wasNewest = this.timeline.newest() && cpId(this.timeline.newest()) === this.selectedId;
    this.refreshing = (async () => {
      const results = await Promise.allSettled([
        call("ThreadService/GetThread", { thread_id: this.threadId }),
        this.timeline.reload(),
        this.loadLatest(),
        this.runs.load({ reset: this.runs.page === 0 }),
      ]);
      if (this.closed) return;
      if (results[0].status === "fulfilled") this.thread = results[0].value.thread;
      this.renderHead();
      this.renderInterrupts();
      const newest = this.timeline.newest();
      const shown = this.timeline.get(this.selectedId);
      if (newest && (selectNewest || wasNewest || !this.selectedId)) {
        if (cpId(newest) !== this.selectedId || selectNewest) await this.select(cpId(newest));
        else if (JSON.stringify(newest) !== this.shownKey) await this.select(cpId(newest));
      } else if (shown && JSON.stringify(shown) !== this.shownKey) {
        // The selected checkpoint changed in place (an entrypoint's tasks
        // are recorded on its checkpoint as they finish).
        await this.select(this.selectedId);
      }
      if (this.graph === null && selectNewest) this.loadGraph();
    })();
    try {
      await this.refreshing;
    } finally {
      this.refreshing = null;
    }
    if (this.again && !this.closed) {
      const again = this.again;
      this.again = null;
      await this.refresh(again);
    }
  }
}
