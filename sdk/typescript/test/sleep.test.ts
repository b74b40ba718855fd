/**
 * Durable sleep (`sleep`, `sleepUntil`) on the worker: what it reports for a
 * sleep the journal does not hold, how a replay passes a recorded one, and
 * the misuses refused before anything is sent. A scripted WorkerService in
 * this process hands the worker assignments, as the service would after
 * recording the calls, answers its task calls, and keeps every message the
 * worker sends.
 *
 * Then end to end: a real `cairn serve` whose timer clock the test moves
 * forward (CAIRN_CLOCK_FILE), so that an hour passes at once.
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { JsonValue, MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { TaskKind, type JournalEntrySchema } from "../src/gen/cairn/v1/worker_service_pb.js";
import {
  Annotation,
  Client,
  START,
  StateGraph,
  Worker,
  entrypoint,
  sleep,
  sleepUntil,
  task,
  type Run,
  type TaskFailedError,
} from "../src/index.js";
import { fromValue, toValue } from "../src/values.js";
import { startScripted, type Assignment, type Scripted, type Sent } from "./scripted.js";
import { startServer, type Server } from "./server.js";


const HOUR = 60 * 60 * 1000;
const WAKE = new Date("2030-01-02T03:04:05.678Z");

// --- the functions the worker serves ------------------------------------------------

const ran = new Map<string, number>();
const count = (name: string) => ran.set(name, (ran.get(name) ?? 0) + 1);

const first = task("first", async (x: string) => {
  count("first");
  return `first ${x}`;
});

const second = task("second", async (x: string) => {
  count("second");
  return `second ${x}`;
});

/** A task, a sleep of an hour, another task. */
const napper = entrypoint({ name: "napper" }, async (x: string) => {
  count("napper");
  const a = await first(x);
  await sleep(HOUR);
  const b = await second(x);
  return [a, b];
});

const untilWake = entrypoint({ name: "untilWake" }, async () => {
  await sleepUntil(WAKE);
  return "awake";
});

/** Catches the sleep's signal by mistake, and forgets to await another. */
const swallower = entrypoint({ name: "swallower" }, async () => {
  try {
    await sleep(1_000);
  } catch {
    // a catch-all in user code
  }
  return "ignored the sleep";
});

const unawaited = entrypoint({ name: "unawaited" }, async () => {
  void sleep(2_500.25);
  return "did not wait";
});

const sleepyTask = task("sleepyTask", async () => {
  await sleep(1_000);
  return "slept in a task";
});

const NodeState = Annotation.Root({ value: Annotation<number> });
const sleepyGraph = new StateGraph(NodeState)
  .addNode("nap", async (state) => {
    await sleep(1_000);
    return { value: state.value + 1 };
  })
  .addEdge(START, "nap")
  .compile({ name: "sleepyGraph" });

/** Sleeps as its input says; each bad one must throw before sending. */
const badSleeper = entrypoint({ name: "badSleeper" }, async (how: string) => {
  const bad: Record<string, () => Promise<void>> = {
    negative: () => sleep(-1),
    nan: () => sleep(Number.NaN),
    infinite: () => sleep(Number.POSITIVE_INFINITY),
    string: () => sleep("1000" as unknown as number),
    invalidDate: () => sleepUntil(new Date(Number.NaN)),
    notDate: () => sleepUntil(Date.now() as unknown as Date),
  };
  await bad[how]!();
  return "slept";
});

// --- the assignments, as the service would hand them --------------------------------

function journal(...entries: [string, JsonValue][]): MessageInitShape<typeof JournalEntrySchema>[] {
  return entries.map(([name, result], index) => ({
    index,
    name,
    taskId: `child-${index}`,
    result: toValue(result, "result"),
  }));
}

