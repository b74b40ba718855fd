/**
 * OpenTelemetry tracing (issue 17), with an in-memory exporter: client calls
 * are spans that continue the caller's context and send it as `traceparent`
 * metadata; each execution on a worker is a span whose parent is the trace
 * context its assignment carries; the worker_app of the cross-language tests
 * writes its spans to CAIRN_TEST_SPANS_FILE; and without
 * `@opentelemetry/api` installed everything works as before.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, afterEach, before, describe, test } from "node:test";
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  createTraceState,
  trace,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from "@opentelemetry/sdk-trace-base";
import {
  Client,
  RunFailedError,
  Worker,
  entrypoint,
  getConfig,
  interrupt,
  remoteTask,
  task,
} from "../src/index.js";
import { TaskKind } from "../src/gen/cairn/v1/worker_service_pb.js";
import { extractSpanContext, injectSpanContext, setOtelForTesting } from "../src/tracing.js";
import { toValue } from "../src/values.js";
import { startRecordingServer, type RecordingServer } from "./recording.js";
import { serveFunctions, type Served } from "./served.js";
import { stopProcess } from "./server.js";

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
trace.setGlobalTracerProvider(provider);
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const tracer = trace.getTracer("cairn-tests");

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID = "00f067aa0ba902b7";

/** The finished spans named `name`. */
function named(name: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((span) => span.name === name);
}

function one(name: string): ReadableSpan {
  const spans = named(name);
  assert.equal(spans.length, 1, `one span ${name}, got ${spans.length}`);
  return spans[0];
}

/** Runs `fn` as the child of a span named `name` (ended afterwards). */
function underSpan<T>(name: string, fn: () => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, async (span) => {
    try {
      return await fn();
    } finally {
      span.end();
    }
  });
}

// --- a TypeScript client, entrypoint and task on a real `cairn serve` ----------------

const executions: { task_id: string; run_id: string; attempt: number }[] = [];
function noteExecution(): void {
  const { task_id, run_id, attempt } = getConfig().configurable;
  executions.push({ task_id, run_id, attempt });
}

const traceShout = task("trace_shout", async (word: string) => {
  noteExecution();
  // The application's own span, under the execution's.
  return tracer.startActiveSpan("shout.inner", (span) => {
    span.end();
    return word.toUpperCase();
  });
});

const traceFlow = entrypoint({ name: "trace_flow" }, async (words: string[]) => {
  noteExecution();
  const shouted: string[] = [];
  for (const word of words) shouted.push(await traceShout(word));
  return shouted;
});

const traceBroken = task("trace_broken", async (_: string) => {
  throw new TypeError("not traceable");
});

const traceFails = entrypoint({ name: "trace_fails" }, async (x: string) => traceBroken(x));

