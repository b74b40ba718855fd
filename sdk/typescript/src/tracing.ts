/**
 * OpenTelemetry tracing, optional: when the application has
 * `@opentelemetry/api` installed (and registers a tracer provider, e.g. with
 * the OpenTelemetry Node SDK and its OTEL_* variables), workers and clients
 * make spans; without it, nothing here costs more than one failed module
 * lookup per process.
 *
 * - A client call (Invoke, Stream, Session) is a CLIENT span `cairn.invoke
 *   <target>` (`cairn.stream`, `cairn.session`), a child of the active
 *   context, whose W3C trace context goes to the service as `traceparent` /
 *   `tracestate` metadata. The service keeps it with the run.
 * - Each execution of a task or an entrypoint on a worker is a CONSUMER span
 *   `cairn.task <name>`, a child of the trace context its TaskAssignment
 *   carries, and the active span while the body runs (user spans nest under
 *   it when a context manager is registered). It ends when the worker
 *   reports the outcome.
 *
 * The wire format between Cairn processes is always W3C trace context,
 * whatever propagator the application configured, so that Python and
 * TypeScript workers and the service read each other's context.
 */

import { createRequire } from "node:module";
import type * as OtelApi from "@opentelemetry/api";
import type { TaskAssignment } from "./gen/cairn/v1/worker_service_pb.js";
import { TaskKind } from "./gen/cairn/v1/worker_service_pb.js";
import type { Run, RunEvent } from "./types.js";
import { VERSION } from "./version.js";

type Api = typeof OtelApi;

/** The instrumentation scope of Cairn's spans. */
export const TRACER_NAME = "@cairn/sdk";

let api: Api | null | undefined;

/**
 * `@opentelemetry/api` when the application has it, else undefined (looked
 * up once). It is loaded with require: in Node both its CommonJS and ESM
 * builds keep their tracer provider and context manager on one global, so
 * this sees what the application registered however it imported the API.
 */
export function otel(): Api | undefined {
  if (api === undefined) {
    try {
      api = createRequire(import.meta.url)("@opentelemetry/api") as Api;
    } catch {
      api = null; // not installed: no tracing
    }
  }
  return api ?? undefined;
}

/** For tests: behave as if `@opentelemetry/api` were (not) installed. */
export function setOtelForTesting(value: Api | null | undefined): void {
  api = value;
}

// --- W3C trace context (https://www.w3.org/TR/trace-context/) -------------------------

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const INVALID_TRACE_ID = "0".repeat(32);
const INVALID_SPAN_ID = "0".repeat(16);

/** The remote span context of a W3C carrier, or undefined when it has none
 * (or a malformed one, which the spec says to ignore). */
export function extractSpanContext(
  carrier: Readonly<Record<string, string>>,
): OtelApi.SpanContext | undefined {
  const otelApi = otel();
  const match = TRACEPARENT.exec((carrier.traceparent ?? "").trim());
  if (otelApi === undefined || match === null) return undefined;
  const [, version, traceId, spanId, flags, rest] = match;
  // Version ff is forbidden; version 00 has nothing after the flags; later
  // versions may append fields, read as version 00.
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (traceId === INVALID_TRACE_ID || spanId === INVALID_SPAN_ID) return undefined;
  const spanContext: OtelApi.SpanContext = {
    traceId,
    spanId,
    traceFlags: parseInt(flags, 16) & otelApi.TraceFlags.SAMPLED,
    isRemote: true,
  };
  const state = carrier.tracestate?.trim();
  if (state) spanContext.traceState = otelApi.createTraceState(state);
  return spanContext;
}

/** The W3C carrier of a span context: `traceparent` and, when not empty,
 * `tracestate`; empty for an invalid context. */
export function injectSpanContext(spanContext: OtelApi.SpanContext): Record<string, string> {
  const otelApi = otel();
  if (otelApi === undefined || !otelApi.isSpanContextValid(spanContext)) return {};
  const flags = (spanContext.traceFlags & 0xff).toString(16).padStart(2, "0");
  const carrier: Record<string, string> = {
    traceparent: `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`,
  };
  const state = spanContext.traceState?.serialize();
  if (state) carrier.tracestate = state;
  return carrier;
}

/** Marks `span` failed, with `error` as an exception event when there is one. */
function recordError(span: OtelApi.Span, error: unknown): void {
  const otelApi = otel()!;
  if (error === undefined) {
    span.setStatus({ code: otelApi.SpanStatusCode.ERROR });
    return;
  }
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({
    code: otelApi.SpanStatusCode.ERROR,
    message: error instanceof Error ? error.message : String(error),
  });
}

// --- worker ------------------------------------------------------------------------

/** How an execution ended, as `cairn.task.outcome`. */
export type TaskOutcome =
  | "completed"
  | "failed"
  | "interrupted"
  | "sleeping"
  | "suspended"
  | "abandoned";

