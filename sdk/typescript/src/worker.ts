/**
 * Worker: serves tasks and entrypoints to the Cairn service.
 *
 *     const worker = new Worker({ address: "127.0.0.1:50051", functions: [writeEssay, workflow] });
 *     await worker.run();   // until worker.stop()
 *
 * The worker keeps one WorkerService.Connect stream open and reconnects with
 * exponential backoff when it drops. The service hands it at most
 * `maxConcurrency` tasks (and `maxEntrypoints` entrypoints) at once, and
 * re-dispatches whatever it held when the stream broke.
 */

import { hostname } from "node:os";
import { createClient } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Abandoned, ChildInterrupted, Execution, GraphInterrupt, type Outgoing } from "./context.js";
import { InvalidValueError, TaskFailedError } from "./errors.js";
import { EntrypointFinal, registrationOf, type Registration, type Servable } from "./functional.js";
import type { TaskErrorSchema } from "./gen/cairn/v1/errors_pb.js";
import {
  TaskKind,
  WorkerService,
  type ConnectRequestSchema,
  type ConnectResponse,
  type TaskAssignment,
} from "./gen/cairn/v1/worker_service_pb.js";
import { AsyncQueue } from "./queue.js";
import { connect } from "./transport.js";
import { retries, retryPolicyPb } from "./types.js";
import { fromValue, toValue } from "./values.js";
import { VERSION } from "./version.js";

type Request = MessageInitShape<typeof ConnectRequestSchema>;

export interface WorkerOptions {
  /** host:port of the service. Default 127.0.0.1:50051. */
  address?: string;
  /** The tasks and entrypoints to serve. */
  functions?: Servable[];
  /** Tasks run at once. Default 16. */
  maxConcurrency?: number;
  /** Entrypoint executions held at once (they mostly wait). Default 256. */
  maxEntrypoints?: number;
  /** A stable id; the service generates one when empty. */
  workerId?: string;
  /** Upper bound of the reconnect backoff, ms. Default 5000. */
  reconnectMaxIntervalMs?: number;
  /** Where connection warnings go. Default console.warn. */
  log?: (message: string) => void;
}

export class Worker {
  readonly address: string;
  readonly maxConcurrency: number;
  readonly maxEntrypoints: number;
  workerId: string;
  private readonly functions = new Map<string, Registration>();
  private readonly reconnectMaxIntervalMs: number;
  private readonly log: (message: string) => void;
  private readonly running = new Map<string, { execution: Execution; done: Promise<void> }>();
  private connectedNow = false;
  private connectedWaiters: (() => void)[] = [];
  private stopping = false;
  private wakeBackoff: (() => void) | undefined;
  private outbox: AsyncQueue<Request> | undefined;
  private closeConnection: (() => void) | undefined;

  constructor(options: WorkerOptions = {}) {
    this.address = options.address ?? "127.0.0.1:50051";
    this.maxConcurrency = options.maxConcurrency ?? 16;
    this.maxEntrypoints = options.maxEntrypoints ?? 256;
    this.workerId = options.workerId ?? "";
    this.reconnectMaxIntervalMs = options.reconnectMaxIntervalMs ?? 5_000;
    this.log = options.log ?? ((message) => console.warn(`cairn worker: ${message}`));
    for (const fn of options.functions ?? []) this.register(fn);
  }

  /** Serve a task or an entrypoint; returns it. */
  register<T extends Servable>(servable: T): T {
    const registration = registrationOf(servable);
    this.functions.set(registration.name, registration);
    return servable;
  }

  /** Whether the stream is open and welcomed. */
  get connected(): boolean {
    return this.connectedNow;
  }

  /** Resolves once the worker is connected (at once if it is). */
  waitConnected(): Promise<void> {
    if (this.connectedNow) return Promise.resolve();
    return new Promise((resolve) => this.connectedWaiters.push(resolve));
  }

  // --- lifecycle --------------------------------------------------------------------

