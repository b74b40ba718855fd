// The checkpoint timeline: newest first, loaded 50 at a time with
// GetStateHistory's `before` cursor (a thread may have thousands of
// checkpoints, so the whole history is never fetched), with forks shown as
// branches: every branch keeps its own lane, its first checkpoint says where
// it forked, and the fork point says how many branches continue from it.

import { call } from "../api.js";
import { h, clear } from "../dom.js";
import { time, plural } from "../format.js";
import { cpId, parentId, step, source, writers, shortId } from "./snap.js";

export const PAGE = 50;
const MAX_LANE_CLASS = 4; // deeper branches share the last indentation

/**
 * Lanes of the loaded checkpoints (newest first). Lane 0 is the newest
 * checkpoint and its ancestors; each further lane starts at the newest
 * checkpoint not yet placed and follows its parents until it meets a placed
 * checkpoint: its fork point.
 */
export function branchLayout(snaps) {
  const byId = new Map(snaps.map((s) => [cpId(s), s]));
  const lane = new Map();
  const forkPoint = new Map(); // lane -> checkpoint id it forked from
  const children = new Map(); // checkpoint id -> number of loaded children
  let lanes = 0;
  for (const snap of snaps) {
    const parent = parentId(snap);
    if (parent) children.set(parent, (children.get(parent) || 0) + 1);
    if (lane.has(cpId(snap))) continue;
    const mine = lanes;
    lanes += 1;
    let cur = snap;
    while (cur && !lane.has(cpId(cur))) {
      lane.set(cpId(cur), mine);
      cur = byId.get(parentId(cur));
    }
    if (cur) forkPoint.set(mine, cpId(cur));
  }
  return { lane, forkPoint, children, lanes, byId };
}

export class Timeline {
  /** onSelect(checkpointId, {focus}) is called when the user picks an item. */
  constructor(threadId, { onSelect }) {
    this.threadId = threadId;
    this.onSelect = onSelect;
    this.snaps = []; // loaded snapshots, newest first
    this.hasMore = false;
    this.selected = "";
    this.list = h("ol", { "data-testid": "timeline", class: "timeline", "aria-label": "Checkpoints, newest first" });
    this.list.addEventListener("keydown", (event) => this.onKey(event));
    this.status = h("p", { class: "status-line", role: "status", "aria-live": "polite" });
    this.older = h("button", { type: "button", class: "older", onclick: () => this.loadOlder() }, "Older checkpoints");
    this.element = h(
      "section",
      { class: "timeline-pane", "aria-labelledby": "timeline-title" },
      h("h2", { id: "timeline-title" }, "Checkpoints"),
      this.list,
      this.status,
      this.older,
    );
  }

  get(id) {
    return this.snaps.find((s) => cpId(s) === id);
  }

  newest() {
    return this.snaps[0];
  }

  async page(before) {
    const answer = await call("ThreadService/GetStateHistory", { thread_id: this.threadId, limit: PAGE, before });
    return answer.states || [];
  }

  /**
   * Reloads the newest page. Older pages already loaded stay when the new
   * page reaches them (no gap between), else they are dropped.
   */
  async reload() {
    const first = await this.page("");
    const ids = new Set(first.map(cpId));
    const oldest = first.length ? cpId(first[first.length - 1]) : "";
    const rest = this.snaps.filter((s) => !ids.has(cpId(s)) && cpId(s) < oldest);
    const overlaps = this.snaps.some((s) => ids.has(cpId(s)));
    if (overlaps && rest.length) {
      this.snaps = [...first, ...rest];
    } else {
      this.snaps = first;
      this.hasMore = first.length === PAGE;
    }
    if (!this.snaps.length) this.hasMore = false;
    this.render();
  }

  async loadOlder() {
    const last = this.snaps[this.snaps.length - 1];
    if (!last) return;
    this.older.disabled = true;
    this.status.textContent = "Loading older checkpoints…";
    try {
      const more = await this.page(cpId(last));
      this.snaps = this.snaps.concat(more);
      this.hasMore = more.length === PAGE;
      this.status.textContent = `${plural(more.length, "older checkpoint")} loaded.`;
      this.render();
      // Keep the keyboard where the user was reading: the first new item.
      const first = more.length && this.buttonFor(cpId(more[0]));
      if (first) first.focus();
    } catch (err) {
      this.status.textContent = `Could not load older checkpoints: ${err.message}`;
    } finally {
      this.older.disabled = false;
    }
  }

