// Formatting of timestamps, durations, JSON values and enum names for display.

function toDate(ts) {
  if (!ts) return null;
  const d = ts instanceof Date ? ts : new Date(ts);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** A timestamp (RFC 3339 string) in local time, e.g. "12 Mar 2025, 14:03:07". */
export function time(ts) {
  const d = toDate(ts);
  if (!d) return "—";
  return d.toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

function span(ms) {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(abs)} ms`;
  const s = abs / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min ${Math.round(s % 60)} s`;
  const hours = Math.floor(min / 60);
  if (hours < 48) return `${hours} h ${min % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** "5 s ago", "3 min 2 s ago", or "in 4 s" for a time in the future. */
export function ago(ts) {
  const d = toDate(ts);
  if (!d) return "—";
  const ms = Date.now() - d.getTime();
  if (Math.abs(ms) < 1000) return "just now";
  return ms >= 0 ? `${span(ms)} ago` : `in ${span(ms)}`;
}

/** Time between two timestamps; toTs defaults to now. */
export function duration(fromTs, toTs) {
  const from = toDate(fromTs);
  if (!from) return "—";
  const to = toDate(toTs) || new Date();
  return span(to.getTime() - from.getTime());
}

/** Pretty JSON, 2 spaces. */
export function json(value) {
  if (value === undefined) return "null";
  return JSON.stringify(value, null, 2);
}

/** One-line JSON, cut at max characters. */
export function compact(value, max = 120) {
  const text = value === undefined ? "null" : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** enumName("THREAD_STATUS_IDLE", "THREAD_STATUS") → "idle". */
export function enumName(value, prefix = "") {
  if (value === null || value === undefined || value === "") return "";
  let name = String(value);
  const p = prefix && !prefix.endsWith("_") ? `${prefix}_` : prefix;
  if (p && name.startsWith(p)) name = name.slice(p.length);
  return name.toLowerCase();
}

/** "1 thread", "3 threads". */
export function plural(n, word, many = `${word}s`) {
  return `${n} ${n === 1 ? word : many}`;
}