describe("a run of a TypeScript entrypoint calling a TypeScript task is one trace", () => {
  let served: Served;
  before(async () => (served = await serveFunctions([traceShout, traceFlow, traceBroken, traceFails])));
  after(() => served.stop());
  afterEach(() => exporter.reset());

  test("caller → client span → (service) → the worker's spans, with the run's ids", async () => {
    const run = await underSpan("caller", () =>
      served.client.invoke(traceFlow, ["a", "b"], { threadId: "trace-1" }),
    );
    assert.deepEqual(run.output, ["A", "B"]);

    const caller = one("caller");
    const call = one("cairn.invoke trace_flow");
    const traceId = caller.spanContext().traceId;
    assert.equal(call.kind, SpanKind.CLIENT);
    assert.equal(call.spanContext().traceId, traceId);
    assert.equal(call.parentSpanContext?.spanId, caller.spanContext().spanId);
    assert.equal(call.attributes["cairn.run_id"], run.runId);
    assert.equal(call.attributes["cairn.thread_id"], "trace-1");
    assert.equal(call.attributes["cairn.run_state"], "succeeded");

    const workerSpans = [...named("cairn.task trace_flow"), ...named("cairn.task trace_shout")];
    assert.equal(named("cairn.task trace_shout").length, 2);
    assert.ok(named("cairn.task trace_flow").length >= 1);
    // Spans of this process that a worker span could wrongly hang under.
    const local = new Set(
      exporter
        .getFinishedSpans()
        .filter((span) => span !== call)
        .map((span) => span.spanContext().spanId),
    );
    for (const span of workerSpans) {
      // Continued from the assignment: the client's trace, under the client
      // span itself or under a span of the service (when it traces).
      assert.equal(span.spanContext().traceId, traceId, span.name);
      const parent = span.parentSpanContext;
      assert.ok(parent?.isRemote, `${span.name} has a remote parent`);
      assert.ok(
        parent.spanId === call.spanContext().spanId || !local.has(parent.spanId),
        `${span.name}'s parent is the client's span or the service's`,
      );
      assert.equal(span.kind, SpanKind.CONSUMER);
      assert.equal(span.attributes["cairn.sdk.language"], "typescript");
      assert.equal(span.attributes["cairn.worker_id"], served.worker.workerId);
      assert.equal(span.attributes["cairn.task.outcome"], "completed");
      assert.equal(span.attributes["cairn.thread_id"], "trace-1");
      assert.equal(span.attributes["cairn.namespace"], "default");
      assert.equal(span.status.code, SpanStatusCode.UNSET);
    }
    // Each execution's span names what the body saw in getConfig().
    assert.equal(executions.length, workerSpans.length);
    for (const seen of executions) {
      const span = workerSpans.find((s) => s.attributes["cairn.task_id"] === seen.task_id);
      assert.ok(span, `a span for task ${seen.task_id}`);
      assert.equal(span.attributes["cairn.run_id"], seen.run_id);
      assert.equal(span.attributes["cairn.attempt"], seen.attempt);
    }
    // The application's spans in a task nest under the task's execution.
    const shoutIds = named("cairn.task trace_shout").map((span) => span.spanContext().spanId);
    const inner = named("shout.inner");
    assert.equal(inner.length, 2);
    assert.deepEqual(inner.map((span) => span.parentSpanContext?.spanId).sort(), [...shoutIds].sort());
  });

  test("a failure is recorded on the task's span and on the client's", async () => {
    await assert.rejects(served.client.invoke(traceFails, "x", { threadId: "trace-2" }), RunFailedError);
    const broken = one("cairn.task trace_broken");
    assert.equal(broken.status.code, SpanStatusCode.ERROR);
    assert.equal(broken.status.message, "not traceable");
    assert.equal(broken.attributes["cairn.task.outcome"], "failed");
    const exception = broken.events.find((event) => event.name === "exception");
    assert.equal(exception?.attributes?.["exception.type"], "TypeError");
    const call = one("cairn.invoke trace_fails");
    assert.equal(call.status.code, SpanStatusCode.ERROR);
    assert.equal(call.attributes["cairn.run_state"], "failed");
    // No caller span: the client's span starts the trace.
    assert.equal(call.parentSpanContext, undefined);
    assert.equal(broken.spanContext().traceId, call.spanContext().traceId);
  });
});

// --- exactly what travels: against a recording server ---------------------------------

const echo = task("echo", async (x: string) => x);
const asks = task("asks", async (x: string) => interrupt<string>(x));

