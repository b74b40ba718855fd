/**
 * Reports checked against the service's payload limit before they are sent.
 *
 * The service refuses a report larger than Welcome.maxPayloadBytes, and one
 * larger than its stream's message limit breaks the stream: the task would
 * be dispatched again and refused again, for ever. So an oversized report
 * never leaves the worker as it is (the rules are in WorkerService's Welcome
 * comment): an outcome becomes a TaskFailed of type PayloadTooLargeError,
 * not retryable; a call fails where the task made it; stream data is
 * dropped and heartbeat details are left out.
 */

import { create, toBinary } from "@bufbuild/protobuf";
import type { Outgoing } from "./context.js";
import { ChildOutcomeSchema, ConnectRequestSchema, type ChildOutcome } from "./gen/cairn/v1/worker_service_pb.js";

export const PAYLOAD_TOO_LARGE = "PayloadTooLargeError";

const NAMES: Record<string, string> = { schedule: "call", completed: "result", interrupted: "interrupt" };
const OUTCOMES = new Set(["completed", "failed", "interrupted"]);

/** A report over the limit: what it is, about which task, how large. */
export interface Oversized {
  readonly kind: string;
  readonly taskId: string;
  readonly size: number;
  readonly limit: number;
}

/** The report `kind` when its message is over `limit` bytes (0: no limit). */
export function oversized(kind: Outgoing, limit: number): Oversized | undefined {
  if (!limit || kind?.case === undefined || kind.case === "hello" || kind.case === "batch") return undefined;
  const size = toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { kind })).length;
  if (size <= limit) return undefined;
  const value = kind.value as { taskId?: string; parentTaskId?: string };
  const taskId = (kind.case === "schedule" ? value.parentTaskId : value.taskId) ?? "";
  return { kind: kind.case, taskId, size, limit };
}

function error(found: Oversized) {
  return {
    type: PAYLOAD_TOO_LARGE,
    message:
      `the task's ${NAMES[found.kind] ?? found.kind} report is ${found.size} bytes;` +
      ` the service accepts at most ${found.limit} (max_payload_bytes)`,
    retryable: false,
  };
}

/** What goes to the service instead of an oversized report, if anything. */
export function replacement(found: Oversized): Outgoing | undefined {
  if (OUTCOMES.has(found.kind)) return { case: "failed", value: { taskId: found.taskId, error: error(found) } };
  if (found.kind === "heartbeat") return { case: "heartbeat", value: { taskId: found.taskId } };
  return undefined;
}

/** The outcome that fails an oversized call where the task awaits it. */
export function refusedCall(found: Oversized, index: number): ChildOutcome {
  return create(ChildOutcomeSchema, {
    parentTaskId: found.taskId,
    index,
    outcome: { case: "error", value: error(found) },
  });
}
