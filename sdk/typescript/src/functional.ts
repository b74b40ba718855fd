/**
 * langgraphjs's functional API: `task` and `entrypoint`.
 *
 *     const writeEssay = task("writeEssay", async (topic: string) =>
 *       `An essay about ${topic}`);
 *
 *     const workflow = entrypoint({ name: "workflow" }, async (topic: string) => {
 *       const essay = await writeEssay(topic);
 *       const approved = interrupt({ essay, action: "approve?" });
 *       return { essay, approved };
 *     });
 *
 * Serve both from a `Worker`; run the workflow with
 * `client.invoke("workflow", "cats", { threadId: "1" })`.
 *
 * A task declared with one parameter receives the call's input as is; one
 * with several parameters receives `{ args: [...], kwargs: {} }` on the wire,
 * the Python SDK's convention, so that either language can call it.
 */

import { current, type RunnableConfig } from "./context.js";
import type { RetryPolicy, TaskTimeouts } from "./types.js";

export interface TaskOptions {
  /** The name entrypoints in any language call the task by. */
  name: string;
  /** Retries for calls of this task; none when unset. */
  retry?: RetryPolicy;
  /** Timeouts the service enforces for calls of this task; none when unset. */
  timeouts?: TaskTimeouts;
}

export interface EntrypointOptions {
  /** The name clients run the entrypoint by. */
  name: string;
  /** Retries of the whole entrypoint; none when unset. */
  retry?: RetryPolicy;
  /** Only `scheduleToStart`: a run no worker takes in time fails. */
  timeouts?: Pick<TaskTimeouts, "scheduleToStart">;
}

/** What a worker needs to serve a task or an entrypoint. */
export interface Registration {
  readonly kind: "task" | "entrypoint";
  readonly name: string;
  readonly retry: RetryPolicy | undefined;
  readonly timeouts: TaskTimeouts | undefined;
  /** A graph node's (or its router's) node name, which its chat-model
   * tokens carry as `langgraph_node`; undefined: the registered name. */
  readonly node?: string;
  /** Runs the body on the call's input (inside its execution). */
  readonly execute: (input: unknown, config: RunnableConfig) => Promise<unknown>;
}

const REGISTRATION = Symbol("cairn.registration");

/** A task or an entrypoint, as `Worker` accepts them. */
export interface Servable {
  readonly [REGISTRATION]: Registration;
}

export function registrationOf(servable: Servable): Registration {
  const registration = servable?.[REGISTRATION];
  if (registration === undefined) {
    throw new TypeError(`${String(servable)} is not a task or an entrypoint`);
  }
  return registration;
}

/** A task: calling it schedules it through the service and returns a promise
 * of its recorded result. */
export type Task<Args extends unknown[], Output> = ((...args: Args) => Promise<Output>) &
  Servable & { readonly taskName: string };

function options(optionsOrName: string | TaskOptions | EntrypointOptions) {
  const opts = typeof optionsOrName === "string" ? { name: optionsOrName } : optionsOrName;
  if (!opts?.name) throw new TypeError("a task or an entrypoint needs a name");
  return opts as { name: string; retry?: RetryPolicy; timeouts?: TaskTimeouts };
}

/**
 * Declare a task, as langgraphjs's `task(name, fn)` or
 * `task({ name, retry }, fn)`. Call it inside an entrypoint (or another task):
 * its result is recorded, and a replay returns it without running it again.
 */
export function task<Args extends unknown[], Output>(
  optionsOrName: string | TaskOptions,
  fn: (...args: Args) => Output | Promise<Output>,
): Task<Args, Awaited<Output>> {
  const { name, retry, timeouts } = options(optionsOrName);
  const single = fn.length === 1;
  const call = (...args: Args) =>
    current().call(
      name,
      single && args.length === 1 ? args[0] : { args, kwargs: {} },
      retry,
      timeouts,
    ) as Promise<Awaited<Output>>;
  const registration: Registration = {
    kind: "task",
    name,
    retry,
    timeouts,
    execute: async (input) => {
      if (single) return fn(...([input] as Args));
      const packed = input as { args?: unknown[] } | null;
      const args = Array.isArray(packed?.args) ? packed.args : [input];
      return fn(...(args as Args));
    },
  };
  return Object.assign(call, { [REGISTRATION]: registration, taskName: name });
}

/**
 * A task served by a worker in another language (or another process), called
 * by name with one input, e.g. a Python `@task def summarize(text: str)`:
 *
 *     const summarize = remoteTask<string, string>("summarize");
 *     const summary = await summarize(text);   // inside an entrypoint
 */
export function remoteTask<Input, Output>(
  optionsOrName: string | TaskOptions,
): (input: Input) => Promise<Output> {
  const { name, retry, timeouts } = options(optionsOrName);
  return (input: Input) => current().call(name, input, retry, timeouts) as Promise<Output>;
}

/** Return `entrypoint.final({ value, save })` to return `value` to the caller
 * while saving `save` as the next run's previous state. */
export class EntrypointFinal<Value, Save> {
  constructor(
    readonly value: Value,
    readonly save: Save,
  ) {}
}

/** A workflow served by a worker and run by clients by its name. */
export class Entrypoint<Input, Output> implements Servable {
  readonly [REGISTRATION]: Registration;

  constructor(
    readonly name: string,
    readonly fn: (input: Input, config: RunnableConfig) => Output | Promise<Output>,
    readonly retry?: RetryPolicy,
    readonly timeouts?: Pick<TaskTimeouts, "scheduleToStart">,
  ) {
    if (timeouts && Object.keys(timeouts).some((key) => key !== "scheduleToStart")) {
      throw new TypeError("an entrypoint takes only a scheduleToStart timeout");
    }
    this[REGISTRATION] = {
      kind: "entrypoint",
      name,
      retry,
      timeouts,
      execute: async (input, config) => fn(input as Input, config),
    };
  }

  /** Runs it as a nested workflow of the current entrypoint. */
  invoke(input: Input): Promise<FinalValue<Awaited<Output>>> {
    return current().call(this.name, input, this.retry, this.timeouts) as Promise<
      FinalValue<Awaited<Output>>
    >;
  }
}

type FinalValue<T> = T extends EntrypointFinal<infer V, unknown> ? V : T;

function defineEntrypoint<Input, Output>(
  optionsOrName: string | EntrypointOptions,
  fn: (input: Input, config: RunnableConfig) => Output | Promise<Output>,
): Entrypoint<Input, Output> {
  if (fn.length > 2) {
    throw new TypeError("an entrypoint takes one input and, optionally, the config");
  }
  const { name, retry, timeouts } = options(optionsOrName);
  return new Entrypoint(name, fn, retry, timeouts);
}

/**
 * Declare a workflow, as langgraphjs's `entrypoint({ name }, fn)`. `fn`
 * takes one input and, optionally, the config (`config.writer` streams
 * custom data). `getPreviousState()` gives the value the thread's last run
 * saved; `entrypoint.final({ value, save })` saves something else than the
 * return value.
 */
export const entrypoint = Object.assign(defineEntrypoint, {
  final<Value, Save>({ value, save }: { value: Value; save: Save }): EntrypointFinal<Value, Save> {
    return new EntrypointFinal(value, save);
  },
});
