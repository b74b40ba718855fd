// Reading StateSnapshot JSON (proto3 JSON of cairn.v1.StateSnapshot): the
// fields the thread view needs, with defaults for what a LangGraph thread or
// an empty thread leaves out.

/** The snapshot's checkpoint id ("" when the thread has no checkpoint yet). */
export function cpId(snap) {
  return (snap && snap.config && snap.config.checkpoint_id) || "";
}

/** The parent checkpoint's id, "" for the first checkpoint. */
export function parentId(snap) {
  return (snap && snap.parent_config && snap.parent_config.checkpoint_id) || "";
}

export function meta(snap) {
  return (snap && snap.metadata) || {};
}

/** The step number, or null when the metadata has none. */
export function step(snap) {
  const value = meta(snap).step;
  return typeof value === "number" ? value : value === undefined ? null : Number(value);
}

/** input | loop | update | fork (LangGraph's sources), or "" when unknown. */
export function source(snap) {
  return String(meta(snap).source || "");
}

/**
 * Who wrote the checkpoint: the keys of metadata.writes (the nodes, the
 * entrypoint, or __start__ for the input), else the names of its tasks.
 */
export function writers(snap) {
  const writes = meta(snap).writes;
  if (writes && typeof writes === "object" && !Array.isArray(writes)) {
    const keys = Object.keys(writes);
    if (keys.length) return keys;
  }
  return [...new Set(((snap && snap.tasks) || []).map((t) => t.name))];
}

/** Short form of a UUID-like id for display (the full id goes in a title). */
export function shortId(id) {
  return id && id.length > 13 ? `…${id.slice(-8)}` : id || "";
}

/** The pending interrupts of a snapshot (top level, else gathered from its tasks). */
export function interruptsOf(snap) {
  if (!snap) return [];
  if (snap.interrupts && snap.interrupts.length) return snap.interrupts;
  return (snap.tasks || []).flatMap((t) => t.interrupts || []);
}
