/**
 * Reducers: how a state key combines the writes of one step. The Cairn
 * service applies them (graph.proto's Reducer), never the worker, so a state
 * key can only use one the service knows: these functions, or their names.
 *
 *     const State = Annotation.Root({
 *       docs: Annotation<string[]>({ reducer: append, default: () => [] }),
 *       total: Annotation<number>({ reducer: add, default: () => 0 }),
 *       scores: Annotation<Record<string, number>>({ reducer: merge }),
 *       messages: Annotation<JsonMessage[]>({ reducer: messagesStateReducer, default: () => [] }),
 *     });
 *
 * Each function also computes, here, what the service does, for local use
 * and tests. A reducer of your own (`(a, b) => a.concat(b)`) cannot run in
 * the service: it is a type error (it lacks the brand these carry), and
 * `new StateGraph(...)` refuses it with a TypeError naming these.
 */

import { Reducer } from "../gen/cairn/v1/graph_pb.js";

const SERVICE_REDUCER = Symbol("cairn.serviceReducer");

/** A reducer the Cairn service applies: one of add, append, merge and
 * messagesStateReducer (they carry the service's name for it). */
export type ServiceReducer<Value = any, Update = any> = ((current: Value, update: Update) => Value) & {
  readonly [SERVICE_REDUCER]: Reducer;
};

function branded<F extends (current: any, update: any) => unknown>(fn: F, reducer: Reducer) {
  return Object.assign(fn, { [SERVICE_REDUCER]: reducer } as const);
}

/** A message as JSON: an object with an `id` (assigned when missing), as the
 * service's add_messages keeps them. */
export interface JsonMessage {
  id?: string;
  type?: string;
  content?: unknown;
  [key: string]: unknown;
}

/** The id of a remove that drops every earlier message, as langgraphjs's
 * REMOVE_ALL_MESSAGES. */
export const REMOVE_ALL_MESSAGES = "__remove_all__";

/**
 * `+` on JSON, as Python's `operator.add`: numbers are summed, strings and
 * arrays concatenated. The first write to an unset key is kept as is.
 *
 *     add(1, 2) === 3; add(["a"], ["b"]) // ["a", "b"]
 */
export const add = branded(function add<T extends number | string | unknown[]>(
  current: T,
  update: T,
): T {
  if (current === undefined || current === null) return update;
  if (typeof current === "number" && typeof update === "number") return (current + update) as T;
  if (typeof current === "string" && typeof update === "string") return (current + update) as T;
  if (Array.isArray(current) && Array.isArray(update)) return [...current, ...update] as T;
  throw new TypeError(
    `add applies to two numbers, two strings or two arrays, not ${kind(current)} and ${kind(update)}`,
  );
}, Reducer.ADD);

/**
 * A list that grows: an array write is appended item by item, any other
 * write as one item.
 *
 *     append([1], [2, 3]) // [1, 2, 3]
 *     append([1], "x")    // [1, "x"]
 */
export const append = branded(function append<T>(current: T[] | undefined, update: T | T[]): T[] {
  const items = current === undefined || current === null ? [] : [...current];
  return Array.isArray(update) ? [...items, ...update] : [...items, update];
}, Reducer.APPEND);

/**
 * Objects merged key by key, the write winning (`{ ...current, ...update }`).
 *
 *     merge({ a: 1, b: 2 }, { b: 3 }) // { a: 1, b: 3 }
 */
export const merge = branded(function merge<T extends Record<string, unknown>>(
  current: T | undefined,
  update: Partial<T>,
): T {
  if (update === null || typeof update !== "object" || Array.isArray(update)) {
    throw new TypeError(`merge takes an object as the write, not ${kind(update)}`);
  }
  return { ...(current ?? {}), ...update } as T;
}, Reducer.MERGE);

