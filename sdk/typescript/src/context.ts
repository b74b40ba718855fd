/**
 * The execution of one assignment on a worker, and the functions user code
 * calls inside it: `interrupt`, `getPreviousState`, `getWriter`, `getConfig`
 * (`sleep` is in sleep.ts).
 *
 * A task or entrypoint body runs with its Execution in an AsyncLocalStorage.
 * Every child call (and every sleep of an entrypoint) takes the next
 * position, counted in the order the calls are made; a position the
 * assignment's journal holds resolves at once with the recorded result (so a
 * replay costs no round trip), anything else is scheduled through the
 * service and resolved when its outcome arrives.
 */

import { AsyncLocalStorage } from "node:async_hooks";
import type { JsonValue, MessageInitShape } from "@bufbuild/protobuf";
import {
  InterruptTimeoutError,
  NonDeterministicError,
  TaskFailedError,
  TaskTimeoutError,
} from "./errors.js";
import { StreamMode } from "./gen/cairn/v1/run_pb.js";
import {
  TaskKind,
  type ChildOutcome,
  type ConnectRequestSchema,
  type JournalEntry,
  type TaskAssignment,
} from "./gen/cairn/v1/worker_service_pb.js";
import {
  interruptFromPb,
  retryPolicyPb,
  taskTimeoutsPb,
  type Interrupt,
  type RetryPolicy,
  type TaskTimeouts,
} from "./types.js";
import type { StoreClient } from "./store.js";
import { fromValue, toValue } from "./values.js";

/**
 * Thrown by `interrupt()` to pause the run. The execution also remembers it,
 * so a body that catches it by mistake still stops at the interrupt.
 */
export class GraphInterrupt extends Error {
  constructor(
    readonly value: JsonValue,
    readonly index: number,
    /** The call's `timeout`, ms; undefined: it waits for ever. */
    readonly timeout?: number,
    /** The call's `default`; undefined: none (a timeout throws). */
    readonly timeoutDefault?: unknown,
  ) {
    super("interrupted");
    this.name = "GraphInterrupt";
  }
}

/** The options of `interrupt()`. */
export interface InterruptOptions<T = unknown> {
  /**
   * How long the interrupt waits for a resume, in ms (finite, not
   * negative), counted on the service's clock from when it records the
   * interrupt. Then the service answers it itself. Unset: it waits for ever.
   */
  timeout?: number;
  /**
   * What `interrupt()` returns when it times out (JSON; `null` is a
   * default like any other). Unset, or `undefined` (which JSON cannot
   * carry): it throws `InterruptTimeoutError` instead. Needs `timeout`.
   */
  default?: T;
}

/** Thrown where a workflow awaits a task that is interrupted: the workflow
 * stops here and is replayed when the run is resumed. */
export class ChildInterrupted extends Error {
  constructor(readonly interrupt: Interrupt) {
    super("a called task is interrupted");
    this.name = "ChildInterrupted";
  }
}

/** Thrown in a body whose execution was withdrawn (the run was cancelled or
 * the worker lost its connection); the service runs the work again if needed. */
export class Abandoned extends Error {
  constructor() {
    super("execution withdrawn");
    this.name = "Abandoned";
  }
}

/** The name a sleep is recorded under among an entrypoint's calls. */
export const SLEEP_CALL = "__sleep__";

/**
 * Thrown by `sleep()` and `sleepUntil()` where the entrypoint must wait for
 * a durable timer: it stops here, the service keeps the timer, and the
 * entrypoint is replayed when the timer is due. The execution also remembers
 * it, so a body that catches it by mistake still stops at the sleep.
 */
export class Sleeping extends Error {
  constructor(
    /** The sleep's position among the entrypoint's calls. */
    readonly index: number,
    /** How long to sleep, ms; or when to wake. */
    readonly wake: number | Date,
  ) {
    super("sleeping");
    this.name = "Sleeping";
  }
}

export type Signal = GraphInterrupt | ChildInterrupted | Sleeping | Abandoned;
export type Outgoing = MessageInitShape<typeof ConnectRequestSchema>["kind"];

/** What an entrypoint receives as its second argument, as langgraphjs's
 * LangGraphRunnableConfig. */
export interface RunnableConfig {
  /** Writes custom stream data (stream mode "custom"). */
  writer: (chunk: unknown) => void;
  /** Aborted when the execution is withdrawn. */
  signal: AbortSignal;
  /** The long-term memory store of the worker's service and namespace (as
   * `getStore()`). */
  store?: StoreClient;
  configurable: {
    thread_id: string;
    run_id: string;
    checkpoint_id: string;
    /** The task id: a stable idempotency key for side effects. */
    task_id: string;
    /** 1 for the first attempt; retries count up. */
    attempt: number;
  };
}

