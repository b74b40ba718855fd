// Schedules view (#/schedules): the namespace's schedules, when they fire
// next, with which policies, and what their latest firing did (its run's
// thread is a link).

import { h, clear, dataTable, errorBox } from "../dom.js";
import { call } from "../api.js";
import { time, ago, enumName, plural } from "../format.js";

const MAX_PAGES = 20; // a bound on the pages read, should the server loop

async function readAll() {
  const items = [];
  let token = "";
  for (let page = 0; page < MAX_PAGES; page++) {
    const answer = await call("ScheduleService/ListSchedules", { page_size: 1000, page_token: token });
    items.push(...(answer.schedules || []));
    token = answer.next_page_token || "";
    if (!token) return { items, complete: true };
  }
  return { items, complete: false };
}

/** "0 8 * * MON-FRI (Europe/Paris)" or "every 600s". */
export function whenText(schedule) {
  if (schedule.cron) return `${schedule.cron} (${schedule.time_zone || "UTC"})`;
  return `every ${schedule.interval || "?"}`;
}

function nextCell(schedule) {
  if (schedule.paused) return h("span", { class: "muted" }, "paused");
  const next = schedule.next_fire_time;
  return h("span", {}, h("time", { datetime: next || "" }, time(next)),
    h("span", { class: "muted small" }, ` (${ago(next)})`));
}

function lastFiring(schedule) {
  const [last] = schedule.recent_firings || [];
  if (!last) return h("span", { class: "muted" }, "none yet");
  const state = enumName(last.state, "SCHEDULE_FIRING_STATE");
  const what = last.thread_id
    ? h("a", { href: `#/threads/${encodeURIComponent(last.thread_id)}` }, last.thread_id)
    : h("span", { class: "muted" }, last.message || "");
  return h("span", { "data-state": state }, `${state} `, what,
    h("span", { class: "muted small" }, ` (${ago(last.fire_time)})`));
}

function row(s) {
  const policies = [
    enumName(s.thread_policy, "SCHEDULE_THREAD_POLICY"),
    `overlap: ${enumName(s.overlap_policy, "SCHEDULE_OVERLAP_POLICY")}`,
    `catch-up: ${enumName(s.catchup_policy, "SCHEDULE_CATCHUP_POLICY")}`,
  ].join(", ");
  return h(
    "tr",
    { "data-testid": "schedule-row", "data-schedule-id": s.schedule_id },
    h("th", { scope: "row" }, h("code", {}, s.schedule_id)),
    h("td", {}, h("code", {}, s.target)),
    h("td", {}, whenText(s)),
    h("td", {}, nextCell(s)),
    h("td", {}, policies),
    h("td", {}, lastFiring(s)),
  );
}

export async function render(main) {
  const refreshButton = h("button", { type: "button" }, "Refresh");
  const status = h("p", { class: "status-line", role: "status", "aria-live": "polite" }, "Loading…");
  const error = h("div");
  const body = h("tbody");
  const table = h("div", { class: "table-wrap" }, dataTable("schedules", "Schedules",
    ["Schedule", "Target", "When", "Next due", "Policies", "Latest firing"], body));

  main.append(
    h("div", { class: "title-row" }, h("h1", {}, "Schedules"), refreshButton),
    h("p", { class: "intro" }, "Runs this namespace's schedules start by themselves."),
    status, error, table,
  );

  async function load() {
    status.textContent = "Loading…";
    clear(error);
    try {
      const { items, complete } = await readAll();
      clear(body).append(...items.map(row));
      table.hidden = items.length === 0;
      status.textContent = items.length
        ? `${plural(items.length, "schedule")}${complete ? "" : " (list cut short)"}.`
        : "This namespace has no schedule.";
    } catch (err) {
      status.textContent = "";
      table.hidden = true;
      error.append(errorBox(err, "Could not list the schedules"));
    }
  }

  refreshButton.addEventListener("click", load);
  await load();
  return undefined;
}