/** The span of one execution on a worker. */
export interface TaskSpan {
  /** Runs `fn` with the span active (for the application's own spans). */
  run<T>(fn: () => T): T;
  /** Ends the span (once); a failure records `error`. */
  end(outcome: TaskOutcome, error?: unknown): void;
}

/**
 * Starts the span of an assignment's execution, a child of the trace context
 * it carries (a root span when it carries none); undefined without OpenTelemetry.
 */
export function startTaskSpan(assignment: TaskAssignment, workerId: string): TaskSpan | undefined {
  const otelApi = otel();
  if (otelApi === undefined) return undefined;
  const remote = extractSpanContext(assignment.traceContext);
  const parent =
    remote === undefined ? otelApi.ROOT_CONTEXT : otelApi.trace.setSpanContext(otelApi.ROOT_CONTEXT, remote);
  // The same attributes as the Python SDK's worker spans.
  const attributes: OtelApi.Attributes = {
    "cairn.task_id": assignment.taskId,
    "cairn.task.name": assignment.name,
    "cairn.task.kind": assignment.kind === TaskKind.ENTRYPOINT ? "entrypoint" : "task",
    "cairn.run_id": assignment.runId,
    "cairn.thread_id": assignment.threadId,
    "cairn.namespace": assignment.namespace,
    "cairn.attempt": assignment.attempt,
    "cairn.worker_id": workerId,
    "cairn.sdk.language": "typescript",
  };
  const span = otelApi.trace
    .getTracer(TRACER_NAME, VERSION)
    .startSpan(`cairn.task ${assignment.name}`, { kind: otelApi.SpanKind.CONSUMER, attributes }, parent);
  const active = otelApi.trace.setSpan(parent, span);
  let ended = false;
  return {
    run: (fn) => otelApi.context.with(active, fn),
    end(outcome, error) {
      if (ended) return;
      ended = true;
      span.setAttribute("cairn.task.outcome", outcome);
      if (outcome === "failed") recordError(span, error);
      span.end();
    },
  };
}

// --- client ------------------------------------------------------------------------

export type ClientMethod = "Invoke" | "Stream" | "Session";

/** The span of one client call. */
export interface ClientSpan {
  /** The metadata that carries the span's context to the service. */
  readonly headers: Record<string, string>;
  /** Notes what an event says of the run (its id, its state). */
  observe(event: RunEvent): void;
  /** Ends the span (once), with the run it ended on or the error it threw. */
  end(result?: { run?: Run; error?: unknown }): void;
}

/** The context a client span started later should continue: the active one
 * when the call was made. Undefined without OpenTelemetry. */
export function callerContext(): OtelApi.Context | undefined {
  return otel()?.context.active();
}

/**
 * Starts the CLIENT span of a call, a child of `parent` (default: the
 * active context); undefined without OpenTelemetry.
 */
export function startClientSpan(
  method: ClientMethod,
  target: string,
  threadId: string,
  parent?: OtelApi.Context,
): ClientSpan | undefined {
  const otelApi = otel();
  if (otelApi === undefined) return undefined;
  const verb = method.toLowerCase();
  const span = otelApi.trace.getTracer(TRACER_NAME, VERSION).startSpan(
    target ? `cairn.${verb} ${target}` : `cairn.${verb}`,
    {
      kind: otelApi.SpanKind.CLIENT,
      attributes: {
        "rpc.system": "grpc",
        "rpc.service": "cairn.v1.RunService",
        "rpc.method": method,
        "cairn.target": target,
        "cairn.thread_id": threadId,
      },
    },
    parent ?? otelApi.context.active(),
  );
  let ended = false;
  let runId = "";
  const noteRun = (run: Run) => {
    if (run.runId && run.runId !== runId) {
      runId = run.runId;
      span.setAttribute("cairn.run_id", runId);
    }
    span.setAttribute("cairn.run_state", run.state);
  };
  return {
    headers: injectSpanContext(span.spanContext()),
    observe(event) {
      if (event.run) noteRun(event.run);
      else if (event.runId && !runId) {
        runId = event.runId;
        span.setAttribute("cairn.run_id", runId);
      }
    },
    end({ run, error } = {}) {
      if (ended) return;
      ended = true;
      if (run !== undefined) noteRun(run);
      if (error !== undefined) recordError(span, error);
      span.end();
    },
  };
}

/** The events of `events`, with `span` ended when they end, throw, or the
 * consumer stops early. */
export async function* tracedEvents(
  span: ClientSpan | undefined,
  events: AsyncIterable<RunEvent>,
): AsyncGenerator<RunEvent> {
  if (span === undefined) {
    yield* events;
    return;
  }
  try {
    for await (const event of events) {
      span.observe(event);
      yield event;
    }
  } catch (error) {
    span.end({ error });
    throw error;
  } finally {
    span.end();
  }
}
