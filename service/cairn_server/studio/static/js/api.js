// Calls to the Studio gateway (same origin): unary API calls, starting runs,
// following a run's event log, and the session (token + namespace) kept in
// this tab's sessionStorage only.

import { h } from "./dom.js";

const TOKEN_KEY = "cairn.token";
const NAMESPACE_KEY = "cairn.namespace";
const DEFAULT_NAMESPACE = "default";

// The gRPC code for an HTTP status, when the error body does not say.
const STATUS_CODES = {
  400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
  404: "NOT_FOUND", 409: "ABORTED", 412: "FAILED_PRECONDITION",
  415: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 501: "UNIMPLEMENTED",
  503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
};

/** An error answered by the gateway (or a failed connection: status 0). */
export class ApiError extends Error {
  constructor({ status = 0, code = "UNKNOWN", reason = "", message = "", metadata = {} } = {}) {
    super(message || code);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.reason = reason;
    this.metadata = metadata || {};
    this.namespace = currentNamespace();
    this.hint = hintFor(this);
  }
}

function hintFor(err) {
  if (err.reason === "NAMESPACE_NOT_FOUND") {
    return `The token has no grant in namespace "${err.namespace}". ` +
      "Sign in with another token or change the namespace.";
  }
  if (err.code === "UNAUTHENTICATED") return "Sign in with a valid token.";
  if (err.code === "PERMISSION_DENIED") return "The token's role does not allow this.";
  if (err.status === 0) return "Check that the Studio server is running.";
  return "";
}

// ---- session -------------------------------------------------------------

export function currentNamespace() {
  return sessionStorage.getItem(NAMESPACE_KEY) || DEFAULT_NAMESPACE;
}

export function hasToken() {
  return Boolean(sessionStorage.getItem(TOKEN_KEY));
}

function saveSession(token, namespace) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  const ns = (namespace || "").trim();
  if (ns && ns !== DEFAULT_NAMESPACE) sessionStorage.setItem(NAMESPACE_KEY, ns);
  else sessionStorage.removeItem(NAMESPACE_KEY);
}

// app.js listens to this to redraw the header (and the view when the user
// changed the session on purpose, detail.rerender).
function announce(rerender) {
  window.dispatchEvent(new CustomEvent("cairn:session", { detail: { rerender } }));
}

/** Forgets the token and the namespace. */
export function signOut() {
  saveSession("", "");
  announce(true);
}

/** Headers every API call carries: auth and namespace. */
export function sessionHeaders() {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const ns = currentNamespace();
  if (ns !== DEFAULT_NAMESPACE) headers["X-Cairn-Namespace"] = ns;
  return headers;
}

// ---- sign-in dialog ------------------------------------------------------

let pendingSignIn = null; // one dialog for all the calls that got a 401 at once

function signInDialog() {
  let dialog = document.getElementById("signin-dialog");
  if (dialog) return dialog;
  dialog = h(
    "dialog",
    { id: "signin-dialog", class: "signin", "aria-labelledby": "signin-title", "aria-describedby": "signin-why signin-help" },
    h(
      "form",
      { id: "signin-form", method: "dialog" },
      h("h2", { id: "signin-title" }, "Sign in"),
      h("p", { id: "signin-why", class: "signin-why" }),
      h("p", { id: "signin-help", class: "help" },
        "The token is an API key (cairn_...) or a JWT. " +
        "It is kept only in this tab's sessionStorage."),
      h("label", { for: "signin-token" }, "Token"),
      h("input", { id: "signin-token", name: "token", type: "password", autocomplete: "off", spellcheck: "false" }),
      h("label", { for: "signin-namespace" }, "Namespace"),
      h("input", { id: "signin-namespace", name: "namespace", type: "text", autocomplete: "off", spellcheck: "false" }),
      h("div", { class: "buttons" },
        h("button", { type: "submit", class: "primary" }, "Sign in"),
        h("button", { type: "button", id: "signin-cancel" }, "Cancel")),
    ),
  );
  document.body.appendChild(dialog);
  return dialog;
}

/**
 * Shows the sign-in form; resolves true once the user signed in, false when
 * they cancelled. rerender: the view redraws afterwards (header control).
 */
export function signIn({ why = "", rerender = false } = {}) {
  if (pendingSignIn) return pendingSignIn;
  const dialog = signInDialog();
  const form = dialog.querySelector("form");
  const token = dialog.querySelector("#signin-token");
  const namespace = dialog.querySelector("#signin-namespace");
  dialog.querySelector("#signin-why").textContent = why;
  token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  namespace.value = currentNamespace();
  pendingSignIn = new Promise((resolve) => {
    const done = (ok) => {
      form.removeEventListener("submit", submit);
      cancelButton.removeEventListener("click", cancel);
      dialog.removeEventListener("close", cancel);
      if (dialog.open) dialog.close();
      document.documentElement.classList.remove("signing-in");
      pendingSignIn = null;
      resolve(ok);
    };
    const submit = (event) => {
      event.preventDefault();
      saveSession(token.value.trim(), namespace.value);
      done(true);
      announce(rerender);
    };
    const cancel = () => done(false);
    const cancelButton = dialog.querySelector("#signin-cancel");
    form.addEventListener("submit", submit);
    cancelButton.addEventListener("click", cancel);
    dialog.addEventListener("close", cancel); // Escape closes the dialog
  });
  // Hides the header's own "Sign in" button meanwhile: one such button at a time.
  document.documentElement.classList.add("signing-in");
  dialog.showModal();
  token.focus();
  return pendingSignIn;
}

