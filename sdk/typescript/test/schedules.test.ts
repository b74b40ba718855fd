/**
 * `client.schedules` against a real `cairn serve` whose clock the test moves
 * (CAIRN_CLOCK_FILE holds seconds added to the wall clock): create, get,
 * list, pause, resume, trigger and delete; a due time fires once and its run
 * is served by this process's worker; bad specs and unknown ids throw the
 * typed errors. No test waits for time to pass.
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  AlreadyExistsError,
  Client,
  InvalidArgumentError,
  NotFoundError,
  Worker,
  entrypoint,
  type Schedule,
} from "../src/index.js";
import { startServer, type Server } from "./server.js";

const shout = entrypoint({ name: "shout" }, async (text: string) => text.toUpperCase());

/** The schedule once `done` holds for it (polled: no event announces a firing). */
async function until(client: Client, id: string, done: (s: Schedule) => boolean): Promise<Schedule> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const schedule = await client.schedules.get(id);
    const settled = schedule.recentFirings.every((f) => f.state !== "pending");
    if (settled && done(schedule)) return schedule;
    if (Date.now() > deadline) throw new Error(`timed out: ${JSON.stringify(schedule.recentFirings)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("client.schedules", () => {
  let server: Server;
  let worker: Worker;
  let running: Promise<void>;
  let client: Client;

  before(async () => {
    server = await startServer({ testClock: true });
    worker = new Worker({ address: server.address, functions: [shout], log: () => undefined });
    running = worker.run();
    await worker.waitConnected();
    client = new Client({ address: server.address });
  });

  after(async () => {
    client?.close();
    await worker?.stop({ graceMs: 1000 });
    await running;
    await server?.stop();
  });

  test("create, get, list, pause, resume and delete", async () => {
    const created = await client.schedules.create(shout, "hi", {
      cron: "0 8 * * MON-FRI",
      timeZone: "Europe/Paris",
      scheduleId: "mornings",
      overlapPolicy: "queue",
      threadPolicy: "one_thread",
    });
    assert.equal(created.cron, "0 8 * * MON-FRI");
    assert.equal(created.intervalMs, undefined);
    assert.equal(created.threadId, "schedule-mornings");
    assert.equal(created.overlapPolicy, "queue");
    assert.equal(created.catchupPolicy, "latest");
    assert.equal(created.input, "hi");
    assert.ok(created.nextFireAt && created.nextFireAt.getTime() > Date.now());
    assert.deepEqual(await client.schedules.get("mornings"), created);

    const paused = await client.schedules.pause("mornings");
    assert.equal(paused.paused, true);
    assert.equal(paused.nextFireAt, undefined);
    const resumed = await client.schedules.resume("mornings");
    assert.equal(resumed.paused, false);
    assert.ok(resumed.nextFireAt);
    assert.ok((await client.schedules.list()).some((s) => s.scheduleId === "mornings"));

    await client.schedules.delete("mornings");
    await assert.rejects(client.schedules.get("mornings"), (error: unknown) => {
      assert.ok(error instanceof NotFoundError);
      assert.equal(error.reason, "SCHEDULE_NOT_FOUND");
      return true;
    });
  });

  test("a due time fires once and the run is served here; trigger fires now", async () => {
    await client.schedules.create("shout", "tick", { intervalMs: 60_000, scheduleId: "minutely" });
    server.clock!.advance(60);
    const fired = await until(client, "minutely", (s) => s.recentFirings.length === 1);
    const [firing] = fired.recentFirings;
    assert.equal(firing.state, "started");
    assert.equal(firing.threadId, `minutely-${firing.firingId}`);
    assert.ok(fired.nextFireAt && fired.nextFireAt.getTime() > server.clock!.now());

    const triggered = await client.schedules.trigger("minutely", { requestId: "by-hand" });
    assert.equal(triggered.state, "started");
    assert.equal(triggered.triggered, true);
    assert.deepEqual(await client.schedules.trigger("minutely", { requestId: "by-hand" }), triggered);
    for (const runId of [firing.runId, triggered.runId]) {
      for await (const _event of client.join(runId)) {
        // until the run ends
      }
      assert.equal((await client.getRun(runId)).output, "TICK");
    }
  });

  test("bad specs and taken ids throw typed errors", async () => {
    await assert.rejects(
      client.schedules.create("shout", null, { cron: "61 * * * *" }),
      (error: unknown) => error instanceof InvalidArgumentError && error.metadata.field === "cron",
    );
    await assert.rejects(
      client.schedules.create("shout", null, { cron: "@daily", timeZone: "Mars/Olympus" }),
      InvalidArgumentError,
    );
    await assert.rejects(client.schedules.create("shout", null, { intervalMs: 500 }), InvalidArgumentError);
    await assert.rejects(client.schedules.create("shout", null, {}), TypeError);
    await client.schedules.create("shout", null, { cron: "@daily", scheduleId: "taken" });
    await assert.rejects(
      client.schedules.create("shout", null, { cron: "@daily", scheduleId: "taken" }),
      AlreadyExistsError,
    );
  });
});
