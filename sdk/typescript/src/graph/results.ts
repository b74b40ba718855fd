/**
 * What a node or a router returns, as the JSON the service reads
 * (graph.proto's NodeSpec and ConditionalEdgeSpec): a node's result is null,
 * the update object, or `{"__cairn__": "command", "update": {...}, "goto":
 * [...]}`; a router's is a list of node names and
 * `{"__cairn__": "send", "node": ..., "arg": ...}` objects.
 */

import type { JsonValue } from "@bufbuild/protobuf";
import { Command } from "../types.js";
import { normalize } from "../values.js";
import { END, MARK, START, Send } from "./constants.js";

type Destination = string | { [MARK]: "send"; node: string; arg: JsonValue };

function sendOf(send: Send, where: string): Destination {
  if (send.node === END) throw new TypeError(`${where}: cannot send a packet to the END node`);
  return { [MARK]: "send", node: send.node, arg: normalize(send.args, `${where}: Send("${send.node}") args`) };
}

function isSend(value: unknown): value is Send {
  if (value instanceof Send) return true;
  // langgraphjs's own Send, for graphs ported with their imports.
  const candidate = value as { lg_name?: unknown; node?: unknown } | null;
  return candidate?.lg_name === "Send" && typeof candidate.node === "string";
}

function asSend(value: unknown): Send {
  if (value instanceof Send) return value;
  const foreign = value as { node: string; args: unknown };
  return new Send(foreign.node, foreign.args);
}

/** `goto` of a Command: node names (END stops) and Sends. */
function destinations(value: unknown, where: string): Destination[] {
  const items = value === undefined || value === null ? [] : Array.isArray(value) ? value : [value];
  return items.map((item) => {
    if (isSend(item)) return sendOf(asSend(item), where);
    if (typeof item === "string" && item !== START && item !== "") return item;
    throw new TypeError(
      `${where} returned goto ${JSON.stringify(item)}; expected a node name, END, or a Send`,
    );
  });
}

function updateOf(update: unknown, where: string): Record<string, unknown> {
  if (update === undefined || update === null) return {};
  if (Array.isArray(update)) {
    // langgraphjs also takes [key, value] pairs; one write per key here.
    const out: Record<string, unknown> = {};
    for (const pair of update) {
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string") {
        throw new TypeError(`${where} returned Command({ update }) with ${JSON.stringify(pair)}; expected [key, value]`);
      }
      if (Object.hasOwn(out, pair[0])) {
        throw new TypeError(`${where} returned Command({ update }) writing "${pair[0]}" twice`);
      }
      out[pair[0]] = pair[1];
    }
    return out;
  }
  if (typeof update !== "object" || Object.getPrototypeOf(update) !== Object.prototype) {
    throw new TypeError(`${where} returned Command({ update: ${String(update)} }); expected an object`);
  }
  return update as Record<string, unknown>;
}

/** A node's return value as the node task's JSON result. */
export function encodeNodeResult(result: unknown, where: string): JsonValue {
  if (result === undefined || result === null) return null;
  if (result instanceof Command || isForeignCommand(result)) {
    const command = result as { resume?: unknown; update?: unknown; goto?: unknown; graph?: unknown };
    if (command.resume !== undefined) {
      throw new TypeError(`${where} returned Command({ resume }); nodes return update and goto`);
    }
    if (command.graph !== undefined && command.graph !== null) {
      throw new TypeError(
        `${where} returned Command({ graph }); Cairn runs Command({ update, goto }) in the node's own graph only`,
      );
    }
    return {
      [MARK]: "command",
      update: normalize(updateOf(command.update, where), `${where}: the update`),
      goto: destinations(command.goto, where) as JsonValue,
    };
  }
  if (typeof result === "object" && !Array.isArray(result)) {
    if (Object.hasOwn(result, MARK)) {
      throw new TypeError(`${where} returned an update with the reserved key "${MARK}"`);
    }
    return normalize(result, `${where}: the update`);
  }
  throw new TypeError(
    `${where} returned ${Array.isArray(result) ? "an array" : typeof result}; ` +
      "expected an object of state updates, null, or a Command",
  );
}

function isForeignCommand(value: unknown): boolean {
  // langgraphjs's Command, for graphs ported with their imports.
  return (value as { lg_name?: unknown } | null)?.lg_name === "Command";
}

/**
 * A router's return value as node names and Sends. With a path map, as in
 * langgraphjs, every value that is not a Send must be one of its keys
 * (compared as strings); the service maps them.
 */
export function encodeRouterResult(
  result: unknown,
  pathMap: Readonly<Record<string, string>> | undefined,
  where: string,
): JsonValue {
  const items = Array.isArray(result) ? result : [result];
  return items.map((item) => {
    if (isSend(item)) return sendOf(asSend(item), where);
    if (pathMap !== undefined) {
      const key = typeof item === "string" || typeof item === "number" || typeof item === "boolean" ? String(item) : undefined;
      if (key === undefined || !Object.hasOwn(pathMap, key)) {
        throw new Error(
          `${where} returned ${JSON.stringify(item)}: Branch condition returned unknown or null ` +
            `destination (the path map has ${Object.keys(pathMap).map((k) => JSON.stringify(k)).join(", ")})`,
        );
      }
      return key;
    }
    if (typeof item === "string" && item !== START && item !== "") return item;
    throw new TypeError(
      `${where} returned ${JSON.stringify(item)}; expected a node name, END, a Send, or a list of them`,
    );
  }) as JsonValue;
}
