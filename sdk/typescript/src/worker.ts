/**
 * Worker: serves tasks, entrypoints and graphs to the Cairn service.
 *
 *     const worker = new Worker({ address: "127.0.0.1:50051", functions: [writeEssay, workflow] });
 *     await worker.run();   // until worker.stop()
 *
 * The worker keeps one WorkerService.Connect stream open to every address it
 * is given (replicas of one service, or separate services: `address:
 * ["10.0.0.1:50051", "10.0.0.2:50051"]` or a comma-separated string), each
 * reconnecting on its own with exponential backoff when it drops. Each
 * service hands it at most `maxConcurrency` tasks (and `maxEntrypoints`
 * entrypoints) at once, and re-dispatches whatever it held when the stream
 * broke. The limits hold over all connections together: an assignment beyond
 * them waits in the worker until a body finishes. Every execution answers on
 * the stream it came from.
 *
 * Against a secured service, give `token` or `apiKey`, `namespace` (the one
 * namespace whose tasks it serves) and `tls`, or set the CAIRN_*
 * environment variables (see credentials.ts).
 */

import { hostname } from "node:os";
import { createClient } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  Abandoned,
  ChildInterrupted,
  Execution,
  GraphInterrupt,
  Sleeping,
  type Outgoing,
} from "./context.js";
import { resolveCredentials, type CredentialOptions, type Credentials } from "./credentials.js";
import {
  InterruptTimeoutError,
  InvalidValueError,
  JsonTooDeepError,
  TaskFailedError,
} from "./errors.js";
import { parseAddresses, type Addresses } from "./failover.js";
import { EntrypointFinal, registrationOf, type Registration, type Servable } from "./functional.js";
import type { GraphSpec } from "./gen/cairn/v1/graph_pb.js";
import { CompiledStateGraph } from "./graph/compiled.js";
import type { TaskErrorSchema } from "./gen/cairn/v1/errors_pb.js";
import {
  TaskKind,
  WorkerService,
  type ConnectRequestSchema,
  type ConnectResponse,
  type TaskAssignment,
} from "./gen/cairn/v1/worker_service_pb.js";
import { streamingMessages } from "./messages.js";
import { oversized, refusedCall, replacement } from "./report_limits.js";
import { AsyncQueue } from "./queue.js";
import { Slots } from "./slots.js";
import { StoreClient, transportCaller, type StoreOptions } from "./store.js";
import { startTaskSpan, type TaskOutcome } from "./tracing.js";
import { connect, connectionUrl } from "./transport.js";
import { retries, retryPolicyPb, taskTimeoutsPb } from "./types.js";
import { fromValue, toValue } from "./values.js";
import { VERSION } from "./version.js";

type Request = MessageInitShape<typeof ConnectRequestSchema>;

/** Also takes `token` or `apiKey`, `namespace` and `tls` (CredentialOptions),
 * sent on every Connect stream. */
export interface WorkerOptions extends CredentialOptions {
  /**
   * host:port of the service, or several (replicas of one service, or
   * separate services): a comma-separated string or an array. The worker
   * connects to all of them. Default 127.0.0.1:50051.
   */
  address?: Addresses;
  /** The tasks, entrypoints and compiled graphs to serve. */
  functions?: (Servable | CompiledStateGraph<any, any>)[];
  /** Tasks run at once, over all connections. Default 16. */
  maxConcurrency?: number;
  /** Entrypoint executions held at once (they mostly wait), over all
   * connections. Default 256. */
  maxEntrypoints?: number;
  /** A stable id; when empty, the service generates one (the first one a
   * service welcomed it with becomes `workerId`). */
  workerId?: string;
  /** Upper bound of the reconnect backoff, ms. Default 5000. */
  reconnectMaxIntervalMs?: number;
  /** Where connection warnings go. Default console.warn. */
  log?: (message: string) => void;
  /** How `getStore()` in the worker's tasks embeds (an index config) and
   * expires items. */
  store?: StoreOptions;
}

