/**
 * The client and the worker beyond the doc examples: the bidirectional
 * session, typed errors with their ErrorInfo reason, the worker's bounded
 * concurrency, and reconnecting after the server restarts.
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  CairnError,
  Client,
  NotFoundError,
  ThreadBusyError,
  ThreadNotFoundError,
  Worker,
  entrypoint,
  interrupt,
  task,
} from "../src/index.js";
import { startServer, type Server } from "./server.js";

// --- functions ---------------------------------------------------------------------

const draft = task("draft", async (topic: string) => `draft on ${topic}`);

const review = entrypoint({ name: "review" }, async (topic: string) => {
  const text = await draft(topic);
  const verdict = interrupt<string>({ text, question: "ok?" });
  const edit = interrupt<string>({ text, question: "any edit?" });
  return { text, verdict, edit };
});

/** Tasks of the bounded-concurrency test wait until the test lets them go. */
const limit = { total: 6, max: 2 };
const flow = { started: 0, inFlight: 0, maxInFlight: 0, blocked: [] as (() => void)[] };

function releaseWhenFull(): void {
  // Let the oldest blocked task finish once the worker holds as many as it may,
  // or once every task has started.
  if (flow.blocked.length >= limit.max || flow.started === limit.total) flow.blocked.shift()?.();
}

const held = task("held", async (n: number) => {
  flow.started += 1;
  flow.inFlight += 1;
  flow.maxInFlight = Math.max(flow.maxInFlight, flow.inFlight);
  const gate = new Promise<void>((resolve) => flow.blocked.push(resolve));
  releaseWhenFull();
  await gate;
  flow.inFlight -= 1;
  releaseWhenFull();
  return n * 10;
});

const fanOut = entrypoint({ name: "fanOut" }, async (count: number) =>
  Promise.all(Array.from({ length: count }, (_, i) => held(i))),
);

let openGate: () => void = () => undefined;
const gate = new Promise<void>((resolve) => (openGate = resolve));
const waitForGate = task("waitForGate", async (x: string) => {
  await gate;
  return x;
});
const blocking = entrypoint({ name: "blocking" }, async (x: string) => waitForGate(x));

const echo = entrypoint({ name: "echo" }, async (x: unknown) => ({ echoed: x }));

let openHold: () => void = () => undefined;
const hold = new Promise<void>((resolve) => (openHold = resolve));
const waitForHold = task("waitForHold", async (x: string) => {
  await hold;
  return x;
});
const holding = entrypoint({ name: "holding" }, async (x: string) => waitForHold(x));

const inner = entrypoint({ name: "inner" }, async (x: string) => x.length);
const outer = entrypoint({ name: "outer" }, async (x: string) => ({ length: await inner.invoke(x) }));

