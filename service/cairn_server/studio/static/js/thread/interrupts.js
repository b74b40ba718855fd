// Human in the loop: one form per pending interrupt of the thread's latest
// checkpoint. The answer is JSON, checked as it is typed; "Resume" sends it
// (by interrupt id when several are pending, so each can be answered on its
// own), "Answer true" / "Answer false" send a boolean at once.

import { h, errorBox } from "../dom.js";
import { json } from "../format.js";
import { shortId } from "./snap.js";

/** {ok: true, value} or {ok: false, error} for the text of an answer. */
export function parseAnswer(text) {
  if (!text.trim()) return { ok: false, error: "Type a JSON value, e.g. true, \"yes\" or {\"approved\": true}." };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, error: `Not valid JSON: ${err.message}` };
  }
}

/** The Command that answers `interrupt` with `value`. */
export function resumeCommand(interrupt, value, pendingCount) {
  if (pendingCount > 1) return { resume_map: { values: { [interrupt.id]: value } } };
  return { resume: value };
}

/**
 * Fills `section` (data-testid="interrupts") with the forms.
 * onResume(command) starts the resuming run and resolves when it started;
 * it throws an ApiError to show next to the form.
 */
export function renderInterrupts(section, interrupts, { onResume, canResume = true, why = "" }) {
  section.hidden = interrupts.length === 0;
  if (!interrupts.length) return;
  section.append(h("h2", { id: "interrupts-title" }, interrupts.length === 1 ? "Waiting for your answer" : `Waiting for ${interrupts.length} answers`));
  if (why) section.append(h("p", { class: "note" }, why));
  interrupts.forEach((interrupt, index) => {
    section.append(renderOne(interrupt, index, interrupts.length, { onResume, canResume }));
  });
}

function renderOne(interrupt, index, count, { onResume, canResume }) {
  const base = `interrupt-${index}`;
  const textarea = h("textarea", {
    id: `${base}-answer`,
    rows: "3",
    spellcheck: "false",
    "aria-describedby": `${base}-check`,
  });
  const check = h("p", { id: `${base}-check`, class: "json-check", "aria-live": "polite" });
  const resume = h("button", { type: "submit", class: "primary", disabled: true }, "Resume");
  const yes = h("button", { type: "button" }, "Answer true");
  const no = h("button", { type: "button" }, "Answer false");
  const outcome = h("div", { class: "outcome", "aria-live": "polite" });
  const buttons = [resume, yes, no];

  const validate = () => {
    const parsed = parseAnswer(textarea.value);
    // An empty answer is not an error yet: it only keeps "Resume" off.
    const empty = !textarea.value.trim();
    resume.disabled = !parsed.ok || !canResume;
    textarea.setAttribute("aria-invalid", parsed.ok || empty ? "false" : "true");
    check.textContent = parsed.ok ? "Valid JSON." : parsed.error;
    check.className = `json-check ${parsed.ok ? "valid" : empty ? "hint" : "invalid"}`;
    return parsed;
  };
  const send = async (value) => {
    outcome.replaceChildren(h("p", { class: "muted" }, "Resuming…"));
    for (const b of buttons) b.disabled = true;
    try {
      await onResume(resumeCommand(interrupt, value, count));
      outcome.replaceChildren(h("p", {}, "Resumed: the run's events follow below."));
    } catch (err) {
      outcome.replaceChildren(errorBox(err, "Could not resume"));
      yes.disabled = no.disabled = !canResume;
      validate();
    }
  };
  textarea.addEventListener("input", validate);
  yes.addEventListener("click", () => send(true));
  no.addEventListener("click", () => send(false));
  yes.disabled = no.disabled = !canResume;
  validate();
  // The form's submit is "Resume" (Enter in a textarea adds a line instead).
  const form = h(
    "form",
    {
      "data-testid": "interrupt",
      "data-interrupt-id": interrupt.id,
      class: "interrupt",
      "aria-labelledby": `${base}-title`,
      onsubmit: (event) => {
        event.preventDefault();
        const parsed = validate();
        if (parsed.ok && canResume) send(parsed.value);
      },
    },
    h(
      "h3",
      { id: `${base}-title` },
      count > 1 ? `Interrupt ${index + 1} of ${count}` : "Interrupt",
      interrupt.task_name ? ` from ${interrupt.task_name}` : "",
    ),
    h("p", { class: "muted" }, "Id ", h("code", { title: interrupt.id }, shortId(interrupt.id))),
    h("pre", { class: "json interrupt-value", tabindex: "0", "aria-label": "Interrupt value (JSON)" }, json(interrupt.value ?? null)),
    h("label", { for: textarea.id }, "Answer (JSON)"),
    textarea,
    check,
    h("div", { class: "buttons" }, resume, yes, no),
    outcome,
  );
  return form;
}
