/**
 * A journal larger than one Connect message (2,000 results of about 3 KB of
 * JSON, about 9.7 MB as protobuf) reaches the TypeScript worker in pages: the
 * resumed entrypoint replays every recorded call without running a task
 * again. A result over the payload limit fails its run, naming the limit,
 * while the worker serves other runs.
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client, Command, RunFailedError, entrypoint, interrupt, task } from "../src/index.js";
import { serveFunctions, type Served } from "./served.js";

const PIECES = 2000;
const PAYLOAD = 4 * 1024 * 1024; // the server's default max_payload_bytes
const runs = new Map<number, number>();

const pieceValue = (i: number) => ({
  i,
  text: String(i).padStart(5, "0") + "x".repeat(1500),
  numbers: Array.from({ length: 300 }, (_, k) => i + k),
});

const piece = task("tsPiece", async (i: number) => {
  runs.set(i, (runs.get(i) ?? 0) + 1);
  return pieceValue(i);
});

const longHistory = entrypoint({ name: "tsLongHistory" }, async (n: number) => {
  const results = await Promise.all(Array.from({ length: n }, (_, i) => piece(i)));
  const answer = interrupt<string>({ recorded: results.length });
  return {
    answer,
    count: results.length,
    inOrder: results.every((r, i) => r.i === i),
    same: results.every((r, i) => r.text === pieceValue(i).text && r.numbers.join() === pieceValue(i).numbers.join()),
  };
});

const huge = task("tsHuge", async (size: number) => "y".repeat(size));
const tooLarge = entrypoint({ name: "tsTooLarge" }, async (size: number) => await huge(size));
const small = task("tsSmall", async (i: number) => i * 2);
const quick = entrypoint({ name: "tsQuick" }, async (n: number) =>
  Promise.all(Array.from({ length: n }, (_, i) => small(i))),
);

describe("journals of any size", () => {
  let served: Served;
  let client: Client;

  before(async () => {
    served = await serveFunctions([piece, longHistory, huge, tooLarge, small, quick]);
    client = served.client;
  });

  after(() => served?.stop());

  test("a journal over the message limit resumes without re-running a task", async () => {
    const first = await client.invoke(longHistory, PIECES, { threadId: "ts-history" });
    assert.equal(first.state, "interrupted");
    assert.equal(runs.size, PIECES);
    const resumed = await client.invoke(longHistory, new Command({ resume: "go" }), {
      threadId: "ts-history",
    });
    assert.equal(resumed.state, "succeeded");
    assert.deepEqual(resumed.output, { answer: "go", count: PIECES, inOrder: true, same: true });
    assert.ok([...runs.values()].every((n) => n === 1), "a recorded task ran again");
  });

  test("a result over the payload limit fails its run; other runs go on", async () => {
    for (const size of [2 * PAYLOAD + 1024 * 1024 + 1024, PAYLOAD + 1024]) {
      // Its outcome is caught as it comes, while another run goes on.
      const failing = client.invoke(tooLarge, size, { threadId: `ts-too-large-${size}` }).then(
        () => undefined,
        (error: unknown) => error,
      );
      const other = await client.invoke(quick, 5, { threadId: `ts-meanwhile-${size}` });
      assert.deepEqual(other.output, [0, 2, 4, 6, 8]);
      const error = await failing;
      assert.ok(error instanceof RunFailedError, String(error));
      assert.equal(error.run.error?.type, "PayloadTooLargeError");
      assert.match(error.run.error?.message ?? "", new RegExp(`at most ${PAYLOAD} \\(max_payload_bytes\\)`));
    }
  });
});
