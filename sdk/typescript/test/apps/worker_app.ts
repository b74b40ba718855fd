/**
 * A Node worker process for the cross-language end-to-end tests
 * (tests/e2e/test_cross_language.py). It serves TypeScript tasks that a
 * Python entrypoint calls, and a TypeScript entrypoint that calls tasks only
 * a Python worker serves.
 *
 *     node dist/test/apps/worker_app.js --address 127.0.0.1:PORT --log FILE
 *
 * Each execution appends `<event> <name> <task id> <pid> typescript` to the
 * log, so tests can count executions per task across processes. Prints
 * "worker ready <id> <pid>" once connected; stops on SIGTERM.
 *
 * With CAIRN_TEST_SPANS_FILE=PATH in its environment it traces with
 * OpenTelemetry: every span it makes (`cairn.task <name>` for each
 * execution, a child of the assignment's trace context) is appended to PATH
 * as one JSON line (see spans_file.ts).
 */

import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  TaskFailedError,
  Worker,
  entrypoint,
  getConfig,
  getWriter,
  interrupt,
  remoteTask,
  task,
} from "../../src/index.js";

const { values: args } = parseArgs({
  options: { address: { type: "string" }, log: { type: "string" } },
});
const LOG = args.log!;

const SPANS_FILE = process.env.CAIRN_TEST_SPANS_FILE;
if (SPANS_FILE) (await import("./spans_file.js")).installSpansFile(SPANS_FILE);

function record(event: string, name: string): void {
  const { task_id } = getConfig().configurable;
  appendFileSync(LOG, `${event} ${name} ${task_id} ${process.pid} typescript\n`);
}

function traced<A, R>(name: string, fn: (input: A) => Promise<R>) {
  return task(name, async (input: A) => {
    record("start", name);
    const result = await fn(input);
    record("end", name);
    return result;
  });
}

// --- tasks a Python entrypoint calls --------------------------------------------------

const tsShout = traced("ts_shout", async (word: string) => {
  getWriter()({ from: "typescript", shouting: word });
  return word.toUpperCase();
});

// A TypeError is a programming error: not retried, whatever the policy says.
const tsValidate = task(
  { name: "ts_validate", retry: { maxAttempts: 3, initialInterval: 10, jitter: false } },
  async (value: number) => {
    record("start", "ts_validate");
    if (value < 0) throw new TypeError(`negative value: ${value}`);
    return value;
  },
);

let flakyCalls = 0;
const tsFlaky = task(
  { name: "ts_flaky", retry: { maxAttempts: 3, initialInterval: 10, jitter: false } },
  async (url: string) => {
    record("start", "ts_flaky");
    flakyCalls += 1;
    if (flakyCalls === 1) throw new Error("connection reset"); // retryable by default
    return `fetched ${url} on attempt ${getConfig().configurable.attempt}`;
  },
);

const tsAsk = traced("ts_ask", async (question: string) => {
  const answer = interrupt<string>({ asked_by: "typescript", question });
  return `${question} -> ${answer}`;
});

/** Stalls on its first execution anywhere (a marker file says so), so that the
 * test can kill this process mid-task; later executions return at once. */
async function stallOnce(input: string, name: string): Promise<string> {
  const marker = `${LOG}.stalled`;
  getWriter()({ started_on: process.pid, language: "typescript", task: name });
  if (!existsSync(marker)) {
    writeFileSync(marker, String(process.pid));
    await new Promise(() => undefined); // until this process is killed
  }
  return `${input} done by typescript ${process.pid}`;
}

const tsStallOnce = traced("ts_stall_once", (input: string) => stallOnce(input, "ts_stall_once"));
const sharedStep = traced("shared_step", (input: string) => stallOnce(input, "shared_step"));

// --- an entrypoint that calls tasks only Python serves ---------------------------------

const pySummarize = remoteTask<string, string>("py_summarize");
const pyValidate = remoteTask<number, number>("py_validate");
const pyFlaky = remoteTask<string, string>("py_flaky");
const pyAsk = remoteTask<string, string>("py_ask");

const tsFlow = entrypoint(
  { name: "ts_flow" },
  async (input: { text: string; strict?: boolean }, config) => {
    config.writer({ from: "typescript", step: "start" });
    const summary = await pySummarize(input.text);
    let validation: unknown;
    try {
      validation = await pyValidate(-1);
    } catch (error) {
      if (input.strict || !(error instanceof TaskFailedError)) throw error;
      validation = { type: error.type, message: error.message };
    }
    const fetched = await pyFlaky("example.com");
    const answer = await pyAsk("ship it?");
    return { summary, validation, fetched, answer };
  },
);

const worker = new Worker({
  address: args.address,
  functions: [tsShout, tsValidate, tsFlaky, tsAsk, tsStallOnce, sharedStep, tsFlow],
});
process.on("SIGTERM", () => void worker.stop({ graceMs: 5000 }));
const running = worker.run();
await worker.waitConnected();
console.log(`worker ready ${worker.workerId} ${process.pid}`);
await running;