interface Pending {
  resolve: (value: JsonValue) => void;
  reject: (error: Error) => void;
}

const storage = new AsyncLocalStorage<Execution>();

/** The execution the calling code runs in; throws outside tasks and entrypoints. */
export function current(): Execution {
  const execution = storage.getStore();
  if (execution === undefined) {
    throw new Error("this can only be called inside a task or an entrypoint");
  }
  return execution;
}

/** One assignment running on this worker. */
export class Execution {
  readonly taskId: string;
  readonly name: string;
  readonly previous: JsonValue;
  readonly config: RunnableConfig;
  /** The first control-flow signal raised in this execution, if any. */
  signal: Signal | undefined;
  private readonly journal: Map<number, JournalEntry>;
  private readonly resume: JsonValue[];
  /** Positions of `resume` whose interrupt timed out with no default. */
  private readonly timedOut: ReadonlySet<number>;
  private readonly pending = new Map<number, Pending>();
  private readonly abort = new AbortController();
  private nextCall = 0;
  private nextInterrupt = 0;
  // Heartbeats: at most one per third of the heartbeat timeout; the latest
  // details wait for the next one.
  private readonly beatEveryMs: number;
  private readonly beatRequired: boolean;
  private nextBeat = 0;
  private beatTimer: NodeJS.Timeout | undefined;
  private beatDetails: ReturnType<typeof toValue> | undefined;
  private closed = false;

  constructor(
    readonly assignment: TaskAssignment,
    private readonly send: (message: Outgoing) => void,
    store?: StoreClient,
  ) {
    this.taskId = assignment.taskId;
    this.name = assignment.name;
    this.previous = fromValue(assignment.previous);
    this.journal = new Map(assignment.journal.map((entry) => [entry.index, entry]));
    this.resume = assignment.resume.map((value) => fromValue(value));
    this.timedOut = new Set(assignment.timedOut);
    const timeout = assignment.timeouts?.heartbeatTimeout;
    const timeoutMs = timeout ? Number(timeout.seconds) * 1000 + timeout.nanos / 1e6 : 0;
    this.beatRequired = timeoutMs > 0;
    this.beatEveryMs = this.beatRequired ? timeoutMs / 3 : DETAILS_INTERVAL_MS;
    this.config = {
      writer: (chunk) => this.write(chunk),
      signal: this.abort.signal,
      store,
      configurable: {
        thread_id: assignment.threadId,
        run_id: assignment.runId,
        checkpoint_id: assignment.checkpointId,
        task_id: assignment.taskId,
        attempt: assignment.attempt,
      },
    };
  }

  get abandoned(): boolean {
    return this.abort.signal.aborted;
  }

  /** Runs `fn` with this execution current. */
  run<T>(fn: () => T): T {
    return storage.run(this, fn);
  }

  // --- what user code calls ----------------------------------------------------

  /** Calls a task or entrypoint by name; resolves with its recorded result. */
  call(
    name: string,
    input: unknown,
    retry: RetryPolicy | undefined,
    timeouts?: TaskTimeouts,
  ): Promise<JsonValue> {
    const promise = this.schedule(name, input, retry, timeouts);
    // A call nobody awaits must not crash the worker when it is withdrawn;
    // whoever awaits it still sees the rejection.
    promise.catch(() => undefined);
    return promise;
  }

  private schedule(
    name: string,
    input: unknown,
    retry: RetryPolicy | undefined,
    timeouts: TaskTimeouts | undefined,
  ) {
    if (this.abandoned) return Promise.reject(this.raise(new Abandoned()));
    const index = this.nextCall++;
    let entry: JournalEntry | undefined;
    try {
      entry = this.recorded(index, name);
    } catch (error) {
      return Promise.reject(error);
    }
    if (entry !== undefined) return Promise.resolve(fromValue(entry.result));
    let value;
    try {
      value = toValue(input, `input of ${name}`);
    } catch (error) {
      return Promise.reject(error);
    }
    const promise = new Promise<JsonValue>((resolve, reject) => {
      this.pending.set(index, { resolve, reject });
    });
    this.send({
      case: "schedule",
      value: {
        parentTaskId: this.taskId,
        index,
        name,
        input: value,
        retryPolicy: retry ? retryPolicyPb(retry) : undefined,
        timeouts: timeouts ? taskTimeoutsPb(timeouts) : undefined,
      },
    });
    return promise;
  }

  /** The journal's entry at call position `index`, if it holds one; throws
   * NonDeterministicError when it records another name than `name` there. */
  private recorded(index: number, name: string): JournalEntry | undefined {
    const entry = this.journal.get(index);
    if (entry !== undefined && entry.name !== name) {
      throw new NonDeterministicError(
        `call ${index} of ${JSON.stringify(this.name)} is ${JSON.stringify(name)} in this ` +
          `replay but ${JSON.stringify(entry.name)} was recorded at that position`,
      );
    }
    return entry;
  }

