// The router: reads the hash route (#/threads, #/threads/<id>, #/inbox,
// #/workers, #/schedules, each optionally followed by ?params), renders the view into
// <main>, and keeps the header (active link, namespace, sign-in) current.

import { h, clear, errorBox } from "./dom.js";
import { currentNamespace, hasToken, signIn, signOut } from "./api.js";

const main = document.getElementById("main");
const alerts = document.getElementById("alerts");

// Views are imported when first shown, so that one module failing to load
// shows an error instead of a blank page.
const VIEWS = {
  threads: () => import("./views/threads.js"),
  thread: () => import("./views/thread.js"),
  inbox: () => import("./views/inbox.js"),
  workers: () => import("./views/workers.js"),
  schedules: () => import("./views/schedules.js"),
};
const TITLES = {
  threads: "Threads", thread: "Thread", inbox: "Inbox", workers: "Workers", schedules: "Schedules",
};

let cleanup = null;
let renderCount = 0;
let lastPath = null;

function decode(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** {path: ["threads", "t1"], params: URLSearchParams} of the current hash. */
export function currentRoute() {
  const hash = location.hash.replace(/^#\/?/, "");
  const q = hash.indexOf("?");
  const pathPart = q < 0 ? hash : hash.slice(0, q);
  const path = pathPart.split("/").filter(Boolean).map(decode);
  return { path: path.length ? path : ["threads"], params: new URLSearchParams(q < 0 ? "" : hash.slice(q + 1)) };
}

function viewName(route) {
  const [first] = route.path;
  if (first === "threads") return route.path.length > 1 ? "thread" : "threads";
  return VIEWS[first] ? first : null;
}

function markNav(name) {
  const section = name === "thread" ? "threads" : name;
  for (const link of document.querySelectorAll("nav a[data-route]")) {
    if (link.dataset.route === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// Views may set attributes on <main> (the thread view sets data-testid);
// drop them before the next view renders.
function resetMain() {
  for (const attr of [...main.attributes]) {
    if (!["id", "tabindex"].includes(attr.name)) main.removeAttribute(attr.name);
  }
  clear(main);
}

async function render({ focus = false } = {}) {
  const mine = ++renderCount;
  if (cleanup) {
    try {
      cleanup();
    } catch (e) {
      console.error(e);
    }
    cleanup = null;
  }
  clear(alerts);
  resetMain();
  const route = currentRoute();
  const name = viewName(route);
  markNav(name);
  document.title = `${TITLES[name] || "Not found"} — Cairn Studio`;
  if (!name) {
    main.append(h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "#/threads" }, "Go to the threads")));
    return;
  }
  main.append(h("p", { class: "status-line", role: "status", "aria-live": "polite" }, "Loading…"));
  try {
    const view = await VIEWS[name]();
    if (mine !== renderCount) return;
    clear(main);
    const done = await view.render(main, route);
    if (mine !== renderCount) {
      if (typeof done === "function") done();
      return;
    }
    if (typeof done === "function") cleanup = done;
  } catch (err) {
    console.error(err);
    if (mine !== renderCount) return;
    main.append(errorBox(err, "This view failed"));
  }
  if (focus && mine === renderCount) {
    // Move keyboard and screen-reader focus to the new view's heading.
    const heading = main.querySelector("h1") || main;
    if (heading !== main) heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
  }
}

function updateHeader() {
  document.getElementById("namespace").textContent = currentNamespace();
  document.getElementById("session-button").textContent = hasToken() ? "Sign out" : "Sign in";
}

function onHashChange() {
  const route = currentRoute();
  const path = route.path.join("/");
  // Focus moves only when the page changes, not when its ?params do.
  const focus = lastPath !== null && path !== lastPath;
  lastPath = path;
  render({ focus });
}

function start() {
  updateHeader();
  window.addEventListener("hashchange", onHashChange);
  window.addEventListener("cairn:session", (event) => {
    updateHeader();
    if (event.detail && event.detail.rerender) render();
  });
  document.getElementById("session-button").addEventListener("click", () => {
    if (hasToken()) signOut();
    else signIn({ rerender: true });
  });
  document.getElementById("namespace-button").addEventListener("click", () => {
    signIn({ why: "Choose the namespace to look at.", rerender: true });
  });
  // The skip link must not change the hash route.
  document.getElementById("skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
  });
  // Errors nobody caught still show up, instead of a silent page.
  window.addEventListener("unhandledrejection", (event) => {
    clear(alerts).append(errorBox(event.reason));
  });
  lastPath = currentRoute().path.join("/");
  render();
}

start();