/** An assignment held on one connection: running, or waiting for a slot. */
interface Held {
  readonly execution: Execution;
  /** Settles when the body is done; unset while it waits for a slot. */
  done?: Promise<void>;
  /** Gives up the wait for a slot (a no-op once started). */
  withdraw: () => void;
  /** Frees the slot of a started body (once). */
  release: () => void;
}

/** The Connect stream to one address. */
interface Link {
  readonly address: string;
  /** The id the service at this address knows the worker by. */
  workerId: string;
  connected: boolean;
  outbox: AsyncQueue<Request> | undefined;
  close: (() => void) | undefined;
  wakeBackoff: (() => void) | undefined;
  /** Assignments of the current stream, by task id. */
  readonly held: Map<string, Held>;
  /** Assignments whose journal pages are still coming, by task id. */
  readonly gathering: Map<string, TaskAssignment>;
  /** Welcome.maxPayloadBytes: reports over it are not sent as they are. */
  maxPayload: number;
  /** The store of this address, on the current stream's connection. */
  store: StoreClient | undefined;
}

export class Worker {
  /** The addresses, comma-separated. */
  readonly address: string;
  readonly addresses: readonly string[];
  readonly maxConcurrency: number;
  readonly maxEntrypoints: number;
  /** The namespace whose tasks it serves; undefined: the server's "default". */
  readonly namespace: string | undefined;
  workerId: string;
  private readonly functions = new Map<string, Registration>();
  /** Compiled graphs (and their subgraphs) by name; their nodes and routers are in `functions`. */
  private readonly graphs = new Map<string, GraphSpec>();
  private readonly reconnectMaxIntervalMs: number;
  private readonly log: (message: string) => void;
  private readonly credentials: Credentials;
  /** The store settings each connection's store shares (checked at once). */
  private readonly storeSettings: StoreClient;
  private readonly links: Link[];
  private readonly taskSlots: Slots;
  private readonly entrypointSlots: Slots;
  private connectedWaiters: { all: boolean; wake: () => void }[] = [];
  private stopping = false;

  constructor(options: WorkerOptions = {}) {
    this.addresses = parseAddresses(options.address);
    this.address = this.addresses.join(",");
    this.maxConcurrency = options.maxConcurrency ?? 16;
    this.maxEntrypoints = options.maxEntrypoints ?? 256;
    this.workerId = options.workerId ?? "";
    this.reconnectMaxIntervalMs = options.reconnectMaxIntervalMs ?? 5_000;
    this.log = options.log ?? ((message) => console.warn(`cairn worker: ${message}`));
    this.credentials = resolveCredentials(options);
    this.storeSettings = new StoreClient(() => Promise.reject(new Error("not connected")), options.store);
    this.namespace = this.credentials.namespace;
    // Connections open in run(): check their addresses now.
    for (const address of this.addresses) connectionUrl(address, this.credentials);
    this.taskSlots = new Slots(this.maxConcurrency);
    this.entrypointSlots = new Slots(this.maxEntrypoints);
    this.links = this.addresses.map((address) => ({
      address,
      workerId: "",
      connected: false,
      outbox: undefined,
      close: undefined,
      wakeBackoff: undefined,
      held: new Map(),
      gathering: new Map(),
      maxPayload: 0,
      store: undefined,
    }));
    for (const fn of options.functions ?? []) this.register(fn);
  }

  /** Serve a task, an entrypoint or a compiled graph (with its subgraphs;
   * its nodes and routers are served as tasks); returns it. */
  register<T extends Servable | CompiledStateGraph<any, any>>(servable: T): T {
    if (servable instanceof CompiledStateGraph) {
      for (const graph of servable.served()) {
        this.graphs.set(graph.name, graph.spec);
        for (const [name, registration] of graph.tasks) this.functions.set(name, registration);
      }
      return servable;
    }
    const registration = registrationOf(servable);
    this.functions.set(registration.name, registration);
    return servable;
  }

  /** Whether a stream (to any address) is open and welcomed. */
  get connected(): boolean {
    return this.links.some((link) => link.connected);
  }

  /** The addresses whose stream is open and welcomed. */
  get connectedAddresses(): string[] {
    return this.links.filter((link) => link.connected).map((link) => link.address);
  }

