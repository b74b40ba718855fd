/**
 * JSON nested deeper than Cairn carries (MAX_JSON_DEPTH = 24 arrays and
 * objects, see "Limits" in errors.proto), against a real `cairn serve`: the
 * SDK refuses it before sending, so a client call fails at once with
 * JsonTooDeepError and a task whose result, interrupt value, stream data or
 * call input is too deep fails its run at once (never a run left running).
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  Client,
  InvalidArgumentError,
  JsonTooDeepError,
  MAX_JSON_DEPTH,
  RunFailedError,
  ThreadNotFoundError,
  entrypoint,
  getWriter,
  interrupt,
  task,
} from "../src/index.js";
import { normalize } from "../src/values.js";
import { serveFunctions, type Served } from "./served.js";

function nested(depth: number): unknown {
  let value: unknown = "leaf";
  for (let level = 0; level < depth; level++) value = level % 2 ? [value] : { next: value };
  return value;
}

let made = 0;
const makeValue = task("makeValue", async (depth: number) => {
  made += 1;
  return nested(depth);
});
const returnsTaskValue = entrypoint({ name: "returnsTaskValue" }, async (depth: number) =>
  makeValue(depth),
);
const consume = task("consume", async (_value: unknown) => "consumed");
const sendsDeepInput = entrypoint({ name: "sendsDeepInput" }, async (depth: number) =>
  consume(nested(depth)),
);
const interruptsDeeply = entrypoint({ name: "interruptsDeeply" }, async (depth: number) =>
  interrupt(nested(depth)),
);
const writesDeeply = entrypoint({ name: "writesDeeply" }, async (depth: number) => {
  getWriter()(nested(depth));
  return "written";
});

const FUNCTIONS = [makeValue, returnsTaskValue, consume, sendsDeepInput, interruptsDeeply, writesDeeply];

test("normalize refuses values deeper than the limit and keeps those at it", () => {
  assert.equal(MAX_JSON_DEPTH, 24);
  assert.deepEqual(normalize(nested(MAX_JSON_DEPTH)), nested(MAX_JSON_DEPTH));
  assert.throws(() => normalize(nested(MAX_JSON_DEPTH + 1), "input"), (error: unknown) => {
    assert.ok(error instanceof JsonTooDeepError);
    assert.ok(error instanceof InvalidArgumentError);
    assert.equal(error.reason, "JSON_TOO_DEEP");
    assert.equal(error.code, "INVALID_ARGUMENT");
    assert.deepEqual(error.metadata, { field: "input", limit: "24" });
    return true;
  });
});

describe("JSON too deep, with a real server and worker", () => {
  let served: Served;
  let client: Client;

  before(async () => {
    served = await serveFunctions(FUNCTIONS);
    client = served.client;
  });

  after(() => served?.stop());

  async function failsWithJsonTooDeep(target: unknown, depth: number, threadId: string) {
    const failure = await client
      .invoke(target as typeof returnsTaskValue, depth, { threadId })
      .then(() => undefined, (error: unknown) => error);
    assert.ok(failure instanceof RunFailedError, String(failure));
    assert.equal(failure.run.error?.type, "JsonTooDeepError");
    assert.equal(failure.run.error?.retryable, false);
    // The run ended: the thread takes a new run at once.
    const again = await client.invoke(returnsTaskValue, 3, { threadId });
    assert.deepEqual(again.output, nested(3));
  }

  test("a task result nested 50 levels fails the run at once, without retries", async () => {
    made = 0;
    await failsWithJsonTooDeep(returnsTaskValue, 50, "deep-result");
    assert.equal(made, 2, "once for the deep run, once for the next");
  });

  test("a value at the limit travels intact", async () => {
    const run = await client.invoke(returnsTaskValue, MAX_JSON_DEPTH, { threadId: "at-limit" });
    assert.deepEqual(run.output, nested(MAX_JSON_DEPTH));
  });

  test("a call input, an interrupt value and stream data too deep fail their run", async () => {
    await failsWithJsonTooDeep(sendsDeepInput, 40, "deep-input");
    await failsWithJsonTooDeep(interruptsDeeply, 40, "deep-interrupt");
    await failsWithJsonTooDeep(writesDeeply, 40, "deep-chunk");
  });

  test("a client call with a value too deep is refused before sending", async () => {
    await assert.rejects(
      client.invoke(returnsTaskValue, nested(MAX_JSON_DEPTH + 1) as number, { threadId: "refused" }),
      JsonTooDeepError,
    );
    await assert.rejects(client.getThread("refused"), ThreadNotFoundError);
  });
});