  buttonFor(id) {
    const item = [...this.list.children].find((li) => li.dataset.checkpointId === id);
    return item ? item.querySelector("button") : null;
  }

  /** Marks `id` selected (aria-current, roving tabindex); no reload. */
  markSelected(id) {
    this.selected = id;
    for (const li of this.list.children) {
      const on = li.dataset.checkpointId === id;
      if (on) li.setAttribute("aria-current", "true");
      else li.removeAttribute("aria-current");
      const button = li.querySelector("button");
      if (button) button.tabIndex = on ? 0 : -1;
    }
    // When nothing loaded is selected, the newest item takes the tab stop.
    if (!this.get(id) && this.list.firstElementChild) {
      this.list.firstElementChild.querySelector("button").tabIndex = 0;
    }
  }

  render() {
    clear(this.list);
    const layout = branchLayout(this.snaps);
    const steps = new Map(this.snaps.map((s) => [cpId(s), step(s)]));
    const seenLane = new Set();
    this.snaps.forEach((snap, index) => {
      const id = cpId(snap);
      const lane = layout.lane.get(id) || 0;
      const tip = !seenLane.has(lane);
      seenLane.add(lane);
      this.list.append(this.item(snap, { index, lane, tip, layout, steps }));
    });
    this.older.hidden = !this.hasMore;
    if (!this.snaps.length) {
      this.list.append(h("li", { class: "empty" }, "No checkpoint yet."));
    } else if (!this.hasMore) {
      this.status.textContent = `${plural(this.snaps.length, "checkpoint")}: the whole history is shown.`;
    } else {
      this.status.textContent = `The ${this.snaps.length} newest checkpoints are shown.`;
    }
    this.markSelected(this.selected);
  }

  item(snap, { index, lane, tip, layout, steps }) {
    const id = cpId(snap);
    const parent = parentId(snap);
    const n = step(snap);
    const src = source(snap);
    const who = writers(snap);
    const markers = [];
    if (index === 0) markers.push(h("span", { class: "marker latest" }, "latest"));
    if (lane > 0 && tip) markers.push(h("span", { class: "marker branch" }, `⋔ branch ${lane + 1}`));
    const fork = layout.forkPoint.get(lane);
    if (lane > 0 && fork === parent) {
      const at = steps.get(fork);
      markers.push(h("span", { class: "marker forked" }, `↳ forked from step ${at ?? "?"} (${shortId(fork)})`));
    }
    const kids = layout.children.get(id) || 0;
    if (kids > 1) markers.push(h("span", { class: "marker fork-point" }, `⋔ fork point: ${kids} branches`));
    const li = h(
      "li",
      {
        "data-testid": "checkpoint",
        "data-checkpoint-id": id,
        "data-parent-id": parent,
        "data-step": n ?? "",
        "data-source": src,
        "data-branch": lane + 1,
        class: `checkpoint lane-${Math.min(lane, MAX_LANE_CLASS)}${kids > 1 ? " is-fork" : ""}`,
      },
      h(
        "button",
        { type: "button", class: "checkpoint-select", title: `Checkpoint ${id}`, onclick: () => this.onSelect(id, { focus: false }) },
        h("span", { class: "cp-step" }, `step ${n ?? "?"}`),
        " ",
        h("span", { class: `cp-source source-${src || "unknown"}` }, src || "?"),
        " ",
        h("span", { class: "cp-writes" }, who.length ? who.join(", ") : "—"),
        " ",
        h("time", { class: "cp-time", datetime: snap.create_time || "" }, time(snap.create_time)),
        markers.length ? h("span", { class: "cp-markers" }, " ", markers) : null,
      ),
    );
    return li;
  }

  // Arrow keys move the selection through the list; Home/End jump.
  onKey(event) {
    const buttons = [...this.list.querySelectorAll("li[data-checkpoint-id] > button")];
    const at = buttons.indexOf(document.activeElement);
    if (at < 0) return;
    let to = null;
    if (event.key === "ArrowDown") to = Math.min(at + 1, buttons.length - 1);
    else if (event.key === "ArrowUp") to = Math.max(at - 1, 0);
    else if (event.key === "Home") to = 0;
    else if (event.key === "End") to = buttons.length - 1;
    if (to === null) return;
    event.preventDefault();
    if (to === at && event.key === "ArrowDown" && this.hasMore) {
      this.older.focus();
      return;
    }
    const id = buttons[to].parentElement.dataset.checkpointId;
    buttons[to].focus();
    this.onSelect(id, { focus: true });
  }
}