describe("the W3C trace context on the wire", () => {
  const assignment = (taskId: string, name: string, traceContext: Record<string, string>) => ({
    taskId,
    runId: "run-9",
    threadId: "thread-9",
    name,
    kind: TaskKind.TASK,
    attempt: 3,
    input: toValue("hello", "input"),
    traceContext,
  });
  let server: RecordingServer;
  let worker: Worker;
  let running: Promise<void>;
  before(async () => {
    server = await startRecordingServer({
      assignments: [
        assignment("t-traced", "echo", {
          traceparent: `00-${TRACE_ID}-${SPAN_ID}-01`,
          tracestate: "cairn=test,other=1",
        }),
        assignment("t-untraced", "echo", {}),
        assignment("t-malformed", "echo", { traceparent: `00-${TRACE_ID}-nope-01` }),
        assignment("t-asks", "asks", { traceparent: `00-${TRACE_ID}-${SPAN_ID}-01` }),
        // The caller chose not to sample: the worker's span is not recorded.
        assignment("t-unsampled", "echo", { traceparent: `00-${TRACE_ID}-${SPAN_ID}-00` }),
      ],
    });
  });
  after(() => server.close());
  afterEach(() => exporter.reset());

  test("a worker's span is a child of the context its assignment carries", async () => {
    worker = new Worker({ address: server.address, functions: [echo, asks], log: () => undefined });
    running = worker.run();
    try {
      for (const taskId of ["t-traced", "t-untraced", "t-malformed", "t-asks", "t-unsampled"]) {
        await server.reported(taskId);
      }
    } finally {
      await worker.stop({ graceMs: 1000 });
      await running;
    }
    const byTask = (taskId: string) =>
      exporter.getFinishedSpans().find((span) => span.attributes["cairn.task_id"] === taskId)!;
    assert.deepEqual(
      exporter.getFinishedSpans().map((span) => span.attributes["cairn.task_id"]).sort(),
      ["t-asks", "t-malformed", "t-traced", "t-untraced"],
    );

    const traced = byTask("t-traced");
    assert.equal(traced.name, "cairn.task echo");
    assert.equal(traced.spanContext().traceId, TRACE_ID);
    assert.deepEqual(
      {
        spanId: traced.parentSpanContext?.spanId,
        isRemote: traced.parentSpanContext?.isRemote,
        traceFlags: traced.parentSpanContext?.traceFlags,
        traceState: traced.parentSpanContext?.traceState?.serialize(),
      },
      { spanId: SPAN_ID, isRemote: true, traceFlags: 1, traceState: "cairn=test,other=1" },
    );
    assert.deepEqual(
      {
        run: traced.attributes["cairn.run_id"],
        thread: traced.attributes["cairn.thread_id"],
        attempt: traced.attributes["cairn.attempt"],
        worker: traced.attributes["cairn.worker_id"],
        kind: traced.attributes["cairn.task.kind"],
        name: traced.attributes["cairn.task.name"],
      },
      { run: "run-9", thread: "thread-9", attempt: 3, worker: "w-1", kind: "task", name: "echo" },
    );

    // Nothing (or nothing valid) to continue: a trace of its own.
    for (const taskId of ["t-untraced", "t-malformed"]) {
      const span = byTask(taskId);
      assert.equal(span.parentSpanContext, undefined, taskId);
      assert.notEqual(span.spanContext().traceId, TRACE_ID, taskId);
    }

    const asked = byTask("t-asks");
    assert.equal(asked.spanContext().traceId, TRACE_ID);
    assert.equal(asked.attributes["cairn.task.outcome"], "interrupted");
    assert.equal(asked.status.code, SpanStatusCode.UNSET);
  });

  test("Invoke, Stream and Session send their span's context, under the caller's", async () => {
    const client = new Client({ address: server.address });
    const parent = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: TRACE_ID,
      spanId: SPAN_ID,
      traceFlags: 1,
      isRemote: true,
      traceState: createTraceState("vendor=v"),
    });
    try {
      const events = await context.with(parent, async () => {
        await client.invoke("workflow", "input", { threadId: "t1" });
        const session = client.session("workflow", "input", { threadId: "t1" });
        for await (const _ of session) assert.fail("no events");
        // Iterated outside: still under the context it was called in.
        return client.stream("workflow", "input", { threadId: "t1" });
      });
      for await (const _ of events) assert.fail("no events");
    } finally {
      client.close();
    }
    for (const [method, spanName] of [
      ["Invoke", "cairn.invoke workflow"],
      ["Session", "cairn.session workflow"],
      ["Stream", "cairn.stream workflow"],
    ]) {
      const span = one(spanName);
      assert.equal(span.kind, SpanKind.CLIENT);
      assert.equal(span.parentSpanContext?.spanId, SPAN_ID, spanName);
      assert.equal(span.spanContext().traceId, TRACE_ID, spanName);
      const call = await server.called(method);
      assert.deepEqual(
        { traceparent: call.traceparent, tracestate: call.tracestate },
        { traceparent: `00-${TRACE_ID}-${span.spanContext().spanId}-01`, tracestate: "vendor=v" },
        method,
      );
    }
  });

  test("without @opentelemetry/api: no spans and no metadata", async () => {
    server.calls.splice(0);
    setOtelForTesting(null);
    const client = new Client({ address: server.address });
    try {
      const caller = { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 };
      const parent = trace.setSpanContext(ROOT_CONTEXT, caller);
      await context.with(parent, () => client.invoke("workflow", "input", { threadId: "t1" }));
    } finally {
      client.close();
      setOtelForTesting(undefined); // looked up again
    }
    assert.deepEqual(server.calls.map((call) => [call.method, call.traceparent]), [["Invoke", null]]);
    assert.deepEqual(exporter.getFinishedSpans(), []);
  });
});