function assignment(
  taskId: string,
  name: string,
  input: JsonValue,
  options: Pick<Assignment, "journal" | "kind"> = {},
): Assignment {
  return {
    taskId,
    name,
    kind: TaskKind.ENTRYPOINT,
    runId: `run-${taskId}`,
    threadId: `thread-${taskId}`,
    attempt: 1,
    input: toValue(input, "input"),
    ...options,
  };
}

const ASSIGNMENTS: Assignment[] = [
  // The first time past the sleep: `first` is recorded, the sleep is not.
  assignment("e-first", "napper", "x", { journal: journal(["first", "first x"]) }),
  // The timer is over: the service recorded the sleep at position 1.
  assignment("e-woken", "napper", "x", { journal: journal(["first", "first x"], ["__sleep__", null]) }),
  // A replay that finds a task recorded where it now sleeps.
  assignment("e-changed", "napper", "x", {
    journal: journal(["first", "first x"], ["second", "second x"]),
  }),
  assignment("e-until", "untilWake", null),
  assignment("e-swallower", "swallower", null),
  assignment("e-unawaited", "unawaited", null),
  assignment("t-sleepy", "sleepyTask", null, { kind: TaskKind.TASK }),
  assignment("t-node", "sleepyGraph:nap", { value: 1 }, { kind: TaskKind.TASK }),
  ...["negative", "nan", "infinite", "string", "invalidDate", "notDate"].map((how) =>
    assignment(`e-bad-${how}`, "badSleeper", how),
  ),
];

// --- the tests ------------------------------------------------------------------------

type Outcomes = { [K in NonNullable<Sent["case"]>]: Extract<Sent, { case: K }>["value"] };

/** The outcome of `taskId`, which must be of `kind`. */
async function reported<K extends keyof Outcomes>(taskId: string, kind: K): Promise<Outcomes[K]> {
  const outcome = await script.outcome(taskId);
  if (outcome.case !== kind) {
    const error = outcome.case === "failed" ? outcome.value.error : undefined;
    assert.fail(`${taskId} reported ${outcome.case} ${error?.type ?? ""} ${error?.message ?? ""}, not ${kind}`);
  }
  return outcome.value as unknown as Outcomes[K];
}

/** The task calls the worker sent for `parentTaskId`. */
const callsOf = (parentTaskId: string) =>
  script.sent.flatMap((kind) =>
    kind.case === "schedule" && kind.value.parentTaskId === parentTaskId ? [kind.value] : [],
  );

let script: Scripted;
let worker: Worker;
let running: Promise<void>;

