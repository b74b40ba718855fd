/** JSON values and error details, without a server. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { decodeErrorInfo } from "../src/errors.js";
import { Command, InvalidValueError, defaultRetryOn } from "../src/index.js";
import { fromValue, normalize, toValue } from "../src/values.js";

test("values round trip as JSON", () => {
  const data = { text: "ä", n: 1.5, whole: 2 ** 53, list: [true, null, { deep: [] }] };
  assert.deepEqual(fromValue(toValue(data)), data);
  assert.equal(fromValue(undefined), null);
});

test("undefined and dates become what JSON.stringify makes of them", () => {
  const when = new Date("2026-01-02T03:04:05.000Z");
  assert.deepEqual(normalize({ a: undefined, when, list: [undefined] }), {
    when: "2026-01-02T03:04:05.000Z",
    list: [null],
  });
});

test("values JSON cannot carry are refused, not changed", () => {
  for (const bad of [Number.NaN, Infinity, 1n, new Map(), () => 1, Symbol("s")]) {
    assert.throws(() => toValue({ field: [bad] }, "result"), InvalidValueError);
  }
  assert.throws(() => normalize(new (class Point {})()), /Point, which is not JSON/);
});

test("ErrorInfo details are decoded with their metadata", () => {
  const entry = new BinaryWriter().tag(1, 2).string("thread_id").tag(2, 2).string("t1").finish();
  const bytes = new BinaryWriter()
    .tag(1, 2).string("THREAD_BUSY")
    .tag(2, 2).string("cairn.dev")
    .tag(3, 2).bytes(entry)
    .finish();
  assert.deepEqual(decodeErrorInfo(bytes), {
    reason: "THREAD_BUSY",
    domain: "cairn.dev",
    metadata: { thread_id: "t1" },
  });
});

test("a resume keyed by interrupt ids answers them by id", () => {
  const id = "0192f1a0-1c2d-7e3f-8a9b-0c1d2e3f4a5b";
  assert.equal(new Command({ resume: { [id]: "yes" } }).toProto().resumeKind.case, "resumeMap");
  assert.equal(new Command({ resume: { answer: "yes" } }).toProto().resumeKind.case, "resume");
});

test("programming errors are not retried by default; others are", () => {
  assert.equal(defaultRetryOn(new TypeError("bad")), false);
  assert.equal(defaultRetryOn(Object.assign(new Error("nope"), { status: 404 })), false);
  assert.equal(defaultRetryOn(new Error("connection reset")), true);
});