describe("the W3C codec", () => {
  test("reads what it writes, and ignores what the spec says to ignore", () => {
    const carrier = { traceparent: `00-${TRACE_ID}-${SPAN_ID}-01`, tracestate: "a=1,b=2" };
    const spanContext = extractSpanContext(carrier);
    assert.ok(spanContext);
    assert.deepEqual(injectSpanContext(spanContext), carrier);
    // A later version may append fields; read as version 00.
    assert.equal(extractSpanContext({ traceparent: `01-${TRACE_ID}-${SPAN_ID}-01-later` })?.spanId, SPAN_ID);
    for (const traceparent of [
      `ff-${TRACE_ID}-${SPAN_ID}-01`,
      `00-${TRACE_ID}-${SPAN_ID}-01-extra`,
      `00-${"0".repeat(32)}-${SPAN_ID}-01`,
      `00-${TRACE_ID}-${"0".repeat(16)}-01`,
      `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`,
      "",
    ]) {
      assert.equal(extractSpanContext({ traceparent }), undefined, traceparent);
    }
    const invalid = { traceId: "0".repeat(32), spanId: SPAN_ID, traceFlags: 0 };
    assert.deepEqual(injectSpanContext(invalid), {});
  });
});

// --- the worker_app of the cross-language tests, with CAIRN_TEST_SPANS_FILE -----------

const HERE = dirname(fileURLToPath(import.meta.url));
const tsShout = remoteTask<string, string>("ts_shout");
const callsTs = entrypoint({ name: "trace_calls_ts" }, async (word: string) => tsShout(word));