describe("durable sleep on the worker", () => {
  before(async () => {
    script = await startScripted(ASSIGNMENTS, (call) => `${call.name} x`);
    worker = new Worker({
      address: script.address,
      functions: [first, second, napper, untilWake, swallower, unawaited, sleepyTask, sleepyGraph],
      log: () => undefined,
    });
    worker.register(badSleeper);
    running = worker.run();
    await worker.waitConnected();
  });
  after(async () => {
    await worker.stop({ graceMs: 1000 });
    await running;
    await script.close();
  });

  test("the first time, the entrypoint stops at the sleep: TaskSleeping with its position and duration", async () => {
    const sleeping = await reported("e-first", "sleeping");
    assert.equal(sleeping.index, 1); // after `first` at 0: a sleep is a call
    assert.equal(sleeping.due.case, "sleepDuration");
    assert.equal(sleeping.due.value?.seconds, 3600n);
    assert.equal(sleeping.due.value?.nanos, 0);
    // `first` came from the journal; nothing after the sleep was called.
    assert.equal(ran.get("first"), undefined);
    assert.deepEqual(callsOf("e-first"), []);
  });

  test("when the journal holds the sleep, it returns at once and the entrypoint goes on", async () => {
    const completed = await reported("e-woken", "completed");
    assert.deepEqual(fromValue(completed.result), ["first x", "second x"]);
    // Only `second` was called, at the position after the sleep.
    assert.deepEqual(
      callsOf("e-woken").map((call) => [call.index, call.name]),
      [[2, "second"]],
    );
  });

  test("another name recorded at the sleep's position fails the entrypoint: non-deterministic", async () => {
    const failed = await reported("e-changed", "failed");
    assert.equal(failed.error?.type, "NonDeterministicError");
    assert.equal(
      failed.error?.message,
      `call 1 of "napper" is "__sleep__" in this replay but "second" was recorded at that position`,
    );
    assert.equal(failed.error?.retryable, false);
    assert.deepEqual(callsOf("e-changed"), []);
  });

  test("sleepUntil reports the wake time", async () => {
    const sleeping = await reported("e-until", "sleeping");
    assert.equal(sleeping.index, 0);
    assert.equal(sleeping.due.case, "wakeTime");
    assert.equal(timestampDate(sleeping.due.value!).toISOString(), WAKE.toISOString());
  });

  test("a body that catches the sleep, or does not await it, still stops at it", async () => {
    const caught = await reported("e-swallower", "sleeping");
    assert.equal(caught.index, 0);
    assert.equal(caught.due.value?.seconds, 1n);
    const forgotten = await reported("e-unawaited", "sleeping");
    assert.equal(forgotten.due.case, "sleepDuration");
    // Whole ms, rounded up.
    assert.equal(forgotten.due.value?.seconds, 2n);
    assert.equal(forgotten.due.value?.nanos, 501_000_000);
  });

  test("sleep in a task or a graph node throws before sending anything", async () => {
    for (const taskId of ["t-sleepy", "t-node"]) {
      const failed = await reported(taskId, "failed");
      assert.equal(failed.error?.type, "Error");
      assert.match(failed.error?.message ?? "", /^sleep works only in an entrypoint/);
    }
    assert.equal(
      script.sent.some((kind) => kind.case === "sleeping" && kind.value.taskId.startsWith("t-")),
      false,
    );
  });

  test("a negative or non-finite duration, or a bad date, throws before sending", async () => {
    const expected: Record<string, string> = {
      negative: "RangeError",
      nan: "RangeError",
      infinite: "RangeError",
      string: "TypeError",
      invalidDate: "RangeError",
      notDate: "TypeError",
    };
    for (const [how, type] of Object.entries(expected)) {
      const failed = await reported(`e-bad-${how}`, "failed");
      assert.equal(failed.error?.type, type, how);
      assert.equal(failed.error?.retryable, false, how);
    }
    assert.equal(
      script.sent.some((kind) => kind.case === "sleeping" && kind.value.taskId.startsWith("e-bad-")),
      false,
    );
  });

  test("outside a task or an entrypoint, sleep throws", () => {
    assert.throws(() => sleep(1), /only be called inside a task or an entrypoint/);
    assert.throws(() => sleepUntil(WAKE), /only be called inside a task or an entrypoint/);
  });
});

// --- end to end: an hour on the service's clock ------------------------------------------

const beforeNap = task("beforeNap", async (x: string) => {
  count("beforeNap");
  return `before ${x}`;
});

const afterNap = task("afterNap", async (x: string) => {
  count("afterNap");
  return `after ${x}`;
});

const hourNap = entrypoint({ name: "hourNap" }, async (x: string) => {
  count("hourNap");
  const before = await beforeNap(x);
  await sleep(HOUR);
  const after = await afterNap(x);
  return [before, after];
});

const sleepsUntilPast = entrypoint({ name: "sleepsUntilPast" }, async () => {
  await sleepUntil(new Date(Date.now() - 60_000));
  return "woke";
});

const nestedNapper = entrypoint({ name: "nestedNapper" }, async () => {
  await sleep(1_000);
  return "slept nested";
});

const callsNestedNapper = entrypoint({ name: "callsNestedNapper" }, async () => {
  try {
    return await nestedNapper.invoke(null);
  } catch (error) {
    return { type: (error as TaskFailedError).type, message: (error as Error).message };
  }
});

