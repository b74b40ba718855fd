/**
 * The state of a thread whose recorded results exceed one response comes in
 * pages (GetState's tasks_page_token, GetStateHistory's page_token); the
 * client follows them, so getState returns every task result and
 * getStateHistory every snapshot, `limit` counting across pages. The service
 * runs with a small max_payload_bytes (16 KiB, a response of about 1 MiB),
 * so a few hundred results of 9 KB page, and the resumed journal reaches the
 * worker in pages too.
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { Client, Command, entrypoint, interrupt, task, type StateSnapshot } from "../src/index.js";
import { ThreadService } from "../src/gen/cairn/v1/thread_service_pb.js";
import { connect, type Connection } from "../src/transport.js";
import { serveFunctions, type Served } from "./served.js";

const PAYLOAD = 16 * 1024;
const FIRST = 300;
const SECOND = 250;
const runs = new Map<number, number>();

const pageValue = (i: number) => ({ i, text: String(i).padStart(5, "0") + "x".repeat(9000) });
// In the output, hence in the values of a finished run's checkpoint: more
// than the room a full page of tasks leaves, so that such a snapshot starts
// the next page of the history.
const NOTE = "n".repeat(10_000);

const pagePiece = task("tsPagePiece", async (i: number) => {
  runs.set(i, (runs.get(i) ?? 0) + 1);
  return pageValue(i);
});

const pagedThread = entrypoint({ name: "tsPagedThread" }, async (span: { from: number; n: number }) => {
  const results = await Promise.all(Array.from({ length: span.n }, (_, k) => pagePiece(span.from + k)));
  const answer = interrupt<string>({ recorded: results.length });
  const whole = results.every((r, k) => r.text === pageValue(span.from + k).text);
  return { answer, count: results.length, whole, note: NOTE };
});

/** The recorded results of pagePiece in `snapshot`, by argument. */
const pieces = (snapshot: StateSnapshot) =>
  snapshot.tasks
    .filter((t) => t.name === "tsPagePiece")
    .map((t) => t.result as { i: number; text: string })
    .sort((a, b) => a.i - b.i);

const range = (from: number, n: number) => Array.from({ length: n }, (_, k) => from + k);

describe("a thread's state larger than one response", () => {
  let served: Served;
  let client: Client;
  let raw: Connection;

  before(async () => {
    served = await serveFunctions([pagePiece, pagedThread], {
      args: ["--max-payload-bytes", String(PAYLOAD)],
    });
    client = served.client;
    raw = connect(served.server.address);
  });

  after(async () => {
    raw?.close();
    await served?.stop();
  });

  test("getState and getStateHistory return every task result", async () => {
    const threadId = "ts-paged-state";
    // Two runs on the thread, each interrupted with its results recorded.
    const first = await client.invoke(pagedThread, { from: 0, n: FIRST }, { threadId });
    assert.equal(first.state, "interrupted");
    const done = await client.invoke(pagedThread, new Command({ resume: "one" }), { threadId });
    assert.deepEqual(done.output, { answer: "one", count: FIRST, whole: true, note: NOTE });
    const second = await client.invoke(pagedThread, { from: FIRST, n: SECOND }, { threadId });
    assert.equal(second.state, "interrupted");
    assert.ok([...runs.values()].every((n) => n === 1), "a recorded task ran again");
    assert.equal(runs.size, FIRST + SECOND);

    // The service pages both: one response holds neither all the tasks of
    // the latest checkpoint nor all the snapshots.
    const threads = createClient(ThreadService, raw.transport);
    const firstPage = await threads.getState({ threadId });
    assert.ok(firstPage.state!.nextTasksPageToken, "GetState did not page its tasks");
    assert.ok(firstPage.state!.tasks.length < SECOND);
    const firstHistoryPage = await threads.getStateHistory({ threadId });
    assert.ok(firstHistoryPage.nextPageToken, "GetStateHistory did not page");

    const state = await client.getState(threadId);
    assert.equal(state.config?.configurable.checkpoint_id, firstPage.state!.config!.checkpointId);
    assert.deepEqual(
      pieces(state).map((r) => r.i),
      range(FIRST, SECOND),
    );
    assert.ok(pieces(state).every((r) => r.text === pageValue(r.i).text));
    assert.deepEqual(state.interrupts.map((i) => i.value), [{ recorded: SECOND }]);

    const history = await client.getStateHistory(threadId);
    assert.deepEqual(history[0].config, state.config);
    const withPieces = history.filter((s) => pieces(s).length > 0);
    assert.deepEqual(
      withPieces.map((s) => pieces(s).map((r) => r.i)),
      [range(FIRST, SECOND), range(0, FIRST)],
    );
    const ids = history.map((s) => s.config?.configurable.checkpoint_id);
    assert.equal(new Set(ids).size, ids.length, "a snapshot came twice");

    // `limit` counts the snapshots of all pages.
    for (const limit of [1, history.length - 1, history.length, history.length + 3]) {
      const limited = await client.getStateHistory(threadId, { limit });
      assert.deepEqual(
        limited.map((s) => s.config?.configurable.checkpoint_id),
        ids.slice(0, limit),
        `limit ${limit}`,
      );
      assert.deepEqual(
        limited.map((s) => pieces(s).length),
        history.slice(0, limit).map((s) => pieces(s).length),
        `limit ${limit}`,
      );
    }

    // The journal reaches the worker in pages; no task runs again.
    const resumed = await client.invoke(pagedThread, new Command({ resume: "two" }), { threadId });
    assert.deepEqual(resumed.output, { answer: "two", count: SECOND, whole: true, note: NOTE });
    assert.ok([...runs.values()].every((n) => n === 1), "a recorded task ran again");
  });
});
