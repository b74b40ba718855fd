// Time travel on the selected checkpoint: "Run again from here" starts a run
// from it (no input: the run replays from it, a graph continues from it), and
// "Edit state" writes an update on top of it (UpdateState, which forks a new
// checkpoint) and continues from the new checkpoint. Both leave the old
// branch intact; the timeline then shows both.

import { call } from "../api.js";
import { h, errorBox } from "../dom.js";
import { cpId } from "./snap.js";

/** {ok, value} for the text of a state update: a JSON object. */
export function parseUpdate(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `Not valid JSON: ${err.message}` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { ok: false, error: "The update must be a JSON object of state keys, e.g. {\"score\": 1}." };
  }
  return { ok: true, value };
}

/**
 * The time travel controls for `snap`. startRun(streamRequest) starts and
 * follows a run; afterUpdate() reloads the timeline when UpdateState
 * succeeded but the run after it could not start.
 */
export function travelControls(threadId, snap, { startRun, afterUpdate }) {
  const checkpointId = cpId(snap);
  const outcome = h("div", { class: "outcome", "aria-live": "polite" });
  const again = h("button", { type: "button" }, "Run again from here");
  const edit = h("button", { type: "button", "aria-expanded": "false", "aria-controls": "edit-state-form" }, "Edit state");

  const textarea = h("textarea", { id: "state-update", rows: "5", spellcheck: "false", "aria-describedby": "state-update-check" }, "{}");
  const check = h("p", { id: "state-update-check", class: "json-check", "aria-live": "polite" });
  const asNode = h("input", { id: "state-update-as-node", type: "text", autocomplete: "off", spellcheck: "false" });
  const submit = h("button", { type: "submit", class: "primary" }, "Update and continue");
  const validate = () => {
    const parsed = parseUpdate(textarea.value);
    submit.disabled = !parsed.ok;
    textarea.setAttribute("aria-invalid", parsed.ok ? "false" : "true");
    check.textContent = parsed.ok ? "Valid JSON object." : parsed.error;
    check.className = parsed.ok ? "json-check valid" : "json-check invalid";
    return parsed;
  };
  textarea.addEventListener("input", validate);
  validate();

  const busy = (on) => {
    again.disabled = on;
    submit.disabled = on || !parseUpdate(textarea.value).ok;
  };

  again.addEventListener("click", async () => {
    busy(true);
    outcome.replaceChildren(h("p", { class: "muted" }, "Starting a run from this checkpoint…"));
    try {
      const run = await startRun({ thread_id: threadId, checkpoint_id: checkpointId });
      outcome.replaceChildren(h("p", {}, `Run ${run.run_id} started from this checkpoint.`));
    } catch (err) {
      outcome.replaceChildren(errorBox(err, "Could not run again from here"));
    } finally {
      busy(false);
    }
  });

  const form = h(
    "form",
    {
      id: "edit-state-form",
      class: "edit-state",
      hidden: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const parsed = validate();
        if (!parsed.ok) return;
        busy(true);
        outcome.replaceChildren(h("p", { class: "muted" }, "Updating the state…"));
        let updated;
        try {
          const body = { thread_id: threadId, checkpoint_id: checkpointId, values: parsed.value };
          if (asNode.value.trim()) body.as_node = asNode.value.trim();
          updated = await call("ThreadService/UpdateState", body);
        } catch (err) {
          outcome.replaceChildren(errorBox(err, explainUpdateError(err)));
          busy(false);
          return;
        }
        const newId = cpId(updated.state);
        try {
          const run = await startRun({ thread_id: threadId, checkpoint_id: newId });
          outcome.replaceChildren(h("p", {}, `State updated (new checkpoint ${newId}); run ${run.run_id} continues from it.`));
        } catch (err) {
          outcome.replaceChildren(errorBox(err, `State updated (new checkpoint ${newId}), but the run could not start`));
          afterUpdate();
        } finally {
          busy(false);
        }
      },
    },
    h("label", { for: textarea.id }, "State update (JSON)"),
    h("p", { class: "help", id: "state-update-help" },
      "An object of state keys. It goes through the graph's reducers as if a node had returned it."),
    textarea,
    check,
    h("label", { for: asNode.id }, "As node (optional)"),
    asNode,
    h("div", { class: "buttons" }, submit),
  );
  textarea.setAttribute("aria-describedby", "state-update-check state-update-help");

  edit.addEventListener("click", () => {
    const open = form.hidden;
    form.hidden = !open;
    edit.setAttribute("aria-expanded", String(open));
    if (open) textarea.focus();
  });

  return h(
    "div",
    { class: "travel", role: "group", "aria-label": "Time travel from this checkpoint" },
    h("div", { class: "buttons" }, again, edit),
    form,
    outcome,
  );
}

// A title that says what the error means for this action.
function explainUpdateError(err) {
  if (err.reason === "NOT_A_GRAPH") return "Entrypoint threads cannot be edited: only a graph thread's state can be updated";
  if (err.reason === "THREAD_BUSY") return "A run is active on this thread; wait for it or cancel it";
  if (err.reason === "LANGGRAPH_THREAD") return "A LangGraph thread is run by its own application";
  if (err.code === "UNIMPLEMENTED") return "This update is not supported";
  return "Could not update the state";
}