  /**
   * Resolves once the worker is connected to any address, or to every
   * address with `{ all: true }` (at once if it is).
   */
  waitConnected({ all = false }: { all?: boolean } = {}): Promise<void> {
    if (this.isConnected(all)) return Promise.resolve();
    return new Promise((wake) => this.connectedWaiters.push({ all, wake }));
  }

  private isConnected(all: boolean): boolean {
    return all ? this.links.every((link) => link.connected) : this.connected;
  }

  // --- lifecycle --------------------------------------------------------------------

  /** Serve until `stop()`; each connection reconnects with exponential backoff. */
  async run(): Promise<void> {
    await Promise.all(this.links.map((link) => this.serve(link)));
  }

  /**
   * Finish the tasks in progress (up to `graceMs`), then disconnect; anything
   * unfinished, or not started, is re-dispatched by the service.
   */
  async stop({ graceMs = 10_000 }: { graceMs?: number } = {}): Promise<void> {
    this.stopping = true;
    const inFlight: Promise<void>[] = [];
    for (const link of this.links) {
      link.wakeBackoff?.();
      for (const [taskId, held] of link.held) {
        if (held.done === undefined) {
          held.withdraw();
          link.held.delete(taskId);
        } else {
          inFlight.push(held.done);
        }
      }
    }
    if (inFlight.length > 0 && graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([Promise.all(inFlight), timeout]);
      clearTimeout(timer);
    }
    for (const link of this.links) {
      link.outbox?.close();
      link.close?.();
    }
  }

