/**
 * Task timeouts from TypeScript, against a real `cairn serve` process:
 * heartbeat() keeps a long task on its worker, a silent one is dispatched
 * again with the details of its last heartbeat, and a task no worker takes
 * fails its caller with a TaskTimeoutError. Short real timeouts; nothing
 * asserts on elapsed time.
 */

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import {
  Client,
  TaskTimeoutError,
  entrypoint,
  getConfig,
  getHeartbeatDetails,
  heartbeat,
  remoteTask,
  task,
} from "../src/index.js";
import { serveFunctions, type Served } from "./served.js";

const starts = new Map<string, number>();
const start = (name: string) => starts.set(name, (starts.get(name) ?? 0) + 1).get(name)!;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Runs for many of its heartbeat timeouts, heartbeating all along.
const longTask = task(
  { name: "tsLongTask", timeouts: { heartbeat: 500 } },
  async (steps: number) => {
    start("tsLongTask");
    for (let step = 0; step < steps; step++) {
      await pause(50);
      heartbeat({ step });
    }
    return steps;
  },
);

const runsLongTask = entrypoint({ name: "tsRunsLongTask" }, async (steps: number) =>
  longTask(steps),
);

// The first execution heartbeats once with its progress, then goes silent.
const goesSilent = task(
  { name: "tsGoesSilent", timeouts: { heartbeat: 300 } },
  async (pages: number) => {
    const from = getHeartbeatDetails<number>() ?? 0;
    if (start("tsGoesSilent") === 1) {
      heartbeat(2);
      await new Promise<void>((resolve) => getConfig().signal.addEventListener("abort", () => resolve()));
      return { pages: -1, from };
    }
    return { pages, from };
  },
);

const callsSilentTask = entrypoint({ name: "tsCallsSilentTask" }, async (pages: number) =>
  goesSilent(pages),
);

const nobody = remoteTask<string, string>({
  name: "tsNobodyServesThis",
  timeouts: { scheduleToStart: 300 },
});

const catchesTimeout = entrypoint({ name: "tsCatchesTimeout" }, async (x: string) => {
  try {
    return await nobody(x);
  } catch (error) {
    if (error instanceof TaskTimeoutError) return { timeout: error.timeout, task: error.taskName };
    throw error;
  }
});

describe("task timeouts", () => {
  let served: Served;
  let client: Client;

  before(async () => {
    served = await serveFunctions([longTask, runsLongTask, goesSilent, callsSilentTask, catchesTimeout]);
    client = served.client;
  });

  after(() => served?.stop());

  beforeEach(() => starts.clear());

  test("heartbeat() keeps a long task on its worker", async () => {
    const run = await client.invoke(runsLongTask, 30, { threadId: "long" });
    assert.equal(run.output, 30);
    assert.equal(starts.get("tsLongTask"), 1);
  });

  test("a silent task runs again with the details of its last heartbeat", async () => {
    const run = await client.invoke(callsSilentTask, 5, { threadId: "silent" });
    assert.deepEqual(run.output, { pages: 5, from: 2 });
    assert.equal(starts.get("tsGoesSilent"), 2);
  });

  test("a task no worker takes fails its caller with a TaskTimeoutError", async () => {
    const run = await client.invoke(catchesTimeout, "x", { threadId: "nobody" });
    assert.deepEqual(run.output, { timeout: "schedule_to_start", task: "tsNobodyServesThis" });
  });

  test("an entrypoint takes only a scheduleToStart timeout", () => {
    assert.throws(
      () => entrypoint({ name: "bad", timeouts: { heartbeat: 1 } as never }, async () => 1),
      /scheduleToStart/,
    );
  });
});
