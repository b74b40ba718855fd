/**
 * OpenTelemetry for test processes: a tracer provider whose spans are
 * appended, one JSON object a line, to a file another process (a Python
 * test) reads:
 *
 *     {"name": "cairn.task ts_shout", "kind": "CONSUMER", "traceId": "...",
 *      "spanId": "...", "parentSpanId": "..." | null, "attributes": {...},
 *      "status": {"code": "OK" | "ERROR" | "UNSET", "message": "..."},
 *      "startTimeUnixNano": 1733450000123456789, "endTimeUnixNano": ...}
 *
 * Times are exact integers (JSON numbers beyond 2**53, which Python reads
 * exactly). A line is written when its span ends, before the worker reports
 * the outcome, so a test that saw the run end finds the span in the file.
 */

import { appendFileSync } from "node:fs";
import { SpanKind, SpanStatusCode, context, trace, type Context, type HrTime } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  type ReadableSpan,
  type Span,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";

function unixNano([seconds, nanos]: HrTime): string {
  return (BigInt(seconds) * 1_000_000_000n + BigInt(nanos)).toString();
}

/** One span as a JSON line (without the newline). */
export function spanLine(span: ReadableSpan): string {
  const { traceId, spanId } = span.spanContext();
  const fields = JSON.stringify({
    name: span.name,
    kind: SpanKind[span.kind],
    traceId,
    spanId,
    parentSpanId: span.parentSpanContext?.spanId ?? null,
    attributes: span.attributes,
    status: { code: SpanStatusCode[span.status.code], message: span.status.message ?? "" },
  });
  const times = `"startTimeUnixNano":${unixNano(span.startTime)},"endTimeUnixNano":${unixNano(span.endTime)}`;
  return `${fields.slice(0, -1)},${times}}`;
}

/** Appends each ended span to `path`, synchronously. */
class SpansFileProcessor implements SpanProcessor {
  constructor(private readonly path: string) {}
  onStart(_span: Span, _parentContext: Context): void {}
  onEnd(span: ReadableSpan): void {
    appendFileSync(this.path, `${spanLine(span)}\n`);
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** Registers (globally) a tracer provider that writes every span to `path`,
 * and an AsyncLocalStorage context manager (spans made in a task nest under
 * the task's span). */
export function installSpansFile(path: string): BasicTracerProvider {
  const provider = new BasicTracerProvider({ spanProcessors: [new SpansFileProcessor(path)] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  return provider;
}
