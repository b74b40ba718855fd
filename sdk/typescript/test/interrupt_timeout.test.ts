/**
 * Interrupts that time out (`interrupt(value, { timeout, default })`) on the
 * worker: what TaskInterrupted carries, what a replay returns or throws
 * where the service timed an interrupt out (TaskAssignment.timed_out), and
 * the bad options refused before anything is sent. A small scripted
 * WorkerService in this process hands the worker assignments as the service
 * would and keeps every message the worker sends (sleep.test.ts has a
 * fuller one that also answers task calls; these functions call none).
 *
 * Then end to end: a real `cairn serve` whose timer clock the test moves
 * forward (CAIRN_CLOCK_FILE), so that an hour passes at once.
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { JsonValue } from "@bufbuild/protobuf";
import { TaskKind } from "../src/gen/cairn/v1/worker_service_pb.js";
import {
  Annotation,
  Client,
  Command,
  END,
  InterruptTimeoutError,
  START,
  StateGraph,
  TaskFailedError,
  Worker,
  entrypoint,
  interrupt,
  task,
  type InterruptOptions,
  type Run,
} from "../src/index.js";
import { fromValue, toValue } from "../src/values.js";
import { startScripted, type Assignment, type Scripted, type Sent } from "./scripted.js";
import { startServer, type Server } from "./server.js";

type Outcomes = { [K in NonNullable<Sent["case"]>]: Extract<Sent, { case: K }>["value"] };

const HOUR = 60 * 60 * 1000;

/** What an entrypoint makes of an interrupt that threw. */
function caught(error: unknown) {
  return {
    caught: (error as Error).name,
    isInterruptTimeoutError: error instanceof InterruptTimeoutError,
    message: (error as Error).message,
  };
}

// --- the functions the worker serves ------------------------------------------------------

/** Interrupts with the options its input names. */
const OPTIONS: Record<string, InterruptOptions> = {
  withDefault: { timeout: HOUR, default: "no answer" },
  nullDefault: { timeout: HOUR, default: null },
  noDefault: { timeout: HOUR },
  undefinedDefault: { timeout: HOUR, default: undefined },
  noTimeout: {},
  fraction: { timeout: 1_500.25 },
  zero: { timeout: 0, default: 0 },
};

const asks = entrypoint({ name: "asks" }, async (how: string) => {
  const answer = interrupt({ question: "approve?" }, OPTIONS[how]);
  return { answer: answer as JsonValue };
});

/** Catches an interrupt's timeout. */
const catches = entrypoint({ name: "catches" }, async () => {
  try {
    return { answer: interrupt<string>("approve?", { timeout: HOUR }) };
  } catch (error) {
    return caught(error);
  }
});

/** Lets an interrupt's timeout escape. */
const letsThrough = entrypoint({ name: "letsThrough" }, async () => {
  return interrupt("approve?", { timeout: HOUR });
});

/** Two interrupts: their positions match resume and timed_out. */
const twice = entrypoint({ name: "twice" }, async () => {
  const first = interrupt<string>("first?", { timeout: HOUR });
  try {
    return { first, second: interrupt<string>("second?", { timeout: HOUR }) };
  } catch (error) {
    return { first, ...caught(error) };
  }
});

/** An interrupt's options as its input says; each bad one must throw before sending. */
const badAsker = entrypoint({ name: "badAsker" }, async (how: string) => {
  const bad: Record<string, unknown> = {
    negative: { timeout: -1 },
    nan: { timeout: Number.NaN },
    infinite: { timeout: Number.POSITIVE_INFINITY },
    tooLong: { timeout: 1e18 },
    string: { timeout: "3600000" },
    defaultWithoutTimeout: { default: "no answer" },
    notAnObject: 3_600_000,
    null: null,
  };
  return interrupt("approve?", bad[how] as InterruptOptions);
});

/** A default JSON cannot carry fails the task when it is reported. */
const badDefault = entrypoint({ name: "badDefault" }, async () => {
  return interrupt("approve?", { timeout: HOUR, default: Number.NaN });
});

const AskState = Annotation.Root({ answer: Annotation<string> });
const askGraph = new StateGraph(AskState)
  .addNode("ask", () => ({ answer: interrupt<string>("approve?", { timeout: HOUR, default: "no answer" }) }))
  .addEdge(START, "ask")
  .addEdge("ask", END)
  .compile({ name: "askGraph" });