  /** Serve until `stop()`; reconnects with exponential backoff. */
  async run(): Promise<void> {
    let delay = 50;
    while (!this.stopping) {
      let welcomed = false;
      try {
        welcomed = await this.session();
      } catch (error) {
        if (this.stopping) break;
        this.log(`connection to ${this.address} lost: ${(error as Error).message}`);
      }
      this.connectedNow = false;
      if (this.stopping) break;
      if (welcomed) delay = 50;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay * (1 + Math.random()));
        this.wakeBackoff = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeBackoff = undefined;
      delay = Math.min(delay * 2, this.reconnectMaxIntervalMs);
    }
  }

  /**
   * Finish the tasks in progress (up to `graceMs`), then disconnect; anything
   * unfinished is re-dispatched by the service.
   */
  async stop({ graceMs = 10_000 }: { graceMs?: number } = {}): Promise<void> {
    this.stopping = true;
    this.wakeBackoff?.();
    const inFlight = [...this.running.values()].map((r) => r.done);
    if (inFlight.length > 0 && graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([Promise.all(inFlight), timeout]);
      clearTimeout(timer);
    }
    this.outbox?.close();
    this.closeConnection?.();
  }

  // --- one connection --------------------------------------------------------------

  private hello(): Request {
    return {
      kind: {
        case: "hello",
        value: {
          workerId: this.workerId,
          maxConcurrentTasks: this.maxConcurrency,
          maxConcurrentEntrypoints: this.maxEntrypoints,
          sdkLanguage: "typescript",
          sdkVersion: VERSION,
          identity: `${process.pid}@${hostname()}`,
          registrations: [...this.functions.values()].map((r) => ({
            name: r.name,
            kind: r.kind === "entrypoint" ? TaskKind.ENTRYPOINT : TaskKind.TASK,
            retryPolicy: r.retry ? retryPolicyPb(r.retry) : undefined,
          })),
        },
      },
    };
  }

  /** One Connect stream; resolves whether it was welcomed. */
  private async session(): Promise<boolean> {
    const outbox = new AsyncQueue<Request>();
    const connection = connect(this.address);
    this.outbox = outbox;
    this.closeConnection = connection.close;
    outbox.push(this.hello());
    let welcomed = false;
    try {
      const service = createClient(WorkerService, connection.transport);
      for await (const response of service.connect(outbox)) {
        welcomed ||= response.kind.case === "welcome";
        this.handle(response, outbox);
      }
      return welcomed;
    } finally {
      outbox.close();
      connection.close();
      for (const { execution } of this.running.values()) execution.abandon();
      this.running.clear();
    }
  }

  private handle(response: ConnectResponse, outbox: AsyncQueue<Request>): void {
    const message = response.kind;
    switch (message.case) {
      case "welcome":
        this.workerId = message.value.workerId;
        this.connectedNow = true;
        for (const wake of this.connectedWaiters.splice(0)) wake();
        break;
      case "assignment":
        // While stopping, new assignments stay unstarted; the service
        // re-dispatches them when this stream closes.
        if (!this.stopping) this.start(message.value, outbox);
        break;
      case "childOutcome":
        this.running.get(message.value.parentTaskId)?.execution.deliver(message.value);
        break;
      case "cancel": {
        const running = this.running.get(message.value.taskId);
        this.running.delete(message.value.taskId);
        running?.execution.abandon();
        break;
      }
      case "rejected":
        this.log(
          `service rejected a message about task ${message.value.taskId}: ` +
            `${message.value.error?.message} (${message.value.error?.reason})`,
        );
        break;
    }
  }

  private start(assignment: TaskAssignment, outbox: AsyncQueue<Request>): void {
    const send = (kind: Outgoing) => outbox.push({ kind });
    const execution = new Execution(assignment, send);
    const done = this.execute(execution, send).finally(() => {
      if (this.running.get(assignment.taskId)?.execution === execution) {
        this.running.delete(assignment.taskId);
      }
    });
    this.running.set(assignment.taskId, { execution, done });
  }

  private async execute(execution: Execution, send: (kind: Outgoing) => void): Promise<void> {
    const taskId = execution.taskId;
    const registration = this.functions.get(execution.name);
    let outcome: Outgoing;
    try {
      if (registration === undefined) {
        throw new ReferenceError(`this worker does not serve ${JSON.stringify(execution.name)}`);
      }
      const input = fromValue(execution.assignment.input);
      const result = await execution.run(() => registration.execute(input, execution.config));
      if (execution.signal) throw execution.signal;
      outcome =
        result instanceof EntrypointFinal
          ? {
              case: "completed",
              value: { taskId, result: toValue(result.value), save: toValue(result.save) },
            }
          : { case: "completed", value: { taskId, result: toValue(result) } };
    } catch (thrown) {
      // A signal wins over whatever the body made of it.
      const error = execution.signal ?? thrown;
      if (error instanceof Abandoned || execution.abandoned) return;
      if (error instanceof GraphInterrupt) {
        outcome = {
          case: "interrupted",
          value: { taskId, index: error.index, value: toValue(error.value, "interrupt value") },
        };
      } else if (error instanceof ChildInterrupted) {
        outcome = { case: "suspended", value: { taskId } };
      } else {
        outcome = { case: "failed", value: { taskId, error: taskError(error, registration) } };
      }
    }
    if (!execution.abandoned) send(outcome);
  }
}

/** The error type's name as other languages should see it. */
export function errorType(error: unknown): string {
  if (!(error instanceof Error)) return typeof error;
  const constructorName = error.constructor?.name;
  return error.name !== "Error" || !constructorName ? error.name : constructorName;
}

function taskError(
  error: unknown,
  registration: Registration | undefined,
): MessageInitShape<typeof TaskErrorSchema> {
  if (error instanceof TaskFailedError) {
    // A task called by this workflow failed and the workflow let it escape:
    // report the task's own error type, not retried here again.
    return { type: error.type, message: error.message, traceback: error.remoteTraceback };
  }
  const message = error instanceof Error ? error.message : String(error);
  const traceback = error instanceof Error ? (error.stack ?? "") : "";
  return {
    type: errorType(error),
    message,
    retryable: !(error instanceof InvalidValueError) && retries(registration?.retry, error),
    traceback,
  };
}
