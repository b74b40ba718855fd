/**
 * A run that waits on a task no connected worker serves says so: its
 * stream's lifecycle events and getRun/listRuns carry `run.waiting`.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { Client, Worker, entrypoint, remoteTask, type Run } from "../src/index.js";
import { startServer } from "./server.js";

const nobodyServes = remoteTask<string, string>("nobody_serves_this");
const callsNobody = entrypoint({ name: "callsNobody" }, async (x: string) => nobodyServes(x));

const waits = (run: Run) => run.waiting.map((w) => [w.reason, w.taskName]);

test("a run waiting on a task no worker serves reports it, naming the task", async () => {
  const server = await startServer();
  const worker = new Worker({ address: server.address, functions: [callsNobody], log: () => undefined });
  const running = worker.run();
  const client = new Client({ address: server.address });
  try {
    await worker.waitConnected();
    let waiting: Run | undefined;
    for await (const event of client.stream(callsNobody, "x", { threadId: "w", streamMode: "updates" })) {
      if (event.run && event.run.waiting.length > 0) {
        waiting = event.run;
        break;
      }
    }
    assert.ok(waiting);
    assert.deepEqual(waits(waiting), [["no_worker", "nobody_serves_this"]]);
    assert.ok(waiting.waiting[0].since instanceof Date);
    assert.deepEqual(waits(await client.getRun(waiting.runId)), [["no_worker", "nobody_serves_this"]]);
    const [listed] = await client.listRuns("w");
    assert.deepEqual(waits(listed), [["no_worker", "nobody_serves_this"]]);
    const cancelled = await client.cancelRun(waiting.runId);
    assert.deepEqual(cancelled.waiting, []);
  } finally {
    client.close();
    await worker.stop({ graceMs: 1000 });
    await running;
    await server.stop();
  }
});
