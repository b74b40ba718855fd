/**
 * The execution of one assignment on a worker, and the functions user code
 * calls inside it: `interrupt`, `getPreviousState`, `getWriter`, `getConfig`.
 *
 * A task or entrypoint body runs with its Execution in an AsyncLocalStorage.
 * Every child call takes the next position, counted in the order the calls
 * are made; a position the assignment's journal holds resolves at once with
 * the recorded result (so a replay costs no round trip), anything else is
 * scheduled through the service and resolved when its outcome arrives.
 */

import { AsyncLocalStorage } from "node:async_hooks";
import type { JsonValue, MessageInitShape } from "@bufbuild/protobuf";
import { NonDeterministicError, TaskFailedError } from "./errors.js";
import { StreamMode } from "./gen/cairn/v1/run_pb.js";
import type {
  ChildOutcome,
  ConnectRequestSchema,
  JournalEntry,
  TaskAssignment,
} from "./gen/cairn/v1/worker_service_pb.js";
import { interruptFromPb, retryPolicyPb, type Interrupt, type RetryPolicy } from "./types.js";
import { fromValue, toValue } from "./values.js";

/**
 * Thrown by `interrupt()` to pause the run. The execution also remembers it,
 * so a body that catches it by mistake still stops at the interrupt.
 */
export class GraphInterrupt extends Error {
  constructor(
    readonly value: JsonValue,
    readonly index: number,
  ) {
    super("interrupted");
    this.name = "GraphInterrupt";
  }
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

export type Signal = GraphInterrupt | ChildInterrupted | Abandoned;
export type Outgoing = MessageInitShape<typeof ConnectRequestSchema>["kind"];

/** What an entrypoint receives as its second argument, as langgraphjs's
 * LangGraphRunnableConfig. */
export interface RunnableConfig {
  /** Writes custom stream data (stream mode "custom"). */
  writer: (chunk: unknown) => void;
  /** Aborted when the execution is withdrawn. */
  signal: AbortSignal;
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
  private readonly pending = new Map<number, Pending>();
  private readonly abort = new AbortController();
  private nextCall = 0;
  private nextInterrupt = 0;

  constructor(
    readonly assignment: TaskAssignment,
    private readonly send: (message: Outgoing) => void,
  ) {
    this.taskId = assignment.taskId;
    this.name = assignment.name;
    this.previous = fromValue(assignment.previous);
    this.journal = new Map(assignment.journal.map((entry) => [entry.index, entry]));
    this.resume = assignment.resume.map((value) => fromValue(value));
    this.config = {
      writer: (chunk) => this.write(chunk),
      signal: this.abort.signal,
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
  call(name: string, input: unknown, retry: RetryPolicy | undefined): Promise<JsonValue> {
    const promise = this.schedule(name, input, retry);
    // A call nobody awaits must not crash the worker when it is withdrawn;
    // whoever awaits it still sees the rejection.
    promise.catch(() => undefined);
    return promise;
  }

  private schedule(name: string, input: unknown, retry: RetryPolicy | undefined) {
    if (this.abandoned) return Promise.reject(this.raise(new Abandoned()));
    const index = this.nextCall++;
    const entry = this.journal.get(index);
    if (entry !== undefined) {
      if (entry.name !== name) {
        return Promise.reject(
          new NonDeterministicError(
            `call ${index} of ${JSON.stringify(this.name)} is ${JSON.stringify(name)} in this ` +
              `replay but ${JSON.stringify(entry.name)} was recorded at that position`,
          ),
        );
      }
      return Promise.resolve(fromValue(entry.result));
    }
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
      },
    });
    return promise;
  }

  interrupt(value: unknown): JsonValue {
    const index = this.nextInterrupt++;
    if (index < this.resume.length) return this.resume[index];
    throw this.raise(new GraphInterrupt(value as JsonValue, index));
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
          : new TaskFailedError(error.type, error.message, error.traceback),
      );
    } else if (result.case === "interrupted" && result.value.interrupt) {
      pending.reject(this.raise(new ChildInterrupted(interruptFromPb(result.value.interrupt))));
    }
  }

  /** Withdrawn: every pending and future call rejects with Abandoned. */
  abandon(): void {
    if (this.abandoned) return;
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

/**
 * Pause the run and surface `value` to the client, as langgraphjs's
 * `interrupt`. When the run is resumed with `new Command({ resume: v })`, the
 * task or entrypoint is replayed and this call returns `v`. Several calls in
 * one task are matched to resume values by their order.
 *
 *     const review = task("review", async (essay: string) =>
 *       interrupt({ essay, action: "approve?" }));
 */
export function interrupt<T = unknown>(value: unknown): T {
  return current().interrupt(value) as T;
}

/** The value the thread's previous run saved (its return value, or the `save`
 * of `entrypoint.final`); undefined on the first run. */
export function getPreviousState<T = unknown>(): T | undefined {
  const previous = current().previous;
  return (previous === null ? undefined : previous) as T | undefined;
}

/** A function that writes custom stream data from a task or an entrypoint. */
export function getWriter(): (chunk: unknown) => void {
  return current().config.writer;
}

/** The current execution's config (thread, run, task id, attempt, abort signal). */
export function getConfig(): RunnableConfig {
  return current().config;
}