  /** One address: connect, serve, and reconnect after a backoff until stopped. */
  private async serve(link: Link): Promise<void> {
    let delay = 50;
    while (!this.stopping) {
      let welcomed = false;
      try {
        welcomed = await this.session(link);
      } catch (error) {
        if (this.stopping) break;
        this.log(`connection to ${link.address} lost: ${(error as Error).message}`);
      }
      link.connected = false;
      if (this.stopping) break;
      if (welcomed) delay = 50;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay * (1 + Math.random()));
        link.wakeBackoff = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      link.wakeBackoff = undefined;
      delay = Math.min(delay * 2, this.reconnectMaxIntervalMs);
    }
  }

  // --- one connection --------------------------------------------------------------

  private hello(link: Link): Request {
    return {
      kind: {
        case: "hello",
        value: {
          workerId: link.workerId || this.workerId,
          maxConcurrentTasks: this.maxConcurrency,
          maxConcurrentEntrypoints: this.maxEntrypoints,
          sdkLanguage: "typescript",
          acceptsJournalPages: true,
          sdkVersion: VERSION,
          identity: `${process.pid}@${hostname()}`,
          registrations: [
            ...[...this.graphs.values()].map((graph) => ({ name: graph.name, kind: TaskKind.GRAPH, graph })),
            ...[...this.functions.values()].map((r) => ({
              name: r.name,
              kind: r.kind === "entrypoint" ? TaskKind.ENTRYPOINT : TaskKind.TASK,
              retryPolicy: r.retry ? retryPolicyPb(r.retry) : undefined,
              timeouts: r.timeouts ? taskTimeoutsPb(r.timeouts) : undefined,
            })),
          ],
        },
      },
    };
  }

  /** One Connect stream; resolves whether it was welcomed. */
  private async session(link: Link): Promise<boolean> {
    const outbox = new AsyncQueue<Request>();
    const connection = connect(link.address, { credentials: this.credentials });
    link.outbox = outbox;
    link.close = connection.close;
    // Tasks reach the store of the service that assigned them, as the worker.
    link.store = new StoreClient(transportCaller(connection.transport), this.storeSettings);
    outbox.push(this.hello(link));
    let welcomed = false;
    try {
      const service = createClient(WorkerService, connection.transport);
      for await (const response of service.connect(outbox)) {
        welcomed ||= response.kind.case === "welcome";
        this.handle(link, response, outbox);
      }
      return welcomed;
    } finally {
      outbox.close();
      connection.close();
      // The service re-dispatches all of them.
      for (const held of link.held.values()) this.drop(held);
      link.held.clear();
      link.gathering.clear();
      link.maxPayload = 0;
    }
  }

  private handle(link: Link, response: ConnectResponse, outbox: AsyncQueue<Request>): void {
    const message = response.kind;
    switch (message.case) {
      case "welcome":
        link.workerId = message.value.workerId;
        this.workerId ||= link.workerId;
        link.maxPayload = Number(message.value.maxPayloadBytes);
        link.connected = true;
        this.connectedWaiters = this.connectedWaiters.filter(({ all, wake }) => {
          if (!this.isConnected(all)) return true;
          wake();
          return false;
        });
        break;
      case "assignment":
        // While stopping, new assignments stay unstarted; the service
        // re-dispatches them when this stream closes.
        if (this.stopping) break;
        if (message.value.journalContinues) link.gathering.set(message.value.taskId, message.value);
        else this.accept(link, message.value, outbox);
        break;
      case "journalPage": {
        // More of a gathered assignment's journal; it starts once whole.
        const gathered = link.gathering.get(message.value.taskId);
        if (gathered === undefined) break;
        gathered.journal.push(...message.value.entries);
        if (message.value.last) {
          link.gathering.delete(message.value.taskId);
          if (!this.stopping) this.accept(link, gathered, outbox);
        }
        break;
      }
      case "childOutcome":
        link.held.get(message.value.parentTaskId)?.execution.deliver(message.value);
        break;
      case "cancel": {
        link.gathering.delete(message.value.taskId);
        const held = link.held.get(message.value.taskId);
        link.held.delete(message.value.taskId);
        if (held) this.drop(held);
        break;
      }
      case "rejected":
        this.log(
          `service at ${link.address} rejected a message about task ${message.value.taskId}: ` +
            `${message.value.error?.message} (${message.value.error?.reason})`,
        );
        break;
    }
  }

  /** Withdraws an assignment: a waiting one never starts; a running body is
   * abandoned and its slot freed at once (its result would not be sent). */
  private drop(held: Held): void {
    held.withdraw();
    held.execution.abandon();
    held.release();
  }

  /** How executions answer on `outbox`: reports over the service's payload
   * limit are replaced (report_limits.ts). */
  private guarded(link: Link, outbox: AsyncQueue<Request>): (kind: Outgoing) => void {
    return (kind: Outgoing) => {
      const found = oversized(kind, link.maxPayload);
      if (found === undefined) {
        outbox.push({ kind });
        return;
      }
      this.log(`task ${found.taskId}: its ${found.kind} report is ${found.size} bytes, over the service's limit of ${found.limit}`);
      if (kind?.case === "schedule") {
        // The call fails where the task awaits it, never sent.
        const index = (kind.value as { index?: number }).index ?? 0;
        queueMicrotask(() => link.held.get(found.taskId)?.execution.deliver(refusedCall(found, index)));
        return;
      }
      const instead = replacement(found);
      if (instead !== undefined) outbox.push({ kind: instead });
    };
  }

  /** Starts an assignment when the shared limit lets it, answering on `outbox`. */
  private accept(link: Link, assignment: TaskAssignment, outbox: AsyncQueue<Request>): void {
    const send = this.guarded(link, outbox);
    const execution = new Execution(assignment, send, link.store);
    const slots = assignment.kind === TaskKind.ENTRYPOINT ? this.entrypointSlots : this.taskSlots;
    let started = false;
    let released = false;
    const held: Held = {
      execution,
      withdraw: () => undefined,
      release: () => {
        if (started && !released) {
          released = true;
          slots.release();
        }
      },
    };
    link.held.set(assignment.taskId, held);
    held.withdraw = slots.take(() => {
      started = true;
      if (this.stopping || execution.abandoned) {
        held.release();
        return;
      }
      const workerId = link.workerId || this.workerId;
      held.done = this.execute(execution, send, workerId).finally(() => {
        execution.close();
        held.release();
        if (link.held.get(assignment.taskId) === held) link.held.delete(assignment.taskId);
      });
    });
  }

  private async execute(
    execution: Execution,
    send: (kind: Outgoing) => void,
    workerId: string,
  ): Promise<void> {
    const taskId = execution.taskId;
    const registration = this.functions.get(execution.name);
    // The execution's span (with OpenTelemetry), ended as the outcome is sent.
    const span = startTaskSpan(execution.assignment, workerId);
    let outcome: NonNullable<Outgoing>;
    let failure: unknown;
    try {
      if (registration === undefined) {
        throw new ReferenceError(`this worker does not serve ${JSON.stringify(execution.name)}`);
      }
      const input = fromValue(execution.assignment.input);
      const run = () => registration.execute(input, execution.config);
      const body = () => execution.run(() => streamingMessages(execution, run, registration.node));
      const result = await (span === undefined ? body() : span.run(body));
      if (execution.signal) throw execution.signal;
      outcome =
        result instanceof EntrypointFinal
          ? {
              case: "completed",
              value: {
                taskId,
                result: toValue(result.value, "result"),
                save: toValue(result.save, "save"),
              },
            }
          : { case: "completed", value: { taskId, result: toValue(result, "result") } };
    } catch (thrown) {
      // A signal wins over whatever the body made of it.
      const error = execution.signal ?? thrown;
      if (error instanceof Abandoned || execution.abandoned) {
        span?.end("abandoned");
        return;
      }
      if (error instanceof GraphInterrupt) {
        outcome = interrupted(taskId, error, registration);
      } else if (error instanceof ChildInterrupted) {
        outcome = { case: "suspended", value: { taskId } };
      } else if (error instanceof Sleeping) {
        outcome = sleeping(taskId, error);
      } else {
        outcome = { case: "failed", value: { taskId, error: taskError(error, registration) } };
        failure = error;
      }
    }
    if (execution.abandoned) {
      span?.end("abandoned");
      return;
    }
    // Ended before the report leaves, so an exporter has the span by the
    // time the service (and the caller) see the outcome.
    span?.end(outcome.case as TaskOutcome, failure);
    send(outcome);
  }
}

