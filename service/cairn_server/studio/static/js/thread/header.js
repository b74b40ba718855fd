// The thread's header: id, status, target of its latest run, times and
// metadata. Built once and updated in place, so that a refresh while a run
// goes on neither moves the focus off the heading nor repeats the status to
// screen readers when it did not change.

import { h, clear } from "../dom.js";
import { time, enumName, compact } from "../format.js";

export class Header {
  constructor(threadId) {
    this.badge = h("span", { class: "badge", "data-testid": "thread-status" });
    this.live = h("p", { class: "visually-hidden", role: "status", "aria-live": "polite" });
    this.target = h("dd", { "data-testid": "thread-target" });
    this.created = h("dd", {});
    this.updated = h("dd", {});
    this.metadata = h("dd", { "data-testid": "thread-metadata" });
    this.status = "";
    this.element = h(
      "header",
      { class: "thread-head" },
      h("h1", {}, "Thread ", h("code", {}, threadId), " ", this.badge),
      this.live,
      h("dl", { class: "facts thread-facts" },
        h("dt", {}, "Target"), this.target,
        h("dt", {}, "Created"), this.created,
        h("dt", {}, "Updated"), this.updated,
        h("dt", {}, "Metadata"), this.metadata),
    );
  }

  /** Shows `thread` (a Thread) and `target` (its latest run's target). */
  update(thread, target) {
    const status = enumName(thread.status, "THREAD_STATUS") || "idle";
    if (status !== this.status) {
      this.badge.className = `badge badge-${status}`;
      this.badge.setAttribute("data-status", status);
      this.badge.textContent = status;
      // Only a change is announced (the first render is read with the page).
      if (this.status) this.live.textContent = `Thread status: ${status}`;
      this.status = status;
    }
    this.target.textContent = target || "— (no Cairn run)";
    this.created.textContent = time(thread.create_time);
    this.updated.textContent = time(thread.update_time);
    const metadata = thread.metadata || {};
    const keys = Object.keys(metadata);
    clear(this.metadata).append(keys.length
      ? h("ul", { class: "metadata" }, keys.map((k) => h("li", {}, h("code", {}, `${k}=${compact(metadata[k], 80)}`))))
      : "none");
  }
}
