// Inbox view (#/inbox): every thread of the namespace that waits on an
// interrupt, with each pending interrupt's value and a link to answer it.

import { h, clear, dataTable, errorBox, statusLine } from "../dom.js";
import { call } from "../api.js";
import { time, ago, compact, plural } from "../format.js";

const PAGE_SIZE = 25;
const PARALLEL = 6; // GetState calls in flight at once

// Runs fn over items with at most `limit` calls at once; keeps the order.
async function mapLimited(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { value: await fn(items[i]) };
      } catch (error) {
        results[i] = { error };
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// The pending interrupts of a snapshot: its own list, else its tasks'.
function pendingInterrupts(state) {
  if (!state) return [];
  if (state.interrupts && state.interrupts.length) return state.interrupts;
  return (state.tasks || []).flatMap((task) => task.interrupts || []);
}

function interruptList(result) {
  if (result.error) return errorBox(result.error, "Could not read the state");
  const interrupts = pendingInterrupts(result.value.state);
  if (!interrupts.length) return h("span", { class: "muted" }, "No pending interrupt in the latest checkpoint.");
  return h(
    "ul",
    { class: "interrupts plain" },
    interrupts.map((it) =>
      h(
        "li",
        { "data-interrupt-id": it.id },
        h("code", { class: "value" }, compact(it.value, 160)),
        h("span", { class: "muted small" }, " id ", h("code", {}, it.id), it.task_name ? ` in ${it.task_name}` : ""),
      ),
    ),
  );
}

function inboxRow(thread, result) {
  const href = `#/threads/${encodeURIComponent(thread.thread_id)}`;
  return h(
    "tr",
    { "data-testid": "inbox-row", "data-thread-id": thread.thread_id },
    h("th", { scope: "row" }, h("a", { href }, thread.thread_id)),
    h("td", {}, interruptList(result)),
    h("td", {}, h("time", { datetime: thread.update_time || "" }, time(thread.update_time)),
      h("span", { class: "muted small block" }, ago(thread.update_time))),
    h("td", {}, h("a", { href, class: "button-link" }, "Answer",
      h("span", { class: "visually-hidden" }, ` thread ${thread.thread_id}`))),
  );
}

export async function render(main) {
  const tokens = [];
  let pageToken = "";
  let nextToken = "";
  let loading = false;

  const status = statusLine("Loading…");
  const errorSlot = h("div");
  const tbody = h("tbody");
  const table = dataTable("inbox", "Threads waiting for an answer",
    ["Thread", "Pending interrupts", "Waiting since", "Action"], tbody);
  const refreshButton = h("button", { type: "button" }, "Refresh");
  const prevButton = h("button", { type: "button", disabled: true }, "Previous page");
  const nextButton = h("button", { type: "button", disabled: true }, "Next page");
  const pager = h("nav", { class: "pager", "aria-label": "Pages" }, prevButton, nextButton);

  main.append(
    h("div", { class: "title-row" }, h("h1", {}, "Inbox"), refreshButton),
    h("p", { class: "intro" }, "Threads whose latest run stopped at an interrupt and wait for an answer."),
    status,
    errorSlot,
    h("div", { class: "table-wrap" }, table),
    pager,
  );

  async function load(token) {
    if (loading) return;
    loading = true;
    table.setAttribute("aria-busy", "true");
    status.textContent = "Loading…";
    clear(errorSlot);
    try {
      const answer = await call("ThreadService/ListThreads", {
        page_size: PAGE_SIZE,
        page_token: token,
        status: "THREAD_STATUS_INTERRUPTED",
      });
      const threads = answer.threads || [];
      const states = await mapLimited(threads, PARALLEL, (t) =>
        call("ThreadService/GetState", { thread_id: t.thread_id }));
      pageToken = token;
      nextToken = answer.next_page_token || "";
      clear(tbody).append(...threads.map((t, i) => inboxRow(t, states[i])));
      table.hidden = threads.length === 0;
      status.textContent = threads.length
        ? `${plural(threads.length, "thread")} ${threads.length === 1 ? "waits" : "wait"} for an answer.`
        : tokens.length ? "No more threads." : "Nothing waits for an answer.";
    } catch (err) {
      status.textContent = "";
      errorSlot.append(errorBox(err, "Could not list the interrupted threads"));
    } finally {
      loading = false;
      table.removeAttribute("aria-busy");
      const focused = document.activeElement;
      prevButton.disabled = tokens.length === 0;
      nextButton.disabled = !nextToken;
      pager.hidden = prevButton.disabled && nextButton.disabled;
      // A pager button that got disabled or hidden would drop the focus.
      if ([prevButton, nextButton].includes(focused) && (focused.disabled || pager.hidden)) {
        const other = focused === prevButton ? nextButton : prevButton;
        (other.disabled || pager.hidden ? refreshButton : other).focus();
      }
    }
  }

  refreshButton.addEventListener("click", () => load(pageToken));
  nextButton.addEventListener("click", () => {
    if (loading || !nextToken) return;
    tokens.push(pageToken);
    load(nextToken);
  });
  prevButton.addEventListener("click", () => {
    if (loading || !tokens.length) return;
    load(tokens.pop());
  });

  await load("");
  return undefined;
}