/** The error type's name as other languages should see it. */
export function errorType(error: unknown): string {
  if (!(error instanceof Error)) return typeof error;
  const constructorName = error.constructor?.name;
  return error.name !== "Error" || !constructorName ? error.name : constructorName;
}

/** The report of a task that called interrupt(); a value or default that
 * cannot be sent (not JSON, too deep) fails the task instead. */
function interrupted(
  taskId: string,
  signal: GraphInterrupt,
  registration: Registration | undefined,
): NonNullable<Outgoing> {
  try {
    const { index, timeout, timeoutDefault } = signal;
    const value = toValue(signal.value, "interrupt value");
    if (timeout === undefined) return { case: "interrupted", value: { taskId, index, value } };
    return {
      case: "interrupted",
      value: {
        taskId,
        index,
        value,
        // Whole ms, rounded up: an interrupt never times out before it was asked to.
        timeout: durationFromMs(Math.ceil(timeout)),
        timeoutDefault:
          timeoutDefault === undefined ? undefined : toValue(timeoutDefault, "interrupt default"),
      },
    };
  } catch (error) {
    return { case: "failed", value: { taskId, error: taskError(error, registration) } };
  }
}

/** The report of an entrypoint that called sleep() or sleepUntil(). */
function sleeping(taskId: string, signal: Sleeping): NonNullable<Outgoing> {
  const { index, wake } = signal;
  return {
    case: "sleeping",
    value: {
      taskId,
      index,
      due:
        wake instanceof Date
          ? { case: "wakeTime", value: timestampFromDate(wake) }
          : // Whole ms, rounded up: a sleep never ends before it was asked to.
            { case: "sleepDuration", value: durationFromMs(Math.ceil(wake)) },
    },
  };
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
    // These fail again on every attempt: a retry replays the same value or timeout.
    retryable:
      !(
        error instanceof InvalidValueError ||
        error instanceof JsonTooDeepError ||
        error instanceof InterruptTimeoutError
      ) && retries(registration?.retry, error),
    traceback,
  };
}