/**
 * langgraphjs's `messagesStateReducer` on messages as JSON objects: a
 * message whose id is present replaces it, a message with `type: "remove"`
 * deletes the message with its id (an error when there is none; the id
 * `REMOVE_ALL_MESSAGES` drops every message before it), others are
 * appended. Messages without an id get one.
 *
 *     messagesStateReducer([{ id: "1", content: "hi" }], { id: "1", content: "hello" })
 *     // [{ id: "1", content: "hello" }]
 */
export const messagesStateReducer = branded(function messagesStateReducer(
  current: JsonMessage | JsonMessage[] | undefined,
  update: JsonMessage | JsonMessage[],
): JsonMessage[] {
  const left = withIds(current);
  const right = withIds(update);
  for (let last = right.length - 1; last >= 0; last--) {
    if (right[last].type === "remove" && right[last].id === REMOVE_ALL_MESSAGES) {
      return right.slice(last + 1);
    }
  }
  const merged = [...left];
  const where = new Map(merged.map((message, i) => [message.id, i]));
  const removed = new Set<string>();
  for (const message of right) {
    const id = message.id as string;
    const position = where.get(id);
    if (position === undefined) {
      if (message.type === "remove") {
        throw new Error(`Attempting to delete a message with an ID that doesn't exist ('${id}')`);
      }
      where.set(id, merged.length);
      merged.push(message);
    } else if (message.type === "remove") {
      removed.add(id);
    } else {
      removed.delete(id);
      merged[position] = message;
    }
  }
  return merged.filter((message) => !removed.has(message.id as string));
}, Reducer.ADD_MESSAGES);

/** The same function as `messagesStateReducer` (Python's `add_messages`). */
export const addMessages = messagesStateReducer;

function withIds(messages: JsonMessage | JsonMessage[] | undefined | null): JsonMessage[] {
  if (messages === undefined || messages === null) return [];
  const items = Array.isArray(messages) ? messages : [messages];
  return items.map((message) => {
    if (message === null || typeof message !== "object" || Array.isArray(message)) {
      throw new TypeError(`messagesStateReducer works on messages as JSON objects, not ${kind(message)}`);
    }
    return message.id == null ? { ...message, id: globalThis.crypto.randomUUID() } : message;
  });
}

function kind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? `a ${value.constructor?.name ?? "object"}` : `a ${typeof value}`;
}

/** The names a reducer may be given by, as Python's `Annotated[list, "append"]`. */
export type ReducerName = "last_value" | "add" | "append" | "merge" | "add_messages";

const BY_NAME: Record<ReducerName, Reducer> = {
  last_value: Reducer.LAST_VALUE,
  add: Reducer.ADD,
  append: Reducer.APPEND,
  merge: Reducer.MERGE,
  add_messages: Reducer.ADD_MESSAGES,
};

/**
 * The service's reducer for a state key's `reducer` (a function above, or a
 * name); throws a TypeError for anything the service cannot apply.
 */
export function serviceReducer(key: string, reducer: unknown): Reducer {
  if (typeof reducer === "string") {
    const named = BY_NAME[reducer as ReducerName];
    if (named !== undefined && Object.hasOwn(BY_NAME, reducer)) return named;
    throw new TypeError(
      `state key "${key}": unknown reducer "${reducer}"; the named reducers are ` +
        `${Object.keys(BY_NAME).map((name) => `"${name}"`).join(", ")}`,
    );
  }
  // Only the functions above carry the brand (a copy of one would too, and
  // computes the same).
  const known = (reducer as Partial<ServiceReducer> | null)?.[SERVICE_REDUCER];
  if (typeof reducer === "function" && known !== undefined) return known;
  const name = typeof reducer === "function" && reducer.name ? reducer.name : String(reducer);
  throw new TypeError(
    `state key "${key}": reducer ${name} cannot be used: the Cairn service applies reducers, ` +
      "so only the ones it knows work: add, append, merge or messagesStateReducer from " +
      `@cairn/sdk, or the names ${Object.keys(BY_NAME).map((n) => `"${n}"`).join(", ")}`,
  );
}
