/**
 * Several addresses: the client fails over to the next one when its server is
 * gone (a unary call, a run start, a stream in the middle of a run), and the
 * worker serves every address at once under one concurrency limit. Every
 * server is a real `cairn serve` process.
 */

import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  Client,
  ThreadNotFoundError,
  UnavailableError,
  Worker,
  entrypoint,
  task,
  type RunEvent,
} from "../src/index.js";
import { connectionLoss, parseAddresses } from "../src/failover.js";
import { freePort, startServer, type Server } from "./server.js";

const quiet = () => undefined;

// --- functions ---------------------------------------------------------------------

const echo = entrypoint({ name: "echo" }, async (x: unknown) => ({ echoed: x }));

const shout = task("shout", async (word: string) => word.toUpperCase());
const greet = entrypoint({ name: "greet" }, async (name: string) => `hello ${await shout(name)}`);

/**
 * The shared-limit test (maxConcurrency 1): A's task holds the only slot;
 * B's run schedules a task, then a nested entrypoint (the probe). Server B
 * sends the task's assignment before the probe's on one stream, so when the
 * probe runs, the worker has received B's task: it must be waiting, not
 * running next to A's.
 */
const limitFlow = { inFlight: 0, maxInFlight: 0, started: [] as string[], inFlightAtProbe: -1 };
let openLimitGate: () => void = quiet;
const limitGate = new Promise<void>((resolve) => (openLimitGate = resolve));
let holdStarted: () => void = quiet;
const firstHoldStarted = new Promise<void>((resolve) => (holdStarted = resolve));
let probed: () => void = quiet;
const probeRan = new Promise<void>((resolve) => (probed = resolve));

const hold = task("hold", async (label: string) => {
  limitFlow.inFlight += 1;
  limitFlow.maxInFlight = Math.max(limitFlow.maxInFlight, limitFlow.inFlight);
  limitFlow.started.push(label);
  holdStarted();
  await limitGate;
  limitFlow.inFlight -= 1;
  return label;
});

const holdOne = entrypoint({ name: "holdOne" }, async (label: string) => hold(label));

const probe = entrypoint({ name: "probe" }, async (_: string) => {
  limitFlow.inFlightAtProbe = limitFlow.inFlight;
  probed();
  return limitFlow.inFlight;
});

const holdThenProbe = entrypoint({ name: "holdThenProbe" }, async (label: string) => {
  const held = hold(label); // scheduled first: its assignment goes out first
  const inFlightAtProbe = await probe.invoke("probe");
  return { held: await held, inFlightAtProbe };
});

/** Step 2 stops on its first execution until the test opens the gate. */
const executions = new Map<number, number>();
let reachedStep2: () => void = quiet;
const step2Reached = new Promise<void>((resolve) => (reachedStep2 = resolve));
let openGate: () => void = quiet;
const gate = new Promise<void>((resolve) => (openGate = resolve));

const step = task("step", async (i: number) => {
  executions.set(i, (executions.get(i) ?? 0) + 1);
  if (i === 2) {
    reachedStep2();
    await gate;
  }
  return i * i;
});

/** Holds on its first execution until the test opens the same gate. */
let reachedPause: () => void = quiet;
const pauseReached = new Promise<void>((resolve) => (reachedPause = resolve));
const pause = task("pause", async (x: string) => {
  reachedPause();
  await gate;
  return x;
});
const paused = entrypoint({ name: "paused" }, async (x: string) => ({ paused: await pause(x) }));

const steps = entrypoint({ name: "steps" }, async (count: number) => {
  const squares: number[] = [];
  for (let i = 0; i < count; i++) squares.push(await step(i));
  return squares;
});

async function collect(events: AsyncIterable<RunEvent>): Promise<RunEvent[]> {
  const seen: RunEvent[] = [];
  for await (const event of events) seen.push(event);
  return seen;
}

// --- addresses and what counts as a lost server ---------------------------------------

