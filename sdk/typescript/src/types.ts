/**
 * Public value types of the SDK: plain objects and string unions, built from
 * and turned into protocol messages by the helpers at the bottom. Generated
 * message types do not leak out of the SDK.
 */

import { create, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { DurationSchema, timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { TaskError } from "./gen/cairn/v1/errors_pb.js";
import {
  CommandSchema,
  Durability as DurabilityPb,
  MultitaskStrategy as MultitaskStrategyPb,
  ResumeMapSchema,
  RetryPolicySchema,
  TaskTimeoutsSchema,
  type TaskTimeouts as TaskTimeoutsPb,
  RunState as RunStatePb,
  StreamMode as StreamModePb,
  WaitReason as WaitReasonPb,
  type CheckpointRef,
  type Command as CommandPb,
  type Interrupt as InterruptPb,
  type RetryPolicy as RetryPolicyPb,
  type Run as RunPb,
  type RunEvent as RunEventPb,
  type RunWaiting as RunWaitingPb,
} from "./gen/cairn/v1/run_pb.js";
import {
  ThreadStatus as ThreadStatusPb,
  type StateSnapshot as StateSnapshotPb,
  type Thread as ThreadPb,
} from "./gen/cairn/v1/thread_pb.js";
import { fromValue, toValue } from "./values.js";

export type Durability = "sync" | "async" | "exit";
/** What a run start does when its thread has an active run: throw
 * ThreadBusyError (reject, the default), wait for it to end (enqueue), stop
 * it keeping what it stored (interrupt), or stop and delete it (rollback). */
export type MultitaskStrategy = "reject" | "enqueue" | "interrupt" | "rollback";
export type RunState =
  | "pending"
  | "running"
  | "interrupted"
  | "succeeded"
  | "failed"
  | "cancelled";
export type ThreadStatus = "idle" | "busy" | "interrupted" | "error";
/** Why a task of a run is not running: no connected worker serves its name,
 * every worker serving it is busy, or it waits for its retry's backoff. */
export type WaitReason = "no_worker" | "worker_busy" | "retry_backoff" | "timer";
export type StreamMode =
  | "values"
  | "updates"
  | "custom"
  | "messages"
  | "tasks"
  | "checkpoints"
  | "debug";

/**
 * A generated enum as a two-way table: protocol number to the value's name
 * without its prefix, lower case (DURABILITY_SYNC -> "sync"). Derived from the
 * protos so that a new value needs no change here.
 */
function enumTable<T extends string>(
  generated: Record<string, string | number>,
): { byNumber: Map<number, T>; byName: Map<T, number> } {
  const byNumber = new Map<number, T>();
  const byName = new Map<T, number>();
  for (const [name, number] of Object.entries(generated)) {
    if (typeof number !== "number" || number === 0) continue;
    byNumber.set(number, name.toLowerCase() as T);
    byName.set(name.toLowerCase() as T, number);
  }
  return { byNumber, byName };
}

const DURABILITY = enumTable<Durability>(DurabilityPb);
const MULTITASK_STRATEGY = enumTable<MultitaskStrategy>(MultitaskStrategyPb);
const RUN_STATE = enumTable<RunState>(RunStatePb);
const THREAD_STATUS = enumTable<ThreadStatus>(ThreadStatusPb);
const STREAM_MODE = enumTable<StreamMode>(StreamModePb);
const WAIT_REASON = enumTable<WaitReason>(WaitReasonPb);

function toEnum<T extends string>(table: { byName: Map<T, number> }, name: T, what: string) {
  const number = table.byName.get(name);
  if (number === undefined) {
    throw new TypeError(`${JSON.stringify(name)} is not a ${what}`);
  }
  return number;
}

export const durabilityPb = (d: Durability): DurabilityPb =>
  toEnum(DURABILITY, d, "durability");
export const multitaskStrategyPb = (m: MultitaskStrategy): MultitaskStrategyPb =>
  toEnum(MULTITASK_STRATEGY, m, "multitask strategy");
export const streamModePb = (m: StreamMode): StreamModePb =>
  toEnum(STREAM_MODE, m, "stream mode");
export const runStatePb = (s: RunState): RunStatePb => toEnum(RUN_STATE, s, "run state");
export const threadStatusPb = (s: ThreadStatus): ThreadStatusPb =>
  toEnum(THREAD_STATUS, s, "thread status");

/**
 * How a failed task is retried, with LangGraph's defaults; intervals in
 * milliseconds, as in langgraphjs. The worker decides whether an error is
 * retryable (`retryOn`); the service applies attempts and backoff.
 *
 *     const fetchPage = task({ name: "fetchPage", retry: { maxAttempts: 5 } }, fetch);
 */
export interface RetryPolicy {
  /** Delay before the first retry, ms. Default 500. */
  initialInterval?: number;
  /** Multiplier applied to the delay after each retry. Default 2. */
  backoffFactor?: number;
  /** Upper bound of the delay, ms. Default 128000. */
  maxInterval?: number;
  /** Attempts in total, including the first. Default 3. */
  maxAttempts?: number;
  /** Add random jitter of up to one second to each delay. Default true. */
  jitter?: boolean;
  /** Which errors are retried; by default everything but programming errors. */
  retryOn?: (error: unknown) => boolean;
}

const NOT_RETRIED = new Set([
  "TypeError",
  "RangeError",
  "ReferenceError",
  "SyntaxError",
  "EvalError",
  "URIError",
  "AbortError",
  "InvalidValueError",
  "NonDeterministicError",
]);
const CLIENT_ERROR_STATUSES = new Set([400, 401, 402, 403, 404, 405, 406, 407, 409]);

/**
 * LangGraph's default: retry network trouble and unknown errors, not
 * programming errors, aborts or HTTP client errors.
 */
export function defaultRetryOn(error: unknown): boolean {
  if (!(error instanceof Error)) return true;
  if (NOT_RETRIED.has(error.name)) return false;
  const status = (error as { status?: unknown; response?: { status?: unknown } }).status ??
    (error as { response?: { status?: unknown } }).response?.status;
  return !(typeof status === "number" && CLIENT_ERROR_STATUSES.has(status));
}

export function retries(policy: RetryPolicy | undefined, error: unknown): boolean {
  return (policy?.retryOn ?? defaultRetryOn)(error);
}

function durationMs(ms: number) {
  const whole = Math.floor(ms / 1000);
  return create(DurationSchema, {
    seconds: BigInt(whole),
    nanos: Math.round((ms - whole * 1000) * 1e6),
  });
}

/**
 * Temporal's activity timeouts for a task, in milliseconds as RetryPolicy's
 * intervals; unset is no limit. The service enforces them:
 * - `scheduleToStart`: no worker took the task within it; the task fails with
 *   a `TaskTimeoutError` that is not retried (the run fails unless the caller
 *   catches it).
 * - `startToClose`: one attempt ran longer; it is cancelled on its worker
 *   (its abort signal fires) and fails with a retryable `TaskTimeoutError`,
 *   retried per the task's RetryPolicy.
 * - `heartbeat`: the task must call `heartbeat()` at least this often; a
 *   worker that stops loses the task, which runs again on another worker.
 *
 * An entrypoint takes only `scheduleToStart` ("no worker took this run").
 *
 *     const crawl = task({ name: "crawl", timeouts: { heartbeat: 10_000 } }, async (url) => {
 *       for (const page of await pages(url)) { heartbeat({ page }); ... }
 *     });
 */
export interface TaskTimeouts {
  /** How long an attempt may wait for a worker, ms. */
  scheduleToStart?: number;
  /** How long one attempt may run, ms. */
  startToClose?: number;
  /** The longest the task may go without `heartbeat()`, ms. */
  heartbeat?: number;
}

export function taskTimeoutsPb(timeouts: TaskTimeouts): TaskTimeoutsPb {
  const duration = (ms: number | undefined, name: string) => {
    if (ms === undefined) return undefined;
    if (!(ms > 0)) throw new RangeError(`${name} must be a positive number of ms, not ${ms}`);
    return durationMs(ms);
  };
  return create(TaskTimeoutsSchema, {
    scheduleToStartTimeout: duration(timeouts.scheduleToStart, "scheduleToStart"),
    startToCloseTimeout: duration(timeouts.startToClose, "startToClose"),
    heartbeatTimeout: duration(timeouts.heartbeat, "heartbeat"),
  });
}

export function retryPolicyPb(policy: RetryPolicy): RetryPolicyPb {
  return create(RetryPolicySchema, {
    initialInterval: durationMs(policy.initialInterval ?? 500),
    backoffFactor: policy.backoffFactor ?? 2,
    maxInterval: durationMs(policy.maxInterval ?? 128_000),
    maxAttempts: policy.maxAttempts ?? 3,
    jitter: policy.jitter ?? true,
  });
}

/** A pending `interrupt(value)`. Resume it with `new Command({ resume })`. */
export interface Interrupt {
  value: JsonValue;
  /** Stable id; the key of `new Command({ resume: { [id]: value } })`. */
  id: string;
  taskId: string;
  taskName: string;
  /** Position among the interrupt() calls of its task. */
  index: number;
  /** When the service answers it if nobody did (`interrupt(value, { timeout })`). */
  timeout?: Date;
  /** What the interrupt() call returns then (absent when it throws InterruptTimeoutError). */
  timeoutDefault?: JsonValue;
}

export function interruptFromPb(message: InterruptPb): Interrupt {
  const interrupt: Interrupt = {
    value: fromValue(message.value),
    id: message.id,
    taskId: message.taskId,
    taskName: message.taskName,
    index: message.index,
  };
  if (message.timeoutTime) interrupt.timeout = timestampDate(message.timeoutTime);
  if (message.timeoutDefault) interrupt.timeoutDefault = fromValue(message.timeoutDefault);
  return interrupt;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Resumes an interrupted run, as langgraphjs's `new Command({ resume })`.
 * As in LangGraph, an object whose keys are all interrupt ids answers several
 * pending interrupts by id:
 *
 *     new Command({ resume: { [interrupts[0].id]: "yes", [interrupts[1].id]: "no" } })
 */
export class Command {
  readonly resume: unknown;
  readonly update: unknown;
  readonly goto: unknown;

  constructor({ resume, update, goto }: { resume?: unknown; update?: unknown; goto?: unknown }) {
    this.resume = resume;
    this.update = update;
    this.goto = goto;
  }

  /** @internal */
  toProto(): CommandPb {
    if (this.update !== undefined || this.goto !== undefined) {
      throw new TypeError(
        "Command({ update, goto }) is what a graph node returns; a run is resumed " +
          "with new Command({ resume })",
      );
    }
    const resume = this.resume;
    if (isResumeMap(resume)) {
      const values = Object.fromEntries(
        Object.entries(resume).map(([id, v]) => [id, toValue(v, `resume[${id}]`)]),
      );
      return create(CommandSchema, {
        resumeKind: { case: "resumeMap", value: create(ResumeMapSchema, { values }) },
      });
    }
    return create(CommandSchema, {
      resumeKind: { case: "resume", value: toValue(resume, "resume") },
    });
  }
}

function isResumeMap(resume: unknown): resume is Record<string, unknown> {
  if (resume === null || typeof resume !== "object" || Array.isArray(resume)) return false;
  const keys = Object.keys(resume);
  return keys.length > 0 && keys.every((key) => UUID.test(key));
}

/** An error raised by a task or an entrypoint, in whichever language. */
export interface ErrorDetails {
  type: string;
  message: string;
  retryable: boolean;
  traceback: string;
}

export function errorFromPb(message: TaskError): ErrorDetails {
  return {
    type: message.type,
    message: message.message,
    retryable: message.retryable,
    traceback: message.traceback,
  };
}

/** One run of an entrypoint on a thread. */
export interface Run {
  runId: string;
  threadId: string;
  target: string;
  state: RunState;
  durability: Durability;
  /** The entrypoint's return value, when succeeded. */
  output: JsonValue;
  /** The pending interrupts, when interrupted. */
  interrupts: Interrupt[];
  /** The error, when failed. */
  error?: ErrorDetails;
  checkpointId: string;
  metadata: JsonObject;
  createdAt?: Date;
  updatedAt?: Date;
  /** While the run is active, what it waits on (empty while all its tasks
   * run); each change is also a lifecycle event of `stream` and `join`. */
  waiting: RunWaiting[];
}

/**
 * A task or entrypoint an active run waits on, and why:
 *
 *     for (const w of run.waiting)
 *       if (w.reason === "no_worker") console.log(`start a worker serving ${w.taskName}`);
 */
export interface RunWaiting {
  reason: WaitReason;
  taskName: string;
  taskId: string;
  since?: Date;
  /** For "retry_backoff": when the next attempt is due; for "timer": when the sleep ends. */
  until?: Date;
  namespace: string[];
}

const time = (stamp: Timestamp | undefined) => (stamp ? timestampDate(stamp) : undefined);

function waitingFromPb(message: RunWaitingPb): RunWaiting {
  return {
    reason: WAIT_REASON.byNumber.get(message.reason) ?? "no_worker",
    taskName: message.taskName,
    taskId: message.taskId,
    since: time(message.sinceTime),
    until: time(message.untilTime),
    namespace: [...message.namespace],
  };
}

export function runFromPb(message: RunPb): Run {
  return {
    runId: message.runId,
    threadId: message.threadId,
    target: message.target,
    state: RUN_STATE.byNumber.get(message.state) ?? "pending",
    durability: DURABILITY.byNumber.get(message.durability) ?? "async",
    output: fromValue(message.output),
    interrupts: message.interrupts.map(interruptFromPb),
    error: message.error ? errorFromPb(message.error) : undefined,
    checkpointId: message.checkpoint?.checkpointId ?? "",
    metadata: message.metadata ?? {},
    createdAt: time(message.createTime),
    updatedAt: time(message.updateTime),
    waiting: message.waiting.map(waitingFromPb),
  };
}

/**
 * One event of a run's log. For stream chunks `mode` is the stream mode and
 * `data` the chunk; for lifecycle events `mode` is "lifecycle" and `run` is
 * the run in its new state: it started, ended, stopped at an interrupt, or
 * started or stopped waiting (`run.waiting`).
 */
export interface RunEvent {
  eventId: number;
  runId: string;
  mode: StreamMode | "lifecycle";
  data: JsonValue;
  namespace: string[];
  run?: Run;
}

export function runEventFromPb(message: RunEventPb): RunEvent {
  const base = { eventId: Number(message.eventId), runId: message.runId };
  if (message.kind.case === "run") {
    const run = runFromPb(message.kind.value);
    return { ...base, mode: "lifecycle", data: null, namespace: [], run };
  }
  const chunk = message.kind.value;
  return {
    ...base,
    mode: (chunk && STREAM_MODE.byNumber.get(chunk.mode)) ?? "custom",
    data: fromValue(chunk?.data),
    namespace: [...(chunk?.namespace ?? [])],
  };
}

export interface Thread {
  threadId: string;
  status: ThreadStatus;
  metadata: JsonObject;
  createdAt?: Date;
  updatedAt?: Date;
}

export function threadFromPb(message: ThreadPb): Thread {
  return {
    threadId: message.threadId,
    status: THREAD_STATUS.byNumber.get(message.status) ?? "idle",
    metadata: message.metadata ?? {},
    createdAt: time(message.createTime),
    updatedAt: time(message.updateTime),
  };
}

/** A task of a checkpoint, as in LangGraph's StateSnapshot.tasks. */
export interface PregelTask {
  id: string;
  name: string;
  result: JsonValue;
  error?: ErrorDetails;
  interrupts: Interrupt[];
  path: string[];
}

export interface CheckpointConfig {
  configurable: { thread_id: string; checkpoint_ns: string; checkpoint_id: string };
}

/** A thread's state at one checkpoint, as LangGraph's `getState`. */
export interface StateSnapshot {
  values: JsonValue;
  next: string[];
  config?: CheckpointConfig;
  metadata: JsonObject;
  createdAt?: Date;
  parentConfig?: CheckpointConfig;
  tasks: PregelTask[];
  interrupts: Interrupt[];
}

function checkpointConfig(ref: CheckpointRef | undefined): CheckpointConfig | undefined {
  if (!ref) return undefined;
  return {
    configurable: {
      thread_id: ref.threadId,
      checkpoint_ns: ref.checkpointNs,
      checkpoint_id: ref.checkpointId,
    },
  };
}

export function stateFromPb(message: StateSnapshotPb): StateSnapshot {
  return {
    values: fromValue(message.values),
    next: [...message.next],
    config: checkpointConfig(message.config),
    metadata: message.metadata ?? {},
    createdAt: time(message.createTime),
    parentConfig: checkpointConfig(message.parentConfig),
    tasks: message.tasks.map((t) => ({
      id: t.id,
      name: t.name,
      result: fromValue(t.result),
      error: t.error ? errorFromPb(t.error) : undefined,
      interrupts: t.interrupts.map(interruptFromPb),
      path: [...t.path],
    })),
    interrupts: message.interrupts.map(interruptFromPb),
  };
}