/** `promise`, or a rejection naming `what` after `ms`. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe("durable sleep against cairn serve", () => {
  let server: Server;
  let napWorker: Worker;
  let serving: Promise<void>;
  let client: Client;

  before(async () => {
    server = await startServer({ testClock: true });
    napWorker = new Worker({
      address: server.address,
      functions: [beforeNap, afterNap, hourNap, sleepsUntilPast, nestedNapper, callsNestedNapper],
      log: () => undefined,
    });
    serving = napWorker.run();
    client = new Client({ address: server.address });
    await napWorker.waitConnected();
  });
  after(async () => {
    client.close();
    await napWorker.stop({ graceMs: 1000 });
    await serving;
    await server.stop();
  });

  test("an hour's sleep parks the run on a timer; an hour on the service's clock wakes it once", async () => {
    const events = client.stream(hourNap, "x", { threadId: "sleep-e2e", streamMode: "updates" });
    /** The run of the next lifecycle event that `wanted` accepts (the
     * stream stays open between calls: no for-await, which would close it). */
    const next = async (wanted: (run: Run) => boolean): Promise<Run> => {
      for (let item = await events.next(); !item.done; item = await events.next()) {
        const run = item.value.run;
        if (run && wanted(run)) return run;
        if (run && ["failed", "cancelled"].includes(run.state)) {
          assert.fail(`the run ended ${run.state}: ${JSON.stringify(run.error)}`);
        }
      }
      assert.fail("the run's stream ended");
    };
    try {
      const startedAt = Date.now();
      const parked = await within(
        30_000,
        "a timer in run.waiting",
        next((run) => run.waiting.some((w) => w.reason === "timer")),
      );
      const sawAt = Date.now();
      assert.equal(parked.state, "running");
      const fetched = await client.getRun(parked.runId);
      assert.equal(fetched.state, "running");
      for (const run of [parked, fetched]) {
        assert.equal(run.waiting.length, 1);
        const [timer] = run.waiting;
        assert.equal(timer.reason, "timer");
        assert.equal(timer.taskName, "hourNap");
        // An hour after the service recorded it, on its clock (offset 0 then).
        const until = timer.until!.getTime();
        assert.ok(
          until >= startedAt + HOUR - 1_000 && until <= sawAt + HOUR + 1_000,
          `due at ${timer.until!.toISOString()}, not an hour after ${new Date(startedAt).toISOString()}`,
        );
      }
      assert.equal(ran.get("beforeNap"), 1);
      assert.equal(ran.get("afterNap"), undefined);

      server.clock!.advance(3600);
      const done = await within(
        30_000,
        "the run's success after the clock moved",
        next((run) => run.state === "succeeded"),
      );
      assert.deepEqual(done.output, ["before x", "after x"]);
      assert.deepEqual(done.waiting, []);
      assert.equal(ran.get("beforeNap"), 1, "the task before the sleep ran again");
      assert.equal(ran.get("afterNap"), 1);
      // Once up to the sleep, once from its replay.
      assert.equal(ran.get("hourNap"), 2);
    } finally {
      await events.return(undefined);
    }
  });

  test("sleepUntil a time already past wakes the run at once", async () => {
    const run = await within(30_000, "the run", client.invoke(sleepsUntilPast, {}, { threadId: "sleep-past" }));
    assert.equal(run.state, "succeeded");
    assert.equal(run.output, "woke");
  });

  test("an entrypoint run as a nested workflow may not sleep: SleepNotAllowedError", async () => {
    const run = await within(
      30_000,
      "the run",
      client.invoke(callsNestedNapper, {}, { threadId: "sleep-nested" }),
    );
    assert.equal(run.state, "succeeded");
    const { type, message } = run.output as { type: string; message: string };
    assert.equal(type, "SleepNotAllowedError");
    assert.match(message, /nestedNapper/);
  });
});
