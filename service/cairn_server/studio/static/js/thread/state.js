// The selected checkpoint: its values, the diff from its parent, what runs
// next, its tasks and its pending interrupts (read-only here; answering them
// is interrupts.js, for the latest checkpoint).

import { h } from "../dom.js";
import { time, json, compact } from "../format.js";
import { renderDiff } from "./diff.js";
import { cpId, parentId, step, source, meta, writers, interruptsOf, shortId } from "./snap.js";

function fact(term, ...value) {
  return [h("dt", {}, term), h("dd", {}, ...value)];
}

function taskStatus(task) {
  if (task.error && (task.error.type || task.error.message)) return "failed";
  if (task.interrupts && task.interrupts.length) return "interrupted";
  if (task.result !== undefined && task.result !== null) return "done";
  return "pending";
}

function errorText(error) {
  return [error.type, error.message].filter(Boolean).join(": ") || "error";
}

function renderTasks(tasks) {
  if (!tasks.length) return h("p", { "data-testid": "tasks", class: "muted" }, "No tasks at this checkpoint.");
  return h(
    "ul",
    { "data-testid": "tasks", class: "tasks" },
    tasks.map((task) => {
      const status = taskStatus(task);
      return h(
        "li",
        { "data-testid": "task", "data-task-id": task.id, "data-task-status": status, class: `task task-${status}` },
        h("strong", {}, task.name || "?"),
        " ",
        h("span", { class: `badge task-status-${status}` }, status),
        " ",
        h("code", { class: "task-id", title: task.id }, shortId(task.id)),
        task.path && task.path.length ? h("span", { class: "task-path" }, " in ", task.path.join(" / ")) : null,
        status === "done" ? h("div", { class: "task-result" }, "Result: ", h("code", {}, compact(task.result, 300))) : null,
        status === "failed"
          ? h(
              "div",
              { class: "task-error" },
              "Error: ",
              h("span", {}, errorText(task.error)),
              task.error.retryable ? " (retryable)" : null,
              task.error.traceback
                ? h("details", {}, h("summary", {}, "Traceback"), h("pre", { class: "traceback" }, task.error.traceback))
                : null,
            )
          : null,
        status === "interrupted"
          ? h("div", { class: "task-interrupts" }, `Waiting on ${task.interrupts.length} interrupt(s).`)
          : null,
      );
    }),
  );
}

function renderPending(interrupts) {
  if (!interrupts.length) return h("p", { "data-testid": "snapshot-interrupts", class: "muted" }, "No pending interrupt.");
  return h(
    "ul",
    { "data-testid": "snapshot-interrupts", class: "snapshot-interrupts" },
    interrupts.map((it) =>
      h(
        "li",
        { "data-interrupt-id": it.id },
        h("span", {}, `From ${it.task_name || "?"}: `),
        h("code", {}, compact(it.value, 300)),
      ),
    ),
  );
}

/**
 * Fills `section` with the snapshot. `parent` is the parent's snapshot,
 * null when the checkpoint has none, or a Promise while it loads.
 * `actions` (time travel buttons) go under the heading.
 */
export function renderState(section, snap, { parent, actions, note }) {
  const id = cpId(snap);
  const n = step(snap);
  const next = snap.next || [];
  const m = meta(snap);
  const diffBox = h("div", { "data-testid": "state-diff", class: "state-diff" });
  // Element.append would print null as text: drop the parts left out.
  const parts = [
    h("h2", { id: "state-title" }, id ? `Checkpoint: step ${n ?? "?"} (${source(snap) || "?"})` : "State"),
    note ? h("p", { class: "note" }, note) : null,
    id
      ? h(
          "dl",
          { class: "facts" },
          fact("Checkpoint", h("code", {}, id)),
          fact("Parent", parentId(snap) ? h("code", {}, parentId(snap)) : "none (first checkpoint)"),
          fact("Written by", writers(snap).join(", ") || "—"),
          fact("Created", time(snap.create_time)),
          m.run_id ? fact("Run", h("code", {}, m.run_id)) : null,
          snap.config && snap.config.checkpoint_ns ? fact("Namespace", snap.config.checkpoint_ns) : null,
        )
      : h("p", { class: "muted" }, "The thread has no checkpoint yet."),
    actions || null,
    h("h3", {}, "Next"),
    next.length
      ? h("ul", { "data-testid": "next-nodes", class: "next-nodes" }, next.map((name) => h("li", {}, h("code", {}, name))))
      : h("p", { "data-testid": "next-nodes", class: "muted" }, "Nothing runs next: this checkpoint is final."),
    h("h3", {}, "Changes from the parent"),
    diffBox,
    h("h3", {}, "Values"),
    h("pre", { "data-testid": "state-values", class: "json", tabindex: "0", "aria-label": "State values (JSON)" }, json(snap.values ?? null)),
    h("h3", {}, "Tasks"),
    renderTasks(snap.tasks || []),
    h("h3", {}, "Pending interrupts"),
    renderPending(interruptsOf(snap)),
    h("details", { class: "raw-metadata" }, h("summary", {}, "Checkpoint metadata (JSON)"), h("pre", { class: "json" }, json(m))),
  ];
  section.append(...parts.filter(Boolean));
  fillDiff(diffBox, snap, parent);
}

async function fillDiff(box, snap, parent) {
  if (parent && typeof parent.then === "function") {
    box.append(h("p", { class: "muted" }, "Loading the parent checkpoint…"));
    try {
      parent = await parent;
    } catch (err) {
      box.replaceChildren(h("p", { class: "error-text" }, `Could not load the parent checkpoint: ${err.message}`));
      return;
    }
    box.replaceChildren();
  }
  renderDiff(box, parent ? parent.values : undefined, snap.values ?? null, { hasParent: Boolean(parent) });
}