  /**
   * Sleeps at the next call position: resolves at once when the journal
   * holds the sleep there (its timer is over), rejects with the Sleeping
   * signal otherwise, which the worker reports as TaskSleeping. `wake` is a
   * duration in ms or a wake time, checked by the caller.
   */
  sleep(wake: number | Date): Promise<void> {
    // Before taking a position: the service would fail the report anyway
    // (SleepNotAllowedError), and nothing is sent for a misuse.
    if (this.assignment.kind !== TaskKind.ENTRYPOINT) {
      throw new Error(
        `sleep works only in an entrypoint, not in the task or graph node ${JSON.stringify(this.name)}`,
      );
    }
    if (this.abandoned) return Promise.reject(this.raise(new Abandoned()));
    const index = this.nextCall++;
    let promise: Promise<void>;
    try {
      promise =
        this.recorded(index, SLEEP_CALL) !== undefined
          ? Promise.resolve()
          : Promise.reject(this.raise(new Sleeping(index, wake)));
    } catch (error) {
      promise = Promise.reject(error);
    }
    // A sleep nobody awaits must not crash the worker; the signal stops the
    // entrypoint all the same.
    promise.catch(() => undefined);
    return promise;
  }

  heartbeat(details: unknown): void {
    if (this.abandoned) throw this.raise(new Abandoned());
    if (details === undefined && !this.beatRequired) return; // nothing to say
    if (details !== undefined) this.beatDetails = toValue(details, "heartbeat details");
    if (this.beatTimer !== undefined || this.closed) return; // one is due already
    const wait = this.nextBeat - Date.now();
    if (wait <= 0) {
      this.sendBeat();
      return;
    }
    this.beatTimer = setTimeout(() => {
      this.beatTimer = undefined;
      if (!this.abandoned && !this.closed) this.sendBeat();
    }, wait);
  }

  private sendBeat(): void {
    this.nextBeat = Date.now() + this.beatEveryMs;
    const details = this.beatDetails;
    this.beatDetails = undefined;
    this.send({ case: "heartbeat", value: { taskId: this.taskId, details } });
  }

  /** The details of the last heartbeat of an earlier attempt, if any. */
  get heartbeatDetails(): JsonValue | undefined {
    const details = this.assignment.heartbeatDetails;
    return details === undefined ? undefined : fromValue(details);
  }

  /** The execution reported its outcome: no heartbeat goes after it. */
  close(): void {
    this.closed = true;
    clearTimeout(this.beatTimer);
    this.beatTimer = undefined;
  }

  /** Returns the resume value at the next interrupt position, throws
   * InterruptTimeoutError where the service timed it out with no default,
   * and otherwise stops the execution there. Options are checked by the
   * caller. */
  interrupt(value: unknown, timeout?: number, timeoutDefault?: unknown): JsonValue {
    const index = this.nextInterrupt++;
    if (index < this.resume.length) {
      if (this.timedOut.has(index)) {
        throw new InterruptTimeoutError(
          `interrupt ${index} of ${JSON.stringify(this.name)} timed out with no answer`,
        );
      }
      return this.resume[index];
    }
    throw this.raise(new GraphInterrupt(value as JsonValue, index, timeout, timeoutDefault));
  }

  write(chunk: unknown, mode: StreamMode = StreamMode.CUSTOM): void {
    if (this.abandoned) return;
    this.send({
      case: "chunk",
      value: { taskId: this.taskId, mode, data: toValue(chunk, "stream data") },
    });
  }

  // --- outcomes of child calls ---------------------------------------------------

  deliver(outcome: ChildOutcome): void {
    const pending = this.pending.get(outcome.index);
    if (pending === undefined) return;
    this.pending.delete(outcome.index);
    const result = outcome.outcome;
    if (result.case === "result") {
      pending.resolve(fromValue(result.value));
    } else if (result.case === "error") {
      const error = result.value;
      pending.reject(
        error.type === "NonDeterministicError"
          ? new NonDeterministicError(error.message)
          : error.type === "TaskTimeoutError"
            ? new TaskTimeoutError(
                error.message,
                String(error.details?.timeout ?? ""),
                String(error.details?.task_name ?? ""),
                error.traceback,
              )
            : new TaskFailedError(error.type, error.message, error.traceback),
      );
    } else if (result.case === "interrupted" && result.value.interrupt) {
      pending.reject(this.raise(new ChildInterrupted(interruptFromPb(result.value.interrupt))));
    }
  }

  /** Withdrawn: every pending and future call rejects with Abandoned. */
  abandon(): void {
    if (this.abandoned) return;
    this.close();
    this.abort.abort();
    const error = this.raise(new Abandoned());
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }

  private raise<S extends Signal>(signal: S): S {
    if (this.signal === undefined || signal instanceof Abandoned) this.signal = signal;
    return signal;
  }
}

// google.protobuf.Duration holds no more than this.
const MAX_TIMEOUT_MS = 315_576_000_000_000; // 10,000 years

/**
 * Pause the run and surface `value` to the client, as langgraphjs's
 * `interrupt`. When the run is resumed with `new Command({ resume: v })`, the
 * task, entrypoint or graph node is replayed and this call returns `v`.
 * Several calls in one task are matched to resume values by their order.
 *
 *     const review = task("review", async (essay: string) =>
 *       interrupt({ essay, action: "approve?" }));
 *
 * With a `timeout` (ms, on the service's clock) the service answers the
 * interrupt itself when no resume came in time: it starts a run on the
 * thread, in which this call returns `default`, or throws
 * `InterruptTimeoutError` when no default was given (catch it to go on
 * without an answer; uncaught, the task fails with that type). Whichever
 * comes first, the resume or the timeout, answers the interrupt, once.
 * `run.interrupts[i].timeout` tells the client when it times out.
 *
 *     const approved = interrupt<boolean>("approve the refund?", {
 *       timeout: 24 * 60 * 60 * 1000, // a day
 *       default: false,
 *     });
 *
 * A `timeout` that is not a finite number from 0 up, or a `default` without
 * a `timeout`, throws (TypeError or RangeError) before anything is sent.
 */
export function interrupt<T = unknown>(value: unknown, options: InterruptOptions<T> = {}): T {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`interrupt takes an options object, not ${options === null ? "null" : typeof options}`);
  }
  const { timeout, default: timeoutDefault } = options;
  if (timeout === undefined) {
    if (timeoutDefault !== undefined) {
      throw new TypeError("an interrupt's default is what a timeout returns: give a timeout with it");
    }
    return current().interrupt(value) as T;
  }
  if (typeof timeout !== "number") {
    throw new TypeError(`an interrupt's timeout is a number of ms, not ${typeof timeout}`);
  }
  if (!Number.isFinite(timeout) || timeout < 0 || timeout > MAX_TIMEOUT_MS) {
    throw new RangeError(
      `an interrupt's timeout is a finite number of ms from 0 to ${MAX_TIMEOUT_MS}, not ${timeout}`,
    );
  }
  return current().interrupt(value, timeout, timeoutDefault) as T;
}

/** The value the thread's previous run saved (its return value, or the `save`
 * of `entrypoint.final`); undefined on the first run. */
export function getPreviousState<T = unknown>(): T | undefined {
  const previous = current().previous;
  return (previous === null ? undefined : previous) as T | undefined;
}

const DETAILS_INTERVAL_MS = 10_000; // without a heartbeat timeout: details at most this often

/**
 * Tell the service that the current task is alive, as Temporal's
 * `heartbeat`. A task whose `timeouts.heartbeat` is set must call it at least
 * that often, or its worker loses it to another worker. `details` (JSON)
 * reach the task's next attempt through `getHeartbeatDetails()`. Cheap to
 * call often: messages are spaced by a third of the timeout. Throws
 * `Abandoned` once the service has withdrawn the attempt.
 *
 *     const crawl = task({ name: "crawl", timeouts: { heartbeat: 10_000 } }, async (urls: string[]) => {
 *       for (let i = getHeartbeatDetails<number>() ?? 0; i < urls.length; i++) {
 *         await fetchPage(urls[i]);
 *         heartbeat(i + 1);
 *       }
 *     });
 */
export function heartbeat(details?: unknown): void {
  current().heartbeat(details);
}

/** The details of the last `heartbeat()` of an earlier attempt of the current
 * task (or of a worker that lost it); undefined when there are none. */
export function getHeartbeatDetails<T = unknown>(): T | undefined {
  return current().heartbeatDetails as T | undefined;
}

/** A function that writes custom stream data from a task or an entrypoint. */
export function getWriter(): (chunk: unknown) => void {
  return current().config.writer;
}

/**
 * The long-term memory store, inside a task or an entrypoint (langgraphjs's
 * `getStore()`): the store of the service and namespace the worker serves,
 * reached with the worker's credentials. Memories outlive the thread:
 *
 *     const remember = entrypoint({ name: "remember" }, async (fact: string, config) => {
 *       await getStore().put(["users", "u-42"], "fact", { fact });   // or config.store
 *     });
 */
export function getStore(): StoreClient {
  const store = current().config.store;
  if (store === undefined) throw new Error("this execution has no store");
  return store;
}

/** The current execution's config (thread, run, task id, attempt, abort signal). */
export function getConfig(): RunnableConfig {
  return current().config;
}
