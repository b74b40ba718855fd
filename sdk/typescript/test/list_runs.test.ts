/**
 * Client.listRuns without a thread: the runs of every thread of the
 * client's namespace, newest first, filtered by state and to those that
 * wait on a worker; with a thread, as before.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { Client, Worker, entrypoint, remoteTask, type Run } from "../src/index.js";
import { startServer } from "./server.js";

const echo = entrypoint({ name: "echo" }, async (x: string) => x);
const nobodyServes = remoteTask<string, string>("nobody_serves_this");
const callsNobody = entrypoint({ name: "callsNobody" }, async (x: string) => nobodyServes(x));

const ids = (runs: Run[]) => runs.map((r) => r.runId);

test("listRuns without a thread lists every thread's runs, and with waiting those that wait", async () => {
  const server = await startServer();
  const worker = new Worker({ address: server.address, functions: [echo, callsNobody], log: () => undefined });
  const running = worker.run();
  const client = new Client({ address: server.address });
  try {
    await worker.waitConnected();
    const done: Run[] = [];
    for (const threadId of ["t1", "t2", "t1"]) done.push(await client.invoke(echo, "x", { threadId }));
    const newestFirst = ids(done).reverse();

    const every = await client.listRuns();
    assert.deepEqual(ids(every), newestFirst);
    assert.deepEqual(every.map((r) => r.threadId), ["t1", "t2", "t1"]);
    assert.deepEqual(ids(await client.listRuns({ limit: 2 })), newestFirst.slice(0, 2));
    assert.deepEqual(ids(await client.listRuns("t1")), [done[2].runId, done[0].runId]);
    assert.deepEqual(ids(await client.listRuns(undefined, { state: "succeeded" })), newestFirst);

    // Sync durability: the run's row is stored before the event that says it waits.
    let waiting: Run | undefined;
    for await (const event of client.stream(callsNobody, "x", { threadId: "w", durability: "sync" })) {
      if (event.run && event.run.waiting.length > 0) {
        waiting = event.run;
        break;
      }
    }
    assert.ok(waiting);
    const listed = await client.listRuns({ waiting: true });
    assert.deepEqual(ids(listed), [waiting.runId]);
    assert.equal(listed[0].threadId, "w");
    assert.deepEqual(listed[0].waiting.map((w) => [w.reason, w.taskName]), [["no_worker", "nobody_serves_this"]]);
    assert.deepEqual(ids(await client.listRuns({ state: "running", waiting: true })), [waiting.runId]);
    assert.deepEqual(await client.listRuns("t1", { waiting: true }), []);
    assert.deepEqual(ids(await client.listRuns("w", { waiting: true })), [waiting.runId]);

    await client.cancelRun(waiting.runId);
    assert.deepEqual(await client.listRuns({ waiting: true }), []);
  } finally {
    client.close();
    await worker.stop({ graceMs: 1000 });
    await running;
    await server.stop();
  }
});
