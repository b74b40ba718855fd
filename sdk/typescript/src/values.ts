/**
 * JSON values across the wire: google.protobuf.Value to plain JavaScript data
 * and back. Values that users read and write (inputs, results, interrupt
 * payloads, resume values, custom stream data) are JSON, so that every
 * language reads them alike.
 *
 * `undefined` becomes `null` (and is dropped from objects, as
 * `JSON.stringify` does); objects with a `toJSON()` method (Date) are sent as
 * what it returns; NaN, Infinity, bigint, functions, symbols, Maps and Sets
 * are refused with an InvalidValueError instead of being silently changed.
 * Values nested deeper than MAX_JSON_DEPTH arrays and objects are refused with
 * a JsonTooDeepError, before they are sent.
 */

import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { InvalidValueError, JsonTooDeepError, MAX_JSON_DEPTH } from "./errors.js";

/** Plain JSON data checked and normalized: what the other side will read. */
export function normalize(data: unknown, where = "value"): JsonValue {
  return normalized(data, where, where, 0);
}

function normalized(data: unknown, where: string, root: string, depth: number): JsonValue {
  if (data === null || data === undefined) return null;
  switch (typeof data) {
    case "boolean":
    case "string":
      return data;
    case "number":
      if (!Number.isFinite(data)) {
        throw new InvalidValueError(`${where} holds ${data}, which JSON cannot carry`);
      }
      return data;
    case "object":
      break;
    default:
      throw new InvalidValueError(`${where} is a ${typeof data}, which is not JSON`);
  }
  const withToJson = data as { toJSON?: () => unknown };
  if (typeof withToJson.toJSON === "function") {
    return normalized(withToJson.toJSON(), where, root, depth);
  }
  if (depth >= MAX_JSON_DEPTH) throw new JsonTooDeepError(root);
  if (Array.isArray(data)) {
    return data.map((item, i) => normalized(item, `${where}[${i}]`, root, depth + 1));
  }
  const prototype = Object.getPrototypeOf(data);
  if (prototype !== Object.prototype && prototype !== null) {
    const name = (data as object).constructor?.name ?? "object";
    throw new InvalidValueError(`${where} is a ${name}, which is not JSON`);
  }
  const out: { [key: string]: JsonValue } = {};
  for (const [key, item] of Object.entries(data)) {
    if (item === undefined) continue;
    out[key] = normalized(item, `${where}.${key}`, root, depth + 1);
  }
  return out;
}

/** Plain data as a google.protobuf.Value. */
export function toValue(data: unknown, where = "value"): Value {
  return fromJson(ValueSchema, normalize(data, where));
}

/** A google.protobuf.Value as plain data; an unset value is null. */
export function fromValue(value: Value | undefined): JsonValue {
  if (value === undefined || value.kind.case === undefined) return null;
  return toJson(ValueSchema, value);
}