describe("addresses and connection losses", () => {
  test("one address, a comma-separated string or an array; duplicates once", () => {
    assert.deepEqual(parseAddresses(undefined), ["127.0.0.1:50051"]);
    assert.deepEqual(parseAddresses("a:1"), ["a:1"]);
    assert.deepEqual(parseAddresses(" a:1, b:2 ,,a:1"), ["a:1", "b:2"]);
    assert.deepEqual(parseAddresses(["a:1", "b:2,c:3"]), ["a:1", "b:2", "c:3"]);
    assert.throws(() => parseAddresses(" , "), RangeError);
    assert.throws(() => new Client({ address: [] }), RangeError);
  });

  test("a refused connection, a shutting-down server and a broken stream are losses; statuses are not", () => {
    const refused = new ConnectError("connect ECONNREFUSED", Code.Unavailable);
    refused.cause = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    assert.equal(connectionLoss(refused), "refused");

    const info = new BinaryWriter().uint32(10).string("SHUTTING_DOWN").finish();
    const status = (code: Code) => new Headers({ "grpc-status": String(code) });
    const shuttingDown = new ConnectError("shutting down", Code.Unavailable, status(Code.Unavailable));
    shuttingDown.details.push({ type: "google.rpc.ErrorInfo", value: info });
    assert.equal(connectionLoss(shuttingDown), "refused");
    const unavailableMidCall = new ConnectError("socket closed", Code.Unavailable, status(Code.Unavailable));
    assert.equal(connectionLoss(unavailableMidCall), "lost");

    // What connect-node reports when the server dies during a call.
    const reset = new ConnectError("http/2 stream closed with error code CANCEL (0x8)", Code.Canceled);
    assert.equal(connectionLoss(reset), "lost");

    assert.equal(connectionLoss(new ConnectError("no", Code.NotFound, status(Code.NotFound))), undefined);
    assert.equal(connectionLoss(new ConnectError("stop", Code.Canceled, status(Code.Canceled))), undefined);
    assert.equal(connectionLoss(new ConnectError("late", Code.DeadlineExceeded)), undefined);
    assert.equal(connectionLoss(new Error("not a call")), undefined);
  });
});

// --- the client ----------------------------------------------------------------------

describe("client with several addresses", () => {
  let server: Server;
  let worker: Worker;
  let running: Promise<void>;
  let dead: string;

  before(async () => {
    server = await startServer();
    dead = `127.0.0.1:${await freePort()}`; // nothing listens there
    worker = new Worker({ address: server.address, functions: [echo] });
    running = worker.run();
    await worker.waitConnected();
  });

  after(async () => {
    await worker?.stop({ graceMs: 1000 });
    await running;
    await server?.stop();
  });

  test("given [dead, live], invoke runs once on the live address", async () => {
    const client = new Client({ address: [dead, server.address] });
    try {
      assert.deepEqual(client.addresses, [dead, server.address]);
      const run = await client.invoke(echo, 1, { threadId: "invoke" });
      assert.equal(run.state, "succeeded");
      assert.deepEqual(run.output, { echoed: 1 });
      assert.equal((await client.listRuns("invoke")).length, 1);
    } finally {
      client.close();
    }
  });

  test("given 'dead,live', a stream and reads go to the live address", async () => {
    const client = new Client(`${dead}, ${server.address}`);
    try {
      const events = await collect(client.stream(echo, 2, { threadId: "stream" }));
      assert.equal(events.at(-1)?.run?.state, "succeeded");
      assert.deepEqual(events.at(-1)?.run?.output, { echoed: 2 });
      assert.equal((await client.getThread("stream")).threadId, "stream");
      // Another status than UNAVAILABLE is thrown as before.
      await assert.rejects(client.getThread("no-such-thread"), ThreadNotFoundError);
    } finally {
      client.close();
    }
  });

  test("when no address answers, a call throws UnavailableError once its budget is spent", async () => {
    const other = `127.0.0.1:${await freePort()}`;
    const client = new Client({ address: [dead, other], failoverTimeoutMs: 200 });
    try {
      const error = await client.getThread("t").catch((e: unknown) => e);
      assert.ok(error instanceof UnavailableError, String(error));
      assert.equal(error.code, "UNAVAILABLE");
      await assert.rejects(collect(client.join("no-such-run")), UnavailableError);
    } finally {
      client.close();
    }
  });
});

// --- the worker ---------------------------------------------------------------------