describe("client and worker", () => {
  let server: Server;
  let worker: Worker;
  let running: Promise<void>;
  let client: Client;

  before(async () => {
    server = await startServer();
    worker = new Worker({
      address: server.address,
      functions: [
        ...[draft, review, held, fanOut, waitForGate, blocking, echo, inner, outer],
        ...[waitForHold, holding],
      ],
      maxConcurrency: limit.max,
    });
    running = worker.run();
    await worker.waitConnected();
    client = new Client({ address: server.address });
  });

  after(async () => {
    openGate();
    openHold();
    client?.close();
    await worker?.stop({ graceMs: 1000 });
    await running;
    await server?.stop();
  });

  test("a session answers each interrupt on the same stream", async () => {
    const session = client.session(review, "owls", { threadId: "session", streamMode: "updates" });
    const answers = ["yes", "none"];
    const states: string[] = [];
    let output: unknown;
    for await (const event of session) {
      if (!event.run) continue;
      states.push(event.run.state);
      if (event.run.state === "interrupted") {
        assert.equal(session.interrupts.length, 1);
        session.resume(answers.shift());
      } else if (event.run.state === "succeeded") {
        output = event.run.output;
      }
    }
    assert.deepEqual(output, { text: "draft on owls", verdict: "yes", edit: "none" });
    assert.deepEqual(
      states.filter((s) => s !== "running"),
      ["interrupted", "interrupted", "succeeded"],
    );
  });

  test("errors carry their status code and ErrorInfo reason", async () => {
    const missing = await client.getThread("no-such-thread").catch((e: unknown) => e);
    assert.ok(missing instanceof ThreadNotFoundError);
    assert.ok(missing instanceof NotFoundError && missing instanceof CairnError);
    assert.equal(missing.code, "NOT_FOUND");
    assert.equal(missing.reason, "THREAD_NOT_FOUND");

    const unknown = await client.invoke("no-such-entrypoint", 1, { threadId: "t" }).catch((e: unknown) => e);
    assert.ok(unknown instanceof NotFoundError);
    assert.equal(unknown.reason, "TARGET_NOT_FOUND");

    const first = client.stream(blocking, "x", { threadId: "busy", streamMode: "updates" });
    const started = await first.next(); // the run is RUNNING once its first event arrives
    assert.equal(started.value?.run?.state, "running");
    const busy = await client.invoke(echo, 1, { threadId: "busy" }).catch((e: unknown) => e);
    assert.ok(busy instanceof ThreadBusyError);
    assert.equal(busy.code, "FAILED_PRECONDITION");
    assert.equal(busy.reason, "THREAD_BUSY");
    openGate();
    let last;
    for await (const event of first) if (event.run) last = event.run;
    assert.equal(last?.state, "succeeded");
  });

  test("multitaskStrategy interrupt stops the thread's active run, then runs", async () => {
    const first = client.stream(holding, "x", { threadId: "multitask", streamMode: "updates" });
    const started = await first.next();
    const firstId = started.value?.run?.runId ?? "";
    assert.ok(firstId);
    const second = await client.invoke(echo, 2, {
      threadId: "multitask",
      multitaskStrategy: "interrupt",
    });
    assert.deepEqual(second.output, { echoed: 2 });
    assert.equal((await client.getRun(firstId)).state, "cancelled");
    openHold();
    let last;
    for await (const event of first) if (event.run) last = event.run;
    assert.equal(last?.state, "cancelled");
  });

  test("listWorkers shows this worker: its language, names and free slots", async () => {
    const workers = await client.listWorkers();
    assert.equal(workers.length, 1);
    const [listed] = workers;
    assert.equal(listed.sdkLanguage, "typescript");
    assert.equal(listed.identity, `${process.pid}@${hostname()}`);
    assert.ok(listed.entrypoints.includes("review") && listed.tasks.includes("draft"));
    assert.equal(listed.maxConcurrency, limit.max);
    assert.ok(listed.freeTaskSlots <= limit.max && listed.freeEntrypointSlots <= listed.maxEntrypoints);
    assert.ok(listed.replicaId !== "");
  });

  test("an entrypoint runs another entrypoint as a nested workflow", async () => {
    const run = await client.invoke(outer, "owl", { threadId: "nested" });
    assert.deepEqual(run.output, { length: 3 });
  });

  test("the worker never runs more tasks at once than its maxConcurrency", async () => {
    const run = await client.invoke(fanOut, limit.total, { threadId: "fan" });
    assert.deepEqual(run.output, [0, 10, 20, 30, 40, 50]);
    assert.equal(flow.started, limit.total);
    assert.equal(flow.maxInFlight, limit.max);
  });
});

describe("worker reconnects", () => {
  test("after the server restarts, the worker reconnects by itself and serves the next run", async () => {
    const folder = mkdtempSync(join(tmpdir(), "cairn-ts-restart-"));
    let server = await startServer({ folder });
    const port = Number(server.address.split(":")[1]);
    const worker = new Worker({ address: server.address, functions: [echo], log: () => undefined });
    const running = worker.run();
    const client = new Client({ address: server.address });
    try {
      await worker.waitConnected();
      assert.deepEqual((await client.invoke(echo, 1, { threadId: "before" })).output, { echoed: 1 });

      process.kill(server.process.pid!, "SIGKILL");
      await new Promise((resolve) => server.process.once("exit", resolve));
      server = await startServer({ folder, port });

      // The run waits for a worker serving "echo": the reconnected one.
      const run = await client.invoke(echo, 2, { threadId: "after" });
      assert.deepEqual(run.output, { echoed: 2 });
      assert.ok(worker.connected);
    } finally {
      client.close();
      await worker.stop({ graceMs: 1000 });
      await running;
      await server.stop();
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