// --- the assignments, as the service would hand them --------------------------------------

function assignment(
  taskId: string,
  name: string,
  input: JsonValue,
  options: Pick<Assignment, "resume" | "timedOut" | "kind"> = {},
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

const resume = (...values: JsonValue[]) => values.map((value) => toValue(value, "resume"));

const BAD = ["negative", "nan", "infinite", "tooLong", "string", "defaultWithoutTimeout", "notAnObject", "null"];

const ASSIGNMENTS: Assignment[] = [
  ...Object.keys(OPTIONS).map((how) => assignment(`e-${how}`, "asks", how)),
  // Answered before its timeout: the resume value, whatever the options.
  assignment("e-resumed", "asks", "withDefault", { resume: resume("yes") }),
  // Timed out with a default: the service put the default into resume.
  assignment("e-defaulted", "asks", "withDefault", { resume: resume("no answer") }),
  // Timed out without a default: null in resume, its position in timed_out.
  assignment("e-catches", "catches", null, { resume: resume(null), timedOut: [0] }),
  assignment("e-lets-through", "letsThrough", null, { resume: resume(null), timedOut: [0] }),
  assignment("e-second-timed-out", "twice", null, { resume: resume("one", null), timedOut: [1] }),
  ...BAD.map((how) => assignment(`e-bad-${how}`, "badAsker", how)),
  assignment("e-bad-default", "badDefault", null),
  // A graph node is a task named graph:node.
  assignment("t-node", "askGraph:ask", {}, { kind: TaskKind.TASK }),
  assignment("t-node-resumed", "askGraph:ask", {}, { kind: TaskKind.TASK, resume: resume("no answer") }),
];

// --- the tests ------------------------------------------------------------------------------

let script: Scripted;

/** The outcome of `taskId`, which must be of `kind`. */
async function reported<K extends keyof Outcomes>(taskId: string, kind: K): Promise<Outcomes[K]> {
  const outcome = await script.outcome(taskId);
  if (outcome.case !== kind) {
    const error = outcome.case === "failed" ? outcome.value.error : undefined;
    assert.fail(`${taskId} reported ${outcome.case} ${error?.type ?? ""} ${error?.message ?? ""}, not ${kind}`);
  }
  return outcome.value as unknown as Outcomes[K];
}

describe("interrupt timeouts on the worker", () => {
  let worker: Worker;
  let running: Promise<void>;

  before(async () => {
    script = await startScripted(ASSIGNMENTS);
    worker = new Worker({
      address: script.address,
      functions: [asks, catches, letsThrough, twice, badAsker, badDefault, askGraph],
      log: () => undefined,
    });
    running = worker.run();
    await worker.waitConnected();
  });
  after(async () => {
    await worker.stop({ graceMs: 1000 });
    await running;
    await script.close();
  });

  test("TaskInterrupted carries the timeout and the default", async () => {
    const interrupted = await reported("e-withDefault", "interrupted");
    assert.equal(interrupted.index, 0);
    assert.deepEqual(fromValue(interrupted.value), { question: "approve?" });
    assert.equal(interrupted.timeout?.seconds, 3600n);
    assert.equal(interrupted.timeout?.nanos, 0);
    assert.ok(interrupted.timeoutDefault, "no default sent");
    assert.equal(fromValue(interrupted.timeoutDefault), "no answer");
  });

  test("null is a default; 0 is a timeout and a default", async () => {
    const nullDefault = await reported("e-nullDefault", "interrupted");
    assert.ok(nullDefault.timeoutDefault, "the null default was not sent");
    assert.equal(nullDefault.timeoutDefault.kind.case, "nullValue");
    const zero = await reported("e-zero", "interrupted");
    assert.ok(zero.timeout, "a zero timeout was not sent");
    assert.equal(zero.timeout.seconds, 0n);
    assert.equal(zero.timeout.nanos, 0);
    assert.equal(fromValue(zero.timeoutDefault), 0);
  });

  test("no default (or default: undefined) sends none; no timeout sends neither", async () => {
    for (const how of ["noDefault", "undefinedDefault"]) {
      const interrupted = await reported(`e-${how}`, "interrupted");
      assert.equal(interrupted.timeout?.seconds, 3600n, how);
      assert.equal(interrupted.timeoutDefault, undefined, how);
    }
    const forever = await reported("e-noTimeout", "interrupted");
    assert.equal(forever.timeout, undefined);
    assert.equal(forever.timeoutDefault, undefined);
  });

  test("a fraction of a ms rounds up: it never times out early", async () => {
    const interrupted = await reported("e-fraction", "interrupted");
    assert.equal(interrupted.timeout?.seconds, 1n);
    assert.equal(interrupted.timeout?.nanos, 501_000_000);
  });

  test("a replay with a resume value returns it (the answer, or the default the service put there)", async () => {
    const resumed = await reported("e-resumed", "completed");
    assert.deepEqual(fromValue(resumed.result), { answer: "yes" });
    const defaulted = await reported("e-defaulted", "completed");
    assert.deepEqual(fromValue(defaulted.result), { answer: "no answer" });
  });

  test("where timed_out holds the position, interrupt() throws InterruptTimeoutError, which the entrypoint catches", async () => {
    const completed = await reported("e-catches", "completed");
    assert.deepEqual(fromValue(completed.result), {
      caught: "InterruptTimeoutError",
      isInterruptTimeoutError: true,
      message: `interrupt 0 of "catches" timed out with no answer`,
    });
  });

  test("positions count interrupt() calls: the first returns its answer, the second throws", async () => {
    const completed = await reported("e-second-timed-out", "completed");
    assert.deepEqual(fromValue(completed.result), {
      first: "one",
      caught: "InterruptTimeoutError",
      isInterruptTimeoutError: true,
      message: `interrupt 1 of "twice" timed out with no answer`,
    });
  });

  test("uncaught, InterruptTimeoutError fails the task with its type, not retried", async () => {
    const failed = await reported("e-lets-through", "failed");
    assert.equal(failed.error?.type, "InterruptTimeoutError");
    assert.equal(failed.error?.message, `interrupt 0 of "letsThrough" timed out with no answer`);
    assert.equal(failed.error?.retryable, false);
  });

  test("a bad timeout, or a default without one, throws before sending", async () => {
    const expected: Record<string, string> = {
      negative: "RangeError",
      nan: "RangeError",
      infinite: "RangeError",
      tooLong: "RangeError",
      string: "TypeError",
      defaultWithoutTimeout: "TypeError",
      notAnObject: "TypeError",
      null: "TypeError",
    };
    assert.deepEqual(Object.keys(expected), BAD);
    for (const [how, type] of Object.entries(expected)) {
      const failed = await reported(`e-bad-${how}`, "failed");
      assert.equal(failed.error?.type, type, how);
      assert.equal(failed.error?.retryable, false, how);
    }
    assert.equal(
      script.sent.some((kind) => kind.case === "interrupted" && kind.value.taskId.startsWith("e-bad-")),
      false,
    );
  });

  test("a default JSON cannot carry fails the task instead of interrupting", async () => {
    const failed = await reported("e-bad-default", "failed");
    assert.equal(failed.error?.type, "InvalidValueError");
    assert.match(failed.error?.message ?? "", /interrupt default/);
  });

  test("a graph node's interrupt reports its timeout and default, and returns a resume", async () => {
    const interrupted = await reported("t-node", "interrupted");
    assert.equal(interrupted.timeout?.seconds, 3600n);
    assert.equal(fromValue(interrupted.timeoutDefault), "no answer");
    const completed = await reported("t-node-resumed", "completed");
    assert.deepEqual(fromValue(completed.result), { answer: "no answer" });
  });

  test("outside a task or an entrypoint, interrupt throws", () => {
    assert.throws(() => interrupt(1, { timeout: HOUR }), /only be called inside a task or an entrypoint/);
    assert.throws(() => interrupt(1, { timeout: -1 }), RangeError);
  });
});

// --- end to end: an hour on the service's clock ---------------------------------------------

const ran = new Map<string, number>();
const count = (name: string) => ran.set(name, (ran.get(name) ?? 0) + 1);

const approve = task("approve", async (request: string) => {
  count("approve");
  return interrupt<string>({ approve: request }, { timeout: HOUR, default: "no answer" });
});

/** A task that interrupts with a timeout and a default, then a step after it. */
const refund = entrypoint({ name: "refund" }, async (request: string) => {
  count("refund");
  const answer = await approve(request);
  return { request, answer };
});

/** Interrupts itself with no default and catches the timeout. */
const nudge = entrypoint({ name: "nudge" }, async (request: string) => {
  try {
    return { request, answer: interrupt<string>({ approve: request }, { timeout: HOUR }) };
  } catch (error) {
    return { request, ...caught(error) };
  }
});

const approveOrThrow = task("approveOrThrow", async (request: string) =>
  interrupt<string>({ approve: request }, { timeout: HOUR }),
);

/** Its task lets the timeout through: the entrypoint sees the task fail with that type. */
const nudgeTask = entrypoint({ name: "nudgeTask" }, async (request: string) => {
  try {
    return { request, answer: await approveOrThrow(request) };
  } catch (error) {
    return { request, type: (error as TaskFailedError).type, name: (error as Error).name };
  }
});

const ReviewState = Annotation.Root({ draft: Annotation<string>, verdict: Annotation<string> });
const review = new StateGraph(ReviewState)
  .addNode("review", (state) => {
    count("review");
    const verdict = interrupt<string>({ review: state.draft }, { timeout: HOUR, default: "no answer" });
    return { verdict };
  })
  .addEdge(START, "review")
  .addEdge("review", END)
  .compile({ name: "reviewGraph" });

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

describe("interrupt timeouts against cairn serve", () => {
  let server: Server;
  let worker: Worker;
  let serving: Promise<void>;
  let client: Client;
  const clock = () => server.clock!;
  const advance = (seconds: number) => clock().advance(seconds);

  /** The thread's runs (newest first) once `done` accepts them, asked again
   * while it does not; fails after 30 s. The service starts the timeout's
   * run by itself, so there is no run id to join before it exists. */
  async function runsOnceDone(threadId: string, done: (runs: Run[]) => boolean): Promise<Run[]> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const runs = await client.listRuns(threadId);
      if (done(runs)) return runs;
      const failed = runs.find((run) => run.state === "failed");
      if (failed) assert.fail(`a run of ${threadId} failed: ${JSON.stringify(failed.error)}`);
      if (Date.now() > deadline) {
        assert.fail(`${threadId}: not done within 30 s: ${JSON.stringify(runs.map((r) => r.state))}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Waits until the newest run of the thread succeeded; returns it. */
  const latestSucceeded = async (threadId: string) =>
    (await runsOnceDone(threadId, (runs) => runs[0]?.state === "succeeded"))[0];

  /** Asserts that `interrupt` times out an hour after it was recorded
   * (between `from` and now, on the service's clock). */
  const dueInAnHour = (until: Date | undefined, from: number) => {
    assert.ok(until instanceof Date, "the interrupt has no timeout");
    const now = clock().now();
    const due = until.getTime();
    assert.ok(
      due >= from + HOUR - 1_000 && due <= now + HOUR + 1_000,
      `due at ${until.toISOString()}, not an hour after ${new Date(from).toISOString()}`,
    );
  };

  before(async () => {
    server = await startServer({ testClock: true });
    worker = new Worker({
      address: server.address,
      functions: [approve, refund, nudge, approveOrThrow, nudgeTask, review],
      log: () => undefined,
    });
    serving = worker.run();
    client = new Client({ address: server.address });
    await worker.waitConnected();
  });
  after(async () => {
    client.close();
    await worker.stop({ graceMs: 1000 });
    await serving;
    await server.stop();
  });

  test("nobody answers within the hour: the service resumes the run with the default", async () => {
    const threadId = "refund-timeout";
    const startedAt = clock().now();
    const interrupted = await within(30_000, "the run", client.invoke(refund, "r1", { threadId }));
    assert.equal(interrupted.state, "interrupted");
    assert.equal(interrupted.interrupts.length, 1);
    const [pending] = interrupted.interrupts;
    assert.deepEqual(pending.value, { approve: "r1" });
    assert.equal(pending.taskName, "approve");
    assert.equal(pending.timeoutDefault, "no answer");
    dueInAnHour(pending.timeout, startedAt);
    // GetState shows it too.
    const state = await client.getState(threadId);
    assert.equal(state.interrupts[0]?.timeout?.getTime(), pending.timeout!.getTime());
    assert.equal(state.interrupts[0]?.timeoutDefault, "no answer");

    advance(3600);
    const done = await latestSucceeded(threadId);
    assert.notEqual(done.runId, interrupted.runId);
    assert.deepEqual(done.output, { request: "r1", answer: "no answer" });
    const runs = await client.listRuns(threadId);
    assert.deepEqual(
      runs.map((run) => run.state),
      ["succeeded", "interrupted"],
    );
  });

  test("without a default, the entrypoint catches InterruptTimeoutError (and a task's surfaces with its type)", async () => {
    const startedAt = clock().now();
    const own = await within(30_000, "the run", client.invoke(nudge, "r2", { threadId: "nudge-timeout" }));
    const ofTask = await within(30_000, "the run", client.invoke(nudgeTask, "r3", { threadId: "nudge-task-timeout" }));
    for (const run of [own, ofTask]) {
      assert.equal(run.state, "interrupted");
      assert.equal(run.interrupts[0].timeoutDefault, undefined);
      dueInAnHour(run.interrupts[0].timeout, startedAt);
    }

    advance(3600);
    const caughtRun = await latestSucceeded("nudge-timeout");
    assert.deepEqual(caughtRun.output, {
      request: "r2",
      caught: "InterruptTimeoutError",
      isInterruptTimeoutError: true,
      message: `interrupt 0 of "nudge" timed out with no answer`,
    });
    const taskRun = await latestSucceeded("nudge-task-timeout");
    assert.deepEqual(taskRun.output, { request: "r3", type: "InterruptTimeoutError", name: "TaskFailedError" });
  });

  test("an answer before the timeout wins; the timeout then does nothing", async () => {
    const threadId = "refund-answered";
    const interrupted = await within(30_000, "the run", client.invoke(refund, "r4", { threadId }));
    assert.equal(interrupted.state, "interrupted");
    const resumed = await within(
      30_000,
      "the resume",
      client.invoke(refund, new Command({ resume: "approved" }), { threadId }),
    );
    assert.equal(resumed.state, "succeeded");
    assert.deepEqual(resumed.output, { request: "r4", answer: "approved" });

    // A witness interrupted after the answered one, so it is due later:
    // once its timeout has run, the answered one's due time has passed too.
    const witness = await within(30_000, "the witness", client.invoke(refund, "r5", { threadId: "refund-witness" }));
    assert.equal(witness.state, "interrupted");
    assert.ok(witness.interrupts[0].timeout! >= interrupted.interrupts[0].timeout!);

    advance(3600);
    const witnessDone = await latestSucceeded("refund-witness");
    assert.deepEqual(witnessDone.output, { request: "r5", answer: "no answer" });
    const runs = await client.listRuns(threadId);
    assert.equal(runs.length, 2, JSON.stringify(runs.map((run) => [run.state, run.output])));
    assert.equal(runs[0].runId, resumed.runId);
    assert.deepEqual(runs[0].output, { request: "r4", answer: "approved" });
  });

  test("a graph node's interrupt times out with its default", async () => {
    const threadId = "review-timeout";
    const startedAt = clock().now();
    const interrupted = await within(30_000, "the run", client.invoke(review, { draft: "d1" }, { threadId }));
    assert.equal(interrupted.state, "interrupted");
    const [pending] = interrupted.interrupts;
    assert.equal(pending.taskName, "reviewGraph:review");
    assert.deepEqual(pending.value, { review: "d1" });
    assert.equal(pending.timeoutDefault, "no answer");
    dueInAnHour(pending.timeout, startedAt);
    const state = await client.getState(threadId);
    assert.deepEqual(state.next, ["review"]);
    assert.equal(state.interrupts[0]?.timeout?.getTime(), pending.timeout!.getTime());

    advance(3600);
    const done = await latestSucceeded(threadId);
    assert.deepEqual(done.output, { draft: "d1", verdict: "no answer" });
    assert.deepEqual((await client.getState(threadId)).values, { draft: "d1", verdict: "no answer" });
  });
});