// ---- unary calls -----------------------------------------------------------

async function errorFrom(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  return new ApiError({
    status: response.status,
    code: body.code || STATUS_CODES[response.status] || `HTTP ${response.status}`,
    reason: body.reason || "",
    message: body.message || response.statusText || "Request failed",
    metadata: body.metadata || {},
  });
}

async function post(path, body) {
  const headers = { "Content-Type": "application/json", Accept: "application/json", ...sessionHeaders() };
  let response;
  try {
    response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body || {}) });
  } catch (e) {
    throw new ApiError({ code: "UNAVAILABLE", message: `The Studio server cannot be reached (${e.message}).` });
  }
  if (!response.ok) throw await errorFrom(response);
  const text = await response.text();
  return text ? JSON.parse(text) : {};
}

// A 401 asks the user to sign in, then the request is sent once more.
async function postWithSignIn(path, body) {
  try {
    return await post(path, body);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    const ok = await signIn({ why: err.message });
    if (!ok) throw err;
    return post(path, body);
  }
}

/** call("ThreadService/ListThreads", {page_size: 25}) → the response JSON. */
export function call(method, body = {}) {
  return postWithSignIn(`/api/${method}`, body);
}

/** Starts a run from a StreamRequest; resolves to the Run once it exists. */
export async function startRun(streamRequest) {
  const answer = await postWithSignIn("/api/runs", streamRequest);
  return answer.run;
}

// ---- following a run's event log (server-sent events read with fetch) ------

// Parses an SSE byte stream; calls onMessage({event, data, id}) per message.
async function readEvents(body, onMessage) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let message = { event: "", data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    // Keep a trailing "\r": its "\n" may come in the next chunk.
    const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
    const lines = buffer.slice(0, cut).split(/\r\n|\r|\n/);
    buffer = lines.pop() + buffer.slice(cut); // the unfinished last line
    for (const line of lines) {
      if (line === "") {
        if (message.data.length || message.event) {
          const stop = onMessage({ event: message.event || "message", data: message.data.join("\n"), id: message.id });
          if (stop) {
            reader.cancel().catch(() => {});
            return;
          }
        }
        message = { event: "", data: [], id: null };
        continue;
      }
      if (line.startsWith(":")) continue; // keep-alive
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? "" : line.slice(colon + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (field === "data") message.data.push(val);
      else if (field === "event") message.event = val;
      else if (field === "id") message.id = val;
    }
  }
}

const TRANSIENT = new Set(["UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "INTERNAL"]);

/**
 * Follows /api/runs/<runId>/events. onEvent(runEvent) per event, onEnd()
 * when the log ends, onError(ApiError) on an error that retrying will not
 * fix. A dropped connection reconnects after 0.5 s (doubling up to 5 s)
 * with Last-Event-ID = the last id seen. Returns {close()}.
 */
export function followRun(runId, { after = "", onEvent, onEnd, onError } = {}) {
  let lastId = after ? String(after) : "";
  let closed = false;
  let controller = null;
  let timer = null;
  let backoff = 500;
  let signedIn = false;

  const fail = (err) => {
    closed = true;
    if (onError) onError(err);
  };
  const retry = () => {
    if (closed) return;
    timer = setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 5000);
  };
  const onMessage = (msg) => {
    if (closed) return true;
    if (msg.event === "end") {
      closed = true;
      if (onEnd) onEnd();
      return true;
    }
    if (msg.event === "error") {
      let body = {};
      try { body = JSON.parse(msg.data); } catch { body = { message: msg.data }; }
      const err = new ApiError({ code: body.code, reason: body.reason, message: body.message, metadata: body.metadata });
      if (TRANSIENT.has(err.code)) return false; // the stream ends; we reconnect
      fail(err);
      return true;
    }
    if (msg.id) lastId = msg.id;
    backoff = 500;
    if (!onEvent || !msg.data) return false;
    const runEvent = JSON.parse(msg.data);
    try {
      onEvent(runEvent);
    } catch (e) {
      console.error("onEvent failed", e); // a bug of the view must not drop the stream
    }
    return false;
  };

  async function connect() {
    if (closed) return;
    controller = new AbortController();
    const headers = { Accept: "text/event-stream", ...sessionHeaders() };
    if (lastId) headers["Last-Event-ID"] = lastId;
    try {
      const url = `/api/runs/${encodeURIComponent(runId)}/events`;
      const response = await fetch(url, { headers, signal: controller.signal, cache: "no-store" });
      if (!response.ok) {
        const err = await errorFrom(response);
        if (response.status === 401 && !signedIn) {
          signedIn = true;
          if (await signIn({ why: err.message })) return connect();
        }
        if (response.status >= 500 && response.status !== 501) return retry();
        return fail(err);
      }
      await readEvents(response.body, onMessage);
    } catch (e) {
      if (closed) return;
      if (!(e instanceof TypeError || e.name === "AbortError")) return fail(e);
    }
    retry(); // the connection dropped before "end": read on from lastId
  }

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (controller) controller.abort();
    },
  };
}