describe("worker_app writes its spans to CAIRN_TEST_SPANS_FILE", () => {
  let served: Served;
  let folder: string;
  before(async () => {
    served = await serveFunctions([callsTs]);
    folder = mkdtempSync(join(tmpdir(), "cairn-spans-"));
  });
  after(async () => {
    await served.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  test("one JSON line per span, in the caller's trace", async () => {
    const spansFile = join(folder, "spans.jsonl");
    const app = spawn(
      process.execPath,
      [join(HERE, "apps", "worker_app.js"), "--address", served.server.address, "--log", join(folder, "log")],
      { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, CAIRN_TEST_SPANS_FILE: spansFile } },
    );
    try {
      await new Promise<void>((ready, failed) => {
        createInterface({ input: app.stdout! }).on("line", (line) => {
          if (line.startsWith("worker ready")) ready();
        });
        app.once("exit", (code) => failed(new Error(`worker_app exited with ${code}`)));
      });
      const run = await underSpan("caller", () =>
        served.client.invoke(callsTs, "psst", { threadId: "spans-1" }),
      );
      assert.equal(run.output, "PSST");
    } finally {
      await stopProcess(app);
    }
    const text = readFileSync(spansFile, "utf8");
    const lines = text.trimEnd().split("\n");
    const spans = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const shout = spans.filter((span) => span.name === "cairn.task ts_shout");
    assert.equal(shout.length, 1);
    const [span] = shout;
    assert.equal(span.traceId, one("caller").spanContext().traceId);
    assert.match(String(span.parentSpanId), /^[0-9a-f]{16}$/);
    assert.match(String(span.spanId), /^[0-9a-f]{16}$/);
    assert.equal(span.kind, "CONSUMER");
    const attributes = span.attributes as Record<string, unknown>;
    assert.equal(attributes["cairn.sdk.language"], "typescript");
    assert.equal(attributes["cairn.task.name"], "ts_shout");
    assert.equal(attributes["cairn.attempt"], 1);
    // Exact nanoseconds: integers of 19 digits, start before end.
    const line = lines[spans.indexOf(span)];
    const start = BigInt(/"startTimeUnixNano":(\d{19})/.exec(line)![1]);
    const end = BigInt(/"endTimeUnixNano":(\d{19})/.exec(line)![1]);
    assert.ok(start <= end);
  });
});

// --- without @opentelemetry/api installed ----------------------------------------------

describe("without @opentelemetry/api installed", () => {
  let served: Served;
  before(async () => (served = await serveFunctions([])));
  after(() => served.stop());

  test("a worker and a client run a workflow as before", async () => {
    // The compiled SDK in a folder whose node_modules has its dependencies
    // but no @opentelemetry.
    const folder = mkdtempSync(join(tmpdir(), "cairn-no-otel-"));
    try {
      const modules = resolve(HERE, "../../node_modules");
      cpSync(resolve(HERE, "../src"), join(folder, "dist", "src"), { recursive: true });
      for (const scope of ["@bufbuild", "@connectrpc"]) {
        mkdirSync(join(folder, "node_modules", scope), { recursive: true });
        for (const name of readdirSync(join(modules, scope))) {
          symlinkSync(join(modules, scope, name), join(folder, "node_modules", scope, name), "dir");
        }
      }
      writeFileSync(join(folder, "package.json"), '{"type": "module"}\n');
      writeFileSync(
        join(folder, "check.js"),
        `
import { Client, Worker, entrypoint, task } from "./dist/src/index.js";
import { otel } from "./dist/src/tracing.js";
let api = "absent";
try { await import("@opentelemetry/api"); api = "present"; } catch {}
const double = task("untraced_double", async (n) => n * 2);
const flow = entrypoint({ name: "untraced_flow" }, async (n) => double(n));
const worker = new Worker({ address: process.argv[2], functions: [double, flow] });
const running = worker.run();
await worker.waitConnected();
const client = new Client({ address: process.argv[2] });
const run = await client.invoke(flow, 21, { threadId: "untraced" });
const events = [];
for await (const event of client.stream(flow, 4, { threadId: "untraced-2" })) events.push(event.mode);
client.close();
await worker.stop({ graceMs: 1000 });
await running;
const loaded = otel() !== undefined;
console.log(JSON.stringify({ api, loaded, output: run.output, events: events.length > 0 }));
`,
      );
      const child = spawn(process.execPath, [join(folder, "check.js"), served.server.address], {
        cwd: folder,
        stdio: ["ignore", "pipe", "inherit"],
      });
      const output: string[] = [];
      createInterface({ input: child.stdout! }).on("line", (line) => output.push(line));
      const timer = setTimeout(() => void stopProcess(child), 60_000);
      const code = await new Promise<number | null>((exited) => child.once("exit", exited));
      clearTimeout(timer);
      assert.equal(code, 0);
      assert.deepEqual(JSON.parse(output.at(-1)!), {
        api: "absent",
        loaded: false,
        output: 42,
        events: true,
      });
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