describe("worker with several addresses", () => {
  let servers: Server[];
  let worker: Worker;
  let running: Promise<void>;
  let clients: Client[];

  before(async () => {
    servers = await Promise.all([startServer(), startServer()]); // two SQLite files
    worker = new Worker({
      address: servers.map((s) => s.address),
      functions: [echo, shout, greet, hold, holdOne, probe, holdThenProbe],
      maxConcurrency: 1,
    });
    running = worker.run();
    await worker.waitConnected({ all: true });
    clients = servers.map((s) => new Client({ address: s.address }));
  });

  after(async () => {
    for (const client of clients ?? []) client.close();
    await worker?.stop({ graceMs: 1000 });
    await running;
    await Promise.all((servers ?? []).map((s) => s.stop()));
  });

  test("it is connected to both servers and serves runs started on each", async () => {
    assert.deepEqual(worker.connectedAddresses.sort(), servers.map((s) => s.address).sort());
    const [first, second] = await Promise.all([
      clients[0].invoke(greet, "ada", { threadId: "greet" }),
      clients[1].invoke(greet, "bob", { threadId: "greet" }),
    ]);
    assert.equal(first.output, "hello ADA");
    assert.equal(second.output, "hello BOB");
    // Each run lives on the server that started it.
    assert.equal((await clients[0].getRun(first.runId)).output, "hello ADA");
    await assert.rejects(clients[1].getRun(first.runId));
  });

  test("maxConcurrency holds over both connections together", async () => {
    // Each server may hand the worker one task at once; the worker runs one
    // of all of them at once, and the other waits in it for the slot.
    const first = clients[0].invoke(holdOne, "a", { threadId: "limit" });
    await firstHoldStarted;
    const second = clients[1].invoke(holdThenProbe, "b", { threadId: "limit" });
    await probeRan;
    assert.equal(limitFlow.inFlightAtProbe, 1);
    assert.deepEqual(limitFlow.started, ["a"]);

    openLimitGate();
    const [fromFirst, fromSecond] = await Promise.all([first, second]);
    assert.equal(fromFirst.output, "a");
    assert.deepEqual(fromSecond.output, { held: "b", inFlightAtProbe: 1 });
    assert.deepEqual(limitFlow.started, ["a", "b"]);
    assert.equal(limitFlow.maxInFlight, 1);
  });
});

// --- a stream across a server crash --------------------------------------------------

describe("failover mid-stream", () => {
  test("a stream and an invoke survive a SIGKILL of their server: every event once, one run", async () => {
    // A and B share one SQLite file; B starts (on its own port) after A is
    // killed and recovers the run, as another replica would take it over.
    const folder = mkdtempSync(join(tmpdir(), "cairn-ts-failover-"));
    const a = await startServer({ folder });
    const addressB = `127.0.0.1:${await freePort()}`;
    let b: Server | undefined;
    const addresses = [a.address, addressB];
    const worker = new Worker({
      address: addresses,
      functions: [step, steps, pause, paused],
      reconnectMaxIntervalMs: 200,
      log: quiet,
    });
    const running = worker.run();
    // Generous: B has to start (a Python process) within the budget.
    const client = new Client({ address: addresses, failoverTimeoutMs: 120_000 });
    try {
      await worker.waitConnected();
      // Sync durability: an event is streamed only once stored, so a
      // recovered run never reuses an id a client has seen.
      const stream = client.stream(steps, 5, { threadId: "crash", durability: "sync" });
      const first = await stream.next();
      assert.equal(first.value?.run?.state, "running");
      const runId = first.value!.runId;
      const streamed = collect(stream);
      const joined = collect(client.join(runId));
      const invoked = client.invoke(paused, "x", { threadId: "crash-invoke", durability: "sync" });

      await step2Reached; // steps 0 and 1 are recorded; step 2 runs on A's connection
      await pauseReached; // the invoke's run is started and waits on A
      process.kill(a.process.pid!, "SIGKILL");
      await new Promise((resolve) => a.process.once("exit", resolve));
      b = await startServer({ folder, port: Number(addressB.split(":")[1]) });
      openGate();

      const events = [first.value!, ...(await streamed)];
      const ids = events.map((e) => e.eventId);
      assert.deepEqual(
        ids,
        ids.map((_, i) => i + 1),
        "event ids are 1..n: none missed, none repeated, in order",
      );
      assert.ok(events.every((e) => e.runId === runId));
      assert.deepEqual(
        events.filter((e) => e.mode === "updates").map((e) => e.data),
        [{ step: 0 }, { step: 1 }, { step: 4 }, { step: 9 }, { step: 16 }, { steps: [0, 1, 4, 9, 16] }],
      );
      const last = events.at(-1)?.run;
      assert.equal(last?.state, "succeeded");
      assert.deepEqual(last?.output, [0, 1, 4, 9, 16]);
      // Join (from the start) failed over the same way.
      assert.deepEqual((await joined).map((e) => e.eventId), ids);
      // Finished steps did not run again; the one in flight at the kill did.
      assert.deepEqual([...executions.entries()].sort(), [[0, 1], [1, 1], [2, 2], [3, 1], [4, 1]]);
      assert.equal((await client.listRuns("crash")).length, 1);

      // The invoke was sent again to B with the same request id: it got the
      // run the first attempt started, not a second one.
      assert.deepEqual((await invoked).output, { paused: "x" });
      assert.equal((await client.listRuns("crash-invoke")).length, 1);
    } finally {
      openGate();
      client.close();
      await worker.stop({ graceMs: 1000 });
      await running;
      await a.stop();
      await b?.stop();
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
